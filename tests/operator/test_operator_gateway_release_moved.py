"""A Gateway deleted with `deletionPolicy: Release` after a Device moved off it to another
Gateway: the copy the move left on its Zap goes with the release, as `apply --prune`
removes it in the CLI; the devices nobody declares, and those still declared on it, stay
(the operator prunes nothing else). A Zap that does not answer does not keep the gateway
from being released: a Warning says the copy may be left on it. The copy goes only once the
device is on its new gateway's Zap: until then the copy and the release wait."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fleet_yaml import stream, zap_gateway
from harness import Cluster, operator
from objects import HOME, ZAP, declare

from reconciler.operator.config import OperatorConfig
from reconciler.operator.handlers import FINALIZER
from reconciler.sim.fleet import SimFleet

INVERTER = ("Device", "home-inverter")
# HOME with a second Zap at home, for the inverter to move to.
OTHER_ZAP = "zap-00000000000000a3"
WITH_OTHER = stream(HOME, zap_gateway("other-zap", "home", OTHER_ZAP, "http://192.168.1.3"))
# A device someone put on the first Zap by hand: no Device declares it.
STRANGER = "SG0099"


async def _moved(cluster: Cluster, sims: SimFleet) -> None:
    """WITH_OTHER declared, a stranger on the first Zap, and the inverter moved to the other
    Gateway and reconciled there."""
    await declare(cluster, WITH_OTHER)
    for kind, name in (INVERTER, ("Gateway", "home-zap"), ("Gateway", "other-zap")):
        await cluster.wait_condition(kind, name, "Ready", timeout=60)
    sims.zaps[ZAP].install_device(
        {"type": "modbus_tcp", "profile": "sungrow", "ip": "192.168.1.99"}, sn=STRANGER
    )
    await cluster.patch(*INVERTER, {"spec": {"gatewayRef": "other-zap"}})

    async def moved() -> bool:
        status = await cluster.status(*INVERTER)
        return (status.get("gateway") or {}).get("name") == "other-zap"

    await cluster.wait_for(moved, timeout=60, what="the inverter on the other Gateway")
    await cluster.wait_condition(*INVERTER, "Ready", timeout=60)
    # As the CLI leaves it without --prune: the move adds it to the other Zap only.
    assert {"SG0001", STRANGER, "ferroamp_192.168.1.70"} <= set(sims.zaps[ZAP].devices)
    assert "SG0001" in sims.zaps[OTHER_ZAP].devices


async def test_a_gateway_released_after_a_device_moved_off_it_takes_the_copy_off_its_zap(
    tmp_path: Path, monkeypatch: Any
) -> None:
    config = OperatorConfig(interval=300, retry_delay=0.5)
    async with operator(WITH_OTHER, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await _moved(cluster, sims)
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)

        assert sims.novacore.gateways[ZAP].org_id is None, "released"
        assert "SG0001" not in sims.zaps[ZAP].devices, "the copy the move left went with it"
        assert {STRANGER, "ferroamp_192.168.1.70"} <= set(sims.zaps[ZAP].devices), \
            "a device nobody declares, and one declared on it still, stay"
        assert "SG0001" in sims.zaps[OTHER_ZAP].devices
        [device] = [d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001"]
        assert (device.state, device.gateway_serial) == ("active", OTHER_ZAP)
        events = await cluster.events_about("home-zap", reason="Deleted")
        assert any("home-zap.SG0001[zap]" in e["message"] for e in events), events
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)


async def test_a_gateway_whose_zap_does_not_answer_is_released_saying_what_may_be_left(
    tmp_path: Path, monkeypatch: Any
) -> None:
    config = OperatorConfig(interval=300, retry_delay=0.5)
    async with operator(WITH_OTHER, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await _moved(cluster, sims)
        await sims.zaps[ZAP].set_offline("refuse")
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)

        assert sims.novacore.gateways[ZAP].org_id is None, "released all the same"
        [warning] = await cluster.events_about("home-zap", reason="ZapNotRead")
        assert "a device moved from it to another Gateway may still be configured on it" \
            in warning["message"], warning
        await sims.zaps[ZAP].set_offline("online")
        assert "SG0001" in sims.zaps[ZAP].devices


async def test_a_gateway_whose_address_reaches_another_unit_is_released_leaving_its_devices(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Another unit answers at the Gateway's address now (swapped, its serial another):
    the devices there are that unit's, not copies to remove; the gateway is released all
    the same, and a Warning says a copy may be left on its own Zap."""
    config = OperatorConfig(interval=300, retry_delay=0.5)
    async with operator(WITH_OTHER, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await _moved(cluster, sims)
        sims.zaps[ZAP].serial = "zap-00000000000000f9"  # the unit now at home-zap's address
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)

        assert sims.novacore.gateways[ZAP].org_id is None, "released all the same"
        assert {"SG0001", STRANGER} <= set(sims.zaps[ZAP].devices), "not its devices: kept"
        [warning] = await cluster.events_about("home-zap", reason="ZapNotRead")
        assert "reports serial 'zap-00000000000000f9', not 'zap-00000000000000a1'" in (
            warning["message"]), warning


