"""The DERs of a Novacore device as the spec changes them, against the simulators on
loopback: a DER added to a provisioned device, with the answer to its POST lost, or added
by someone else between plan and apply."""

from __future__ import annotations

from typing import Any

from simworld import Doc, MakeWorld, World, cloud_device, load, standard_site

from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions


def with_ders(docs: list[Doc], name: str, ders: list[dict[str, Any]]) -> list[Doc]:
    """The documents with device `name` declaring `ders`."""
    return [
        {**doc, "spec": {**doc["spec"], "ders": ders}} if doc["metadata"]["name"] == name
        else doc
        for doc in docs
    ]


INVERTER_DERS = [{"name": "pv", "type": "solar"}, {"name": "battery", "type": "battery"},
                 {"name": "grid", "type": "meter", "publish": False}]


def ders_in_novacore(world: World, hardware_id: str) -> dict[str, str]:
    device = cloud_device(world.sims, hardware_id)
    return {world.sims.novacore.ders[d].name: world.sims.novacore.ders[d].type
            for d in device.der_ids}


async def test_a_der_added_whose_answer_was_lost_is_added_once_and_the_apply_succeeds(
        make_world: MakeWorld) -> None:
    """The POST of a new DER takes effect and its answer is lost: the retry is answered 409
    (the device has that name now), which is the DER asked for, not a failure."""
    docs = standard_site(1)
    world = await make_world(docs)
    await world.apply()
    grown = load(with_ders(docs, "s1-inv", [*INVERTER_DERS, {"name": "pv2", "type": "solar"}]))
    world.sims.novacore.faults.lose_next = 1

    result, report = await world.apply(fleet=grown)

    assert [(c.address, c.action) for c in result.plan.pending] == [
        ("device/s1-inv[novacore]", Action.UPDATE)]
    assert world.sims.novacore.faults.lose_next == 0, "the answer was lost"
    assert report.ok, [(o.address, o.message) for o in report.outcomes if o.status != "done"]
    assert world.sims.novacore.requests["POST /devices/{device_id}/ders"] == 2
    assert ders_in_novacore(world, "SG0001") == {
        "pv": "solar", "battery": "battery", "grid": "meter", "pv2": "solar"}
    noop, _, writes = await world.noop_writes(grown)
    assert not noop.plan.has_changes and writes == 0


async def test_a_der_added_since_the_plan_with_another_type_fails_naming_both_types(
        make_world: MakeWorld) -> None:
    """Someone adds a DER of the declared name but another type between plan and apply:
    the apply fails saying so (the next plan replaces the device), not as done."""
    docs = standard_site(1)
    world = await make_world(docs)
    await world.apply()
    grown = load(with_ders(docs, "s1-inv", [*INVERTER_DERS, {"name": "pv2", "type": "solar"}]))
    async with world.engine(grown) as engine:
        result = await engine.plan(PlanOptions(audience=Audience.CLI))
        device = cloud_device(world.sims, "SG0001")
        world.sims.novacore.add_der(device.id, "pv2", "battery")
        report = await engine.apply(result)

    failed = report.by_status("failed")
    assert [o.address for o in failed] == ["device/s1-inv[novacore]"]
    assert "'pv2' of type 'battery', not 'solar'" in failed[0].message
    replan = await world.plan(fleet=grown)
    assert [(c.address, c.action) for c in replan.plan.pending] == [
        ("device/s1-inv[novacore]", Action.REPLACE)]


async def test_a_replace_says_which_undeclared_ders_go_with_the_old_device(
        make_world: MakeWorld) -> None:
    """A DER retyped replaces the device; the DER someone added in Novacore, which a plan
    otherwise reports and leaves, is not provisioned on the new one: the plan says so."""
    docs = standard_site(1)
    world = await make_world(docs)
    await world.apply()
    old = cloud_device(world.sims, "SG0001")
    world.sims.novacore.add_der(old.id, "extra", "solar")
    retyped = load(with_ders(docs, "s1-inv", [
        {"name": "pv", "type": "solar"}, {"name": "battery", "type": "meter"},
        {"name": "grid", "type": "meter", "publish": False}]))

    result, report = await world.apply(fleet=retyped)

    replace = next(c for c in result.plan.pending if c.address == "device/s1-inv[novacore]")
    assert replace.action is Action.REPLACE
    assert [(d.op, d.path, d.old) for d in replace.diff] == [
        ("change", "ders.battery", "battery"), ("remove", "ders.extra", "solar")]
    assert f"DER extra, not declared, goes with device {old.id}" in replace.message
    assert report.ok
    assert ders_in_novacore(world, "SG0001") == {
        "pv": "solar", "battery": "meter", "grid": "meter"}
    noop = await world.plan(fleet=retyped)
    assert not noop.plan.has_changes and noop.plan.unmanaged == []


async def test_a_device_provisioned_again_keeps_the_ders_the_plan_says_are_left(
        make_world: MakeWorld) -> None:
    """An orphaned device is provisioned again to bind it; the DER someone added in
    Novacore, which the plan reports as left as it is, is still there afterwards."""
    docs = standard_site(1)
    world = await make_world(docs)
    await world.apply()
    device = cloud_device(world.sims, "SG0001")
    world.sims.novacore.add_der(device.id, "extra", "solar")
    world.sims.novacore.drift_device(device.id, state="orphaned")

    result, report = await world.apply()

    assert [(c.address, c.action) for c in result.plan.pending] == [
        ("device/s1-inv[novacore]", Action.UPDATE)]
    assert ["DER extra (solar" in u["description"] for u in result.plan.unmanaged] == [True]
    assert report.ok
    assert cloud_device(world.sims, "SG0001").state == "active"
    assert ders_in_novacore(world, "SG0001") == {
        "pv": "solar", "battery": "battery", "grid": "meter", "extra": "solar"}
    noop, _, writes = await world.noop_writes()
    assert not noop.plan.has_changes and writes == 0
    assert ["DER extra (solar" in u["description"] for u in noop.plan.unmanaged] == [True]
