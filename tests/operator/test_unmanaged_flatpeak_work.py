"""What a Flatpeak Site's `status.unmanaged` costs its reconcile: the devices on its
location are checked against every Device of the namespace, as the CLI's plan of the whole
fleet checks them, but without planning every other Site of the namespace again, which made
a drift check of N Sites take time of N squared and more (`benchmarks/operator_unmanaged.py`
measures it). Pure: `unmanaged.found` on observed states as the engine records them, as the
operator's reconcile calls it; the account's lists count how often they are gone through."""

from __future__ import annotations

from typing import Any

from fleet_yaml import document, stream

from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.operator import unmanaged
from reconciler.plan.advice import Audience
from reconciler.plan.flatpeak import COMPONENT as FLATPEAK
from reconciler.plan.flatpeak import (
    FlatpeakDeviceState,
    FlatpeakLocationState,
    FlatpeakPlanner,
    FlatpeakState,
)
from reconciler.plan.observed import Observed
from reconciler.sources.loader import load_texts

ADDRESS = '{line1: Storgatan 1, city: Malmö, postCode: "211 19", countryCode: SE}'


def _site(name: str, flatpeak: str = "{customerId: cus_1}") -> str:
    return document("Site", name, f"""
        displayName: {name}
        timezone: Europe/Stockholm
        location: {{latitude: 55.61, longitude: 12.97, address: {ADDRESS}}}
        flatpeak: {flatpeak}
        """)


def _device(name: str, site: str) -> str:
    return document("Device", name, f"""
        siteRef: {site}
        flatpeak: {{referenceId: {name}, type: BATTERY_SYSTEM}}
        """)


def _fleet(text: str) -> Fleet:
    loaded = load_texts([("fleet.yaml", text)])
    assert loaded.ok, loaded.diagnostics
    return loaded.fleet()


def _entries(fleet: Fleet, name: str, observed: Observed) -> list[dict[str, str]]:
    site = fleet.sites[name]
    assert isinstance(site, Site)
    listed = unmanaged.found(site, fleet, [], observed, [], {})
    assert listed is not None, "what the Site reports was taken for unread"
    return listed


class _Counted(list[Any]):
    """A list of the account that counts how often it is gone through."""

    passes = 0

    def __iter__(self) -> Any:
        _Counted.passes += 1
        return super().__iter__()


def test_each_site_reports_what_the_cli_plan_of_the_whole_namespace_files_under_it() -> None:
    fleet = _fleet(stream(
        _site("home"), _device("home-battery", "home"),
        # Names home's location by id as well: the first Site by name order keeps it.
        _site("annex", "{customerId: cus_1, locationId: loc-home}"),
        _site("cabin"), _device("cabin-battery", "cabin"),
        _site("barn"),  # no location in the account yet
    ))
    state = FlatpeakState(
        locations=[FlatpeakLocationState("loc-home", "home", "cus_1"),
                   FlatpeakLocationState("loc-cabin", "cabin", "cus_1"),
                   FlatpeakLocationState("loc-cabin-2", "cabin", "cus_1"),
                   FlatpeakLocationState("loc-theirs", "their-site", "cus_9")],
        devices=[
            FlatpeakDeviceState("fd-9", "home-battery", "BATTERY_SYSTEM", ("loc-home",)),
            FlatpeakDeviceState("fd-1", "home-battery", "BATTERY_SYSTEM", ("loc-cabin",)),
            FlatpeakDeviceState("fd-2", "heater", "HEAT_PUMP", ("loc-theirs", "loc-cabin")),
            FlatpeakDeviceState("fd-3", "charger", "EV_CHARGER", ("loc-cabin", "loc-home")),
            FlatpeakDeviceState("fd-4", "spare", "EV_CHARGER", ("loc-cabin-2",)),
            FlatpeakDeviceState("fd-5", "cabin-battery", "BATTERY_SYSTEM", ("loc-cabin",)),
            FlatpeakDeviceState("fd-6", "theirs", "EV_CHARGER", ("loc-theirs",)),
        ],
    )
    _, cli = FlatpeakPlanner(fleet, state, whole_fleet=fleet, audience=Audience.CLI).plan()
    observed = Observed(extra={FLATPEAK: state})

    for name in fleet.sites:
        expected = [
            (e["id"], str(e["description"]).removesuffix(", so --prune leaves it"))
            for e in cli if e["site"] == name
        ]
        said = [(e["id"], e["description"]) for e in _entries(fleet, name, observed)]
        assert said == expected, name
    assert {e["id"] for e in cli} == {"fd-1", "fd-2", "fd-3"}


def test_a_sites_check_goes_through_the_account_a_few_times_whatever_the_namespaces_size() -> None:
    sites = 30
    fleet = _fleet(stream(*[
        text for i in range(sites) for text in (_site(f"s{i}"), _device(f"s{i}-battery", f"s{i}"))
    ]))
    state = FlatpeakState(
        locations=_Counted(FlatpeakLocationState(f"loc-{i}", f"s{i}", "cus_1")
                           for i in range(sites)),
        devices=_Counted(
            [FlatpeakDeviceState(f"fd-{i}", f"s{i}-battery", "BATTERY_SYSTEM", (f"loc-{i}",))
             for i in range(sites)]
            + [FlatpeakDeviceState("fd-by-hand", "by-hand", "EV_CHARGER", ("loc-7",))]),
    )
    observed = Observed(extra={FLATPEAK: state})
    _Counted.passes = 0

    listed = _entries(fleet, "s7", observed)

    assert [e["id"] for e in listed] == ["fd-by-hand"]
    # Once through each list, or about; planning every Site of the namespace again went
    # through them once per Site.
    assert _Counted.passes <= 4, _Counted.passes


def test_a_sites_check_describes_only_the_devices_it_files_under_its_site() -> None:
    """Every location of the namespace has a device nobody declares: a Site's check makes
    the entry of its own alone. Describing every Site's at each Site's reconcile was most
    of what a drift check of a namespace spent on them (`benchmarks/operator_unmanaged.py`:
    1,000 Sites about 10 s, about 4.5 s since)."""
    sites = 30
    fleet = _fleet(stream(*[
        text for i in range(sites) for text in (_site(f"s{i}"), _device(f"s{i}-battery", f"s{i}"))
    ]))
    state = FlatpeakState(
        locations=[FlatpeakLocationState(f"loc-{i}", f"s{i}", "cus_1") for i in range(sites)],
        devices=[FlatpeakDeviceState(f"fd-{i}", f"s{i}-battery", "BATTERY_SYSTEM", (f"loc-{i}",))
                 for i in range(sites)]
        + [FlatpeakDeviceState(f"fd-by-hand-{i}", f"by-hand-{i}", "EV_CHARGER", (f"loc-{i}",))
           for i in range(sites)],
    )
    planner = FlatpeakPlanner(fleet, state, whole_fleet=fleet, audience=Audience.CLI)

    listed = planner.undeclared("s7")

    assert [e["id"] for e in listed] == ["fd-by-hand-7"]
    assert [e["id"] for e in planner.unmanaged] == ["fd-by-hand-7"], "the others' described too"
