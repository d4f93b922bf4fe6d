"""The journal in the state directory: intents without an outcome are reported until a run
has observed them again (`StateDir.settle`), and a long settled journal starts afresh."""

from __future__ import annotations

import json
import threading
import time
import types
from pathlib import Path

import pytest

from reconciler.engine import state
from reconciler.engine.state import StateDir


def cut_off_run(state_dir: StateDir, writes: int, finished: int) -> str:
    """A run that started `writes` writes and finished the first `finished` of them."""
    journal = state_dir.journal()
    for n in range(writes):
        journal.intent(f"device/d{n}[zap]", "zap.add_device")
    for n in range(finished):
        journal.done(f"device/d{n}[zap]", "zap.add_device")
    journal.close()
    return journal.run_id


def test_unfinished_writes_are_reported_until_a_run_settles_them(tmp_path: Path) -> None:
    state_dir = StateDir(tmp_path)
    first = cut_off_run(state_dir, writes=3, finished=1)
    unfinished = state_dir.unfinished()
    assert [(r["run"], r["address"]) for r in unfinished] == [
        (first, "device/d1[zap]"), (first, "device/d2[zap]")]

    # A later run is cut off too, after the earlier run's writes were read (and reported).
    second = cut_off_run(state_dir, writes=1, finished=0)
    state_dir.settle(unfinished)
    assert [r["run"] for r in state_dir.unfinished()] == [second], \
        "only what was reported is settled"


def test_a_long_settled_journal_starts_afresh(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "JOURNAL_ROTATE_BYTES", 2_000)
    state_dir = StateDir(tmp_path)
    cut_off_run(state_dir, writes=20, finished=19)
    unfinished = state_dir.unfinished()
    journal = tmp_path / "journal.jsonl"

    state_dir.settle([])
    assert journal.exists(), "an unfinished write keeps the journal where it is read"
    state_dir.settle(unfinished)
    assert not journal.exists() and (tmp_path / "journal.jsonl.1").exists()
    assert state_dir.unfinished() == []

    cut_off_run(state_dir, writes=1, finished=1)
    assert journal.exists(), "the next run starts a new journal"


@pytest.mark.parametrize("line", [
    b"{torn by a kill", b'{"address": "\xff"}', b"[" * 5000 + b"]" * 5000,
    b'{"phase": ' + b"9" * 5000 + b"}",
])
def test_a_journal_line_that_is_no_record_is_skipped(tmp_path: Path, line: bytes) -> None:
    """Not a line the journal wrote (torn, not UTF-8, nested or a number past what Python's
    parser reads): the records around it are still read, and no run stops on it."""
    state_dir = StateDir(tmp_path)
    first = cut_off_run(state_dir, writes=1, finished=0)
    with (tmp_path / "journal.jsonl").open("ab") as journal:
        journal.write(line + b"\n")
    second = cut_off_run(state_dir, writes=1, finished=0)
    assert [r["run"] for r in state_dir.unfinished()] == [first, second]


class _ClearHeldUntilClose(threading.Event):
    """The journal's "lines to sync" event, whose first clear() by the syncing thread
    waits until close() has asked that thread to end: the moment a close() lands between
    the thread's wake-up and its clear()."""

    def __init__(self) -> None:
        super().__init__()
        self.close_asked = threading.Event()
        self.journal: state.Journal | None = None

    def set(self) -> None:
        super().set()
        if self.journal is not None and self.journal._closing:
            self.close_asked.set()

    def clear(self) -> None:
        self.close_asked.wait(timeout=30)
        super().clear()


def test_a_close_while_the_journal_syncs_ends_its_thread(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, the syncing thread read "not closing", then cleared close()'s wake-up and
    # waited for another line for ever, with close() (at the end of every apply) waiting
    # for it: the apply hung once it was done.
    gate = _ClearHeldUntilClose()
    # The state module's own `threading` only: threading.Thread makes Events of its own.
    monkeypatch.setattr(state, "threading",
                        types.SimpleNamespace(Event=lambda: gate, Thread=threading.Thread))
    journal = StateDir(tmp_path).journal()
    gate.journal = journal
    journal.intent("device/d0[zap]", "zap.add_device")  # wakes the thread: it waits in clear()
    closing = threading.Thread(target=journal.close, daemon=True)
    closing.start()
    closing.join(timeout=30)
    assert not closing.is_alive(), "close() waits for the syncing thread for ever"
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["address"] for line in lines] == ["device/d0[zap]"]


def test_each_line_is_its_record_as_json_after_its_second_and_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The line's first keys are made once a second, not encoded at each line: the lines
    # are still `json.dumps` of {ts, run, **record}, whatever the record holds, and a line
    # of a new second has that second's time.
    now = [1_767_225_599.5]  # 2025-12-31T23:59:59.5Z
    monkeypatch.setattr(state, "time", types.SimpleNamespace(
        time=lambda: now[0], strftime=time.strftime, gmtime=time.gmtime, sleep=time.sleep))
    journal = StateDir(tmp_path).journal()
    said = 'a "quote", a \\ and a\nnew line, \u2028, \x00, Wärme ☀ 🔋'
    journal.intent("device/ü[zap]", "zap.add_device", action="create")
    journal.done("device/ü[zap]", "zap.add_device")
    now[0] += 1
    journal.failed("site/s1[novacore]", "novacore.create_site", said)
    journal.intent("device/d1[zap]", "zap.add_device", run="another", ts="then")
    journal.close()

    run = journal.run_id
    expected = [
        {"ts": "2025-12-31T23:59:59Z", "run": run, "address": "device/ü[zap]",
         "operation": "zap.add_device", "phase": "intent", "action": "create"},
        {"ts": "2025-12-31T23:59:59Z", "run": run, "address": "device/ü[zap]",
         "operation": "zap.add_device", "phase": "done"},
        {"ts": "2026-01-01T00:00:00Z", "run": run, "address": "site/s1[novacore]",
         "operation": "novacore.create_site", "phase": "failed", "error": said},
        # Details of the names of its first keys take their places, as in a merged dict.
        {"ts": "then", "run": "another", "address": "device/d1[zap]",
         "operation": "zap.add_device", "phase": "intent"},
    ]
    written = (tmp_path / "journal.jsonl").read_bytes()
    assert written == b"".join((json.dumps(line) + "\n").encode() for line in expected)