async def test_a_copy_whose_device_is_not_on_its_new_zap_yet_waits_with_the_release(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The inverter moved to the other Gateway while its Zap is offline (the move is
    deferred), then the first Gateway deleted: taking the copy off its Zap would leave the
    device on no Zap, so the copy and the release wait, saying why, until the other Zap is
    back and the Device's reconcile put the inverter on it."""
    config = OperatorConfig(interval=300, retry_delay=0.5)
    async with operator(WITH_OTHER, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await declare(cluster, WITH_OTHER)
        for kind, name in (INVERTER, ("Gateway", "home-zap"), ("Gateway", "other-zap")):
            await cluster.wait_condition(kind, name, "Ready", timeout=60)
        await sims.zaps[OTHER_ZAP].set_offline("refuse")
        await cluster.patch(*INVERTER, {"spec": {"gatewayRef": "other-zap"}})
        await cluster.wait_condition(*INVERTER, "Ready", status="False", timeout=60)
        assert "SG0001" not in sims.zaps[OTHER_ZAP].devices

        await cluster.delete("Gateway", "home-zap")

        async def waits_or_gone() -> dict[str, Any] | bool:
            body = await cluster.get("Gateway", "home-zap")
            if body is None:
                return True
            cond = await cluster.condition("Gateway", "home-zap", "Ready")
            return cond if cond and cond.get("reason") == "ReleaseBlocked" else False

        blocked = await cluster.wait_for(waits_or_gone, timeout=60, what="the release to wait")
        assert "SG0001" in sims.zaps[ZAP].devices, "not taken off before it is on the other"
        assert isinstance(blocked, dict), "the Gateway waits"
        assert "inverter SG0001 on gateway home-zap is declared on gateway other-zap" in (
            blocked["message"]), blocked
        assert "the copy on this one is removed once SG0001 is on gateway other-zap (its Zap " \
            "could not be read" in blocked["message"], blocked
        assert f"remove the finalizer {FINALIZER}" in blocked["message"], blocked
        [warning] = await cluster.events_about("home-zap", reason="ReleaseBlocked")
        assert warning["type"] == "Warning"
        await asyncio.sleep(2)  # a few more attempts of the finalizer (retry_delay 0.5 s)
        assert "SG0001" in sims.zaps[ZAP].devices
        assert sims.novacore.gateways[ZAP].org_id == "org-home", "not released meanwhile"
        assert await cluster.get("Gateway", "home-zap") is not None

        await sims.zaps[OTHER_ZAP].set_offline("online")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)
        assert "SG0001" in sims.zaps[OTHER_ZAP].devices
        assert "SG0001" not in sims.zaps[ZAP].devices, "the copy went once it was there"
        assert sims.novacore.gateways[ZAP].org_id is None, "released"
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)
