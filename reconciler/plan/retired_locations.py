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
from dataclasses import dataclass
from typing import Any

from reconciler.plan.flatpeak import COMPONENT, FlatpeakState
from reconciler.plan.observed import Observed


@dataclass
class RetiredLocations:
    """The remembered locations still in Flatpeak and matched by no declared Site
    (reported), and those gone from the listing (the inventory forgets them)."""

    unmanaged: list[dict[str, Any]]
    forget: list[str]


def retired_locations(
    remembered: Mapping[str, str], observed: Observed, matched_ids: Iterable[str]
) -> RetiredLocations:
    """`remembered`: location id -> the Site an apply made or matched it for. `matched_ids`:
    the location ids declared Sites match in this plan (they stay managed). When the
    locations could not be listed, nothing is reported or forgotten."""
    found = RetiredLocations(unmanaged=[], forget=[])
    state = observed.extra.get(COMPONENT)
    if not isinstance(state, FlatpeakState) or not isinstance(state.locations, list):
        return found
    listed = {location.id: location for location in state.locations}
    matched = set(matched_ids)
    for location_id, site in sorted(remembered.items()):
        location = listed.get(location_id)
        if location is None:
            found.forget.append(location_id)
        elif location_id not in matched:
            found.unmanaged.append(
                {
                    "platform": "flatpeak",
                    "id": location_id,
                    "description": f"Flatpeak location {location_id} (reference id "
                    f"{location.reference_id!r}) was applied for Site {site}, and no declared "
                    "Site's location is it any more (the Site was renamed or removed, or its "
                    "locationId changed); it and any device on it stay in Flatpeak (locations "
                    "are never deleted): delete it there, or declare it again",
                    "prunable": False,
                }
            )
    return found
