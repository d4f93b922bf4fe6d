"""A desired-state path the reconciler may not read (a directory of mode 000, a file in a
directory it may not look into) is an error naming it, from `reconciler validate` run as a
real subprocess: never a traceback, and never skipped, as what its files declare would then
count as removed. Run as root, the child drops the capabilities that let root read anything,
as the state-directory tests do."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = textwrap.dedent("""\
    apiVersion: energy.reconciler.dev/v1alpha1
    kind: Site
    metadata:
      name: home
    spec:
      displayName: Home
      timezone: Europe/Stockholm
    """)
HINT = ("so what its files declare is not known: give the user running the reconciler read "
        "permission, and search permission on directories (chmod u+rx)")


def _without_permission_checks_bypassed() -> None:
    """In a child about to run the CLI as root: drop CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH, so that a mode stops root as it stops anyone else."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(99)


@contextlib.contextmanager
def _mode(path: Path, mode: int) -> Iterator[Callable[[], None] | None]:
    """`path` has `mode` inside the block; yields the `preexec_fn` a CLI run needs."""
    before = path.stat().st_mode
    path.chmod(mode)
    try:
        yield _without_permission_checks_bypassed if os.geteuid() == 0 else None
    finally:
        path.chmod(before)


def _validate(path: Path, preexec_fn: Callable[[], None] | None) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(path)],
                          capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)
    if done.returncode == 99:
        pytest.skip("running as root without CAP_SETPCAP: no way to be denied")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout + done.stderr


def test_a_subdirectory_that_cannot_be_listed_is_an_error_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "sites" / "north").mkdir(parents=True)
    (tmp_path / "sites" / "home.yaml").write_text(SITE)
    (tmp_path / "sites" / "north" / "cabin.yaml").write_text(SITE.replace("home", "cabin"))
    with _mode(tmp_path / "sites" / "north", 0) as preexec_fn:
        code, said = _validate(tmp_path / "sites", preexec_fn)
    assert code == 1, said
    assert f"error: {tmp_path}/sites/north: cannot be read (Permission denied), {HINT}" in said


def test_a_file_in_a_directory_that_cannot_be_searched_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "home.yaml").write_text(SITE)
    with _mode(tmp_path / "sites", 0o444) as preexec_fn:  # listed, not looked into
        code, said = _validate(tmp_path / "sites", preexec_fn)
    assert code == 1, said
    assert f"error: {tmp_path}/sites/home.yaml: cannot be read (Permission denied)" in said


def test_a_path_named_inside_a_directory_that_cannot_be_searched_is_an_error(
        tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "home.yaml").write_text(SITE)
    with _mode(tmp_path / "sites", 0) as preexec_fn:
        code, said = _validate(tmp_path / "sites" / "home.yaml", preexec_fn)
    assert code == 1, said
    assert f"error: {tmp_path}/sites/home.yaml: cannot be read (Permission denied), {HINT}" in said
