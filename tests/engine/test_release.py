"""Gateways removed from the desired state, against the simulators: one remembered with
`deletionPolicy: Release` is reported, and released with --prune, even when no declared
Site is left in its organisation, but never while devices bound to it could not be read;
one with `Orphan` stays claimed."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from simworld import (
    ORG_A,
    ORG_B,
    Doc,
    MakeWorld,
    cloud_devices,
    load,
    owner,
    serial_of,
    site,
    standard_site,
)

from reconciler.plan.actions import Action
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet


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

    result, report = await world.apply(PlanOptions(prune=True), fleet=fleet)
    assert [(c.address, c.action) for c in result.plan.pending] == [
        (f"gateway/{serial_of(2)}[novacore]", Action.RELEASE)]
    assert report.ok, report.as_dict()
    assert owner(world.sims, serial_of(2)) is None

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

    result, report = await world.apply(PlanOptions(prune=True), fleet=fleet)
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

    result, report = await world.apply(PlanOptions(prune=True), fleet=fleet)
    assert owner(world.sims, serial_of(2)) == ORG_A, "not released"
    assert {d.state for d in cloud_devices(world.sims)} == {"active"}, "none orphaned"
    release = next(c for c in result.plan.changes if c.address.startswith("gateway/zap-"))
    assert release.action is Action.DEFER
    assert f"the Novacore devices of site {site_id}, which may be bound to it" in release.message

    unreadable.site_id = ""
    result, report = await world.apply(PlanOptions(prune=True), fleet=fleet)
    assert report.ok, report.as_dict()
    release = next(c for c in result.plan.changes if c.address.startswith("gateway/zap-"))
    assert len(release.depends_on) == 2, "after the two devices bound to it are deleted"
    assert owner(world.sims, serial_of(2)) is None
    assert sorted(d.hardware_id for d in cloud_devices(world.sims)) == ["P1M0001", "SG0001"]
