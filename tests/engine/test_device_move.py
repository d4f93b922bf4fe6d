"""A device moved to another site: the same hardware (same `hardwareId`) re-wired from a
gateway of one Site to a gateway of another, and moved in the YAML. Novacore rebinds a
hardware id it already has (platform-apis §1.4: 200 with `created: false`), so the move is
one change that keeps the device's id; the old Zap lets go of it; `--prune` never deletes
it as undeclared in the site it leaves; and whichever site is planned first, the next plan
is a no-op."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from simworld import (
    ORG_A,
    ORG_B,
    Doc,
    MakeWorld,
    cloud_device,
    cloud_devices,
    converged_exactly_once,
    load,
    mqtt_battery,
    serial_of,
    standard_site,
)

from reconciler.engine.reconcile import PlanResult
from reconciler.plan.actions import Action, Reason
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sim.lan import MqttDevice

BATTERY = "FERRO-0001"


def before() -> list[Doc]:
    return [*standard_site(1), mqtt_battery("bat", "s1-zap", BATTERY), *standard_site(2)]


def after() -> list[Doc]:
    return [*standard_site(1), *standard_site(2), mqtt_battery("bat", "s2-zap", BATTERY)]


def rewired(sims: SimFleet) -> None:
    """The battery answers behind both sites' brokers: it is re-wired between the two applies."""
    sims.lans["s2"].mqtt_devices[("192.168.1.70", 1883, "ferroamp")] = MqttDevice(
        BATTERY, "ferroamp")


def planned(result: PlanResult) -> dict[str, tuple[Action, Reason]]:
    return {c.address: (c.action, c.reason) for c in result.plan.pending}


@pytest.mark.parametrize("prune", [False, True], ids=["plain", "prune"])
async def test_a_device_moved_to_another_site_is_rebound_with_its_id(
        make_world: MakeWorld, prune: bool) -> None:
    world = await make_world(before(), before_start=rewired)
    assert (await world.apply())[1].ok
    old = cloud_device(world.sims, BATTERY)
    der_ids = list(old.der_ids)
    moved = load(after())

    result = await world.plan(PlanOptions(audience=Audience.CLI, prune=prune), fleet=moved)
    expected = {
        "device/bat[zap]": (Action.CREATE, Reason.NOT_FOUND),
        "device/bat[novacore]": (Action.UPDATE, Reason.MOVED),
        "device/bat[publish]": (Action.UPDATE, Reason.DRIFT),
    }
    if prune:
        # The old Zap lets go of it; Novacore's device is never pruned: it moves.
        expected["device/s1-zap.FERRO-0001[zap]"] = (Action.DELETE, Reason.MOVED)
    assert planned(result) == expected
    move = next(c for c in result.plan.pending if c.address == "device/bat[novacore]")
    assert move.external_id == old.id
    assert move.message.startswith(
        "moves from site s1 (gateway s1-zap) to site s2 (gateway s2-zap)")
    assert {(d.path, d.old, d.new) for d in move.diff} == {
        ("gateway_serial", serial_of(1), serial_of(2)), ("site", "s1", "s2")}
    unmanaged = {(u["platform"], u["id"]): u["description"] for u in result.plan.unmanaged}
    assert "moves there with device/bat[novacore] and is never pruned here" in unmanaged[
        ("novacore", old.id)]

    _, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=prune), fleet=moved)
    assert report.ok, report.as_dict()
    device = cloud_device(world.sims, BATTERY)  # exactly one: moved, not duplicated
    s2_id = next(s.id for s in world.sims.novacore.sites.values() if s.name == "Site s2")
    assert (device.id, device.der_ids) == (old.id, der_ids), "the same device, with its DERs"
    assert (device.gateway_serial, device.site_id, device.state) == (
        serial_of(2), s2_id, "active")
    assert world.sims.zaps[serial_of(2)].device(BATTERY) is not None
    assert (world.sims.zaps[serial_of(1)].device(BATTERY) is None) is prune

    again, _, writes = await world.noop_writes(moved)
    assert not again.plan.has_changes and writes == 0
    leftover = [u["id"] for u in again.plan.unmanaged]
    assert leftover == ([] if prune else [BATTERY]), "only the old Zap's copy, until pruned"


