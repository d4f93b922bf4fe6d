"""`reconciler apply` (a real subprocess, against simulators on loopback) with a state
directory it cannot write: refused before anything is changed when no file can be made
there, though an earlier run's lock file is there to open; and a state file that cannot be
written once changes are under way stops the run with a message naming that file and why,
never a traceback. A state file another user owns, which this one may not read, is no
damaged file: the message says to run as the state directory's owner or fix its
permissions, not to remove it."""

from __future__ import annotations

import ctypes
import os
import pwd
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from simworld import (
    ORG_A,
    ThreadedSims,
    converged_exactly_once,
    load,
    mqtt_battery,
    site_names,
    standard_site,
    write,
)

from reconciler.engine.state import StateDir
from reconciler.model.fleet import Fleet
from reconciler.state_files import (
    CREDENTIALS,
    CREDENTIALS_KEY,
    INVENTORY,
    LOCK,
    TEMPORARY_SUFFIX,
)

pytestmark = pytest.mark.slow


def _without_permission_checks_bypassed() -> None:
    """In a child about to run the CLI as root: drop the capabilities that let root write
    into any directory (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that a directory's mode
    stops it as it stops anyone else."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(99)


def _apply(fleet_dir: Path, env: dict[str, str],
           preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(fleet_dir), "--auto-approve",
         "--no-color"],
        env=os.environ | env, capture_output=True, text=True, timeout=120,
        preexec_fn=preexec_fn,
    )


def test_apply_is_refused_before_any_change_in_a_state_directory_no_file_can_be_made_in(
        tmp_path: Path) -> None:
    docs = standard_site(1)
    fleet = load(docs)
    fleet_dir = write(tmp_path / "sites", docs)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / LOCK).touch()  # left by an earlier run: it opens as it did then
    state_dir.chmod(0o555)
    try:
        with ThreadedSims(fleet) as sims:
            env = sims.env() | {"RECONCILER_STATE_DIR": str(state_dir)}
            root = os.geteuid() == 0
            done = _apply(fleet_dir, env, _without_permission_checks_bypassed if root else None)
            if done.returncode == 99:
                pytest.skip("running as root without CAP_SETPCAP: no way to be denied")
            assert done.returncode == 1, done.stdout + done.stderr
            assert "Traceback" not in done.stderr, done.stderr
            assert (f"error: cannot use {state_dir} as the state directory: a file cannot be "
                    "created in it (permission denied)") in done.stderr, done.stderr
            assert "nothing was changed" in done.stderr
            assert sims.call(site_names, sims.sims, ORG_A) == [], "a site was created"
    finally:
        state_dir.chmod(0o755)
    assert sorted(p.name for p in state_dir.iterdir()) == [LOCK], "the probe was left there"


def test_an_inventory_that_cannot_be_written_after_the_changes_stops_apply_naming_it(
        tmp_path: Path) -> None:
    docs = standard_site(1)
    fleet = load(docs)
    fleet_dir = write(tmp_path / "sites", docs)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    # What stands where the inventory is written before it is renamed into place: its
    # write fails as on a full disk, once the changes are made.
    blocker = state_dir / (INVENTORY + TEMPORARY_SUFFIX)
    blocker.mkdir()
    with ThreadedSims(fleet) as sims:
        env = sims.env() | {"RECONCILER_STATE_DIR": str(state_dir)}
        done = _apply(fleet_dir, env)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert (f"error: cannot write {state_dir / INVENTORY}, the inventory (what the runs "
                f"applied, for when it is declared no more): {blocker}: is a directory; the "
                "changes already made stay") in done.stderr, done.stderr
        assert "✓ site/" in done.stdout, "the changes were made before the inventory"
        blocker.rmdir()
        again = _apply(fleet_dir, env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "No changes." in again.stdout, again.stdout
        sims.call(converged_exactly_once, sims.sims, fleet)
    assert (state_dir / INVENTORY).is_file()


def test_the_state_directory_is_private_and_its_files_writable_by_their_owner_alone(
        tmp_path: Path) -> None:
    """Under umask 000 too: the inventory names the files a later `--prune` removes, and the
    directory keeps the credential ledger; no other user may write either."""
    docs = standard_site(1)
    fleet_dir = write(tmp_path / "sites", docs)
    state_dir = tmp_path / "deep" / "state"
    with ThreadedSims(load(docs)) as sims:
        env = sims.env() | {"RECONCILER_STATE_DIR": str(state_dir)}
        done = _apply(fleet_dir, env, lambda: os.umask(0) and None)
        assert done.returncode == 0, done.stdout + done.stderr
    assert state_dir.stat().st_mode & 0o777 == 0o700
    made = {path.name: path.stat().st_mode & 0o777 for path in state_dir.iterdir()}
    assert INVENTORY in made and LOCK in made, made
    assert not {name: oct(mode) for name, mode in made.items() if mode & 0o022}, made


def _battery_site(tmp_path: Path) -> tuple[Fleet, Path, Path]:
    """One site with an MQTT battery whose password comes from S1_BATTERY_PASSWORD: its
    fleet, the directory it is written to, and a state directory for it."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-ENV",
                         password_from={"env": "S1_BATTERY_PASSWORD"})]
    return load(docs), write(tmp_path / "sites", docs), tmp_path / "state"


