"""End to end against the simulators on loopback: a fresh apply converges, the next plan is
a no-op that writes nothing and reads only what the design budgets (one call per site,
one per gateway, two per organisation), and drift made behind the reconciler's back is
planned and corrected."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from simworld import (
    ORG_A,
    ORG_B,
    MakeWorld,
    World,
    cloud_device,
    converged_exactly_once,
    gateway,
    inverter,
    serial_of,
    site,
    standard_site,
)

from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions


async def test_fresh_apply_converges_and_the_next_plan_is_a_no_op_without_writes(
        make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1) + standard_site(2) + standard_site(3, org=ORG_B))
    result, report = await world.apply()
    # Per site: the site, the claim, and for each of 2 devices: zap, novacore, publish.
    assert len(result.plan.pending) == 3 * 8
    assert report.ok and report.counts()["done"] == len(result.plan.pending), report.as_dict()
    # Sites are listed per organisation to observe, and once more when the first of its
    # sites is created (what was made since the plan is adopted), not for each site made.
    assert world.sims.novacore.requests["GET /sites"] == 2 + 2
    converged_exactly_once(world.sims, world.fleet)
    inverter = world.sims.zaps[serial_of(1)].device("SG0001")
    assert inverter is not None
    assert {d["type"]: d["enabled"] for d in inverter.ders} == {
        "pv": True, "battery": True, "meter": False}, "publish: false keeps the meter off"

    noop, requests, writes = await world.noop_writes()
    assert not noop.plan.has_changes, [c.address for c in noop.plan.pending]
    assert writes == 0
    sites, gateways, orgs = 3, 3, 2
    assert requests == sites + gateways + 2 * orgs, "one call per site and gateway, two per org"
    assert world.sims.novacore.count("GET") == sites + 2 * orgs
    assert [world.sims.zaps[serial_of(i)].count() for i in (1, 2, 3)] == [1, 1, 1]


async def test_applying_a_converged_fleet_writes_nothing(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1))
    await world.apply()
    world.sims.reset_counts()
    _, report = await world.apply()
    assert report.outcomes == [] and world.sims.writes() == 0


# -- drift --------------------------------------------------------------------------------------


def publishing_turned_off(world: World) -> None:
    world.sims.zaps[serial_of(1)].set_der("SG0001", "pv", enabled=False)


def renamed_in_novacore(world: World) -> None:
    world.sims.novacore.rename_device(cloud_device(world.sims, "SG0001").id, "Renamed by hand")


def removed_from_the_zap(world: World) -> None:
    assert world.sims.zaps[serial_of(1)].remove_device("SG0001")


def pv_enabled(world: World) -> bool:
    device = world.sims.zaps[serial_of(1)].device("SG0001")
    return device is not None and bool(device.der("pv") and device.der("pv")["enabled"])  # type: ignore[index]


@pytest.mark.parametrize(("drift", "expected"), [
    pytest.param(publishing_turned_off, {"device/s1-inv[publish]": Action.UPDATE},
                 id="der-publishing-turned-off-on-the-zap"),
    pytest.param(renamed_in_novacore, {"device/s1-inv[novacore]": Action.UPDATE},
                 id="device-renamed-in-novacore"),
    pytest.param(removed_from_the_zap, {"device/s1-inv[zap]": Action.CREATE,
                                        "device/s1-inv[publish]": Action.UPDATE},
                 id="device-removed-from-the-zap"),
])
async def test_drift_is_detected_and_corrected(
        make_world: MakeWorld, drift: Callable[[World], None],
        expected: dict[str, Action]) -> None:
    world = await make_world(standard_site(1) + standard_site(2))
    await world.apply()
    drift(world)

    result = await world.plan()
    assert {c.address: c.action for c in result.plan.pending} == expected
    _, report = await world.apply()
    assert report.ok and [o.address for o in report.by_status("done")] == list(expected)

    noop, _, writes = await world.noop_writes()
    assert not noop.plan.has_changes and writes == 0, "corrected for good"
    converged_exactly_once(world.sims, world.fleet)
    assert cloud_device(world.sims, "SG0001").name == "s1-inv"
    assert pv_enabled(world)


async def test_orphaned_device_in_novacore_is_provisioned_again(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1))
    await world.apply()
    world.sims.novacore.drift_device(cloud_device(world.sims, "P1M0001").id, state="orphaned")
    result, report = await world.apply()
    assert [c.address for c in result.plan.pending] == ["device/s1-p1[novacore]"]
    assert report.ok and cloud_device(world.sims, "P1M0001").state == "active"
    assert len(world.sims.novacore.devices) == 2, "bound again, not duplicated"


async def test_unmanaged_device_is_reported_and_removed_only_with_prune(
        make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1))
    await world.apply()
    zap = world.sims.zaps[serial_of(1)]
    zap.install_device({"type": "mqtt", "profile": "ferroamp", "broker_host": "192.168.1.99"},
                       sn="STRANGER")
    result = await world.plan()
    assert not result.plan.has_changes
    assert [(u["platform"], u["id"]) for u in result.plan.unmanaged] == [("zap", "STRANGER")]


    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True))
    assert [c.address for c in result.plan.pending] == ["device/s1-zap.STRANGER[zap]"]
    assert report.ok and zap.device("STRANGER") is None
    assert zap.device("SG0001") is not None, "declared devices stay"


async def test_an_undeclared_device_on_a_gateway_with_dots_in_its_name_is_removed_there(
        make_world: MakeWorld) -> None:
    # Gateway names may hold dots, and so may serials: `<gateway>.<sn>` is read back by the
    # longest declared gateway it starts with.
    world = await make_world([site("s1"), gateway("s1.zap", "s1", serial_of(1)),
                              inverter("s1-inv", "s1.zap", "SG0001")])
    await world.apply()
    zap = world.sims.zaps[serial_of(1)]
    zap.install_device({"type": "mqtt", "profile": "ferroamp", "broker_host": "192.168.1.99"},
                       sn="X.Y")

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True))
    assert [c.address for c in result.plan.pending] == ["device/s1.zap.X.Y[zap]"]
    assert report.ok and zap.device("X.Y") is None
    assert zap.device("SG0001") is not None


async def test_site_created_in_the_organisation_it_declares(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1) + standard_site(2, org=ORG_B))
    await world.apply()
    names = {s.name: s.org_id for s in world.sims.novacore.sites.values()}
    assert names == {"Site s1": ORG_A, "Site s2": ORG_B}
    assert world.sims.novacore.gateways[serial_of(2)].org_id == ORG_B
