"""A device whose connection changed is removed from its Zap and added again (the Zap cannot
update a connection). Against the simulators: the device comes back publishing what it
published before, and a device with `checkSerial` is checked at its new address before the
one that works is removed."""

from __future__ import annotations

from typing import Any

from simworld import Doc, MakeWorld, World, inverter, load, serial_of, standard_site

from reconciler.plan.actions import Action, Change
from reconciler.plan.planner import Plan

DELETE_DEVICE = "DELETE /api/devices/{sn}"


def with_connection(docs: list[Doc], name: str, **changes: Any) -> list[Doc]:
    """The documents with device `name`'s connection settings changed."""
    out = []
    for doc in docs:
        if doc["metadata"]["name"] == name:
            (kind, settings), = doc["spec"]["connection"].items()
            doc = {**doc, "spec": {**doc["spec"], "connection": {kind: settings | changes}}}
        out.append(doc)
    return out


def change(plan: Plan, address: str) -> Change:
    found = [c for c in plan.changes if c.address == address]
    assert found, f"{address} is not planned"
    return found[0]


def ders_on_the_zap(world: World, hardware_id: str) -> dict[str, bool]:
    device = world.sims.zaps[serial_of(1)].device(hardware_id)
    assert device is not None, f"{hardware_id} is not on the Zap"
    return {d["type"]: d["enabled"] for d in device.ders}


INVERTER_DERS = {"pv": True, "battery": True, "meter": False}


async def test_a_changed_connection_replaces_the_device_and_keeps_its_ders_published(
        make_world: MakeWorld) -> None:
    docs = standard_site(1)
    world = await make_world(docs)
    await world.apply()
    assert ders_on_the_zap(world, "P1M0001") == {"meter": True}

    fleet = load(with_connection(docs, "s1-p1", baudRate=9600))
    result, report = await world.apply(fleet=fleet)
    assert {c.address: c.action for c in result.plan.pending} == {
        "device/s1-p1[zap]": Action.REPLACE,
        # Added again, the device starts with its DERs switched off: they are switched on.
        "device/s1-p1[publish]": Action.UPDATE,
    }
    assert report.ok, report.as_dict()
    assert ders_on_the_zap(world, "P1M0001") == {"meter": True}
    meter = world.sims.zaps[serial_of(1)].device("P1M0001")
    assert meter is not None and meter.connection["baud_rate"] == 9600

    noop, _, writes = await world.noop_writes(fleet)
    assert not noop.plan.has_changes, [c.address for c in noop.plan.pending]
    assert writes == 0


async def test_a_new_address_that_does_not_answer_leaves_the_working_device_in_place(
        make_world: MakeWorld) -> None:
    docs = standard_site(1, check_serial=True)
    world = await make_world(docs)
    await world.apply()
    fleet = load(with_connection(docs, "s1-inv", unitId=7))

    result = await world.plan(fleet=fleet)
    verify = change(result.plan, "device/s1-inv[identity]")
    replace = change(result.plan, "device/s1-inv[zap]")
    assert verify.action is Action.VERIFY and replace.action is Action.REPLACE
    assert verify.address in replace.depends_on, "checked before the old device is removed"

    world.sims.reset_counts()
    async with world.engine(fleet) as engine:
        report = await engine.apply(result)
    assert not report.ok
    assert world.sims.zaps[serial_of(1)].requests[DELETE_DEVICE] == 0
    assert ders_on_the_zap(world, "SG0001") == INVERTER_DERS


async def test_a_new_address_that_answers_with_another_serial_blocks_the_replace(
        make_world: MakeWorld) -> None:
    docs = [*standard_site(1, check_serial=True),
            inverter("s1-inv2", "s1-zap", "SG-OTHER", unit=2)]
    world = await make_world(docs)
    await world.apply()
    assert ders_on_the_zap(world, "SG-OTHER") == INVERTER_DERS
    # SG-OTHER is left on the Zap, declared no more: two Devices at one unit are invalid.
    kept = [d for d in docs if d["metadata"]["name"] != "s1-inv2"]
    fleet = load(with_connection(kept, "s1-inv", unitId=2))

    world.sims.reset_counts()
    result, report = await world.apply(fleet=fleet)
    verify = change(result.plan, "device/s1-inv[identity]")
    assert verify.blocked and "SG-OTHER" in verify.message
    assert change(result.plan, "device/s1-inv[zap]").blocked
    assert "device/s1-inv[zap]" in [o.address for o in report.by_status("blocked")]
    assert world.sims.zaps[serial_of(1)].requests[DELETE_DEVICE] == 0
    assert ders_on_the_zap(world, "SG0001") == INVERTER_DERS
