"""PURE: what a plan makes of the objects the state directory's inventory remembers an apply
made or matched for a Site, on a platform whose listing alone cannot tell ours (Flatpeak
locations, Enapter sites): one gone from the listing is forgotten, and one still listed
that no declared Site matches any more is reported as unmanaged, saying what to do, never
deleted (`plan.retired_locations`, `plan.retired_enapter_sites`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

Listed = TypeVar("Listed")


@dataclass
class RememberedObjects:
    """The remembered objects still listed and matched by no declared Site (reported), and
    those gone from the listing (the inventory forgets them)."""

    unmanaged: list[dict[str, Any]] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)


def sort_out(
    remembered: Mapping[str, str],
    listed: Mapping[str, Listed] | None,
    matched_ids: Iterable[str],
    platform: str,
    describe: Callable[[str, Listed, str], str],
) -> RememberedObjects:
    """`remembered`: object id -> the Site an apply made or matched it for; `listed`: the
    platform's objects by id, None when they could not be listed (then nothing is reported
    or forgotten); `matched_ids`: the ids declared Sites match in this plan (they stay
    managed); `describe(id, object, Site)`: the unmanaged entry's description."""
    found = RememberedObjects()
    if listed is None:
        return found
    matched = set(matched_ids)
    for object_id, site in sorted(remembered.items()):
        listed_object = listed.get(object_id)
        if listed_object is None:
            found.forget.append(object_id)
        elif object_id not in matched:
            found.unmanaged.append({
                "platform": platform,
                "id": object_id,
                "description": describe(object_id, listed_object, site),
                "prunable": False,
            })
    return found
