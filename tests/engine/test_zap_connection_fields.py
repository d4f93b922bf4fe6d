"""A device's connection settings on its Zap, against the simulators: an optional setting
(`mqtt.clientId`, `mqtt.username`, `p1Uart.manufacturer`) declared for a device already on
its Zap reaches the Zap, whether the Zap had another value or none; and a device someone
configured on the Zap by hand is adopted without a re-add, or re-added once where it
differs from a setting the spec declares; a default the spec leaves out is not compared."""

from __future__ import annotations

from typing import Any

import pytest
from simworld import (
    Doc,
    MakeWorld,
    World,
    gateway,
    inverter,
    load,
    mqtt_battery,
    p1_meter,
    serial_of,
    site,
)

from reconciler.plan.actions import Action
from reconciler.sim.fleet import SimFleet

ZAP = "device/{}[zap]"


def fleet_docs(mqtt: dict[str, Any] | None = None, p1: dict[str, Any] | None = None,
               tcp: dict[str, Any] | None = None) -> list[Doc]:
    """Site s1 with gateway `gw`: an MQTT battery `bat` (FERRO1), a P1 meter `p1` (P1M1) and
    an inverter `inv` (SG1); each connection with the given settings added to it."""
    battery = mqtt_battery("bat", "gw", "FERRO1")
    battery["spec"]["connection"]["mqtt"] |= mqtt or {}
    meter = p1_meter("p1", "gw", "P1M1")
    meter["spec"]["connection"]["p1Uart"] |= p1 or {}
    inv = inverter("inv", "gw", "SG1")
    inv["spec"]["connection"]["modbusTcp"] = {"host": "192.168.1.60", "profile": "sungrow",
                                              **(tcp or {})}
    return [site("s1"), gateway("gw", "s1", serial_of(1)), battery, meter, inv]


def on_the_zap(world: World, sn: str) -> dict[str, Any]:
    device = world.sims.zaps[serial_of(1)].device(sn)
    assert device is not None, f"{sn} is not on the Zap"
    return device.connection


async def assert_converged(world: World, docs: list[Doc]) -> None:
    noop, _, writes = await world.noop_writes(load(docs))
    assert not noop.plan.has_changes, [c.address for c in noop.plan.pending]
    assert writes == 0


@pytest.mark.parametrize(("first", "then", "device", "sn", "key", "value"), [
    pytest.param({}, {"mqtt": {"clientId": "zap-1"}}, "bat", "FERRO1", "client_id", "zap-1",
                 id="mqtt-client-id-declared"),
    pytest.param({"mqtt": {"clientId": "zap-1"}}, {"mqtt": {"clientId": "zap-2"}}, "bat",
                 "FERRO1", "client_id", "zap-2", id="mqtt-client-id-changed"),
    pytest.param({}, {"mqtt": {"username": "extapi"}}, "bat", "FERRO1", "username", "extapi",
                 id="mqtt-username-declared"),
    pytest.param({"mqtt": {"username": "extapi"}}, {"mqtt": {"username": "ems"}}, "bat",
                 "FERRO1", "username", "ems", id="mqtt-username-changed"),
    pytest.param({}, {"p1": {"manufacturer": "Kaifa"}}, "p1", "P1M1", "manufacturer", "Kaifa",
                 id="p1-manufacturer-declared"),
    pytest.param({"p1": {"manufacturer": "Kaifa"}}, {"p1": {"manufacturer": "Landis+Gyr"}},
                 "p1", "P1M1", "manufacturer", "Landis+Gyr", id="p1-manufacturer-changed"),
])
async def test_an_optional_setting_declared_for_a_device_on_its_zap_reaches_the_zap(
        make_world: MakeWorld, first: dict[str, Any], then: dict[str, Any], device: str,
        sn: str, key: str, value: str) -> None:
    world = await make_world(fleet_docs(**first))
    _, report = await world.apply()
    assert report.ok, report.as_dict()

    docs = fleet_docs(**then)
    result, report = await world.apply(fleet=load(docs))
    assert {c.address: c.action for c in result.plan.pending} == {
        ZAP.format(device): Action.REPLACE,
        f"device/{device}[publish]": Action.UPDATE,
    }
    replaced = next(c for c in result.plan.pending if c.address == ZAP.format(device))
    assert [d.path for d in replaced.diff] == [key], replaced.diff
    assert report.ok, report.as_dict()
    assert on_the_zap(world, sn)[key] == value
    await assert_converged(world, docs)


