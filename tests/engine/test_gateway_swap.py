"""A gateway swapped for a new one (a broken Zap replaced on site: same Gateway, new serial),
against the simulators: the new Zap is claimed and given the devices, and each Novacore
device is provisioned again behind the new gateway, which rebinds it there (same id and
DERs) instead of leaving it bound to the old one or making a second one. The old gateway,
with `deletionPolicy: Release`, is released by `--prune` only once its devices moved off
it: never while their move waits for the new gateway, which would orphan them."""

from __future__ import annotations

import pytest
from simworld import (
    ORG_A,
    ORG_B,
    Doc,
    MakeWorld,
    cloud_devices,
    gateway,
    load,
    owner,
    serial_of,
    standard_site,
)

from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions

OLD, NEW = serial_of(1), serial_of(9)


def swapped(docs: list[Doc]) -> list[Doc]:
    return [{**d, "spec": {**d["spec"], "zap": {**d["spec"]["zap"], "serial": NEW}}}
            if d["kind"] == "Gateway" else d for d in docs]


def released(docs: list[Doc]) -> list[Doc]:
    return [{**d, "spec": {**d["spec"], "deletionPolicy": "Release"}}
            if d["kind"] == "Gateway" else d for d in docs]


async def test_a_swapped_gateway_takes_over_its_devices_in_the_zap_and_in_novacore(
        make_world: MakeWorld) -> None:
    docs = standard_site(1)
    # The spare Zap exists (it is simulated) but is not declared until the swap. The P1
    # meter's cable is moved to it: its port reads the same meter.
    world = await make_world(
        [*docs, gateway("spare", "s1", NEW)],
        before_start=lambda sims: sims.lans["s1"].p1_meters.__setitem__(NEW, "P1M0001"))
    await world.apply(fleet=load(docs))
    assert {d.gateway_serial for d in cloud_devices(world.sims)} == {OLD}
    ids = {d.hardware_id: d.id for d in cloud_devices(world.sims)}
    fleet = load(swapped(docs))

    result, report = await world.apply(fleet=fleet)
    actions = {c.address: c.action for c in result.plan.pending}
    assert actions == {
        "gateway/s1-zap[novacore]": Action.CLAIM,
        "device/s1-inv[zap]": Action.CREATE,
        "device/s1-inv[novacore]": Action.UPDATE,
        "device/s1-inv[publish]": Action.UPDATE,
        "device/s1-p1[zap]": Action.CREATE,
        "device/s1-p1[novacore]": Action.UPDATE,
        "device/s1-p1[publish]": Action.UPDATE,
    }
    move = next(c for c in result.plan.pending if c.address == "device/s1-p1[novacore]")
    assert move.message.startswith(f"moves from gateway {OLD} to gateway s1-zap")
    assert move.external_id == ids["P1M0001"]
    assert report.ok, report.as_dict()

    devices = cloud_devices(world.sims)
    assert sorted((d.hardware_id, d.gateway_serial) for d in devices) == [
        ("P1M0001", NEW), ("SG0001", NEW)], "moved, not duplicated"
    assert {d.hardware_id: d.id for d in devices} == ids, "rebound: the same devices"
    assert world.sims.zaps[NEW].device("SG0001") is not None

    noop, _, writes = await world.noop_writes(fleet)
    assert not noop.plan.has_changes and writes == 0
    assert [u["id"] for u in noop.plan.unmanaged] == [OLD], "still claimed, until released"


RELEASE = f"gateway/{OLD}[novacore]"
RELEASED = "DELETE /gateways/{serial}"  # the simulator counts requests by route


