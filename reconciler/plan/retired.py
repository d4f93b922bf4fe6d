"""PURE: Novacore sites that an earlier apply made or matched for a Site the desired state
declares no more (the state directory's inventory remembers them), reported as unmanaged
objects while they exist, so a Site deleted from git does not leave its site and devices
behind without a word. They are reported, never deleted: a site holds its devices'
history, and no Site says what should become of it (`--prune` does not delete sites)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.plan.observed import NovacoreSite, Observed


@dataclass(frozen=True)
class RetiredSite:
    """Where a Site no longer declared was applied: its organisation and site id."""

    org_id: str
    site_id: str


@dataclass
class RetiredSites:
    """What the plan found of the retired sites: those still in Novacore and managed by no
    declared Site (reported), and the rest (the inventory forgets them): gone from their
    organisation's listing, or matched by a declared Site again."""

    unmanaged: list[dict[str, Any]]
    forget: list[str]


def retired_sites(
    retired: Mapping[str, RetiredSite], observed: Observed, matched_ids: Iterable[str]
) -> RetiredSites:
    """`retired`: Site name -> where it was applied. `matched_ids`: the Novacore site ids a
    declared Site matches in this plan (a Site renamed in git, or one that took over the
    same site, keeps it managed). A site whose organisation could not be listed is neither
    reported nor forgotten."""
    matched = set(matched_ids)
    found = RetiredSites(unmanaged=[], forget=[])
    for name, where in sorted(retired.items()):
        listed = observed.novacore_sites.get(where.org_id)
        if not isinstance(listed, list):
            continue
        site = _by_id(listed, where.site_id)
        if site is None or site.id in matched:
            found.forget.append(name)
        else:
            found.unmanaged.append(_entry(name, site))
    return found


def _by_id(sites: list[NovacoreSite], site_id: str) -> NovacoreSite | None:
    return next((s for s in sites if s.id == site_id), None)


def _entry(name: str, site: NovacoreSite) -> dict[str, Any]:
    return {
        "platform": "novacore",
        "id": site.id,
        "description": (
            f"site {site.id} ({site.name!r} in {site.org_id}) was applied for Site {name}, "
            "which is declared no more; it and its devices stay in Novacore (--prune does "
            "not delete sites): delete it there, or declare the Site again"
        ),
    }