def test_a_credentials_key_another_user_owns_is_not_advised_away(tmp_path: Path) -> None:
    fleet, fleet_dir, state_dir = _battery_site(tmp_path)
    with ThreadedSims(fleet) as sims:
        env = sims.env() | {"RECONCILER_STATE_DIR": str(state_dir),
                            "S1_BATTERY_PASSWORD": "battery-pw-5e21"}  # a test value
        assert _apply(fleet_dir, env).returncode == 0
        key = state_dir / "credentials.key"
        root = os.geteuid() == 0
        if root:
            os.chown(key, 65534, 65534)  # another user's, mode 0600 as written
        else:
            key.chmod(0)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "reconciler", "plan", str(fleet_dir), "--no-color"],
                env=os.environ | env, capture_output=True, text=True, timeout=120,
                preexec_fn=_without_permission_checks_bypassed if root else None,
            )
        finally:
            if root:
                os.chown(key, 0, 0)
            key.chmod(0o600)
    if done.returncode == 99:
        pytest.skip("running as root without CAP_SETPCAP: no way to be denied")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    owner = state_dir.stat()
    assert (f"error: cannot read {key}: permission denied. It holds the fingerprints of the "
            "MQTT passwords sent to devices; run reconciler as the user that owns the state "
            f"directory ({pwd.getpwuid(owner.st_uid).pw_name}, uid {owner.st_uid}), or fix "
            "the permissions of credentials.key so that this user may read it; do not remove "
            "it, which would lose what it holds") in done.stderr, done.stderr
    assert "start afresh" not in done.stderr


# -- the temporary file of a state file a killed run left ------------------------------------------

# Run as `python -c`: `reconciler ARGS...`, which kills itself (SIGKILL) as it is about to
# rename a file it wrote onto the state file NAME (its temporary file whole and synced).
_KILLED_BEFORE_THE_RENAME_OF = """
import os, runpy, signal, sys
target = sys.argv.pop(1)
def hook(event, args):
    if event == "os.rename" and os.path.basename(os.fspath(args[1])) == target:
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
sys.argv[0] = "reconciler"
runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(("name", "what"), [
    (INVENTORY, "the inventory"),
    (CREDENTIALS_KEY, "the credential ledger's key"),
    (CREDENTIALS, "the credential ledger"),
])
def test_the_temporary_file_of_a_state_file_a_killed_apply_left_is_removed_by_the_next(
        tmp_path: Path, name: str, what: str) -> None:
    """Killed between writing `NAME.tmp` and renaming it over NAME: the next apply, once it
    holds the lock, removes it and says so in one line, never what it holds; a plan only
    says the next apply removes it, and files of other names are left alone."""
    fleet, fleet_dir, state_dir = _battery_site(tmp_path)
    leftover = state_dir / (name + TEMPORARY_SUFFIX)
    with ThreadedSims(fleet) as sims:
        env = sims.env() | {"RECONCILER_STATE_DIR": str(state_dir),
                            "S1_BATTERY_PASSWORD": "battery-pw-5e21"}  # a test value
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_BEFORE_THE_RENAME_OF, name, "apply", str(fleet_dir),
             "--auto-approve", "--no-color"],
            env=os.environ | env, capture_output=True, text=True, timeout=120,
        )
        assert killed.returncode == -9, killed.stdout + killed.stderr
        assert leftover.is_file() and not (state_dir / name).exists()
        held = leftover.read_bytes()
        others = [state_dir / f"{name}.bak", state_dir / f"{name}{TEMPORARY_SUFFIX}.1",
                  state_dir / f"journal.jsonl{TEMPORARY_SUFFIX}", state_dir / "notes.tmp"]
        for other in others:
            other.write_text("a user's")

        planned = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", str(fleet_dir), "--no-color"],
            env=os.environ | env, capture_output=True, text=True, timeout=120,
        )
        assert planned.returncode == 0, planned.stdout + planned.stderr
        said = [line for line in planned.stderr.splitlines() if TEMPORARY_SUFFIX in line]
        assert said == [f"note: {leftover} is a temporary file of {what} left by an "
                        "interrupted run; the next apply removes it"], planned.stderr
        assert leftover.read_bytes() == held, "a plan wrote"

        done = _apply(fleet_dir, env)
        assert done.returncode == 0, done.stdout + done.stderr
        said = [line for line in done.stdout.splitlines() if TEMPORARY_SUFFIX in line]
        assert said == [f"note: removed {leftover}, a temporary file of {what} left by an "
                        "interrupted run"], done.stdout
        assert held.decode(errors="replace") not in done.stdout + done.stderr
        sims.call(converged_exactly_once, sims.sims, fleet)
        assert not leftover.exists()
        assert all(other.read_text() == "a user's" for other in others)
        # Against the simulators still up: a run that could not reach them would say
        # other things, and its exit code would not be about the leftover.
        again = _apply(fleet_dir, env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "note:" not in again.stdout + again.stderr, again.stdout


def test_a_link_a_directory_or_another_users_file_under_a_temporary_name_is_left_alone(
        tmp_path: Path) -> None:
    """No writer makes one (each makes a regular file of its own, never following a link):
    it is no leftover, and neither a plan nor taking the lock names or removes it, nor
    what a link points to."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("kept")
    link = state_dir / (CREDENTIALS + TEMPORARY_SUFFIX)
    link.symlink_to(elsewhere)
    directory = state_dir / (INVENTORY + TEMPORARY_SUFFIX)
    directory.mkdir()
    others = state_dir / (CREDENTIALS_KEY + TEMPORARY_SUFFIX)
    if os.geteuid() == 0:  # only root can give a file to another user
        others.write_text("kept")
        os.chown(others, 65534, 65534)
    state = StateDir(state_dir)
    assert state.temporaries() == []
    with state.lock("reconciler apply sites") as said:
        assert said == []
    assert link.is_symlink() and elsewhere.read_text() == "kept" and directory.is_dir()
    assert os.geteuid() != 0 or others.read_text() == "kept"
