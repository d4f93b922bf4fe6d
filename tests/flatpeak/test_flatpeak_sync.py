"""Flatpeak end to end against the simulator on loopback: the site's location and its
devices are created, drift is corrected with PATCH, undeclared devices on the managed
location are deleted with --prune (and nothing of other systems is), lists are read page
by page, and an expired token is refreshed mid-run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from flatpeak_world import API, World, fleet_of, home, pending

from reconciler.engine.flatpeak import flatpeak_api
from reconciler.engine.reconcile import Reconciler
from reconciler.errors import ProviderAuthError
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.providers.flatpeak.client import FlatpeakAuth, FlatpeakClient
from reconciler.sim.fleet import SimFleet

# The options of a plan for the CLI's user (its advice names the CLI's flags).
CLI = PlanOptions(audience=Audience.CLI)


async def test_location_and_devices_are_created_then_nothing_is_written(world: World) -> None:
    result = await world.plan()
    assert {a: c.action for a, c in pending(result).items()} == {
        "site/home[flatpeak]": Action.CREATE, "device/home-battery[flatpeak]": Action.CREATE,
        "device/home-pv[flatpeak]": Action.CREATE}
    assert pending(result)["device/home-battery[flatpeak]"].depends_on == ["site/home[flatpeak]"]
    await world.apply()

    location = world.location()
    assert location["customer_id"] == "cus_1"
    assert location["postal_address"] | {} == {
        "address_line1": "Storgatan 1", "address_line2": None, "city": "Malmö", "state": None,
        "post_code": "211 19", "country_code": "SE"}
    battery = world.device("home-battery")
    assert (battery["type"], battery["locations"], battery["manufacturer"], battery["model_name"]) \
        == ("BATTERY_SYSTEM", [location["id"]], "Tesla", "Powerwall 2")
    # YAML camelCase properties arrive in Flatpeak's snake_case.
    assert battery["properties"] == {"capacity_kwh": 13.5, "power_rating_export_kwh": 5.0,
                                     "install_date": "2024-03-22"}
    assert world.device("home-pv")["properties"] == {"pv_tilt": 27.0, "pv_azimuth": 180.0}

    world.sims.reset_counts()
    again = await world.plan()
    assert not again.plan.has_changes and again.plan.unmanaged == []
    assert world.sims.writes() == 0
    # Batched: a login, one list of locations and one of devices.
    assert dict(world.sims.flatpeak.requests) == {
        "GET /login": 1, "GET /locations": 1, "GET /devices": 1}


@pytest.mark.parametrize("merges", [True, False], ids=["merging-patch", "replacing-patch"])
async def test_drift_and_declared_changes_are_patched_field_by_field(
        world: World, merges: bool) -> None:
    """Also where Flatpeak takes the `properties` of a PATCH whole: they are sent whole."""
    world.sims.flatpeak.merges_patched_objects = merges
    await world.apply()
    battery = world.device("home-battery")
    # Someone edits the device elsewhere: one declared property, one undeclared.
    world.sims.flatpeak.set_device_properties(battery["id"], {"capacity_kwh": 9.0,
                                                              "pv_tilt": 10})
    changed = fleet_of(home(battery_model="Powerwall 3", street="Lilla torg 2"))
    result = await world.plan(changed)
    assert {a: c.action for a, c in pending(result).items()} == {
        "site/home[flatpeak]": Action.UPDATE, "device/home-battery[flatpeak]": Action.UPDATE}
    change = pending(result)["device/home-battery[flatpeak]"]
    assert {d.path: (d.old, d.new) for d in change.diff} == {
        "model_name": ("Powerwall 2", "Powerwall 3"), "properties.capacity_kwh": (9.0, 13.5)}
    world.sims.reset_counts()
    await world.apply(changed)
    requests = dict(world.sims.flatpeak.requests)
    assert requests["PATCH /devices/{id}"] == requests["PATCH /locations/{id}"] == 1
    assert world.sims.writes() == 2
    assert world.location()["postal_address"]["address_line1"] == "Lilla torg 2"
    battery = world.device("home-battery")
    assert battery["model_name"] == "Powerwall 3"
    assert battery["properties"] == {"capacity_kwh": 13.5, "power_rating_export_kwh": 5.0,
                                     "install_date": "2024-03-22",
                                     "pv_tilt": 10}  # not declared: left as it is
    assert not (await world.plan(changed)).plan.has_changes


@pytest.mark.parametrize("merges", [True, False], ids=["merging-patch", "replacing-patch"])
async def test_a_moved_site_gets_its_whole_new_address(world: World, merges: bool) -> None:
    """A declared address is the whole address: a site that moves from a flat to a house
    leaves no flat number behind at the new street. The address goes whole in the PATCH,
    whether Flatpeak merges a `postal_address` it is sent or takes it whole (the spec says
    only that parameters not sent stay as they are)."""
    world.sims.flatpeak.merges_patched_objects = merges
    await world.apply(fleet_of(home(line2="Lgh 1102")))
    assert world.location()["postal_address"]["address_line2"] == "Lgh 1102"

    moved = fleet_of(home(street="Kungsgatan 5", city="Lund", post_code="222 22"))
    change = pending(await world.plan(moved))["site/home[flatpeak]"]
    assert ("remove", "postal_address.address_line2", "Lgh 1102", None) in [
        (d.op, d.path, d.old, d.new) for d in change.diff]
    await world.apply(moved)
    assert world.location()["postal_address"] == {
        "address_line1": "Kungsgatan 5", "address_line2": None, "city": "Lund", "state": None,
        "post_code": "222 22", "country_code": "SE"}
    assert not (await world.plan(moved)).plan.has_changes


async def test_prune_deletes_only_undeclared_devices_that_are_only_on_managed_locations(
        world: World) -> None:
    await world.apply()
    ours = world.location()["id"]
    theirs = world.add_location("other-system-site")
    stray = world.add_device("left-over", [ours])
    shared = world.add_device("shared", [ours, theirs])
    foreign = world.add_device("other-system-device", [theirs])

    reported = await world.plan()
    assert not reported.plan.has_changes
    assert sorted(u["id"] for u in reported.plan.unmanaged) == sorted([stray, shared])

    pruned = await world.plan(prune=True)
    assert {a: c.action for a, c in pending(pruned).items()} == {
        "device/home.left-over[flatpeak]": Action.DELETE}
    assert [u["id"] for u in pruned.plan.unmanaged] == [shared]
    assert "does not manage" in pruned.plan.unmanaged[0]["description"]
    await world.apply(prune=True)
    assert set(world.sims.flatpeak.devices) >= {shared, foreign}
    assert stray not in world.sims.flatpeak.devices
    # Removing a declared device from the fleet deletes it too, with --prune.
    smaller = fleet_of(home(with_pv=False))
    assert {a: c.action for a, c in pending(await world.plan(smaller, prune=True)).items()} == {
        "device/home.home-pv[flatpeak]": Action.DELETE}
    await world.apply(smaller, prune=True)
    assert not [d for d in world.sims.flatpeak.devices.values() if d["reference_id"] == "home-pv"]


async def test_device_lists_are_read_page_by_page(world: World) -> None:
    await world.apply()
    theirs = world.add_location("other-system-site")
    for index in range(120):  # more than the largest page (100)
        world.add_device(f"other-{index}", [theirs])
    world.sims.reset_counts()
    result = await world.plan()
    assert not result.plan.has_changes and result.plan.unmanaged == []
    assert world.sims.flatpeak.requests["GET /devices"] == 2

    # A smaller page size gives more pages over the same list.
    async with httpx.AsyncClient(base_url=world.sims.flatpeak.url, auth=FlatpeakAuth(
            world.sims.flatpeak.url + "/login", world.sims.flatpeak_account,
            world.sims.flatpeak_key)) as http:
        world.sims.reset_counts()
        listed = await FlatpeakClient(http, page_size=50).list_devices()
    assert len(listed) == 122 and len({d["id"] for d in listed}) == 122
    assert world.sims.flatpeak.requests["GET /devices"] == 3


@pytest.mark.parametrize("refused", [403, 401])
async def test_a_token_that_expires_mid_run_is_refreshed(world: World, refused: int) -> None:
    """Whether Flatpeak answers an expired token 403 (its spec's one auth error) or 401."""
    world.sims.flatpeak.token_refused_status = refused
    async with world.reconciler() as reconciler:
        result = await reconciler.plan(CLI)
        world.sims.flatpeak.expire_tokens()  # between observing and applying
        report = await reconciler.apply(result)
        auth = flatpeak_api(reconciler.session).http.auth
    assert report.ok, report.as_dict()
    assert isinstance(auth, FlatpeakAuth) and auth.logins == 2
    assert world.sims.flatpeak.requests["GET /login"] == 2
    assert not (await world.plan()).plan.has_changes


async def test_the_token_is_refreshed_before_it_expires(world: World) -> None:
    now = [0.0]
    auth = FlatpeakAuth(world.sims.flatpeak.url + "/login", world.sims.flatpeak_account,
                        world.sims.flatpeak_key, clock=lambda: now[0])
    async with httpx.AsyncClient(base_url=world.sims.flatpeak.url, auth=auth) as http:
        client = FlatpeakClient(http)
        await client.list_devices()
        await client.list_devices()
        assert auth.logins == 1  # cached
        now[0] = 3600.0 - 1  # inside the refresh margin of a one-hour token
        await client.list_devices()
    assert auth.logins == 2
    # Refreshed ahead: no request was sent with an expired token and repeated.
    assert world.sims.flatpeak.requests["GET /devices"] == 3


async def test_bad_credentials_and_a_disabled_account_stop_the_run(world: World) -> None:
    """Neither gets better by waiting for the next run: someone must act, so the run stops
    (exit 1) instead of deferring, which an apply reports as success."""
    settings = world.settings(RECONCILER_FLATPEAK_API_KEY="wrong")
    async with Reconciler(world.fleet, settings) as reconciler:
        with pytest.raises(ProviderAuthError, match=r"refused the login.*"
                           r"RECONCILER_FLATPEAK_ACCOUNT_ID.*RECONCILER_FLATPEAK_API_KEY.*"
                           r"bad_credentials"):
            await reconciler.plan(CLI)
    world.sims.flatpeak.set_account_disabled(world.sims.flatpeak_account)
    with pytest.raises(ProviderAuthError, match=r"refused the login.*account_disabled"):
        await world.plan()
    world.sims.flatpeak.set_account_disabled(world.sims.flatpeak_account, False)
    assert (await world.plan()).plan.has_changes, "enabled again: planned as usual"


async def test_a_login_that_hangs_times_out_and_defers(world: World) -> None:
    """The login is made by the auth flow, not the client: it has the client's timeouts
    too, so a Flatpeak that accepts connections and never answers defers its site."""
    await world.sims.flatpeak.set_offline("hang")
    settings = world.settings(RECONCILER_TIMEOUT="0.5")
    async with Reconciler(world.fleet, settings) as reconciler:
        result = await asyncio.wait_for(reconciler.plan(CLI), timeout=60)
    assert {c.action for c in result.plan.pending} == {Action.DEFER}
    assert all("timed out" in c.message for c in result.plan.pending), [
        c.message for c in result.plan.pending]


async def test_a_declared_location_id_is_adopted(tmp_path: Path) -> None:
    fleet = fleet_of(home(location="loc_existing"))
    sims = SimFleet(seed=3)
    sims.seed_fleet(fleet)
    await sims.start()
    try:
        world = World(sims, tmp_path, fleet)
        result = await world.plan()
        assert "site/home[flatpeak]" not in pending(result)
        await world.apply()
        assert world.device("home-battery")["locations"] == ["loc_existing"]
        assert not (await world.plan()).plan.has_changes
    finally:
        await sims.stop()


def renamed_home() -> str:
    """`home()` with the Site renamed (its resource name: the location's reference id)."""
    return home().replace("{name: home}", "{name: house}").replace(
        "siteRef: home\n", "siteRef: house\n")


async def test_a_renamed_site_converges_in_one_apply(world: World) -> None:
    """The renamed Site gets a new location (found by reference id, its resource name), and
    its devices move to it in the same apply, after it is created."""
    await world.apply()
    old = world.location("home")["id"]
    renamed = fleet_of(renamed_home())

    result = await world.plan(renamed)
    changes = pending(result)
    assert {a: c.action for a, c in changes.items()} == {
        "site/house[flatpeak]": Action.CREATE, "device/home-battery[flatpeak]": Action.UPDATE,
        "device/home-pv[flatpeak]": Action.UPDATE}
    battery = changes["device/home-battery[flatpeak]"]
    assert battery.depends_on == ["site/house[flatpeak]"]
    assert [(d.path, d.old, d.new) for d in battery.diff] == [
        ("locations", [old], ["(the location created for Site house)"])]

    await world.apply(renamed)
    new = world.location("house")["id"]
    assert world.device("home-battery")["locations"] == [new]
    assert world.device("home-pv")["locations"] == [new]
    assert not (await world.plan(renamed)).plan.has_changes


async def test_the_location_a_renamed_site_left_is_reported_until_it_is_deleted(
        world: World) -> None:
    """An earlier apply made the old location (the inventory remembers it); no declared Site
    matches it after the rename, so every plan reports it, and forgets it once it is gone.
    A location of another system in the same account is never reported."""
    world.add_location("someone-elses")
    await world.apply()
    old = world.location("home")["id"]
    renamed = fleet_of(renamed_home())
    await world.apply(renamed)

    unmanaged = (await world.plan(renamed)).plan.unmanaged
    assert [(u["platform"], u["id"]) for u in unmanaged] == [("flatpeak", old)]
    assert unmanaged[0]["description"].startswith(
        f"Flatpeak location {old} (reference id 'home') was applied for Site home, and no "
        "declared Site's location is it any more")
    back = (await world.plan(fleet_of(home()))).plan.unmanaged
    assert [u["id"] for u in back] == [world.location("house")["id"]], "renamed back"

    del world.sims.flatpeak.locations[old]
    await world.apply(renamed)
    assert (await world.plan(renamed)).plan.unmanaged == []
    inventory = json.loads((world.tmp / "state" / "inventory.json").read_text())
    assert list(inventory["flatpeak_locations"]) == [world.location("house")["id"]]


async def test_an_api_that_does_not_filter_by_reference_id_adopts_nothing_of_others(
        world: World) -> None:
    """The lookups by `reference_id` that adopt a location or device an interrupted run made
    take only objects of that reference id, also from a Flatpeak version that answers every
    object of the account (the busbar pages list no such filter): another system's location
    and device, newest first, are not taken for this site's and patched."""
    world.sims.flatpeak.filters_reference_id = False
    elsewhere = world.add_location("elsewhere")
    stranger = world.add_device("stranger", [elsewhere])
    before = json.loads(json.dumps(world.sims.flatpeak.devices[stranger]))
    await world.apply()
    home_id = world.location("home")["id"]
    assert home_id != elsewhere
    assert world.device("home-battery")["locations"] == [home_id]
    assert world.device("home-pv")["locations"] == [home_id]
    assert world.sims.flatpeak.devices[stranger] == before
    assert world.sims.flatpeak.locations[elsewhere]["postal_address"] == {
        "address_line1": "Elsewhere 1"}


def with_cabin(location_id: str) -> str:
    """`home()` and a second Site, `cabin`, elsewhere, on the location `location_id`."""
    return home() + f"""---
{API}
kind: Site
metadata: {{name: cabin}}
spec:
  displayName: Cabin
  timezone: Europe/Stockholm
  location:
    latitude: 57.64
    longitude: 18.29
    address: {{line1: Strandgatan 3, city: Visby, postCode: "621 56", countryCode: SE}}
  flatpeak: {{locationId: {location_id}}}
---
{API}
kind: Device
metadata: {{name: cabin-ev}}
spec:
  siteRef: cabin
  flatpeak: {{referenceId: cabin-ev, type: EV_CHARGER}}
"""


async def test_two_sites_on_one_location_are_blocked_instead_of_taking_turns(
        world: World) -> None:
    """A Site whose `locationId` is the location another Site finds by its name: each would
    write its own address there, one apply each, for ever. The one that has something to
    write is blocked, naming the other; nothing is written to the location."""
    await world.apply()
    shared = world.location("home")["id"]
    fleet = fleet_of(with_cabin(shared))
    changes = pending(await world.plan(fleet))
    cabin = changes["site/cabin[flatpeak]"]
    assert cabin.blocked and cabin.action is Action.UPDATE
    assert f"location {shared} (reference id 'home') is also the location of Site home" \
        in cabin.message
    assert changes["device/cabin-ev[flatpeak]"].blocked
    assert "site/home[flatpeak]" not in changes, "in sync: it writes nothing"

    world.sims.reset_counts()
    async with world.reconciler(fleet) as reconciler:
        report = await reconciler.apply(await reconciler.plan(CLI))
    assert not report.ok
    assert world.sims.writes() == 0
    assert world.location("home")["postal_address"]["city"] == "Malmö"

    # Edited in Flatpeak, the location differs from both Sites: neither writes it.
    world.sims.flatpeak.locations[shared]["postal_address"]["city"] = "Ystad"
    changes = pending(await world.plan(fleet))
    assert changes["site/home[flatpeak]"].blocked and changes["site/cabin[flatpeak]"].blocked
    assert "also the location of Site cabin" in changes["site/home[flatpeak]"].message


async def test_the_location_the_last_flatpeak_site_left_is_reported(world: World) -> None:
    """With no Site declaring Flatpeak any more (the block removed from the last one), the
    locations are still listed, for the location the Site leaves to be reported as a
    renamed Site's is; the devices are not read. That listing stops nothing: with the key
    refused, the plan reports nothing of Flatpeak and goes on."""
    await world.apply()
    location = world.location("home")["id"]
    site_alone = home().split("---")[0].replace("  flatpeak: {customerId: cus_1}\n", "")
    without = fleet_of(site_alone)
    assert without.sites["home"].spec.flatpeak is None and not without.devices

    world.sims.reset_counts()
    unmanaged = (await world.plan(without)).plan.unmanaged
    assert [(u["platform"], u["id"]) for u in unmanaged] == [("flatpeak", location)]
    assert "was applied for Site home" in unmanaged[0]["description"]
    assert dict(world.sims.flatpeak.requests) == {"GET /login": 1, "GET /locations": 1}

    refused = world.settings(RECONCILER_FLATPEAK_API_KEY="wrong")
    async with Reconciler(without, refused) as reconciler:
        result = await reconciler.plan(CLI)
    assert result.plan.unmanaged == [] and not result.plan.has_changes
