"""A Warning says a problem once: while an object stays invalid or blocked, the drift
checks that find it so again post no more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import PATIENT_SETTINGS, operator, patient_zaps
from objects import HOME, declare

# The inverter's serial check finds another serial: its changes are blocked.
BLOCKED = HOME.replace("hardwareId: SG0001", "hardwareId: SG0099")


async def _warnings(cluster: Any, name: str) -> list[str]:
    return [
        f"{e.get('reason')}: {e.get('message')}"
        for e in await cluster.events_about(name, type_="Warning")
    ]


async def test_warnings_are_posted_once_per_problem(tmp_path: Path, monkeypatch: Any) -> None:
    # A read that fails in between is another problem (Ready says it), and the blocked
    # change found again after it is said again: the reads are given time enough not to
    # fail on a loaded machine.
    async with operator(HOME, tmp_path, monkeypatch, before_start=patient_zaps,
                        settings=PATIENT_SETTINGS) as (cluster, _):
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
