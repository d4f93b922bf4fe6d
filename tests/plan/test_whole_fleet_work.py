"""Work over the whole declared fleet that a plan does only where it has something to find:
a fleet of 1,000 sites has 10,000 Devices, and every pass over them at every plan costs
a no-op plan tens of milliseconds of CPU. Pure: the planners on a loaded fleet whose
Devices count how often they are gone through."""

from __future__ import annotations

from typing import Any

from fleet_yaml import ferroamp_battery, novacore_site, stream, zap_gateway

from reconciler.model.fleet import Fleet
from reconciler.plan.advice import Audience
from reconciler.plan.flatpeak import plan_flatpeak
from reconciler.plan.observed import Observed
from reconciler.sources.loader import load_texts


class _Counted(dict[str, Any]):
    """A fleet's Devices that count how often they are gone through."""

    passes = 0

    def values(self) -> Any:
        _Counted.passes += 1
        return super().values()

    def items(self) -> Any:
        _Counted.passes += 1
        return super().items()

    def __iter__(self) -> Any:
        _Counted.passes += 1
        return super().__iter__()


def _zap_fleet() -> Fleet:
    loaded = load_texts([("fleet.yaml", stream(
        novacore_site(), zap_gateway(), ferroamp_battery()))])
    assert loaded.ok, loaded.diagnostics
    return loaded.fleet()


def test_the_flatpeak_planner_goes_through_no_device_of_a_fleet_without_flatpeak_sites() -> None:
    fleet = _zap_fleet()
    fleet.devices = _Counted(fleet.devices)
    _Counted.passes = 0
    changes, unmanaged = plan_flatpeak(fleet, Observed(), False, None, Audience.CLI)
    assert (changes, unmanaged) == ([], [])
    assert _Counted.passes == 0