def configured_by_hand(**inverter_body: Any) -> Any:
    """Before the simulators start: the devices of `fleet_docs()` put on the Zap by hand,
    each with only what the Zap requires (it fills in its own defaults), the inverter with
    `inverter_body` besides."""
    def install(sims: SimFleet) -> None:
        zap = sims.zaps[serial_of(1)]
        zap.install_device({"type": "mqtt", "profile": "ferroamp",
                            "broker_host": "192.168.1.70"}, sn="FERRO1")
        zap.install_device({"type": "p1_uart"}, sn="P1M1")
        zap.install_device({"type": "modbus_tcp", "profile": "sungrow", "ip": "192.168.1.60",
                            **inverter_body}, sn="SG1")
    return install


async def test_a_device_configured_by_hand_with_the_defaults_is_adopted_without_a_re_add(
        make_world: MakeWorld) -> None:
    docs = fleet_docs()
    world = await make_world(docs, before_start=configured_by_hand())
    result, report = await world.apply()
    assert not [c.address for c in result.plan.pending if c.address.endswith("[zap]")]
    assert report.ok, report.as_dict()
    await assert_converged(world, docs)


async def test_a_device_configured_by_hand_off_a_default_the_spec_leaves_out_is_kept(
        make_world: MakeWorld) -> None:
    # The spec leaves the port out: 502 would be sent if the device were added, but only
    # what the spec sets is compared. The device answering on 1502 stays where it works,
    # instead of being removed and added again on a port where nothing answers.
    docs = fleet_docs()
    world = await make_world(docs, before_start=configured_by_hand(port=1502))
    result, report = await world.apply()
    assert not [c.address for c in result.plan.pending if c.address.endswith("[zap]")]
    assert report.ok, report.as_dict()
    assert on_the_zap(world, "SG1")["port"] == 1502
    await assert_converged(world, docs)


async def test_a_device_configured_by_hand_off_a_declared_setting_is_re_added_once(
        make_world: MakeWorld) -> None:
    # The same device, with the port the spec sets: declared, it is compared, and the
    # device is added again on it, once.
    docs = fleet_docs(tcp={"port": 502})
    world = await make_world(docs, before_start=configured_by_hand(port=1502))
    result, report = await world.apply()
    zap_changes = {c.address: c for c in result.plan.pending if c.address.endswith("[zap]")}
    assert list(zap_changes) == [ZAP.format("inv")]
    assert zap_changes[ZAP.format("inv")].action is Action.REPLACE
    assert [(d.path, d.old, d.new) for d in zap_changes[ZAP.format("inv")].diff] == [
        ("port", 1502, 502)]
    assert report.ok, report.as_dict()
    assert on_the_zap(world, "SG1")["port"] == 502
    await assert_converged(world, docs)


async def test_a_setting_the_zap_has_but_the_spec_leaves_out_is_left_alone(
        make_world: MakeWorld) -> None:
    # Only settings the spec declares are compared: a user name or client id set by hand on
    # the Zap is kept, not removed by adding the device again without it.
    docs = fleet_docs()

    def install(sims: SimFleet) -> None:
        configured_by_hand()(sims)
        sims.zaps[serial_of(1)].install_device(
            {"type": "mqtt", "profile": "ferroamp", "broker_host": "192.168.1.70",
             "username": "extapi", "client_id": "by-hand"}, sn="FERRO1")

    world = await make_world(docs, before_start=install)
    _, report = await world.apply()
    assert report.ok, report.as_dict()
    assert on_the_zap(world, "FERRO1")["client_id"] == "by-hand"
    await assert_converged(world, docs)
