"""While an object's spec is invalid nothing about it is observed: the conditions of what an
earlier reconcile found (Reachable, Verified) become Unknown, saying why, instead of
keeping a True no one checks any more, and come back at the next valid reconcile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import operator
from objects import HOME, declare


async def test_observed_conditions_are_unknown_while_the_spec_is_invalid(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, _):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        for type_ in ("Reachable", "Verified"):
            await cluster.wait_condition("Device", "home-inverter", type_, "True")
        # An unknown device type (the emulator does not validate against the CRD's schema).
        await cluster.patch("Device", "home-inverter", {"spec": {"deviceType": "toaster"}})
        ready = await cluster.wait_condition("Device", "home-inverter", "Ready", "False")
        assert ready["reason"] == "InvalidSpec"
        for type_ in ("Reachable", "Verified"):
            cond = await cluster.wait_condition("Device", "home-inverter", type_, "Unknown")
            assert cond["reason"] == "InvalidSpec", cond
            assert cond["message"].startswith("not observed while the spec is invalid: "), cond
            assert "spec.deviceType" in cond["message"]
        await cluster.patch("Device", "home-inverter", {"spec": {"deviceType": "inverter"}})
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        for type_ in ("Reachable", "Verified"):
            await cluster.wait_condition("Device", "home-inverter", type_, "True")
