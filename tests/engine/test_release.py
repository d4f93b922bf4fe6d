"""Gateways removed from the desired state, against the simulators: one remembered with
`deletionPolicy: Release` is reported, and released with --prune, even when no declared
Site is left in its organisation, but never while devices bound to it could not be read;
one with `Orphan` stays claimed. A device a release orphaned that no Device declares is
said to be orphaned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
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
    site,
    standard_site,
)

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet

RELEASED = "DELETE /gateways/{serial}"  # the simulator counts requests by route


def with_policy(docs: list[Doc], policy: str) -> list[Doc]:
    """The documents with every Gateway's deletionPolicy set."""
    return [{**d, "spec": {**d["spec"], "deletionPolicy": policy}} if d["kind"] == "Gateway"
            else d for d in docs]


async def test_a_removed_gateway_is_released_with_prune_when_its_organisation_is_gone(
        make_world: MakeWorld) -> None:
    kept = standard_site(1, org=ORG_A)
    removed = with_policy(standard_site(2, org=ORG_B), "Release")
    world = await make_world(kept + removed)
    await world.apply()
    assert owner(world.sims, serial_of(2)) == ORG_B
    fleet = load(kept)  # nothing of org-beta is declared any more

    result = await world.plan(fleet=fleet)
    assert not result.plan.has_changes
    (site_id,) = [s.id for s in world.sims.novacore.sites.values() if s.org_id == ORG_B]
    # Its site is reported too (`plan.retired`): it stays in Novacore.
    assert [u["id"] for u in result.plan.unmanaged] == [serial_of(2), site_id]
    assert "deletionPolicy Release; use --prune" in result.plan.unmanaged[0]["description"]

    # Its devices are still in that site, bound to it, and nothing declares them: a release
    # would orphan them, so it is blocked naming them until they are gone.
    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    [release] = result.plan.pending
    assert (release.address, release.action, release.blocked) == (
        f"gateway/{serial_of(2)}[novacore]", Action.RELEASE, True)
    bound = [d for d in cloud_devices(world.sims) if d.gateway_serial == serial_of(2)]
    assert len(bound) == 2 and all(f"device {d.id} ({d.hardware_id}) in site 'Site s2' "
                                   f"({site_id})" in release.message for d in bound)
    assert not report.ok and world.sims.novacore.requests[RELEASED] == 0
    assert {d.state for d in cloud_devices(world.sims)} == {"active"}, "none orphaned"
    for device in bound:
        world.sims.novacore.remove_device(device.id)

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    assert [(c.address, c.action) for c in result.plan.pending] == [
        (f"gateway/{serial_of(2)}[novacore]", Action.RELEASE)]
    assert report.ok, report.as_dict()
    assert owner(world.sims, serial_of(2)) is None
    assert world.sims.novacore.requests[RELEASED] == 1

    # Released and forgotten; org-beta is read for the site left there, and once that is
    # gone, no more.
    noop, requests, writes = await world.noop_writes(fleet)
    assert not noop.plan.has_changes and writes == 0
    assert [u["id"] for u in noop.plan.unmanaged] == [site_id]
    assert requests == 1 + 1 + 2 + 2, "site, gateway, the two listings of each organisation"
    world.sims.novacore.remove_site(site_id)
    await world.apply(fleet=fleet)
    noop, requests, writes = await world.noop_writes(fleet)
    assert not noop.plan.has_changes and not noop.plan.unmanaged and writes == 0
    assert requests == 1 + 1 + 2, "site, gateway and the two listings of org-alpha only"


async def test_a_removed_gateway_with_orphan_stays_claimed(make_world: MakeWorld) -> None:
    kept = standard_site(1, org=ORG_A)
    world = await make_world(kept + with_policy(standard_site(2, org=ORG_A), "Orphan"))
    await world.apply()
    fleet = load(kept)

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    assert report.ok and not result.plan.has_changes
    assert "deletionPolicy Orphan" in result.plan.unmanaged[0]["description"]
    assert owner(world.sims, serial_of(2)) == ORG_A


