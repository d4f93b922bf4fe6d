"""PURE: Novacore sites that an earlier apply made or matched for a Site, and that no Site
of the desired state is applied to any more (the state directory's inventory remembers
them), reported as unmanaged objects while they exist. A Site deleted from git, or one
moved to another organisation or `siteId`, then does not leave its old site and devices
behind without a word. They are reported, never deleted: a site holds its devices'
history, and no Site says what should become of it (`--prune` does not delete sites)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.plan.advice import Advice, Audience
from reconciler.plan.observed import NovacoreSite, Observed
from reconciler.printable import echo

# Why a site stays: no plan deletes one, the CLI's `--prune` included.
_KEPT = Advice(cli="(--prune does not delete sites)", operator="(no site is ever deleted)")


@dataclass(frozen=True)
class RetiredSite:
    """Where a Site was applied: its organisation and site id."""

    org_id: str
    site_id: str


@dataclass(frozen=True)
class LeftSite:
    """A site that the still declared Site `site` was applied to before its organisation or
    `siteId` changed, and the apply put it in another."""

    site: str
    where: RetiredSite


@dataclass
class RetiredSites:
    """What the plan found of the retired sites: those still in Novacore and managed by no
    declared Site (reported), and the rest (the inventory forgets them): gone from their
    organisation's listing, or matched by a declared Site again."""

    unmanaged: list[dict[str, Any]]
    forget: list[str]
    forget_left: list[LeftSite] = field(default_factory=list)


def retired_sites(
    retired: Mapping[str, RetiredSite],
    observed: Observed,
    matched_ids: Iterable[str],
    left: Sequence[LeftSite] = (),
    same_named: Collection[str] = (),
    *,
    audience: Audience,
) -> RetiredSites:
    """`retired`: Site name -> where it was applied, for Sites declared no more. `left`:
    sites that declared Sites left. `matched_ids`: the Novacore site ids a declared Site
    matches in this plan (a Site renamed in git, or one that took over the same site,
    keeps it managed). `same_named`: the site ids the plan reports as having the name of a
    Site that uses another site of that name (`plan.sourceful_unmanaged`), which is why a
    Site found by name left one (two state directories each made it): said there, with
    what to do, and not again here as a move of the Site; remembered still. A site whose
    organisation could not be listed is neither reported nor forgotten. `audience`: who
    reads the plan (`plan.advice`)."""
    matched = set(matched_ids)
    kept = _KEPT.to(audience)
    found = RetiredSites(unmanaged=[], forget=[])
    retirees: list[tuple[str | LeftSite, RetiredSite, str]] = [
        (name, where, f"was applied for Site {name}, which is declared no more; it and its "
         f"devices stay in Novacore {kept}: delete it there, or declare the Site again")
        for name, where in sorted(retired.items())
    ]
    retirees += [
        (former, former.where, f"was applied for Site {former.site} before the Site moved "
         f"to another site (its orgId or siteId changed); it stays in Novacore {kept}: "
         "delete it there once its devices are where they belong")
        for former in left
    ]
    for retiree, where, what in retirees:
        if where.site_id in same_named:
            continue
        listed, site = _still_unmanaged(observed, where, matched)
        if not listed:
            continue
        if site is not None:
            found.unmanaged.append(_entry(site, what))
        elif isinstance(retiree, LeftSite):
            found.forget_left.append(retiree)
        else:
            found.forget.append(retiree)
    return found


def _still_unmanaged(
    observed: Observed, where: RetiredSite, matched: set[str]
) -> tuple[bool, NovacoreSite | None]:
    """(whether its organisation was listed, the site if it is still there and matched by
    no declared Site)."""
    listed = observed.novacore_sites.get(where.org_id)
    if not isinstance(listed, list):
        return False, None
    site = next((s for s in listed if s.id == where.site_id), None)
    return True, None if site is None or site.id in matched else site


def _entry(site: NovacoreSite, what: str) -> dict[str, Any]:
    return {
        "platform": "novacore",
        "id": site.id,
        "description": f"site {site.id} ({echo(site.name)} in {site.org_id}) {what}",
        "prunable": False,
    }
