"""PURE: Enapter sites that an earlier apply made or matched for a Site and that no declared
Site is any more (the state directory's inventory remembers them), reported as unmanaged
objects while they exist.

A Site removed from the desired state (or renamed to another site, or given another
`siteId`) leaves its Enapter site, its gateway and devices in Enapter Cloud: `--prune`
deletes devices found in a managed site, and a site no declared Site matches is managed no
more. Without this report it would be forgotten in silence, with any config file an apply
wrote for one of its devices. Reported, never deleted, as retired Novacore sites and
Flatpeak locations are (`plan.retired`, `plan.retired_locations`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.plan.enapter_observed import EnapterSiteState, EnapterState
from reconciler.plan.observed import Observed
from reconciler.plan.remembered_objects import RememberedObjects, sort_out

COMPONENT = "enapter"


def retired_enapter_sites(
    remembered: Mapping[str, str], observed: Observed, matched_ids: Iterable[str]
) -> RememberedObjects:
    """`remembered`: Enapter site id -> the Site an apply made or matched it for.
    `matched_ids`: the site ids declared Sites match in this plan (they stay managed).
    When the sites could not be listed, nothing is reported or forgotten."""
    state = observed.extra.get(COMPONENT)
    listed = (
        {site.id: site for site in state.sites}
        if isinstance(state, EnapterState) and isinstance(state.sites, list)
        else None
    )
    return sort_out(remembered, listed, matched_ids, COMPONENT, _description)


def _description(site_id: str, site: EnapterSiteState, site_name: str) -> str:
    return (
        f"Enapter site {site_id} ({site.name!r}) was applied for Site {site_name}, and no "
        "declared Site is it any more (the Site was removed, or now matches another site); "
        "it, its gateway and its devices stay in Enapter Cloud, with any config file an "
        "apply wrote for them (sites are never deleted, nor devices of a site no Site "
        "declares): delete them there, or declare the Site again"
    )