class UnreadableSite:
    """Answers `GET /sites/<id>/devices` of one site with a 503 while `site_id` is set
    (installed before the simulator starts)."""

    def __init__(self) -> None:
        self.site_id = ""

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def fail(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.site_id and request.path == f"/sites/{self.site_id}/devices":
                return web.json_response({"error": "unavailable", "message": "down"}, status=503)
            return await handler(request)

        sims.novacore.app.middlewares.append(fail)


async def test_a_removed_gateway_waits_while_the_devices_bound_to_it_cannot_be_read(
        make_world: MakeWorld) -> None:
    kept = standard_site(1)
    removed = with_policy(standard_site(2), "Release")
    unreadable = UnreadableSite()
    world = await make_world(kept + removed, before_start=unreadable.install)
    await world.apply()
    # The gateway and its devices leave the desired state; their Site stays.
    fleet = load([*kept, site("s2")])
    (site_id,) = [s.id for s in world.sims.novacore.sites.values() if s.name == "Site s2"]
    unreadable.site_id = site_id

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    assert owner(world.sims, serial_of(2)) == ORG_A, "not released"
    assert {d.state for d in cloud_devices(world.sims)} == {"active"}, "none orphaned"
    release = next(c for c in result.plan.changes if c.address.startswith("gateway/zap-"))
    assert release.action is Action.DEFER
    assert f"the Novacore devices of site {site_id}, which may be bound to it" in release.message
    # What it waits to do is kept as an action, for the engine and in the JSON plan alike.
    assert release.deferred_action is Action.RELEASE
    (entry,) = [e for e in result.document()["changes"] if e["address"] == release.address]
    assert (entry["actions"], entry["deferred_actions"]) == (["defer"], ["release"])

    unreadable.site_id = ""
    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    assert report.ok, report.as_dict()
    release = next(c for c in result.plan.changes if c.address.startswith("gateway/zap-"))
    assert len(release.depends_on) == 2, "after the two devices bound to it are deleted"
    assert owner(world.sims, serial_of(2)) is None
    assert sorted(d.hardware_id for d in cloud_devices(world.sims)) == ["P1M0001", "SG0001"]


async def test_a_removed_gateway_claimed_by_another_organisation_since_is_not_released(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """`deletionPolicy: Release` was declared for the gateway as claimed into org-alpha.
    Once org-beta claimed it (a transfer made by someone else's apply), releasing it would
    undo their claim and orphan their devices: --prune leaves it claimed, and says why."""
    ours = with_policy(standard_site(2), "Release")
    shop = [site("shop", org=ORG_B)]  # org-beta is declared here too, so it is read
    world = await make_world(ours + standard_site(1) + shop)
    await world.apply()
    assert owner(world.sims, serial_of(2)) == ORG_A
    # Someone else, with a state directory of their own, takes the gateway into org-beta.
    theirs = load([site("s2", org=ORG_B), gateway("gw", "s2", serial_of(2), allow_transfer=True)])
    others = load_settings(world.env | {"RECONCILER_STATE_DIR": str(tmp_path / "theirs")})
    async with Reconciler(theirs, others) as engine:
        assert (await engine.apply(await engine.plan(PlanOptions(audience=Audience.CLI)))).ok
    assert owner(world.sims, serial_of(2)) == ORG_B
    fleet = load(standard_site(1) + shop)
    world.sims.reset_counts()

    result, report = await world.apply(PlanOptions(audience=Audience.CLI, prune=True), fleet=fleet)
    assert world.sims.novacore.requests[RELEASED] == 0
    assert owner(world.sims, serial_of(2)) == ORG_B
    assert report.ok and not [c for c in result.plan.pending if c.action is Action.RELEASE]
    (entry,) = [u for u in result.plan.unmanaged if u["id"] == serial_of(2)]
    assert entry["description"] == (
        f"gateway {serial_of(2)} is claimed by {ORG_B} but not declared; left claimed "
        f"(its deletionPolicy Release was declared for it in {ORG_A})")


async def test_an_orphaned_device_nobody_declares_is_said_to_be_orphaned(
        make_world: MakeWorld) -> None:
    """A Novacore device whose gateway was released (here by someone else, in Novacore)
    and that no Device declares any more is reported as orphaned, not only as undeclared:
    a user otherwise cannot tell why it is there."""
    docs = standard_site(1)
    world = await make_world(docs)
    await world.apply()
    fleet = load([d for d in docs if d["metadata"]["name"] != "s1-p1"])
    world.sims.novacore.release_gateway(serial_of(1))

    result = await world.plan(fleet=fleet)
    (meter,) = [u for u in result.plan.unmanaged if u.get("id", "").startswith("dev-")]
    assert meter["description"].endswith(
        "in site s1 is not declared and is orphaned (its gateway was released or transferred "
        "to another organisation)"), meter["description"]

    # Not orphaned, it is only undeclared.
    await world.apply(fleet=load(docs))
    result = await world.plan(fleet=fleet)
    (meter,) = [u for u in result.plan.unmanaged if u.get("id", "").startswith("dev-")]
    assert meter["description"].endswith("in site s1 is not declared"), meter["description"]
