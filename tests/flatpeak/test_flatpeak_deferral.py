"""Deferred Flatpeak changes: what was read is planned as usual and deferred; what could not
be read is not guessed at ("would create" of a device that may well be registered)."""

from __future__ import annotations

from flatpeak_world import fleet_of, home

from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.flatpeak import FlatpeakLocationState, FlatpeakState, plan_flatpeak
from reconciler.plan.observed import Observed, Unreachable

LOCATION = FlatpeakLocationState(
    "loc_1", "home", "cus_1",
    {"address_line1": "Storgatan 1", "city": "Malmö", "post_code": "211 19",
     "country_code": "SE"})


def messages(state: FlatpeakState) -> dict[str, str]:
    changes, _ = plan_flatpeak(
        fleet_of(home()), Observed(extra={"flatpeak": state}), False, None, Audience.CLI
    )
    assert all(c.action in (Action.DEFER, Action.NO_OP) for c in changes)
    return {c.address: c.message for c in changes if c.action is Action.DEFER}


def test_unreadable_devices_are_deferred_without_a_guess() -> None:
    deferred = messages(FlatpeakState([LOCATION], Unreachable("HTTP 503")))
    assert set(deferred) == {"device/home-battery[flatpeak]", "device/home-pv[flatpeak]"}
    for message in deferred.values():
        assert message == "its state is not known; deferred: Flatpeak devices: HTTP 503"


def test_what_was_read_still_says_what_it_would_do() -> None:
    deferred = messages(FlatpeakState([], Unreachable("HTTP 503")))
    assert deferred["site/home[flatpeak]"].startswith("would create; deferred: Flatpeak devices")
    assert deferred["device/home-pv[flatpeak]"].startswith("its state is not known; deferred")
