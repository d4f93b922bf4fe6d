"""Two Flatpeak devices with the reference id of one declared device (one left by an
interrupted create, say): the newest is the declared device's, and each other one is
reported, naming both ids, and deleted with --prune where an undeclared device would be
(only on locations this fleet manages). Against the simulator on loopback."""

from __future__ import annotations

from flatpeak_world import World, pending

from reconciler.plan.actions import Action


async def test_an_older_device_with_a_declared_reference_id_is_reported_and_pruned(
        world: World) -> None:
    await world.apply()
    ours = world.location("home")["id"]
    theirs = world.add_location("other-system-site")
    older = world.device("home-battery")["id"]
    shared = world.add_device("home-battery", [ours, theirs])
    newest = world.add_device("home-battery", [ours])

    result = await world.plan()
    assert {a: c.action for a, c in pending(result).items()} == {
        "device/home-battery[flatpeak]": Action.UPDATE}
    assert pending(result)["device/home-battery[flatpeak]"].external_id == newest
    reported = {u["id"]: u for u in result.plan.unmanaged}
    assert sorted(reported) == sorted([older, shared])
    for duplicate in (older, shared):
        description = reported[duplicate]["description"]
        assert duplicate in description and newest in description, description
        assert "Device home-battery" in description, description
        assert reported[duplicate]["site"] == "home"
    assert "does not manage" in reported[shared]["description"]

    pruned = await world.plan(prune=True)
    deletes = {c.external_id: c for c in pruned.plan.pending if c.action is Action.DELETE}
    assert list(deletes) == [older]
    assert [u["id"] for u in pruned.plan.unmanaged] == [shared]
    await world.apply(prune=True)
    assert older not in world.sims.flatpeak.devices
    assert {shared, newest} <= set(world.sims.flatpeak.devices)
    assert world.sims.flatpeak.devices[newest]["type"] == "BATTERY_SYSTEM"
    again = await world.plan(prune=True)
    assert not again.plan.has_changes
    assert [u["id"] for u in again.plan.unmanaged] == [shared]


async def test_a_duplicate_only_on_another_systems_location_is_reported_not_pruned(
        world: World) -> None:
    await world.apply()
    theirs = world.add_location("other-system-site")
    managed = world.device("home-pv")["id"]
    elsewhere = world.add_device("home-pv", [theirs])
    # The older one stays the newest: it is the one this fleet made and manages.
    devices = world.sims.flatpeak.devices
    devices[managed] = devices.pop(managed)

    result = await world.plan(prune=True)
    assert not result.plan.has_changes
    assert [u["id"] for u in result.plan.unmanaged] == [elsewhere]
    assert managed in result.plan.unmanaged[0]["description"]
