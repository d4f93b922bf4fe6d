"""A Site without `siteId` is found in Novacore by its display name. Renaming it in git (or
someone renaming the site in Novacore) must not create a second site and move the devices
over: the site that no declared Site claims and that holds this Site's devices and nothing
else is renamed in place. Against the simulators, counting reads and writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from simworld import (
    ORG_A,
    MakeWorld,
    cloud_device,
    load,
    site,
    site_names,
    standard_site,
)

from reconciler.plan import renames
from reconciler.plan.actions import Action


def renamed_s1(display: str) -> list[dict[str, object]]:
    return [site("s1", display=display), *standard_site(1)[1:], *standard_site(2)]


async def test_a_site_renamed_in_git_keeps_its_id_and_devices(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1) + standard_site(2))
    assert (await world.apply())[1].ok
    ids = {s.name: s.id for s in world.sims.novacore.sites.values()}
    renamed = load(renamed_s1("Solna"))

    world.sims.reset_counts()
    result = await world.plan(fleet=renamed)
    [change] = result.plan.pending
    assert (change.address, change.action, change.external_id) == (
        "site/s1[novacore]", Action.UPDATE, ids["Site s1"])
    assert "renamed rather than created again" in change.message
    sites, gateways, orgs = 2, 2, 1
    assert world.sims.requests() == sites + gateways + 2 * orgs, \
        "s1 matches no site by name, so it reads the devices of the one unclaimed site instead"

    _, report = await world.apply(fleet=renamed)
    assert report.ok and report.counts()["done"] == 1, report.as_dict()
    assert {s.name: s.id for s in world.sims.novacore.sites.values()} == {
        "Solna": ids["Site s1"], "Site s2": ids["Site s2"]}, "renamed, nothing created"
    assert cloud_device(world.sims, "SG0001").site_id == ids["Site s1"]

    noop, requests, writes = await world.noop_writes(renamed)
    assert not noop.plan.has_changes and writes == 0
    assert requests == sites + gateways + 2 * orgs, "matched by name again: no extra read"


async def test_a_site_renamed_by_hand_in_novacore_gets_its_name_back(
        make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1))
    assert (await world.apply())[1].ok
    [site_id] = world.sims.novacore.sites
    world.sims.novacore.rename_site(site_id, "Somebody's name")

    _, report = await world.apply()
    assert report.ok and report.counts()["done"] == 1, report.as_dict()
    assert site_names(world.sims, ORG_A) == ["Site s1"]
    assert list(world.sims.novacore.sites) == [site_id]


async def test_a_new_site_is_created_when_the_old_one_holds_other_devices_too(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """Where nothing remembers an earlier apply (another machine's state directory), a site
    that holds a device this Site does not declare is somebody else's: it is left alone and
    a new site is made (what the plan has always said for a new name)."""
    world = await make_world(standard_site(1) + standard_site(2))
    assert (await world.apply())[1].ok
    world.settings = dataclasses.replace(world.settings, state_dir=str(tmp_path / "elsewhere"))
    smaller = load([site("s1", display="Solna"), *standard_site(1)[1:3], *standard_site(2)])

    result = await world.plan(fleet=smaller)
    created = {c.address: c.action for c in result.plan.pending}
    assert created["site/s1[novacore]"] is Action.CREATE
    _, report = await world.apply(fleet=smaller)
    assert report.ok, report.as_dict()
    assert site_names(world.sims, ORG_A) == ["Site s1", "Site s2", "Solna"]


async def test_the_site_an_earlier_apply_put_a_site_in_is_renamed_whatever_it_holds(
        make_world: MakeWorld) -> None:
    """The state directory remembers which site the last apply put Site s1 in: renamed and
    with a device fewer, it is still that site (as a resource keeps its address in
    Terraform), and the device no longer declared is reported there."""
    world = await make_world(standard_site(1) + standard_site(2))
    assert (await world.apply())[1].ok
    ids = {s.name: s.id for s in world.sims.novacore.sites.values()}
    smaller = load([site("s1", display="Solna"), *standard_site(1)[1:3], *standard_site(2)])

    result = await world.plan(fleet=smaller)
    [renamed] = [c for c in result.plan.pending if c.address == "site/s1[novacore]"]
    assert (renamed.action, renamed.external_id) == (Action.UPDATE, ids["Site s1"])
    assert "an earlier apply put this Site in site" in renamed.message
    assert any("P1M0001" in str(u) for u in result.plan.unmanaged), result.plan.unmanaged
    _, report = await world.apply(fleet=smaller)
    assert report.ok, report.as_dict()
    assert {s.name: s.id for s in world.sims.novacore.sites.values()} == {
        "Solna": ids["Site s1"], "Site s2": ids["Site s2"]}, "renamed, nothing created"


async def test_no_search_among_more_unclaimed_sites_than_the_limit(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """An organisation shared with many sites nobody declares: looking through them all would
    cost a read each on every plan until the Site is created, so the plan says it did not.
    (A state directory that remembers the site needs no search: planned from another.)"""
    world = await make_world(standard_site(1))
    assert (await world.apply())[1].ok
    world.settings = dataclasses.replace(world.settings, state_dir=str(tmp_path / "elsewhere"))
    for index in range(renames.SEARCH_LIMIT):
        world.sims.novacore.add_site(ORG_A, f"Somebody else's site {index}")
    renamed = load([site("s1", display="Solna"), *standard_site(1)[1:]])

    world.sims.reset_counts()
    result = await world.plan(fleet=renamed)
    change = next(c for c in result.plan.pending if c.address == "site/s1[novacore]")
    assert change.action is Action.CREATE
    assert change.message == (
        f"no site named 'Solna' in {ORG_A}; the {renames.SEARCH_LIMIT + 1} sites no Site claims "
        f"were not searched for the one it was renamed from (more than {renames.SEARCH_LIMIT}): "
        "set `siteId` if it was")
    assert world.sims.requests() == 1 + 2, "its gateway, and the org's sites and gateways"
