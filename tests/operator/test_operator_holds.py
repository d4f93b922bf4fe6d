"""An apply that failed permanently is not made again until what it was made from changes:
the drift timer keeps observing and reporting, but writes nothing. Transient failures are
retried as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import operator
from objects import HOME, ZAP, declare

from reconciler.sim.fleet import SimFleet

# The MQTT battery declared with a hardware id its gateway will not read from it: the Zap
# adds it, reports another serial, and the operator removes it again.
WRONG_SERIAL = HOME.replace("hardwareId: ferroamp_192.168.1.70", "hardwareId: ferroamp_WRONG")
ADD, REMOVE = "POST /api/devices", "DELETE /api/devices/{sn}"


async def test_a_serial_mismatch_is_not_written_again_until_the_spec_changes(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster, WRONG_SERIAL)

        cond = await cluster.wait_reason("Device", "home-battery", "ApplyFailed",
                                         what="the battery's apply failed")
        assert "ferroamp_WRONG" in cond["message"] and "not tried again" in cond["message"]
        # The inverter is added through the same endpoint: let it be done first.
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        zap = sims.zaps[ZAP]
        adds, removes = zap.requests[ADD], zap.requests[REMOVE]
        assert (adds, removes) == (2, 1), "the inverter added; the battery added and removed"

        await cluster.wait_planned("Device", "home-battery", 3)
        assert (zap.requests[ADD], zap.requests[REMOVE]) == (adds, removes), "no more writes"
        assert "ferroamp_WRONG" not in zap.devices
        still = await cluster.condition("Device", "home-battery", "Ready")
        assert still is not None
        assert (still["reason"], still["message"]) == ("ApplyFailed", cond["message"])

        # A corrected spec is applied at once.
        await cluster.patch(
            "Device",
            "home-battery",
            {"metadata": {"generation": 2}, "spec": {"hardwareId": "ferroamp_192.168.1.70"}},
        )
        await cluster.wait_condition("Device", "home-battery", "Ready")
        assert "ferroamp_192.168.1.70" in zap.devices


async def test_a_transient_failure_is_retried_without_a_spec_change(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        [battery] = sims.lans["home"].mqtt_devices.values()
        battery.online = False  # the Zap answers 503: it cannot reach the device
        await declare(cluster)

        cond = await cluster.wait_reason("Device", "home-battery", "ApplyFailed",
                                         what="the battery's apply failed")
        assert "not tried again" not in cond["message"]
        battery.online = True
        await cluster.wait_condition("Device", "home-battery", "Ready")
        assert "ferroamp_192.168.1.70" in sims.zaps[ZAP].devices


async def test_a_serial_read_not_answered_in_time_is_retried_without_a_spec_change(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A Modbus device that does not answer its serial read within the Zap's Modbus timeout
    (busy, rebooting, a slow bus) is no refusal: the Device is tried again at its next
    reconcile, and becomes Ready once the device answers. Before, the failure was taken
    for a permanent one and held until the spec changed."""
    logs: list[str] = []

    def slow(sims: SimFleet) -> None:
        for server in sims.modbus:  # the inverter: it answers after the Zap gave up
            server.slow_ms = (sims.zaps[ZAP].modbus_timeout_s + 0.5) * 1000

    async with operator(HOME, tmp_path, monkeypatch, logs=logs, before_start=slow) as (
        cluster, sims,
    ):
        await declare(cluster)
        # Each reconcile waits for two of the Zap's Modbus timeouts (the plan's read and the
        # apply's check): given time under load.
        cond = await cluster.wait_reason("Device", "home-inverter", "ApplyFailed", timeout=60,
                                         what="the inverter's serial check failed")
        assert "did not answer" in cond["message"], cond
        assert "not tried again" not in cond["message"], "not held"
        assert "SG0001" not in sims.zaps[ZAP].devices
        for server in sims.modbus:
            server.slow_ms = 0
        await cluster.wait_condition("Device", "home-inverter", "Ready", timeout=60)
        verified = await cluster.condition("Device", "home-inverter", "Verified")
        assert verified and verified["status"] == "True", verified
        assert "SG0001" in sims.zaps[ZAP].devices
        assert not [line for line in logs if "failed permanently" in line], "no hold"
