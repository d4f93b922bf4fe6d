"""A Warning says a problem once: while an object stays invalid or blocked, the drift
checks that find it so again post no more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import WAIT, operator
from objects import HOME, declare

from reconciler.sim.fleet import SimFleet

# The inverter's serial check finds another serial: its changes are blocked.
BLOCKED = HOME.replace("hardwareId: SG0001", "hardwareId: SG0099")
# A read that fails in between is another problem (Ready says it), and the blocked change
# found again after it is said again: the reads are given time enough not to fail on a
# loaded machine, where the Zap's read of the device (1 s by default, in the test's event
# loop) or the operator's request (RECONCILER_TIMEOUT) would time out now and then.
SETTINGS = {"RECONCILER_TIMEOUT": str(3 * WAIT)}


def _patient_zaps(sims: SimFleet) -> None:
    for zap in sims.zaps.values():
        zap.modbus_timeout_s = 2 * WAIT


async def _warnings(cluster: Any, name: str) -> list[str]:
    return [
        f"{e.get('reason')}: {e.get('message')}"
        for e in await cluster.events_about(name, type_="Warning")
    ]


async def test_warnings_are_posted_once_per_problem(tmp_path: Path, monkeypatch: Any) -> None:
    async with operator(HOME, tmp_path, monkeypatch, before_start=_patient_zaps,
                        settings=SETTINGS) as (cluster, _):
        docs = await declare(cluster, BLOCKED)
        # An unknown device type (the emulator does not validate against the CRD's schema,
        # as an API server with an older CRD would not either).
        battery = next(d for d in docs if d["metadata"]["name"] == "home-battery")
        invalid = json.loads(json.dumps(battery))
        invalid["metadata"]["name"] = "toaster"
        invalid["spec"]["deviceType"] = "toaster"
        await cluster.create(invalid)
        await cluster.wait_condition("Device", "home-inverter", "Verified", status="False")
        await cluster.wait_condition("Device", "toaster", "Ready", status="False")
        await cluster.wait_planned("Device", "home-inverter", 3)
        await cluster.wait_planned("Device", "toaster", 3)
        for name in ("home-inverter", "toaster"):
            warnings = await _warnings(cluster, name)
            failed = [w for w in warnings if w.startswith("Failed:")]
            assert len(failed) == 1, warnings
