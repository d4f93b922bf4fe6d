"""A Gateway deleted with `deletionPolicy: Release` after a Device moved off it to another
Gateway: the copy the move left on its Zap goes with the release, as `apply --prune`
removes it in the CLI; the devices nobody declares, and those still declared on it, stay
(the operator prunes nothing else). A Zap that does not answer does not keep the gateway
from being released: a Warning says the copy may be left on it. The copy goes only once the
device is on its new gateway's Zap: until then the copy and the release wait, unless that
gateway is being deleted or gone: then the copy stays, the release goes ahead, and a
Warning names the device left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import stream, zap_gateway
from harness import NAMESPACE, Cluster, KopfRuns, operator
from objects import HOME, ZAP, declare
from other_finalizers import deleted_and_held, let_go

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
        events = await cluster.wait_events_about("home-zap", reason="Deleted")
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
        [warning] = await cluster.wait_events_about("home-zap", reason="ZapNotRead")
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
        [warning] = await cluster.wait_events_about("home-zap", reason="ZapNotRead")
        assert "reports serial 'zap-00000000000000f9', not 'zap-00000000000000a1'" in (
            warning["message"]), warning


async def _moved_while_offline(cluster: Cluster, sims: SimFleet) -> None:
    """WITH_OTHER declared, then the inverter moved to the other Gateway while its Zap is
    offline: the move is deferred, the inverter on the first Zap only."""
    await declare(cluster, WITH_OTHER)
    for kind, name in (INVERTER, ("Gateway", "home-zap"), ("Gateway", "other-zap")):
        await cluster.wait_condition(kind, name, "Ready", timeout=60)
    await sims.zaps[OTHER_ZAP].set_offline("refuse")
    await cluster.patch(*INVERTER, {"spec": {"gatewayRef": "other-zap"}})
    await cluster.wait_condition(*INVERTER, "Ready", status="False", timeout=60)
    assert "SG0001" not in sims.zaps[OTHER_ZAP].devices


async def _release_waiting(cluster: Cluster, sims: SimFleet) -> dict[str, Any]:
    """The condition of the first Gateway, deleted, once its release waits for the copy."""

    async def waits_or_gone() -> dict[str, Any] | bool:
        body = await cluster.get("Gateway", "home-zap")
        if body is None:
            return True
        cond = await cluster.condition("Gateway", "home-zap", "Ready")
        return cond if cond and cond.get("reason") == "ReleaseBlocked" else False

    blocked = await cluster.wait_for(waits_or_gone, timeout=60, what="the release to wait")
    assert "SG0001" in sims.zaps[ZAP].devices, "not taken off before it is on the other"
    assert isinstance(blocked, dict), "the Gateway waits"
    return blocked


# What the Warning says of the copy left on the first Zap, its new Gateway deleted.
LEFT = ("inverter SG0001 on gateway home-zap is declared on gateway other-zap (Device "
        "home-inverter), a Gateway {state}: left on this gateway's Zap, where it may be the "
        "device's only place (taken off, it could be on no Zap); remove it there by hand if "
        "it is not to stay")


async def _left_on_first_zap(cluster: Cluster, sims: SimFleet, logs: list[str]) -> str:
    """The first Gateway released with the copy left on its Zap: the Warning's message."""
    await cluster.wait_gone("Gateway", "home-zap", timeout=60)
    assert sims.novacore.gateways[ZAP].org_id is None, "released"
    assert "SG0001" in sims.zaps[ZAP].devices, "left: taken off, it could be on no Zap"
    [warning] = await cluster.wait_events_about("home-zap", reason="CopyLeftOnZap")
    assert warning["type"] == "Warning", warning
    message = str(warning["message"])
    assert f"Gateway {NAMESPACE}/home-zap: {message}" in logs, logs
    return message


