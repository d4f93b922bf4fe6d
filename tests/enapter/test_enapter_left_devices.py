"""A Device keyed by its slug (a standalone device) whose Site is pointed at another Enapter
site (`siteId` set in its spec), through the CLI's engine against the Enapter simulator on
loopback: Enapter cannot move a device between sites, so the plan replaces it (deleted in
the site the inventory remembers for the Site, then provisioned in the new one, saying
why), and the apply does it in that order, its config file written anew for the new
device, leaving nothing behind in the old site. A plan with nothing to do reads no more
than before. Where the old site's devices cannot be read, the plan defers the device
instead of creating a second one beside it."""

from __future__ import annotations

from enapter_world import API, MakeWorld, World, device, fleet_of, pending, renderings

from reconciler.engine import enapter_files
from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Action, Reason
from reconciler.plan.advice import Audience
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterSiteState, EnapterState
from reconciler.plan.observed import Observed, Unreachable
from reconciler.plan.planner import PlanOptions, make_plan

ADDRESS = "device/lab-standalone[enapter]"
SITE_DEVICES = "GET /v3/sites/{site_id}/devices"
WEATHER = device("lab-standalone", "{kind: standalone, configOutput: {file: cfg/standalone.json}}",
                 display="Weather station")


def site(enapter: str = "{}") -> str:
    return f"""{API}
kind: Site
metadata: {{name: lab}}
spec:
  displayName: H2 Lab
  timezone: Europe/Rome
  enapter: {enapter}
"""


def slugged(world: World, site_id: str) -> list[str]:
    return [d.id for d in world.sims.enapter.devices.values()
            if d.site_id == site_id and d.slug == "lab-standalone"]


async def moved(world: World) -> tuple[str, str, str, Fleet]:
    """The fleet applied, then its Site pinned to a new Enapter site: (old site, old
    device, new site, the fleet that says so)."""
    await world.converge()
    [old] = world.sims.enapter.devices.values()
    new_site = world.sims.enapter.add_site("H2 Lab annex", "Europe/Rome").id
    return old.site_id, old.id, new_site, fleet_of(site(f"{{siteId: {new_site}}}") + WEATHER)


async def test_a_device_whose_site_moved_is_replaced_into_the_new_site(
        make_world: MakeWorld) -> None:
    world = await make_world(site() + WEATHER)
    old_site, old_id, new_site, fleet = await moved(world)

    result = await world.plan(fleet)
    change = pending(result)[ADDRESS]
    assert (change.action, change.reason, change.blocked) == (Action.REPLACE, Reason.MOVED, False)
    assert change.external_id == old_id
    for said in (f"STANDALONE device {old_id} ('Weather station') in Enapter site {old_site}",
                 "Enapter cannot move a device to another site",
                 f"deleted there, then provisioned again in Enapter site {new_site}",
                 "its communication config is written to"):
        assert said in change.message, change.message
    assert "replace" in renderings(result)

    _, report = await world.apply(fleet)
    assert report.ok, report.as_dict()
    assert slugged(world, old_site) == [], "nothing left behind in the old site"
    [new_id] = slugged(world, new_site)
    path = world.state_dir / "cfg" / "standalone.json"
    written = enapter_files.written_for(world.settings(), [path], Audience.CLI)
    assert written.get(path) == new_id, "its config written anew, for the new device"

    world.sims.reset_counts()
    again = await world.plan(fleet)
    assert ADDRESS not in pending(again)
    assert world.sims.enapter.requests[SITE_DEVICES] == 1, "only its Site's site is read"


async def test_a_device_whose_old_site_is_unreadable_is_deferred() -> None:
    """Planned from what was read: the old site's devices unreadable, the device's create
    is deferred (a second device would be made beside the one that may be there)."""
    fleet = fleet_of(site("{siteId: s2}") + WEATHER)
    state = EnapterState(
        sites=[EnapterSiteState("s1", "H2 Lab", "Europe/Rome"),
               EnapterSiteState("s2", "H2 Lab", "Europe/Rome")],
        devices={"s2": [], "s1": Unreachable("503 Service Unavailable")},
        left_sites={"lab-standalone": ("s1",)},
    )
    plan = make_plan(fleet, Observed(extra={"enapter": state}), PlanOptions(audience=Audience.CLI))
    change = next(c for c in plan.changes if c.address == ADDRESS)
    assert change.action is Action.DEFER and change.deferred_action is Action.CREATE
    assert "devices of Enapter site s1, where its device was before its Site moved: 503" in (
        change.message)

    state.devices["s1"] = [EnapterDeviceState("d1", "s1", "STANDALONE", "Weather station",
                                              "lab-standalone")]
    plan = make_plan(fleet, Observed(extra={"enapter": state}), PlanOptions(audience=Audience.CLI))
    change = next(c for c in plan.changes if c.address == ADDRESS)
    assert (change.action, change.external_id) == (Action.REPLACE, "d1")


def test_a_device_of_its_slug_but_another_id_is_left_alone() -> None:
    """Where the id its device was recorded with is known (the operator's status), a device
    of the same slug but another id, in the site its Site was before, is another's (a
    Device of another namespace whose Site is that site now): never deleted for it."""
    fleet = fleet_of(site("{siteId: s2}") + WEATHER)
    state = EnapterState(
        sites=[EnapterSiteState("s1", "H2 Lab", "Europe/Rome"),
               EnapterSiteState("s2", "H2 Lab", "Europe/Rome")],
        devices={"s2": [], "s1": [EnapterDeviceState("d7", "s1", "STANDALONE", "Weather",
                                                     "lab-standalone")]},
        left_sites={"lab-standalone": ("s1",)},
        left_ids={"lab-standalone": "d1"},
    )
    plan = make_plan(fleet, Observed(extra={"enapter": state}), PlanOptions(audience=Audience.CLI))
    change = next(c for c in plan.changes if c.address == ADDRESS)
    assert (change.action, change.external_id) == (Action.CREATE, None)

    state.left_ids["lab-standalone"] = "d7"
    plan = make_plan(fleet, Observed(extra={"enapter": state}), PlanOptions(audience=Audience.CLI))
    change = next(c for c in plan.changes if c.address == ADDRESS)
    assert (change.action, change.external_id) == (Action.REPLACE, "d7")
