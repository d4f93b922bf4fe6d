"""Safety policies end to end: a gateway owned by another organisation is transferred only
with `allowTransfer`, a device whose Modbus serial is not its declared hardware id is
neither added nor provisioned, and an offline gateway defers its own site only."""

from __future__ import annotations

import asyncio

from simworld import (
    ORG_A,
    ORG_B,
    TRANSFER_SERIAL,
    MakeWorld,
    cloud_device,
    cloud_devices,
    converged_exactly_once,
    gateway,
    gateway_moved_to_home,
    load,
    owner,
    p1_meter,
    serial_of,
    shop_in_org_b,
    site_names,
    standard_site,
)

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.plan.actions import Action, Reason
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions

# -- transfer ---------------------------------------------------------------------------------

SERIAL = TRANSFER_SERIAL


async def test_transfer_is_refused_without_allow_transfer(make_world: MakeWorld) -> None:
    world = await make_world(shop_in_org_b())
    _, report = await world.apply()
    assert report.ok and owner(world.sims, SERIAL) == ORG_B

    moved = load(gateway_moved_to_home(allow_transfer=False))
    result = await world.plan(fleet=moved)
    claim = next(c for c in result.plan.changes if c.address == "gateway/gw[novacore]")
    assert (claim.action, claim.blocked, claim.reason) == (
        Action.TRANSFER, True, Reason.TRANSFER_NOT_ALLOWED)
    assert "owned by org-beta" in claim.message and "allowTransfer" in claim.message
    blocked_device = next(c for c in result.plan.changes if c.address == "device/inv[novacore]")
    assert blocked_device.blocked, "provisioning on a gateway we do not own waits for the claim"

    world.sims.reset_counts()
    async with world.engine(moved) as engine:
        report = await engine.apply(result)
    assert not report.ok and {o.status for o in report.outcomes} == {"blocked"}
    assert world.sims.writes() == 0, "nothing was written"
    assert owner(world.sims, SERIAL) == ORG_B
    assert all(d.state == "active" for d in cloud_devices(world.sims)), "org-beta keeps its devices"


async def test_transfer_with_allow_transfer_orphans_the_old_organisations_devices(
        make_world: MakeWorld) -> None:
    world = await make_world(shop_in_org_b())
    await world.apply()
    moved = load(gateway_moved_to_home(allow_transfer=True))

    result, report = await world.apply(fleet=moved)
    claim = next(c for c in result.plan.changes if c.address == "gateway/gw[novacore]")
    assert (claim.action, claim.blocked) == (Action.TRANSFER, False)
    assert report.ok, report.as_dict()
    assert owner(world.sims, SERIAL) == ORG_A
    legacy = cloud_device(world.sims, "FERRO-LEGACY")
    assert legacy.state == "orphaned", "the old organisation's undeclared device is orphaned"
    assert world.sims.novacore.sites[legacy.site_id].org_id == ORG_B
    inv = cloud_device(world.sims, "SG-X")
    assert (inv.state, world.sims.novacore.sites[inv.site_id].name) == ("active", "Site home"), \
        "the declared device is provisioned into the new organisation's site"

    again = await world.plan(fleet=moved)
    assert not again.plan.has_changes, [c.address for c in again.plan.pending]
    assert sorted((u["platform"], u["id"]) for u in again.plan.unmanaged) == [
        ("novacore", legacy.id), ("zap", "FERRO-LEGACY")], \
        "the orphaned device (in org-beta's site, and still on the Zap) is reported, not touched"


# -- identity check -------------------------------------------------------------------------


