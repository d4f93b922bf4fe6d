"""`reconciler sim up` given numbers out of range (a negative latency, an error rate above
1, `nan`, no sites at all) as a real command line: each is named with the range it takes,
all at once, and nothing is written or started (exit 1, as any other misused option)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sim_up_running import sim_up_running

EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples" / "sites")
LATENCY = "a number of milliseconds from 0 to 3600000 (an hour)"
RATE = "a number from 0 to 1 (a fraction of the requests: 0.05 is one in 20)"


def sim_up(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "sim", "up", *options,
         "--env-file", str(tmp_path / "sim.env")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("options", "problems"), [
    (["--fleet", EXAMPLES, "--latency-ms", "-5"], [f"--latency-ms: must be {LATENCY}, not '-5'"]),
    # Not taken by argparse for an option ("expected one argument"): said as any other.
    (["--fleet", EXAMPLES, "--latency-ms", "-1e3", "--jitter-ms", "-5ms"], [
        f"--latency-ms: must be {LATENCY}, not '-1e3'",
        f"--jitter-ms: must be {LATENCY}, not '-5ms'"]),
    (["--fleet", EXAMPLES, "--latency-ms", "nan", "--jitter-ms", "inf", "--error-rate", "1.5",
      "--throttle-rate", "-0.1"], [
        f"--latency-ms: must be {LATENCY}, not 'nan'",
        f"--jitter-ms: must be {LATENCY}, not 'inf'",
        f"--error-rate: must be {RATE}, not '1.5'",
        f"--throttle-rate: must be {RATE}, not '-0.1'"]),
    (["--sites", "0", "--seed", "-1"], [
        "--sites: must be a whole number of sites from 1 to 65536 (each has a subnet of its "
        "own), not '0'",
        "--seed: must be a whole number of 0 or more, not '-1'"]),
    (["--sites", "-2", "--devices-per-site", "157"], [
        "--sites: must be a whole number of sites from 1 to 65536 (each has a subnet of its "
        "own), not '-2'",
        "--devices-per-site: must be a whole number of devices from 0 to 156 (a site's "
        "devices share one subnet), not '157'"]),
    (["--sites", "2.5", "--seed", "x"], [
        "--sites: must be a whole number of sites from 1 to 65536 (each has a subnet of its "
        "own), not '2.5'",
        "--seed: must be a whole number of 0 or more, not 'x'"]),
])
def test_each_number_out_of_range_is_named_with_its_range_and_nothing_starts(
        tmp_path: Path, options: list[str], problems: list[str]) -> None:
    fleet = tmp_path / "fleet"
    done = sim_up(tmp_path, *options, "--write-fleet", str(fleet))
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.splitlines() == [*(f"error: {p}" for p in problems),
                                        f"invalid arguments: {count}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing written"


@pytest.mark.parametrize(("given", "named", "why"), [
    ("taken", "taken", "it is a file, not a directory"),
    ("taken/fleet", "taken/fleet", "a part of the path is a file, not a directory"),
])
def test_a_write_fleet_directory_that_cannot_be_made_is_named_and_nothing_starts(
        tmp_path: Path, given: str, named: str, why: str) -> None:
    (tmp_path / "taken").write_text("a file of its own\n")
    done = sim_up(tmp_path, "--sites", "2", "--write-fleet", given)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.splitlines() == [
        f"error: --write-fleet: cannot write {named}: {why}; --write-fleet names a directory "
        "for the generated fleet's YAML files (DIR)",
        "invalid arguments: 1 problem"]
    assert (tmp_path / "taken").read_text() == "a file of its own\n"
    assert not (tmp_path / "sim.env").exists(), "no simulator started"


def test_the_bounds_of_each_range_are_taken_and_reach_the_simulators(tmp_path: Path) -> None:
    with sim_up_running("--sites", "1", "--devices-per-site", "156", "--write-fleet",
                        str(tmp_path / "fleet"), "--jitter-ms", "3600000", "--error-rate", "1",
                        "--throttle-rate", "0", "--seed", "0", cwd=tmp_path) as said:
        [control] = [line.split()[1] for line in said if line.startswith("Control ")]
        # Asked of the control port, which no fault touches: the simulator's own port
        # answers every request 503 now.
        faults = httpx.get(f"{control}/_sim/clouds/novacore/faults", timeout=10).json()
    # Where the generated fleet went, in words: one site is no "sites".
    assert said[0] == f"generated 1 site in {tmp_path / 'fleet'}\n", said
    assert (faults["jitter_ms"], faults["error_rate"], faults["throttle_rate"]) == (
        3600000.0, 1.0, 0.0), faults


@pytest.mark.parametrize(("options", "takes"), [
    (["--fleet", EXAMPLES, "--latency-ms"], f"--latency-ms: expected one argument: {LATENCY}"),
    (["--fleet", EXAMPLES, "--jitter-ms", "--error-rate", "0.1"],
     f"--jitter-ms: expected one argument: {LATENCY}"),
    (["--fleet", EXAMPLES, "--error-rate"], f"--error-rate: expected one argument: {RATE}"),
    (["--fleet", EXAMPLES, "--throttle-rate"],
     f"--throttle-rate: expected one argument: {RATE}"),
    (["--fleet", EXAMPLES, "--seed"], "--seed: expected one argument: a whole number of 0 or "
                                      "more"),
    (["--sites"], "--sites: expected one argument: a whole number of sites from 1 to 65536 "
                  "(each has a subnet of its own)"),
    (["--sites", "2", "--devices-per-site"], "--devices-per-site: expected one argument: a "
     "whole number of devices from 0 to 156 (a site's devices share one subnet)"),
])
def test_a_number_given_no_value_is_said_with_what_it_takes(
        tmp_path: Path, options: list[str], takes: str) -> None:
    """Refused by argparse before any value is read: its line says what the option takes,
    as a value out of range is said, and as `watch` says it of a duration."""
    done = sim_up(tmp_path, *options)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.splitlines()[-1] == f"reconciler sim up: error: argument {takes}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing written"
