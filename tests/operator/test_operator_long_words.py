"""An id a page long in what the operator says of an object: a 5,000-character hardwareId
that the device does not report blocks its Device, and the condition's message and the
Warning Event show it cut, as `reconciler plan` shows it (its start and its length), not
cut off at the message's end with nothing said after it. The operator runs with kopf
against the Kubernetes emulator and the simulators (`harness.operator`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import operator
from objects import HOME, declare

LONG = 5_000
HARDWARE_ID = "SG" + "9" * (LONG - 2)
CUT = f"'{HARDWARE_ID[:200]}…'; ({LONG:,} characters)"


async def test_a_long_hardware_id_is_cut_in_conditions_and_events(
        tmp_path: Path, monkeypatch: Any) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, _):
        await declare(cluster, HOME.replace("hardwareId: SG0001", f"hardwareId: {HARDWARE_ID}"))
        verified = await cluster.wait_condition("Device", "home-inverter", "Verified",
                                                status="False")
        said = "the device reports serial 'SG0001', not hardwareId "
        assert f"{said}{CUT} it is not" in verified["message"], verified["message"]
        assert HARDWARE_ID not in verified["message"]
        # Ready and Synced join the blocked changes' messages: the id is cut in each, with
        # its whole length said, before the joined message is cut to its 1,000 characters.
        ready = await cluster.wait_reason("Device", "home-inverter", "Blocked")
        assert f"{said}{CUT} it is not" in ready["message"], ready["message"]
        events = await cluster.wait_events_about("home-inverter", reason="Failed")
        messages = [e["message"] for e in events]
        assert any(f"{said}{CUT} it is not" in m for m in messages), messages
        assert not any(HARDWARE_ID in m for m in messages), messages
        # The object's spec, which is data, keeps the id whole.
        device = await cluster.get("Device", "home-inverter")
        assert device is not None and device["spec"]["hardwareId"] == HARDWARE_ID
