"""A command whose standard output cannot be written (a full disk: /dev/full answers every
write with ENOSPC) says so in one line and exits 1, with no traceback; an apply still
runs to its end, so the run is not cut short for the sake of its output, and the next
plan has nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import ThreadedSims, load, standard_site, write

REPOSITORY = Path(__file__).resolve().parents[2]
FULL = "error: standard output cannot be written (No space left on device): what it " \
       "shows is incomplete"

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")


def reconciler(*args: str, env: dict[str, str] | None = None,
               full: bool = True) -> subprocess.CompletedProcess[str]:
    with open("/dev/full" if full else os.devnull, "w", encoding="utf-8") as out:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args], cwd=REPOSITORY, env=env,
            stdin=subprocess.DEVNULL, stdout=out if full else subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=120, check=False)


@pytest.fixture
def sims_env(tmp_path: Path) -> Iterator[tuple[ThreadedSims, dict[str, str]]]:
    with ThreadedSims(load(standard_site(2))) as sims:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        env |= sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}
        yield sims, env


@pytest.mark.parametrize("command", [["validate", "examples/sites"],
                                     ["validate", "-o", "json", "examples/sites"],
                                     ["schema"]])
def test_output_that_cannot_be_written_is_said_in_one_line(command: list[str]) -> None:
    done = reconciler(*command)
    assert (done.returncode, done.stderr.splitlines()) == (1, [FULL]), done.stderr


def test_an_apply_whose_output_cannot_be_written_runs_to_its_end(
        sims_env: tuple[ThreadedSims, dict[str, str]], tmp_path: Path) -> None:
    sims, env = sims_env
    sites = tmp_path / "sites"
    write(sites, standard_site(2))
    for command in (["plan", "-o", "json"], ["plan", "-o", "markdown"]):
        done = reconciler(*command, str(sites), env=env)
        assert (done.returncode, done.stderr.splitlines()) == (1, [FULL]), done.stderr
    applied = reconciler("apply", str(sites), "--auto-approve", env=env)
    assert (applied.returncode, applied.stderr.splitlines()) == (1, [FULL]), applied.stderr
    # Everything was applied: the next plan, written where it can be, has nothing to do.
    sims.call(sims.sims.reset_counts)
    again = reconciler("plan", "--detailed-exitcode", str(sites), env=env, full=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sims.call(sims.sims.writes) == 0
