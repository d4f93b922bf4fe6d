"""A `reconciler apply` killed with SIGKILL in the middle of its writes, then run again,
leaves no duplicates: every remote object is found again by its natural key, and the
journal shows what the killed run had started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from simworld import (
    ThreadedSims,
    converged_exactly_once,
    declared_hardware,
    load,
    mqtt_battery,
    serial_of,
    set_latency,
    standard_site,
    write,
)

from reconciler.cli import main as cli
from reconciler.engine.state import unfinished_intents

pytestmark = pytest.mark.slow

LATENCY_MS = 100


def fleet_docs() -> list[dict[str, object]]:
    docs: list[dict[str, object]] = []
    for index in range(1, 5):
        docs += [*standard_site(index),
                 mqtt_battery(f"s{index}-bat", f"s{index}-zap", f"FERRO{index}")]
    return docs


def journal_lines(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # torn by the kill
    return out


def test_apply_killed_mid_run_and_run_again_leaves_no_duplicates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    docs = fleet_docs()
    fleet = load(docs)
    fleet_dir = tmp_path / "sites"
    write(fleet_dir, docs)
    state_dir = tmp_path / "state"
    journal = state_dir / "journal.jsonl"

    with ThreadedSims(fleet) as sims:
        sims.call(set_latency, sims.sims, LATENCY_MS)
        env = os.environ | sims.env() | {"RECONCILER_STATE_DIR": str(state_dir)}
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(fleet_dir), "--auto-approve"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # Kill once writes are under way: some done, more to come.
            deadline = time.monotonic() + 30
            while sum(r.get("phase") == "done" for r in journal_lines(journal)) < 4:
                assert process.poll() is None, "apply finished before it could be killed"
                assert time.monotonic() < deadline, "apply never started writing"
                time.sleep(0.01)
            time.sleep(LATENCY_MS / 1000 / 2)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL

        records = journal_lines(journal)
        started = {r["address"] for r in records if r.get("phase") == "intent"}
        assert started, "the killed run had started writing"
        planned_writes = 4 * (2 + 3 * 3)  # per site: site, claim; 3 devices x (zap, cloud, DERs)
        assert len(started) < planned_writes, "killed before it finished"

        for key, value in (sims.env() | {"RECONCILER_STATE_DIR": str(state_dir)}).items():
            monkeypatch.setenv(key, value)
        sims.call(set_latency, sims.sims, 0)
        capsys.readouterr()
        assert cli.main(["apply", str(fleet_dir), "--auto-approve"]) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        interrupted = unfinished_intents(journal)
        assert interrupted == [] or "interrupted" in out

        sims.call(sims.sims.reset_counts)
        assert cli.main(["plan", str(fleet_dir), "--detailed-exitcode"]) == 0, "converged"
        assert sims.call(sims.sims.writes) == 0

        def check() -> None:
            converged_exactly_once(sims.sims, fleet)
            novacore = sims.sims.novacore
            hardware = [d.hardware_id for d in novacore.devices.values()]
            assert sorted(hardware) == sorted(declared_hardware(fleet)), "one device each"
            assert len(novacore.sites) == len(fleet.sites), "one site each"
            for index in range(1, 5):
                assert len(sims.sims.zaps[serial_of(index)].devices) == 3

        sims.call(check)
