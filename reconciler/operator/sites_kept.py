"""What a Site's deletion says of the Novacore site it was applied to
(`status.externalIds.novacore`). Sites are never deleted in Novacore: a site holds its
devices' history, and a Site has no `deletionPolicy`. The CLI's inventory remembers the
site and reports it at every plan while no declared Site is applied to it
(`plan.retired`); the operator's memory of it is the Site object's status, which goes
with the object. So, as a Gateway deleted says once which gateway stays claimed, a Site
deleted says once, by an event, that its Novacore site stays, unless another Site the
operator serves is applied to it or adopts it by its `siteId`. The site is the one the
status remembers, which a reconcile that reads the organisation's sites without it forgets
(`reconcile._external_ids`): nothing is read here, so one deleted in Novacore since the
last reconcile is still named. Pure: the handlers post."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def left_behind(going: Mapping[str, Any], staying: Iterable[Mapping[str, Any]]) -> list[str]:
    """What is said as the Site `going` is deleted of the Novacore site its status says it
    was applied to, when none of the objects `staying` (the other Sites served, not being
    deleted) is applied to it or declares it: it stays in Novacore, with its devices, and
    would no longer be reported anywhere. Nothing for another kind, or a Site that was
    never applied to a site."""
    if going.get("kind") != "Site":
        return []
    site_id = applied_novacore_site(going)
    if site_id is None or any(site_id in _sites_of(body) for body in staying):
        return []
    name = (going.get("metadata") or {}).get("name")
    org = _organisation(going)
    where = f" (in {org})" if org else ""
    return [
        f"Novacore site {site_id}{where}, applied for Site {name}, stays in Novacore with "
        "its devices (sites are never deleted), and no Site the operator serves is applied "
        "to it any more: delete it in Novacore if it is not used, or declare a Site with "
        f"novacore.siteId {site_id} to manage it again"
    ]
