"""The state directory's lock seen by a reader that takes none: `StateDir.holder` names the
process that holds it, or nobody, and a writer is not refused because a reader looked."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from reconciler.engine import state
from reconciler.engine.state import LockHeld, StateDir


def test_the_holder_is_named_while_it_holds_the_lock_and_nobody_after(tmp_path: Path) -> None:
    state_dir = StateDir(tmp_path / "state")
    assert state_dir.holder() is None, "never locked: no lock file"
    with state_dir.lock("reconciler watch sites"):
        holder = state_dir.holder()
        assert holder is not None and holder.startswith("pid ")
        assert "running `reconciler watch sites` since " in holder
        # Looking does not take the lock from the holder, nor keep it.
        assert state_dir.holder() == holder
    assert state_dir.holder() is None
    with state_dir.lock("reconciler apply sites"):  # the next writer gets it
        pass


def test_a_writer_is_not_refused_because_a_reader_was_looking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = StateDir(tmp_path)
    state_dir.ensure()
    # What `holder()` holds for an instant: a shared lock, and no line of its own.
    looking = open(tmp_path / "lock", encoding="utf-8", mode="a+")  # noqa: SIM115
    fcntl.flock(looking.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    waits: list[float] = []

    def reader_done(seconds: float) -> None:
        waits.append(seconds)
        looking.close()

    monkeypatch.setattr(state.time, "sleep", reader_done)
    with state_dir.lock("reconciler apply sites"):
        assert len(waits) == 1
    assert state_dir.holder() is None


def test_a_holder_that_never_writes_its_line_is_still_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = StateDir(tmp_path)
    state_dir.ensure()
    with open(tmp_path / "lock", "a+", encoding="utf-8") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        monkeypatch.setattr(state.time, "sleep", lambda seconds: None)
        refused = pytest.raises(LockHeld, match="is locked by another process; wait for it")
        with refused, state_dir.lock("reconciler apply sites"):
            pass
