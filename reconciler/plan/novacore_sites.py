"""Which Novacore site a Site is: the one it declares by id or name (`match_site`, over a
`SiteIndex`), else the one an earlier apply put it in (`applied_site`), else the unclaimed one
it was renamed from, recognised by the hardware ids of its devices (`find_renamed`,
`unclaimed_sites`, `rename_search_ids`); and the other sites of the name a Site is found by,
which it does not use (`same_named`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.plan import renames
from reconciler.plan.observed import NovacoreDevice, NovacoreSite, Unreachable
from reconciler.plan.renames import Rename
from reconciler.plan.retired import RetiredSite


class SiteIndex:
    """The sites of one organisation by id and by name (the first of a name wins), so that
    matching a thousand Sites against a thousand Novacore sites stays linear. `others`:
    name -> the sites of that name after the first, for the names more than one site has
    (Novacore does not keep names unique)."""

    def __init__(self, candidates: list[NovacoreSite]) -> None:
        self.by_id = {c.id: c for c in candidates}
        self.by_name: dict[str, NovacoreSite] = {}
        self.others: dict[str, list[NovacoreSite]] = {}
        for candidate in candidates:
            first = self.by_name.setdefault(candidate.name, candidate)
            if first is not candidate:
                self.others.setdefault(candidate.name, []).append(candidate)


def match_site(site: Site, candidates: list[NovacoreSite] | SiteIndex) -> NovacoreSite | None:
    """The Novacore site a Site declares: by `siteId` when given, else by display name."""
    novacore = site.spec.novacore
    assert novacore is not None
    index = candidates if isinstance(candidates, SiteIndex) else SiteIndex(candidates)
    if novacore.site_id is not None:
        return index.by_id.get(novacore.site_id)
    return index.by_name.get(site.spec.display_name)


def same_named(site: Site, index: SiteIndex) -> list[NovacoreSite]:
    """The sites of the organisation that have the display name a Site is found by (no
    `siteId`), other than the one it matches: the first of the name is used, and these are
    what two applies from different state directories (or a person) made again."""
    novacore = site.spec.novacore
    assert novacore is not None
    if novacore.site_id is not None:
        return []
    return list(index.others.get(site.spec.display_name, ()))


def applied_site(
    fleet: Fleet,
    site: Site,
    index: SiteIndex,
    applied: Mapping[str, RetiredSite],
    unclaimed: Callable[[], Sequence[NovacoreSite]],
) -> NovacoreSite | None:
    """The Novacore site a Site is applied to: the one it declares (`match_site`), else,
    for a Site found by name, the one an earlier apply put it in (`applied`, the state
    directory's inventory) while that is in the Site's organisation and no declared Site
    claims it (`unclaimed`, called only then): the Site was renamed in git. Without it an
    empty site renamed would be created again, there being no devices to recognise it by."""
    match = match_site(site, index)
    novacore = site.spec.novacore
    assert novacore is not None
    where = applied.get(site.name)
    if match is not None or novacore.site_id is not None or where is None:
        return match
    if where.org_id != novacore.org_id or where.site_id not in index.by_id:
        return None
    return next((c for c in unclaimed() if c.id == where.site_id), None)


def site_hardware_ids(fleet: Fleet, site: Site) -> set[str]:
    """Hardware ids of the devices a Site provisions in Novacore (those behind its gateways)."""
    return {
        device.spec.hardware_id
        for gateway in fleet.gateways_of(site.name)
        for device in fleet.devices_of(gateway.name)
        if device.spec.hardware_id
    }


def unclaimed_sites(fleet: Fleet, org: str, index: SiteIndex) -> list[NovacoreSite]:
    """Sites of the organisation that no declared Site matches: where a Site renamed in git
    (no `siteId`, so matched by name) still is under its old name."""
    claimed = {
        match.id
        for site in fleet.sites.values()
        if site.spec.novacore is not None and site.spec.novacore.org_id == org
        for match in (match_site(site, index),)
        if match is not None
    }
    return [c for c in index.by_id.values() if c.id not in claimed]


def needs_rename_search(fleet: Fleet, site: Site) -> bool:
    """Whether to look for the Novacore site this Site was renamed from, when no site has
    its name: it is found by name (no `siteId`) and has devices to recognise it by."""
    return bool(rename_search_ids(fleet, site))


def rename_search_ids(fleet: Fleet, site: Site) -> set[str]:
    """The hardware ids that recognise the Novacore site this Site was renamed from, where
    it is to be looked for (`needs_rename_search`); else none."""
    novacore = site.spec.novacore
    if novacore is None or novacore.site_id is not None:
        return set()
    return site_hardware_ids(fleet, site)


def find_renamed(
    fleet: Fleet,
    site: Site,
    candidates: list[NovacoreSite],
    devices: dict[str, list[NovacoreDevice] | Unreachable],
    declared: set[str] | None = None,
) -> Rename[NovacoreSite]:
    """The unclaimed Novacore site that is this Site renamed (see `plan.renames`): one whose
    devices all have hardware ids the Site declares (`declared`, when the caller has them)."""
    if declared is None:
        declared = site_hardware_ids(fleet, site)
    return renames.find_renamed(candidates, devices, lambda d: d.hardware_id in declared)