async def test_serial_mismatch_blocks_adding_and_provisioning(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1, check_serial=True) + standard_site(2))
    world.sims.modbus[0].set_serial("SWAPPED-99", unit_id=1)  # site 1's inverter was replaced

    result = await world.plan()
    verify = next(c for c in result.plan.changes if c.address == "device/s1-inv[identity]")
    assert (verify.action, verify.blocked, verify.reason) == (
        Action.VERIFY, True, Reason.IDENTITY_MISMATCH)
    assert "'SWAPPED-99'" in verify.message and "'SG0001'" in verify.message
    assert verify.before == {"serial": "SWAPPED-99"}

    async with world.engine() as engine:
        report = await engine.apply(result)
    statuses = {o.address: o.status for o in report.outcomes}
    assert {a for a, s in statuses.items() if s == "blocked"} == {
        "device/s1-inv[identity]", "device/s1-inv[zap]", "device/s1-inv[novacore]",
        "device/s1-inv[publish]"}
    assert not report.by_status("failed"), "blocked, not attempted"
    zap = world.sims.zaps[serial_of(1)]
    assert sorted(zap.devices) == ["P1M0001"], "neither SG0001 nor SWAPPED-99 was added"
    assert cloud_devices(world.sims, "SG0001") == []
    assert cloud_devices(world.sims, "SWAPPED-99") == []
    assert cloud_device(world.sims, "P1M0001").state == "active", "the rest of the site applies"
    assert sorted(world.sims.zaps[serial_of(2)].devices) == ["P1M0002", "SG0002"]


async def test_matching_serial_is_checked_and_the_device_added(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1, check_serial=True))
    result, report = await world.apply()
    assert "device/s1-inv[identity]" in [c.address for c in result.plan.pending]
    assert report.ok
    converged_exactly_once(world.sims, world.fleet)


# -- offline gateway --------------------------------------------------------------------------


async def test_offline_gateway_defers_its_site_while_the_others_apply(
        make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1) + standard_site(2) + standard_site(3))
    await world.sims.zaps[serial_of(2)].set_offline("refuse")

    result, report = await world.apply()
    deferred = {c.site for c in result.plan.deferred}
    assert deferred == {"s2"}
    assert {o.site for o in report.by_status("deferred")} == {"s2"}
    assert {o.site for o in report.by_status("done")} == {"s1", "s3"}
    assert report.ok, "deferred is not an error"
    assert site_names(world.sims, ORG_A) == ["Site s1", "Site s3"], "nothing guessed for s2"
    assert owner(world.sims, serial_of(2)) is None

    await world.sims.zaps[serial_of(2)].set_offline("online")
    _, report = await world.apply()
    assert report.ok and {o.site for o in report.outcomes} == {"s2"}
    converged_exactly_once(world.sims, world.fleet)


async def test_a_site_with_one_gateway_offline_defers_the_removal_of_what_another_holds(
        make_world: MakeWorld) -> None:
    """Two gateways in one site: one is offline, the other holds a device nobody declared.
    With --prune the removal is planned, and deferred with the rest of the site."""
    docs = [*standard_site(1), gateway("s1-zap2", "s1", serial_of(9)),
            p1_meter("s1-p1b", "s1-zap2", "P1M0009")]
    world = await make_world(docs)
    await world.apply()
    world.sims.zaps[serial_of(1)].install_device(
        {"type": "p1_uart", "profile": "p1_meter"}, sn="P1-UNDECLARED")
    await world.sims.zaps[serial_of(9)].set_offline("refuse")

    result = await world.plan(PlanOptions(audience=Audience.CLI, prune=True))
    removal = next(c for c in result.plan.changes if "P1-UNDECLARED" in c.address)
    assert removal.action is Action.DEFER
    assert removal.message.startswith("would delete; deferred: gateway s1-zap2"), removal.message
    offline = next(c for c in result.plan.changes if c.address == "device/s1-p1b[publish]")
    assert offline.action is Action.DEFER
    assert offline.message.startswith("its state is not known; deferred: gateway s1-zap2")


