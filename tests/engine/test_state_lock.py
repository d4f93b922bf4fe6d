"""The state directory's lock seen by a reader that takes none: `StateDir.holder` names the
process that holds it, or nobody, and a writer is not refused because a reader looked;
`reconciler plan` (a real subprocess) says so while another process applies."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
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


def test_a_plan_made_while_another_process_applies_says_so(tmp_path: Path) -> None:
    (tmp_path / "home.yaml").write_text(
        "apiVersion: energy.reconciler.dev/v1alpha1\nkind: Site\nmetadata:\n  name: home\n"
        "spec:\n  displayName: Home\n  timezone: Europe/Stockholm\n", encoding="utf-8")
    state_dir = StateDir(tmp_path / "state")
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECONCILER_")}
    env["RECONCILER_STATE_DIR"] = str(state_dir.path)

    def plan() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", "plan", "home.yaml"],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60, check=False)

    with state_dir.lock("reconciler apply sites"):
        holder = state_dir.holder()
        done = plan()
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"note: another process is applying: the state directory is "
                           f"locked by {holder}; this plan may list changes it is making "
                           "now\n")
    assert plan().stderr == "", "nobody holds it any more"


def test_a_state_directory_a_run_made_and_wrote_nothing_into_goes_with_its_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused run leaves no state behind: the directories its lock made go when it lets
    go, unless something was written there. A writer that was waiting on the lock file
    meanwhile takes a new one, in a directory that is there, rather than a lock nobody
    else can see."""
    made = StateDir(tmp_path / "a" / "state")
    with made.lock("reconciler apply sites"):
        assert (made.path / "lock").is_file()
    assert list(tmp_path.iterdir()) == []
    with made.lock("reconciler apply sites"):
        (made.path / "inventory.json").write_text("{}", encoding="utf-8")
    assert sorted(p.name for p in made.path.iterdir()) == ["inventory.json", "lock"]

    fresh = StateDir(tmp_path / "fresh")
    fresh.ensure()
    # The holder has written no line yet, so the next writer waits (see `lock`); while it
    # waits, the holder lets go and removes the directory it made.
    holding = open(fresh.path / "lock", "a+", encoding="utf-8")  # noqa: SIM115
    fcntl.flock(holding.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def holder_done(seconds: float) -> None:
        (fresh.path / "lock").unlink()
        fresh.path.rmdir()
        holding.close()

    monkeypatch.setattr(state.time, "sleep", holder_done)
    with fresh.lock("reconciler apply sites"):
        assert fresh.holder() is not None, "the lock taken is the one at the path"


def test_a_lock_file_that_is_a_link_to_a_file_is_still_taken(tmp_path: Path) -> None:
    """The lock file is opened through a link, as before: the lock taken is not mistaken
    for one its holder removed."""
    target = tmp_path / "elsewhere-lock"
    target.write_text("", encoding="utf-8")
    state_dir = StateDir(tmp_path / "state")
    state_dir.ensure()
    (state_dir.path / "lock").symlink_to(target)
    with state_dir.lock("reconciler apply sites"):
        assert "running `reconciler apply sites`" in target.read_text(encoding="utf-8")
