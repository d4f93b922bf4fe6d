"""What a Device's status remembers of the Flatpeak locations its Site had
(`status.flatpeakLocations`): the memory the CLI keeps in the state directory's inventory
of the locations its applies made or matched (`FlatpeakState.remembered`). A Site renamed
gets a new location (found by the Site's name), and one given another `locationId` moves
to it; its devices then leave the old one, which the fleet made or matched, and keep the
locations no Site of the fleet had (another system's). A renamed Site is a new object, so
the memory is kept by the Devices, which live on; every Device's counts for the whole
namespace, as the inventory does for the whole fleet. Pure: `reconcile.py` plans and
records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from reconciler.model.status import FlatpeakLocation

# The status field (`model.status.ResourceStatus.flatpeak_locations`).
LOCATIONS = "flatpeakLocations"
# How many a Device keeps: a location gone from the account is forgotten anyway, and a
# Site renamed again and again should not grow the status without end.
LIMIT = 10


def recorded(status: Mapping[str, Any] | None) -> list[FlatpeakLocation]:
    """The locations a status records; an entry that does not parse is skipped (it names
    nothing a device could be moved off safely)."""
    entries = (status or {}).get(LOCATIONS)
    found: list[FlatpeakLocation] = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            found.append(FlatpeakLocation.model_validate(entry))
        except ValidationError:
            continue
    return found


def remembered(entries: Iterable[FlatpeakLocation]) -> dict[str, str]:
    """Location id -> the Site it was the location of (`PlanOptions.flatpeak_locations`);
    of two Devices naming one location, the first."""
    out: dict[str, str] = {}
    for entry in entries:
        out.setdefault(entry.id, entry.site)
    return out


def current(
    recorded: Iterable[FlatpeakLocation],
    found: Mapping[str, str],
    forget: Iterable[str],
) -> list[FlatpeakLocation]:
    """A Device's `status.flatpeakLocations` after a plan: those recorded, less the ones
    gone from the account (`forget`, `Plan.forget_locations`), then its Site's location
    as `found` (Site name -> location id) by this plan, last; the latest `LIMIT`."""
    gone = set(forget)
    now = [FlatpeakLocation(id=location_id, site=site) for site, location_id in found.items()]
    fresh = {entry.id for entry in now}
    kept = [e for e in recorded if e.id not in gone and e.id not in fresh]
    return (kept + now)[-LIMIT:]
