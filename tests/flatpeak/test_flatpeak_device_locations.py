"""A declared device is put on its Site's location without being taken off the locations
of other systems in the same account: a PATCH of `locations` adds the Site's location and
keeps every location that is not this fleet's, while one that is (another declared Site's,
or one an earlier apply made for a Site since renamed) is left. Against the simulator on
loopback."""

from __future__ import annotations

from flatpeak_world import World, fleet_of, home, pending

from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions


async def test_a_device_on_another_systems_location_is_added_to_the_sites(world: World) -> None:
    """The location is created in the same apply: the device is added to it, not moved."""
    theirs = world.add_location("other-system-site")
    other = world.add_device("home-battery", [theirs])

    change = pending(await world.plan())["device/home-battery[flatpeak]"]
    assert change.action is Action.UPDATE
    assert [(d.path, d.old, d.new) for d in change.diff if d.path == "locations"] == [
        ("locations", [theirs], [theirs, "(the location created for Site home)"])]
    await world.apply()
    ours = world.location("home")["id"]
    assert world.sims.flatpeak.devices[other]["locations"] == [theirs, ours]
    assert not (await world.plan()).plan.has_changes

    # Taken off the Site's location by hand: put back on it, still on the other one.
    world.sims.flatpeak.devices[other]["locations"] = [theirs]
    change = pending(await world.plan())["device/home-battery[flatpeak]"]
    assert change.after is not None and change.after["locations"] == [theirs, ours]
    await world.apply()
    assert world.sims.flatpeak.devices[other]["locations"] == [theirs, ours]
    assert not (await world.plan()).plan.has_changes


def renamed_home() -> str:
    return home().replace("{name: home}", "{name: house}").replace(
        "siteRef: home\n", "siteRef: house\n")


async def test_a_renamed_sites_devices_leave_its_old_location_and_keep_others(
        world: World) -> None:
    """The old location was this fleet's (the inventory remembers an apply made it): the
    devices move off it to the new one, and stay on another system's location."""
    await world.apply()
    old = world.location("home")["id"]
    theirs = world.add_location("other-system-site")
    battery = world.device("home-battery")["id"]
    world.sims.flatpeak.devices[battery]["locations"] = [old, theirs]

    renamed = fleet_of(renamed_home())
    await world.apply(renamed)
    new = world.location("house")["id"]
    assert world.sims.flatpeak.devices[battery]["locations"] == [theirs, new]
    assert world.device("home-pv")["locations"] == [new]
    assert not (await world.plan(renamed)).plan.has_changes


async def test_a_device_on_another_declared_sites_location_is_moved_off_it(
        world: World) -> None:
    """A location of this fleet's is not kept: the device belongs on its own Site's."""
    await world.apply()
    home_location = world.location("home")["id"]
    cabin_site = home().split("---")[0].replace("{name: home}", "{name: cabin}")
    cabin = fleet_of(home() + "---\n" + cabin_site)
    await world.apply(cabin)
    cabin_location = world.location("cabin")["id"]
    theirs = world.add_location("other-system-site")
    battery = world.device("home-battery")["id"]
    world.sims.flatpeak.devices[battery]["locations"] = [cabin_location, theirs]

    await world.apply(cabin)
    assert world.sims.flatpeak.devices[battery]["locations"] == [theirs, home_location]
    assert not (await world.plan(cabin)).plan.has_changes


async def test_a_device_found_only_when_it_is_created_keeps_its_other_locations(
        world: World) -> None:
    """Not there when the plan was made, there when its create runs (made meanwhile, or by
    an apply killed after the create): adopted, put on the Site's location, and left on
    the ones it had."""
    await world.apply()
    ours = world.location("home")["id"]
    battery = world.device("home-battery")["id"]
    del world.sims.flatpeak.devices[battery]
    async with world.reconciler() as reconciler:
        result = await reconciler.plan(PlanOptions(audience=Audience.CLI))
        assert pending(result)["device/home-battery[flatpeak]"].action is Action.CREATE
        theirs = world.add_location("other-system-site")
        made = world.add_device("home-battery", [theirs])
        report = await reconciler.apply(result)
    assert report.ok, report.as_dict()
    assert [d["id"] for d in world.sims.flatpeak.devices.values()
            if d["reference_id"] == "home-battery"] == [made]
    assert world.sims.flatpeak.devices[made]["locations"] == [theirs, ours]
    assert not (await world.plan()).plan.has_changes