async def test_nothing_is_written_to_a_zap_that_reports_another_serial(
        make_world: MakeWorld) -> None:
    """The gateway's URL reaches another Zap (a DHCP lease moved, a swapped unit still
    plugged in, a typo): plain http on a local network proves nothing. Its devices are not
    pruned as undeclared, nor this gateway's devices added to it."""
    ours = standard_site(1)
    world = await make_world(ours + standard_site(2))  # s2's Zap is someone else's
    await world.apply()
    neighbour = world.sims.zaps[serial_of(2)]
    urls = world.sims.gateway_urls
    mixed_up = {serial_of(1): urls[serial_of(2)]}
    settings = load_settings(world.env | {
        "RECONCILER_GATEWAY_URLS": ",".join(f"{s}={u}" for s, u in mixed_up.items())})
    neighbour.requests.clear()

    async with Reconciler(load(ours), settings) as engine:
        result = await engine.plan(PlanOptions(audience=Audience.CLI, prune=True))
        report = await engine.apply(result)
    assert neighbour.writes() == 0, dict(neighbour.requests)
    assert sorted(neighbour.devices) == ["P1M0002", "SG0002"]
    failed = report.by_status("failed")
    assert {o.address for o in failed} == {
        "device/s1-zap.P1M0002[zap]", "device/s1-zap.SG0002[zap]"}
    # Each of this gateway's devices goes after the removal of the one the Zap has at its
    # endpoint (the P1 UART, the inverter's address), which failed: not attempted either.
    skipped = {o.address: o.message for o in report.by_status("skipped")}
    assert skipped["device/s1-inv[zap]"] == (
        "not attempted: device/s1-zap.SG0002[zap] did not succeed")
    assert skipped["device/s1-p1[zap]"] == (
        "not attempted: device/s1-zap.P1M0002[zap] did not succeed")
    assert all(o.message.startswith(
        f"the gateway at {urls[serial_of(2)]} reports serial '{serial_of(2)}', not "
        f"'{serial_of(1)}': nothing is written to it") for o in failed)
    assert neighbour.requests["GET /api/crypto"] == 1, "its serial is read once per apply"


async def test_other_sites_are_read_while_a_gateway_hangs(make_world: MakeWorld) -> None:
    """Each read starts once what it needs is known: the other site's devices are read
    from Novacore while a gateway has not answered yet, not after every gateway has."""
    world = await make_world(standard_site(1) + standard_site(2),
                             env={"RECONCILER_TIMEOUT": "1"})
    await world.apply()
    novacore = world.sims.novacore
    novacore.requests.clear()
    await world.sims.zaps[serial_of(1)].set_offline("hang")

    def site_reads() -> int:
        return novacore.requests["GET /sites/{site_id}/devices"]

    plan = asyncio.create_task(world.plan())
    while not plan.done():  # the hanging gateway times out (1 s, three attempts)
        if site_reads():
            break
        await asyncio.sleep(0.02)
    assert site_reads() == 1 and not plan.done(), "site s2 was read while s1's gateway hung"
    result = await plan
    assert site_reads() == 2, "s1's devices are read too, once its gateway gave up"
    assert {c.site for c in result.plan.deferred} == {"s1"}
    assert not any(c.action is Action.DEFER for c in result.plan.changes if c.site == "s2")


async def test_hanging_gateway_is_deferred_after_the_timeout(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1) + standard_site(2),
                             env={"RECONCILER_TIMEOUT": "0.3"})
    await world.sims.zaps[serial_of(1)].set_offline("hang")
    result = await world.plan()
    assert {c.site for c in result.plan.deferred} == {"s1"}
    assert "timed out" in result.plan.deferred[0].message
    assert "(gave up after 3 attempts)" in result.plan.deferred[0].message, \
        "why the plan waited three timeouts long"
    assert not any(c.action is Action.DEFER for c in result.plan.changes if c.site == "s2")


async def test_a_claim_novacore_takes_for_a_transfer_says_so(make_world: MakeWorld) -> None:
    # The gateway is held by an organisation this token is no member of: no listing shows
    # it, so the plan is a claim, and Novacore transfers it (its rules, §1.4). Nothing could
    # stop that; the outcome says it happened instead of a bare claim.
    world = await make_world(standard_site(1))
    novacore = world.sims.novacore
    hidden = novacore.add_org("org-hidden")
    novacore.claim_gateway_into(serial_of(1), hidden)
    result = await world.plan()
    claim = next(c for c in result.plan.changes if c.component == "novacore"
                 and c.kind == "Gateway")
    assert claim.action is Action.CLAIM, claim
    async with world.engine() as engine:
        report = await engine.apply(result)
    assert report.ok
    done = next(o for o in report.outcomes if o.address == claim.address)
    assert done.note == (
        "Novacore transferred it from organisation org-hidden this token cannot read, "
        "orphaning its devices there; the plan could not see that owner, so allowTransfer "
        "was not asked")
    assert owner(world.sims, serial_of(1)) == ORG_A
    # A claim of a gateway nobody held says nothing more.
    fresh = await make_world(standard_site(2))
    _, report = await fresh.apply()
    assert report.ok and not [o.note for o in report.outcomes if o.action == "claim" and o.note]