@pytest.mark.parametrize("slow", [1, 2], ids=["old-site-planned-last", "new-site-planned-last"])
async def test_a_prune_while_moving_never_deletes_the_device_whichever_site_plans_first(
        make_world: MakeWorld, slow: int) -> None:
    world = await make_world(before(), before_start=rewired)
    assert (await world.apply())[1].ok
    old = cloud_device(world.sims, BATTERY)
    moved = load(after())
    # Sites are planned as their reads come in: one slow gateway orders them.
    world.sims.zaps[serial_of(slow)].faults.latency_ms = 150

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=moved)
    assert report.ok, report.as_dict()
    assert not [c for c in result.plan.pending
                if c.component == "novacore" and c.action is Action.DELETE]
    assert cloud_device(world.sims, BATTERY).id == old.id
    world.sims.zaps[serial_of(slow)].faults.latency_ms = 0
    again, _, writes = await world.noop_writes(moved)
    assert not again.plan.has_changes and writes == 0


async def test_a_device_moved_into_a_new_site_is_rebound_there(make_world: MakeWorld) -> None:
    """The site it moves to does not exist in Novacore yet: created first, then the device
    is rebound into it."""
    world = await make_world(before(), before_start=rewired)
    first = load([*standard_site(1), mqtt_battery("bat", "s1-zap", BATTERY)])
    assert (await world.apply(fleet=first))[1].ok
    old = cloud_device(world.sims, BATTERY)
    moved = load(after())

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=moved)
    assert report.ok, report.as_dict()
    actions = planned(result)
    assert actions["site/s2[novacore]"] == (Action.CREATE, Reason.NOT_FOUND)
    assert actions["device/bat[novacore]"] == (Action.UPDATE, Reason.MOVED)
    assert cloud_device(world.sims, BATTERY).id == old.id
    converged_exactly_once(world.sims, moved)
    again, _, writes = await world.noop_writes(moved)
    assert not again.plan.has_changes and writes == 0


async def test_a_hardware_id_declared_in_two_sites_is_not_moved_back_and_forth(
        make_world: MakeWorld) -> None:
    world = await make_world(before(), before_start=rewired)
    assert (await world.apply())[1].ok
    both = load([*before(), mqtt_battery("bat-copy", "s2-zap", BATTERY)])

    result = await world.plan(fleet=both)
    change = next(c for c in result.plan.pending if c.address == "device/bat-copy[novacore]")
    assert change.blocked
    assert "is declared by Device bat too (gateway s1-zap, site s1)" in change.message
    assert "Declare it once" in change.message