async def test_a_copy_whose_new_gateway_is_deleted_while_the_release_waits_is_left_said(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The first Gateway's release waits for the inverter to be on the other Zap, and then
    the other Gateway is deleted too: the inverter will not be put there, so the release
    goes ahead, leaving the copy on the first Zap (nothing lost: the device stays where it
    is), and a Warning on the first Gateway names it and says why. Whether the other one is
    seen being deleted or gone depends on which finalizer runs first."""
    config = OperatorConfig(interval=300, retry_delay=0.5)
    logs: list[str] = []
    async with operator(
        WITH_OTHER, tmp_path, monkeypatch, config=config, logs=logs
    ) as (cluster, sims):
        await _moved_while_offline(cluster, sims)
        await cluster.delete("Gateway", "home-zap")
        await _release_waiting(cluster, sims)

        await cluster.delete("Gateway", "other-zap")
        message = await _left_on_first_zap(cluster, sims, logs)
        assert message in (LEFT.format(state="being deleted"),
                           LEFT.format(state="deleted or not declared")), message
        await cluster.wait_gone("Gateway", "other-zap", timeout=60)


async def test_a_copy_whose_new_gateway_is_held_being_deleted_does_not_hold_the_release(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The other Gateway deleted, but held by another controller's finalizer: being
    deleted, it will not get the inverter either, and the first Gateway's release goes
    ahead as when it is gone, whichever of the two is deleted first."""
    config = OperatorConfig(interval=300, retry_delay=0.5)
    logs: list[str] = []
    async with operator(
        WITH_OTHER, tmp_path, monkeypatch, config=config, logs=logs
    ) as (cluster, sims):
        await _moved_while_offline(cluster, sims)
        await deleted_and_held(cluster, "Gateway", "other-zap")
        await cluster.delete("Gateway", "home-zap")
        message = await _left_on_first_zap(cluster, sims, logs)
        assert message == LEFT.format(state="being deleted"), message
        await let_go(cluster, "Gateway", "other-zap")


async def test_a_copy_whose_new_gateway_is_gone_is_left_on_the_released_gateway_said(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The other Gateway deleted before the first: no Zap is known where the inverter is
    declared, so the first Gateway is released at once leaving the copy, as said."""
    config = OperatorConfig(interval=300, retry_delay=0.5)
    logs: list[str] = []
    async with operator(
        WITH_OTHER, tmp_path, monkeypatch, config=config, logs=logs
    ) as (cluster, sims):
        await _moved_while_offline(cluster, sims)
        await cluster.delete("Gateway", "other-zap")
        await cluster.wait_gone("Gateway", "other-zap", timeout=60)
        await cluster.delete("Gateway", "home-zap")
        message = await _left_on_first_zap(cluster, sims, logs)
        assert message == LEFT.format(state="deleted or not declared"), message


async def test_a_copy_whose_device_is_not_on_its_new_zap_yet_waits_with_the_release(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The inverter moved to the other Gateway while its Zap is offline (the move is
    deferred), then the first Gateway deleted: taking the copy off its Zap would leave the
    device on no Zap, so the copy and the release wait, saying why, until the other Zap is
    back and the Device's reconcile put the inverter on it."""
    config = OperatorConfig(interval=300, retry_delay=0.5)
    async with operator(WITH_OTHER, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await _moved_while_offline(cluster, sims)
        await cluster.delete("Gateway", "home-zap")
        blocked = await _release_waiting(cluster, sims)
        assert "inverter SG0001 on gateway home-zap is declared on gateway other-zap" in (
            blocked["message"]), blocked
        assert "the copy on this one is removed once SG0001 is on gateway other-zap (its Zap " \
            "could not be read" in blocked["message"], blocked
        assert f"remove the finalizer {FINALIZER}" in blocked["message"], blocked
        [warning] = await cluster.wait_events_about("home-zap", reason="ReleaseBlocked")
        assert warning["type"] == "Warning"
        # Three more attempts of the finalizer (every 0.5 s): none released it.
        await runs.wait("home-zap", "Handler 'finalize-gateways'", 3)
        assert "SG0001" in sims.zaps[ZAP].devices
        assert sims.novacore.gateways[ZAP].org_id == "org-home", "not released meanwhile"
        assert await cluster.get("Gateway", "home-zap") is not None

        await sims.zaps[OTHER_ZAP].set_offline("online")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)
        assert "SG0001" in sims.zaps[OTHER_ZAP].devices
        assert "SG0001" not in sims.zaps[ZAP].devices, "the copy went once it was there"
        assert sims.novacore.gateways[ZAP].org_id is None, "released"
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)
