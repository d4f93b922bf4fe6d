"""What a Site's deletion says of the Novacore site it was applied to
(`status.externalIds.novacore`). Sites are never deleted in Novacore: a site holds its
devices' history, and a Site has no `deletionPolicy`. The CLI's inventory remembers the
site and reports it at every plan while no declared Site is applied to it
(`plan.retired`); the operator's memory of it is the Site object's status, which goes
with the object. So, as a Gateway deleted says once which gateway stays claimed, a Site
deleted says once, by an event, that its Novacore site stays, unless another Site the
operator serves is applied to it or adopts it by its `siteId`. The site is the one the
status remembers, which a reconcile that reads the organisation's sites without it forgets
(`reconcile._external_ids`); the deletion reads it once more (`kept_reads`), so that one
deleted in Novacore since the last reconcile is not named, and one that could not be read
is named as the last reconcile saw it, worded so. Pure: the handlers read and post."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.operator.objects import applied_novacore_site, with_last_valid_spec

# The event that says, as a Site goes, that its Novacore site stays.
KEPT_REASON = "NovacoreSiteKept"


def _declared_site(spec: Any) -> tuple[str | None, str | None]:
    """(orgId, siteId) a Site spec declares under `novacore`, each None when it does not."""
    novacore = spec.get("novacore") if isinstance(spec, Mapping) else None
    if not isinstance(novacore, Mapping):
        return None, None
    org, site = novacore.get("orgId"), novacore.get("siteId")
    return (org if isinstance(org, str) and org else None,
            site if isinstance(site, str) and site else None)


def _organisation(body: Mapping[str, Any]) -> str | None:
    """The organisation the Site declares, or declared when its spec was last valid (the
    spec may be invalid as it is deleted)."""
    org, _ = _declared_site(body.get("spec"))
    if org is None:
        last = with_last_valid_spec(body)
        org, _ = _declared_site(last["spec"]) if last is not None else (None, None)
    return org


def _sites_of(body: Mapping[str, Any]) -> set[str]:
    """The Novacore sites a Site object is applied to or declares by `siteId`."""
    if body.get("kind") != "Site":
        return set()
    _, declared = _declared_site(body.get("spec"))
    return {s for s in (applied_novacore_site(body), declared) if s}


@dataclass(frozen=True)
class KeptSite:
    """The Novacore site a Site being deleted leaves (`left_behind`)."""

    site_id: str
    site: str  # the Site object's name
    org: str | None  # the organisation it declares, where known


def left_behind(
    going: Mapping[str, Any], staying: Iterable[Mapping[str, Any]]
) -> KeptSite | None:
    """The Novacore site the Site `going` is deleted from, as its status says it was
    applied to, when none of the objects `staying` (the other Sites served, not being
    deleted) is applied to it or declares it: it stays in Novacore, with its devices, and
    would no longer be reported anywhere (`kept_message`), unless it was deleted there
    since the last reconcile (`operator.kept_reads` reads it). None for another kind, or a
    Site that was never applied to a site."""
    if going.get("kind") != "Site":
        return None
    site_id = applied_novacore_site(going)
    if site_id is None or any(site_id in _sites_of(body) for body in staying):
        return None
    name = (going.get("metadata") or {}).get("name")
    return KeptSite(site_id, str(name), _organisation(going))


def kept_message(kept: KeptSite, unread: str | None = None) -> str:
    """What is said of a site `left_behind`: read as the Site goes, that it stays; when it
    could not be read (`unread` says why), what the last reconcile saw."""
    where = f" (in {kept.org})" if kept.org else ""
    head = f"Novacore site {kept.site_id}{where}, applied for Site {kept.site},"
    rest = (
        "and no Site the operator serves is applied to it any more: delete it in Novacore "
        f"if it is not used, or declare a Site with novacore.siteId {kept.site_id} to "
        "manage it again"
    )
    if unread is None:
        return f"{head} stays in Novacore with its devices (sites are never deleted), {rest}"
    return (
        f"{head} was in Novacore when last found, and could not be read now "
        f"({unread}): unless it was deleted there since, it stays with its devices (sites "
        f"are never deleted), {rest}"
    )
