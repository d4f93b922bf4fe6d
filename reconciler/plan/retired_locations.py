"""PURE: Flatpeak locations that an earlier apply made or matched for a Site and that no
declared Site's location is any more (the state directory's inventory remembers them),
reported as unmanaged objects while they exist.

A location is found by its reference id, the Site's resource name, so a Site renamed in
git gets a new location, and one removed (or given another `locationId`) leaves its own.
Flatpeak has no mark of who made a location, and the account may hold other systems'
locations, so the listing alone cannot tell ours; what an apply made or matched can,
as it does for retired Novacore sites (`plan.retired`). They are reported, never deleted:
the planner deletes no location (`plan.flatpeak`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.plan.flatpeak import COMPONENT, FlatpeakLocationState, FlatpeakState
from reconciler.plan.observed import Observed
from reconciler.plan.remembered_objects import RememberedObjects, sort_out


def retired_locations(
    remembered: Mapping[str, str], observed: Observed, matched_ids: Iterable[str]
) -> RememberedObjects:
    """`remembered`: location id -> the Site an apply made or matched it for. `matched_ids`:
    the location ids declared Sites match in this plan (they stay managed). When the
    locations could not be listed, nothing is reported or forgotten."""
    state = observed.extra.get(COMPONENT)
    listed = (
        {location.id: location for location in state.locations}
        if isinstance(state, FlatpeakState) and isinstance(state.locations, list)
        else None
    )
    return sort_out(remembered, listed, matched_ids, "flatpeak", _description)


def _description(location_id: str, location: FlatpeakLocationState, site: str) -> str:
    return (
        f"Flatpeak location {location_id} (reference id {location.reference_id!r}) was "
        f"applied for Site {site}, and no declared Site's location is it any more (the Site "
        "was renamed or removed, or its locationId changed); it and any device on it stay "
        "in Flatpeak (locations are never deleted): delete it there, or declare it again"
    )