class NovacoreWrites:
    """Records the Novacore device writes in the order they arrive, and answers those of
    `failing` (method and route) with a 503 (installed before the simulator starts)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.failing: set[str] = set()

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            resource = request.match_info.route.resource
            route = f"{request.method} {resource.canonical if resource else request.path}"
            if route in ("POST /devices/provision", "DELETE /devices/{device_id}"):
                self.seen.append(f"{request.method} {request.path}")
                if route in self.failing:
                    return web.json_response({"error": "unavailable", "message": "down"},
                                             status=503)
            return await handler(request)

        sims.novacore.app.middlewares.append(record)


def into_org_b() -> tuple[list[Doc], list[Doc]]:
    """The battery at site s1 of org-alpha, then behind the gateway of s2, in org-beta."""
    return ([*standard_site(1), mqtt_battery("bat", "s1-zap", BATTERY),
             *standard_site(2, org=ORG_B)],
            [*standard_site(1), *standard_site(2, org=ORG_B),
             mqtt_battery("bat", "s2-zap", BATTERY)])


@pytest.mark.parametrize("prune", [False, True], ids=["plain", "prune"])
async def test_a_device_moved_to_another_organisation_is_replaced_new_one_first(
        make_world: MakeWorld, prune: bool) -> None:
    """Novacore keeps a hardware id per organisation and does not move a device between
    them (it makes a new one in the other organisation): the move is a replace that says
    so, provisions the device in the new organisation and only then deletes the old one,
    pruning or not; the old site never deletes it on its own before that."""
    first, moved_docs = into_org_b()
    writes = NovacoreWrites()

    def start(sims: SimFleet) -> None:
        rewired(sims)
        writes.install(sims)

    world = await make_world(first, before_start=start)
    assert (await world.apply())[1].ok
    old = cloud_device(world.sims, BATTERY)
    moved = load(moved_docs)

    result = await world.plan(PlanOptions(audience=Audience.CLI, prune=prune), fleet=moved)
    replace = next(c for c in result.plan.pending if c.address == "device/bat[novacore]")
    assert (replace.action, replace.reason, replace.external_id) == (
        Action.REPLACE, Reason.MOVED, old.id)
    assert replace.message.startswith(
        f"moves from site s1 (gateway s1-zap) in {ORG_A} to site s2 (gateway s2-zap) in {ORG_B}")
    assert f"provisioned in {ORG_B} as a new device" in replace.message
    assert f"then device {old.id} is deleted from {ORG_A}" in replace.message
    assert {(d.path, d.old, d.new) for d in replace.diff} >= {
        ("org_id", ORG_A, ORG_B), ("site", "s1", "s2"),
        ("gateway_serial", serial_of(1), serial_of(2))}
    assert not [c for c in result.plan.pending if c.component == "novacore"
                and c.action is Action.DELETE], "never deleted by the site it leaves"
    unmanaged = {(u["platform"], u["id"]): u["description"] for u in result.plan.unmanaged}
    assert f"deleted here once provisioned in {ORG_B}, never before" in unmanaged[
        ("novacore", old.id)]

    # While the new one cannot be provisioned, the old one stays.
    writes.failing = {"POST /devices/provision"}
    writes.seen.clear()
    _, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=prune), fleet=moved)
    assert not report.ok
    assert cloud_device(world.sims, BATTERY).id == old.id
    assert writes.seen and not [w for w in writes.seen if w.startswith("DELETE")]

    writes.failing = set()
    writes.seen.clear()
    _, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=prune), fleet=moved)
    assert report.ok, report.as_dict()
    device = cloud_device(world.sims, BATTERY)  # exactly one: not duplicated
    s2_id = next(s.id for s in world.sims.novacore.sites.values() if s.name == "Site s2")
    assert device.id != old.id
    assert (device.gateway_serial, device.site_id, device.state) == (
        serial_of(2), s2_id, "active")
    assert writes.seen == ["POST /devices/provision", f"DELETE /devices/{old.id}"]
    again, _, count = await world.noop_writes(moved)
    assert not again.plan.has_changes and count == 0


@pytest.mark.parametrize("slow", [1, 2], ids=["old-site-planned-last", "new-site-planned-last"])
async def test_a_device_left_in_the_old_organisation_by_a_failed_delete_is_deleted_next(
        make_world: MakeWorld, slow: int) -> None:
    """The replace provisioned the new device but could not delete the old one: the next
    plan deletes it from the organisation it left (it is not pruning: the Device moved),
    whichever site is planned first."""
    first, moved_docs = into_org_b()
    writes = NovacoreWrites()

    def start(sims: SimFleet) -> None:
        rewired(sims)
        writes.install(sims)

    world = await make_world(first, before_start=start)
    assert (await world.apply())[1].ok
    old = cloud_device(world.sims, BATTERY)
    moved = load(moved_docs)
    writes.failing = {"DELETE /devices/{device_id}"}
    _, report = await world.apply(fleet=moved)
    assert not report.ok
    assert len(cloud_devices(world.sims, BATTERY)) == 2

    writes.failing = set()
    world.sims.zaps[serial_of(slow)].faults.latency_ms = 150
    result, report = await world.apply(fleet=moved)
    assert report.ok, report.as_dict()
    delete = next(c for c in result.plan.pending if c.address == f"device/s1.{BATTERY}[novacore]")
    assert (delete.action, delete.reason, delete.external_id) == (
        Action.DELETE, Reason.MOVED, old.id)
    assert f"deleted from {ORG_A}" in delete.message
    assert cloud_device(world.sims, BATTERY).id != old.id
    world.sims.zaps[serial_of(slow)].faults.latency_ms = 0
    again, _, count = await world.noop_writes(moved)
    assert not again.plan.has_changes and count == 0
