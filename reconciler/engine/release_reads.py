"""The reads a planned gateway release needs beyond a plan's own: the Novacore devices of
every site of the organisation it is released from. Novacore has no call that lists the
devices bound to a gateway (`GET /gateways` names none, and a device names its gateway
only in its site's listing), and a release orphans every one of them, so those of sites
no Site declares are read too. Only when a release is planned: a no-op plan reads no
more than the declared sites."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.engine.fanout import all_of
from reconciler.engine.gather import Gather
from reconciler.engine.retry import RetryPolicy
from reconciler.engine.session import Session
from reconciler.plan.actions import Action
from reconciler.plan.observed import Observed
from reconciler.plan.planner import Plan
from reconciler.providers.novacore import convert as novacore_convert


def releasing_orgs(plan: Plan) -> set[str]:
    """The organisations the plan releases a gateway from, waiting or not (a deferred
    release keeps its action: `plan.actions.defer`); not those of a claim or a transfer,
    which orphan nothing of ours and may be another's to read."""
    return {
        str(org)
        for change in plan.changes
        if change.kind == "Gateway"
        and change.component == "novacore"
        and (
            change.action is Action.RELEASE
            or (change.action is Action.DEFER and change.deferred_action is Action.RELEASE)
        )
        and (org := (change.before or {}).get("org_id"))
    }


async def read_org_devices(
    session: Session, observed: Observed, policy: RetryPolicy, orgs: Iterable[str]
) -> bool:
    """Read into `observed` the sites of `orgs` not listed yet and the devices of each of
    their sites not read yet; whether anything was read (the plan is made again then).
    What cannot be read is Unreachable there: the release waits. A token refused (401)
    is raised once every read ended (ProviderAuthError), as at a plan's first reads: the
    writes would be refused too, and the caller says which setting to change."""
    gather = Gather(policy)
    novacore = session.novacore
    wanted = sorted(set(orgs))
    unlisted = [org for org in wanted if org not in observed.novacore_sites]

    async def list_sites(org: str) -> None:
        observed.novacore_sites[org] = await gather.read_as(
            lambda: novacore.list_sites(org), lambda answer: novacore_convert.sites(answer, org)
        )

    await all_of(*(list_sites(org) for org in unlisted))
    unread = [
        site.id
        for org in wanted
        if isinstance(sites := observed.novacore_sites.get(org), list)
        for site in sites
        if site.id not in observed.novacore_devices
    ]

    async def read_devices(site_id: str) -> None:
        observed.novacore_devices[site_id] = await gather.read_as(
            lambda: novacore.site_devices(site_id), novacore_convert.devices
        )

    await all_of(*(read_devices(site_id) for site_id in unread))
    # A 403 (a site this identity may not see) is Unreachable like any other failure: the
    # release waits and says why, and the rest of the plan, read already, goes on.
    refused = [error for error in gather.auth_errors if error.status == 401]
    if refused:
        raise refused[0]
    return bool(unlisted or unread)
