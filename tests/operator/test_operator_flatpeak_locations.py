"""A Site's Flatpeak location replaced through the operator (the Site renamed, which gives
it a new location found by its new name, or given another `locationId`): its devices leave
the old location, which the fleet made or matched, and keep another system's, as the CLI
does from its inventory. The operator has no inventory: each Device's status remembers the
locations its Site had (`status.flatpeakLocations`), and every Device's counts for the
namespace. Each with a fingerprint of the Flatpeak account it was found with: an operator
started with another account (RECONCILER_FLATPEAK_ACCOUNT_ID changed) keeps those of the
first, which that account does not list, instead of forgetting them as deleted, and says
so once, naming the setting, as the CLI does of its inventory. A Site given another
`locationId` remembers the location it leaves (its `status.flatpeakLocations`), so that
its deletion says that one stays too, Devices or not. What a deletion says stays is read
as the object goes: a location deleted by hand since the last reconcile is not named, and
one that cannot be read is named as that reconcile saw it, worded so."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fleet_yaml import document, stream
from harness import Cluster, documents, emulated_cluster, operator
from process import operator_env, operator_process

from reconciler.operator.config import OperatorConfig
from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

# No drift check between the tests' edits in the simulators and the deletion: what the
# deletion says comes of its own read, not of a reconcile that forgot the location first.
NO_DRIFT = OperatorConfig(interval=3600.0, retry_delay=0.5)

ADDRESS = '{line1: Storgatan 1, city: Malmö, postCode: "211 19", countryCode: SE}'


def _site(name: str, location_id: str = "") -> str:
    flatpeak = "{customerId: cus_1" + (f", locationId: {location_id}" if location_id else "") + "}"
    return document("Site", name, f"""
        displayName: Home
        timezone: Europe/Stockholm
        location: {{latitude: 55.61, longitude: 12.97, address: {ADDRESS}}}
        flatpeak: {flatpeak}
        """)


def _battery(site: str) -> str:
    return document("Device", "home-battery", f"""
        siteRef: {site}
        flatpeak: {{referenceId: home-battery, type: BATTERY_SYSTEM, manufacturer: Tesla}}
        """)


def _location(sims: SimFleet, reference_id: str) -> str | None:
    return next((str(loc["id"]) for loc in sims.flatpeak.locations.values()
                 if loc["reference_id"] == reference_id), None)


def _battery_locations(sims: SimFleet) -> list[str]:
    [device] = [d for d in sims.flatpeak.devices.values() if d["reference_id"] == "home-battery"]
    return list(device["locations"])


def _foreign_location(sims: SimFleet) -> str:
    """A location another system made in the same account."""
    location_id = "loc_other_system"
    sims.flatpeak.locations[location_id] = {
        "id": location_id, "object": "location", "reference_id": "other-system-site",
        "customer_id": None, "postal_address": {"address_line1": "Elsewhere 1"},
        "account_id": sims.flatpeak_account}
    return location_id


def _entry(location_id: str, site: str, account: str) -> dict[str, str]:
    """An entry of `status.flatpeakLocations`: the account as a fingerprint only."""
    return {"id": location_id, "site": site,
            "accountSha256": hashlib.sha256(account.encode()).hexdigest()}


async def _placed(cluster: Cluster, sims: SimFleet) -> tuple[str, str]:
    """The battery on home's location, and on another system's too: (home's, theirs)."""
    await cluster.wait_condition("Device", "home-battery", "Ready")
    old = _location(sims, "home")
    assert old is not None and _battery_locations(sims) == [old]
    status = await cluster.status("Device", "home-battery")
    assert status["flatpeakLocations"] == [_entry(old, "home", sims.flatpeak_account)]
    theirs = _foreign_location(sims)
    [battery] = [i for i, d in sims.flatpeak.devices.items()
                 if d["reference_id"] == "home-battery"]
    sims.flatpeak.devices[battery]["locations"] = [old, theirs]
    return old, theirs


async def test_a_renamed_sites_device_leaves_its_old_location_and_keeps_another_systems(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = stream(_site("home"), _battery("home"))
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        old, theirs = await _placed(cluster, sims)

        # Renamed: a new Site object, the Device pointed at it, the old object deleted.
        await cluster.create_all(documents(_site("house")))
        await cluster.patch("Device", "home-battery", {"spec": {"siteRef": "house"}})
        await cluster.delete("Site", "home")

        async def moved() -> list[str] | None:
            new = _location(sims, "house")
            return [theirs, new] if new and _battery_locations(sims) == [theirs, new] else None

        [_, new] = await cluster.wait_for(moved, what="the battery moved")
        assert old in sims.flatpeak.locations, "locations are never deleted"
        await cluster.wait_condition("Device", "home-battery", "Ready")
        status = await cluster.status("Device", "home-battery")
        assert status["flatpeakLocations"] == [
            _entry(old, "home", sims.flatpeak_account),
            _entry(new, "house", sims.flatpeak_account)]
        await cluster.wait_planned("Device", "home-battery", 2)
        assert _battery_locations(sims) == [theirs, new], "in sync, not moved back"


async def test_a_site_given_another_location_id_takes_its_device_off_the_old_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = stream(_site("home"), _battery("home"))
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        old, theirs = await _placed(cluster, sims)
        sims.flatpeak.locations["loc_new"] = {
            **sims.flatpeak.locations[old], "id": "loc_new", "reference_id": "made-by-hand"}

        await cluster.patch("Site", "home", {"spec": {"flatpeak": {"locationId": "loc_new"}}})

        async def moved() -> bool:
            return _battery_locations(sims) == [theirs, "loc_new"]

        await cluster.wait_for(moved, what="the battery moved to loc_new")
        assert old in sims.flatpeak.locations


async def test_the_last_object_remembering_a_location_says_as_it_goes_that_it_stays(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A Site and its Device deleted: the CLI keeps reporting the location they leave, from
    its inventory; the operator's memory of it goes with them, so the deletion of the last
    object that remembers it says once that it stays in Flatpeak."""
    fleet = stream(_site("home"), _battery("home"))
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        old, _ = await _placed(cluster, sims)

        async def kept(name: str) -> list[str]:
            events = await cluster.events_about(name, reason="FlatpeakLocationKept")
            return [str(e["message"]) for e in events]

        # The Site still has it: the Device's deletion leaves nothing unremembered.
        await cluster.delete("Device", "home-battery")
        await cluster.wait_gone("Device", "home-battery")
        assert await kept("home-battery") == []

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home")
        [message] = await kept("home")
        assert message.startswith(
            f"Flatpeak location {old}, applied for Site home, stays in Flatpeak with any "
            "device on it (locations are never deleted)"
        ), message
        assert old in sims.flatpeak.locations


async def test_a_site_and_its_device_deleted_together_still_say_the_location_stays(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Deleted at once (`kubectl delete -f`), neither leaves the saying to the other."""
    fleet = stream(_site("home"), _battery("home"))
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        old, _ = await _placed(cluster, sims)

        await cluster.delete("Device", "home-battery")
        await cluster.delete("Site", "home")
        await cluster.wait_gone("Device", "home-battery")
        await cluster.wait_gone("Site", "home")
        said = [e for e in await cluster.events() if e.get("reason") == "FlatpeakLocationKept"]
        assert said and all(old in str(e["message"]) for e in said), said


async def test_a_deleted_site_whose_pinned_location_a_reconcile_found_gone_says_nothing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The location a Site pins by `locationId` is deleted in Flatpeak: the reconcile that
    reads the account without it records it as not found, so the Site's deletion does not
    say that a location gone stays."""
    fleet = stream(_site("home", "loc_pinned"))
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        assert "loc_pinned" in sims.flatpeak.locations, "the simulators hold what is pinned"
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Site", "home", "Ready")
        status = await cluster.status("Site", "home")
        assert status["externalIds"]["flatpeak"] == "loc_pinned", status
        assert "flatpeakLocationNotFound" not in status, status

        del sims.flatpeak.locations["loc_pinned"]
        await cluster.patch("Site", "home", {"spec": {"displayName": "Home again"}})
        ready = await cluster.wait_condition("Site", "home", "Ready", "False")
        assert "Flatpeak location loc_pinned does not exist" in ready["message"], ready
        status = await cluster.status("Site", "home")
        assert status["flatpeakLocationNotFound"] == "loc_pinned", status
        # No id of a location that does not exist.
        assert "flatpeak" not in status.get("externalIds", {}), status

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home")
        assert await cluster.events_about("home", reason="FlatpeakLocationKept") == []
        assert _location(sims, "home") is None, "nothing was created for the pinned Site"


async def test_a_pinned_location_found_again_is_said_to_stay_as_its_site_goes(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Recorded as not found, then pinned to a location that exists: the record goes, and
    the Site's deletion says that location stays."""
    fleet = stream(_site("home", "loc_gone"))
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        del sims.flatpeak.locations["loc_gone"]
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Site", "home", "Ready", "False")
        status = await cluster.status("Site", "home")
        assert status["flatpeakLocationNotFound"] == "loc_gone", status
        assert "flatpeak" not in status.get("externalIds", {}), status

        theirs = _foreign_location(sims)
        await cluster.patch("Site", "home", {"spec": {"flatpeak": {"locationId": theirs}}})
        await cluster.wait_condition("Site", "home", "Ready")
        status = await cluster.status("Site", "home")
        assert "flatpeakLocationNotFound" not in status, status
        assert status["externalIds"]["flatpeak"] == theirs, status

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home")
        [event] = await cluster.events_about("home", reason="FlatpeakLocationKept")
        assert str(event["message"]).startswith(
            f"Flatpeak location {theirs}, applied for Site home, stays in Flatpeak"), event


OTHER_ACCOUNT = "acc_other_account_of_the_test"
OTHER_KEY = "key-of-the-other-account"


async def test_an_operator_started_with_another_account_keeps_the_locations_and_says_so(
    tmp_path: Path,
) -> None:
    fleet = stream(_site("home"), _battery("home"))
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", fleet)]).fleet())
    async with emulated_cluster() as cluster, sims:
        env = operator_env(sims, cluster.url, tmp_path)
        await cluster.create_all(documents(fleet))
        log = tmp_path / "operator.log"
        async with operator_process(env, log):
            await cluster.wait_condition("Device", "home-battery", "Ready", timeout=60)
        first = _location(sims, "home")
        assert first is not None
        status = await cluster.status("Device", "home-battery")
        assert status["flatpeakLocations"] == [_entry(first, "home", sims.flatpeak_account)]

        sims.flatpeak.add_account(OTHER_ACCOUNT, OTHER_KEY)
        other = env | {"RECONCILER_FLATPEAK_ACCOUNT_ID": OTHER_ACCOUNT,
                       "RECONCILER_FLATPEAK_API_KEY": OTHER_KEY}
        async with operator_process(other, log):
            # The other account has no location of the Site: one is made there.
            async def made() -> str | None:
                return next((str(loc["id"]) for loc in sims.flatpeak.locations.values()
                             if loc["account_id"] == OTHER_ACCOUNT), None)

            second = await cluster.wait_for(made, timeout=60,
                                            what="a location in the other account")

            async def recorded() -> list[dict[str, str]] | None:
                status = await cluster.status("Device", "home-battery")
                entries = status.get("flatpeakLocations") or []
                return entries if second in [e["id"] for e in entries] else None

            entries = await cluster.wait_for(recorded, timeout=60, what="the new location recorded")
            said = await cluster.wait_events_about(
                "home-battery", reason="FlatpeakLocationsOfAnotherAccount")
            await cluster.wait_planned("Device", "home-battery", 2)
            status = await cluster.status("Device", "home-battery")

        # Kept, with the account it was found with; not looked for in the other one.
        assert entries == status["flatpeakLocations"] == [
            _entry(first, "home", sims.flatpeak_account),
            _entry(second, "home", OTHER_ACCOUNT)]
        [message] = {str(e["message"]) for e in said}
        assert message == (
            "this Device's status.flatpeakLocations remembers 1 Flatpeak location found with "
            "another Flatpeak account than RECONCILER_FLATPEAK_ACCOUNT_ID names now: "
            f"{first} (Site home); it is not looked for in this account, nor forgotten, while "
            "the Site's location is found, or created, in this account. Set "
            "RECONCILER_FLATPEAK_ACCOUNT_ID and RECONCILER_FLATPEAK_API_KEY (the chart's "
            "credentials.keys.flatpeakAccountId and flatpeakApiKey) to the account it was "
            "found with, or delete it there")
        assert sims.flatpeak_account not in log.read_text(errors="replace")
        assert sims.flatpeak_account not in str(status)


async def test_a_pinned_location_of_the_first_account_is_not_recorded_as_not_found(
    tmp_path: Path,
) -> None:
    """An operator started with another account does not find the location a Site pins,
    which its Device found in the first account: that says nothing of the location, so the
    Site records no `flatpeakLocationNotFound`, and its deletion still says it stays."""
    fleet = stream(_site("home", "loc_pinned"), _battery("home"))
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", fleet)]).fleet())
    async with emulated_cluster() as cluster, sims:
        assert "loc_pinned" in sims.flatpeak.locations, "the simulators hold what is pinned"
        env = operator_env(sims, cluster.url, tmp_path)
        await cluster.create_all(documents(fleet))
        log = tmp_path / "operator.log"
        async with operator_process(env, log):
            await cluster.wait_condition("Device", "home-battery", "Ready", timeout=60)
        status = await cluster.status("Device", "home-battery")
        assert status["flatpeakLocations"] == [
            _entry("loc_pinned", "home", sims.flatpeak_account)]

        sims.flatpeak.add_account(OTHER_ACCOUNT, OTHER_KEY)
        other = env | {"RECONCILER_FLATPEAK_ACCOUNT_ID": OTHER_ACCOUNT,
                       "RECONCILER_FLATPEAK_API_KEY": OTHER_KEY}
        async with operator_process(other, log):
            await cluster.patch("Site", "home", {"spec": {"displayName": "Home again"}})
            ready = await cluster.wait_condition("Site", "home", "Ready", "False", timeout=60)
            assert "Flatpeak location loc_pinned does not exist" in ready["message"], ready
            status = await cluster.status("Site", "home")
            assert "flatpeakLocationNotFound" not in status, status

            await cluster.delete("Device", "home-battery")
            await cluster.wait_gone("Device", "home-battery", timeout=60)
            await cluster.delete("Site", "home")
            await cluster.wait_gone("Site", "home", timeout=60)
            said = await cluster.wait_events_about("home", reason="FlatpeakLocationKept")
        [message] = {str(e["message"]) for e in said}
        # Not read with the other account, which does not list it: said as last found.
        assert message.startswith(
            "Flatpeak location loc_pinned, applied for Site home, was in Flatpeak when last "
            "found, and could not be read now (it was found with another Flatpeak account "
            "than RECONCILER_FLATPEAK_ACCOUNT_ID names now, which does not list it): unless "
            "it was deleted there since, it stays"), message


async def _kept_messages(cluster: Cluster, name: str) -> list[str]:
    events = await cluster.events_about(name, reason="FlatpeakLocationKept")
    return sorted(str(e["message"]) for e in events)


def _stays(location_id: str, site: str = "home") -> str:
    return (f"Flatpeak location {location_id}, applied for Site {site}, stays in Flatpeak "
            "with any device on it (locations are never deleted), and no object of this "
            "namespace remembers it any more: delete it there if it is not used, or declare "
            "a Site with its locationId to manage it again")


async def test_a_location_deleted_by_hand_since_the_last_reconcile_is_not_said_to_stay(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = stream(_site("home"))
    async with operator(fleet, tmp_path, monkeypatch, config=NO_DRIFT) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Site", "home", "Ready", timeout=30)
        location = _location(sims, "home")
        assert location is not None
        del sims.flatpeak.locations[location]
        status = await cluster.status("Site", "home")
        assert status["externalIds"]["flatpeak"] == location, "no reconcile forgot it"

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home", timeout=30)

        assert await _kept_messages(cluster, "home") == []


async def test_a_location_that_cannot_be_read_as_its_site_goes_is_said_as_last_seen(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = stream(_site("home"))
    async with operator(fleet, tmp_path, monkeypatch, config=NO_DRIFT) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Site", "home", "Ready", timeout=30)
        location = _location(sims, "home")
        sims.flatpeak.faults.error_rate = 1.0  # every call answered 503

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home", timeout=30)

        [message] = await _kept_messages(cluster, "home")
        assert message.startswith(
            f"Flatpeak location {location}, applied for Site home, was in Flatpeak when last "
            "found, and could not be read now ("), message
        assert "HTTP 503" in message, message
        assert message.endswith(
            "unless it was deleted there since, it stays with any device on it (locations "
            "are never deleted), and no object of this namespace remembers it any more: "
            "delete it there if it is not used, or declare a Site with its locationId to "
            "manage it again"), message


async def test_a_site_repinned_to_a_missing_location_says_as_it_goes_that_the_old_one_stays(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """No Device remembers the location the Site leaves: the Site does."""
    fleet = stream(_site("home"))
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Site", "home", "Ready", timeout=30)
        old = _location(sims, "home")
        assert old is not None
        status = await cluster.status("Site", "home")
        assert status["flatpeakLocations"] == [_entry(old, "home", sims.flatpeak_account)]

        await cluster.patch("Site", "home", {"spec": {"flatpeak": {"locationId": "loc_nowhere"}}})
        ready = await cluster.wait_condition("Site", "home", "Ready", "False", timeout=30)
        assert "Flatpeak location loc_nowhere does not exist" in ready["message"], ready
        status = await cluster.status("Site", "home")
        assert "flatpeak" not in status.get("externalIds", {}), status
        assert status["flatpeakLocations"] == [_entry(old, "home", sims.flatpeak_account)]

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home", timeout=30)
        assert await _kept_messages(cluster, "home") == [_stays(old)]
        assert old in sims.flatpeak.locations


async def test_a_site_repinned_to_another_location_says_as_it_goes_that_both_stay(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = stream(_site("home"))
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Site", "home", "Ready", timeout=30)
        old = _location(sims, "home")
        assert old is not None
        theirs = _foreign_location(sims)

        await cluster.patch("Site", "home", {"spec": {"flatpeak": {"locationId": theirs}}})

        async def repinned() -> dict[str, Any] | None:
            status = await cluster.status("Site", "home")
            found = status.get("externalIds", {}).get("flatpeak") == theirs
            return status if found and len(status.get("flatpeakLocations", [])) == 2 else None

        status = await cluster.wait_for(repinned, timeout=30, what="the Site on its new location")
        assert status["flatpeakLocations"] == [_entry(old, "home", sims.flatpeak_account),
                                               _entry(theirs, "home", sims.flatpeak_account)]

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home", timeout=30)
        assert await _kept_messages(cluster, "home") == sorted([_stays(old), _stays(theirs)])
