"""`status.unmanaged` says nothing of the CLI's `--prune`, which the operator does not have:
the entries the Enapter and Flatpeak planners make for a Site, whose descriptions say what
`--prune` would do, are listed without it. Pure: the planners run on observed states as the
engine records them, and `unmanaged.found` builds the Site's entries from their output as
the operator's reconcile does."""

from __future__ import annotations

from typing import Any

from fleet_yaml import document, enapter_site

from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.operator import unmanaged
from reconciler.plan.advice import Audience
from reconciler.plan.enapter import EnapterPlanner
from reconciler.plan.enapter_fields import COMPONENT as ENAPTER
from reconciler.plan.enapter_observed import EnapterSiteState, EnapterState, InterruptedDelete
from reconciler.plan.flatpeak import COMPONENT as FLATPEAK
from reconciler.plan.flatpeak import (
    FlatpeakDeviceState,
    FlatpeakLocationState,
    FlatpeakPlanner,
    FlatpeakState,
)
from reconciler.plan.observed import Observed
from reconciler.sources.loader import load_texts


def _fleet(text: str) -> Fleet:
    loaded = load_texts([("fleet.yaml", text)])
    assert loaded.ok, loaded.diagnostics
    return loaded.fleet()


def _site_entries(fleet: Fleet, name: str, observed: Observed) -> list[dict[str, str]]:
    site = fleet.sites[name]
    assert isinstance(site, Site)
    listed = unmanaged.found(site, fleet, [], observed, [], {})
    assert listed is not None, "what the Site reports was taken for unread"
    return listed


def _one_description(found: list[dict[str, Any]]) -> str:
    [entry] = found
    return str(entry["description"])


def test_an_interrupted_enapter_delete_is_listed_without_the_prune_advice() -> None:
    fleet = _fleet(enapter_site())
    state = EnapterState(
        sites=[EnapterSiteState("s1", "H2 Lab", "Europe/Rome")],
        devices={"s1": []},
        # As the engine records it: the device deleted by an apply of h2-lab that stopped
        # before it removed the config file written for it.
        interrupted_deletes={"dev-gone": InterruptedDelete("h2-lab", ["/state/cfg/ucm.json"])},
    )
    _, cli = EnapterPlanner(fleet, state, whole_fleet=fleet, audience=Audience.CLI).plan()
    said = _one_description(cli)
    assert said.endswith(" (--prune removes it)"), said  # the CLI's, with its advice

    listed = _site_entries(fleet, "h2-lab", Observed(extra={ENAPTER: state}))
    assert listed == [{"platform": "enapter", "id": "dev-gone",
                       "description": said.removesuffix(" (--prune removes it)")}]
    assert "--prune" not in listed[0]["description"]
    assert listed[0]["description"].endswith("/state/cfg/ucm.json, the config file written for it")


def test_a_flatpeak_device_on_other_fleets_locations_is_listed_without_the_prune_reason() -> None:
    address = '{line1: Storgatan 1, city: Malmö, postCode: "211 19", countryCode: SE}'
    fleet = _fleet(document("Site", "home", f"""
        displayName: Home
        timezone: Europe/Stockholm
        location: {{latitude: 55.61, longitude: 12.97, address: {address}}}
        flatpeak: {{customerId: cus_1}}
        """))
    state = FlatpeakState(
        locations=[FlatpeakLocationState("loc-home", "home", "cus_1"),
                   FlatpeakLocationState("loc-cabin", "cabin", "cus_2")],
        # Added by hand, on this Site's location and one no Site of the fleet is.
        devices=[FlatpeakDeviceState("fd-1", "spare-heater", "HEAT_PUMP",
                                     ("loc-home", "loc-cabin"))],
    )
    _, cli = FlatpeakPlanner(fleet, state, whole_fleet=fleet, audience=Audience.CLI).plan()
    said = _one_description(cli)
    assert said.endswith(", so --prune leaves it"), said

    listed = _site_entries(fleet, "home", Observed(extra={FLATPEAK: state}))
    assert [e["description"] for e in listed] == [said.removesuffix(", so --prune leaves it")]
    assert listed[0]["description"].endswith("locations this fleet does not manage (loc-cabin)")