@pytest.mark.parametrize("new_gateway", ["offline", "owned by another organisation"])
async def test_the_old_gateway_is_released_only_once_its_devices_moved_off_it(
        make_world: MakeWorld, new_gateway: str) -> None:
    docs = released(standard_site(1))
    other_org = standard_site(2, org=ORG_B)  # so that org-beta exists and is read
    world = await make_world(
        [*docs, gateway("spare", "s1", NEW), *other_org],
        before_start=lambda sims: sims.lans["s1"].p1_meters.__setitem__(NEW, "P1M0001"))
    # The new unit: offline when the swap is applied, or a used one that its former
    # organisation claimed (and has not released yet).
    offline = new_gateway == "offline"
    used = [] if offline else [gateway("spare", "s2", NEW)]
    _, report = await world.apply(fleet=load(docs + other_org + used))
    assert report.ok and owner(world.sims, NEW) == (None if offline else ORG_B)
    ids = {d.hardware_id: d.id for d in cloud_devices(world.sims) if d.gateway_serial == OLD}
    if offline:
        await world.sims.zaps[NEW].set_offline("refuse")
    fleet = load(swapped(docs) + other_org)
    world.sims.reset_counts()

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    assert world.sims.novacore.requests[RELEASED] == 0
    assert owner(world.sims, OLD) == ORG_A, "kept while its devices are bound to it"
    assert {d.hardware_id: (d.gateway_serial, d.state) for d in cloud_devices(world.sims)
            if d.hardware_id in ids} == {h: (OLD, "active") for h in ids}, "none orphaned"
    release = next(c for c in result.plan.changes if c.address == RELEASE)
    # The old unit's copies of the devices go before it, and not before the devices moved.
    copies = {f"device/s1-zap@{OLD}.SG0001[zap]", f"device/s1-zap@{OLD}.P1M0001[zap]"}
    assert set(release.depends_on) == {
        "device/s1-inv[novacore]", "device/s1-p1[novacore]", *copies}
    waiting = [c for c in result.plan.changes if c.address in copies]
    assert [c.action for c in waiting] == [Action.DEFER] * 2, [c.message for c in waiting]
    assert all("its device moves first" in c.message for c in waiting)
    assert sorted(world.sims.zaps[OLD].devices) == ["P1M0001", "SG0001"]
    if offline:
        assert release.action is Action.DEFER
        assert "device/s1-inv[novacore] is deferred" in release.message
    else:
        assert release.blocked and "allowTransfer" in release.message

    # Once the new gateway can take them, they move and then the old one goes.
    if offline:
        await world.sims.zaps[NEW].set_offline("online")
    else:
        world.sims.novacore.release_gateway(NEW)  # its former organisation let it go
    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    release = next(c for c in result.plan.changes if c.address == RELEASE)
    assert release.action is Action.RELEASE and not release.blocked
    assert report.ok, report.as_dict()
    assert world.sims.novacore.requests[RELEASED] == 1
    assert owner(world.sims, OLD) is None and owner(world.sims, NEW) == ORG_A
    assert {d.hardware_id: (d.id, d.gateway_serial, d.state) for d in cloud_devices(world.sims)
            if d.hardware_id in ids} == {h: (i, NEW, "active") for h, i in ids.items()}
    assert not world.sims.zaps[OLD].devices, "its copies removed before it was released"


async def test_the_old_gateway_waits_for_a_device_bound_to_it_in_a_site_no_site_declares(
        make_world: MakeWorld) -> None:
    """Novacore names no device a gateway has: every site of its organisation is read,
    but only when a release is planned, and one bound to it there blocks the release."""
    docs = released(standard_site(1))
    world = await make_world(
        [*docs, gateway("spare", "s1", NEW)],
        before_start=lambda sims: sims.lans["s1"].p1_meters.__setitem__(NEW, "P1M0001"))
    await world.apply(fleet=load(docs))
    # Someone put a device of another site of org-alpha, which no Site declares, on it.
    elsewhere = world.sims.novacore.add_site(ORG_A, "Warehouse")
    async with world.engine() as engine:
        made = await engine.session.novacore.provision_device(
            {"gateway_serial": OLD, "hardware_id": "WH0001", "device_type": "energy_meter",
             "site_id": elsewhere, "name": "Warehouse meter"})
    stranger = made["device_id"]
    fleet = load(swapped(docs))
    noop, requests, _ = await world.noop_writes(load(docs))
    assert not noop.plan.has_changes and requests == 1 + 1 + 2, "the warehouse is not read"
    world.sims.reset_counts()

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    assert world.sims.novacore.requests[RELEASED] == 0
    assert owner(world.sims, OLD) == ORG_A
    assert world.sims.novacore.devices[stranger].state == "active", "not orphaned"
    release = next(c for c in result.plan.changes if c.address == RELEASE)
    assert release.blocked
    assert f"device {stranger} (WH0001) in site 'Warehouse' ({elsewhere})" in release.message
    assert world.sims.novacore.requests["GET /sites/{site_id}/devices"] == 2

    # The devices declared moved meanwhile; once the stranger is gone, the release goes.
    world.sims.novacore.remove_device(stranger)
    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    assert report.ok, report.as_dict()
    assert world.sims.novacore.requests[RELEASED] == 1
    assert owner(world.sims, OLD) is None
