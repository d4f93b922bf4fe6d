"""Read where slug-keyed Enapter devices were left: the devices of the Enapter sites a
Device's device was applied in before its Site became another Enapter site, as recorded
(`plan.enapter_left_devices`), so that the plan replaces the device (deleted there,
provisioned in the new site) instead of leaving it behind. Read after the observation
(`engine.observe`), from what it read: only where a Device's own site lacks its slug, so
a plan with nothing to do reads nothing more. The config files earlier applies wrote for
a device found are looked up too: the replace removes them once it provisioned the new
device (`plan.enapter_configs.replaced_file_note`)."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.engine import enapter_files
from reconciler.engine.enapter import enapter_api
from reconciler.engine.fanout import all_of
from reconciler.engine.gather import Gather
from reconciler.engine.retry import RetryPolicy
from reconciler.engine.session import Session
from reconciler.model.fleet import Fleet
from reconciler.plan.advice import Audience
from reconciler.plan.enapter_fields import COMPONENT
from reconciler.plan.enapter_left_devices import LastSites, devices_in, to_read
from reconciler.plan.enapter_observed import EnapterState
from reconciler.plan.observed import Observed
from reconciler.providers.enapter import convert as enapter_convert


async def observe_left_devices(
    session: Session,
    observed: Observed,
    policy: RetryPolicy,
    fleet: Fleet,
    whole: Fleet,
    last: LastSites,
    ids: Mapping[str, str],
    audience: Audience,
) -> None:
    """Read into `observed`'s Enapter state the devices of the sites of `last` (Device
    name -> the Enapter sites its device was applied in) that `to_read` names, and record
    which were looked in for which Device (`EnapterState.left_sites`), with the Enapter id
    `ids` recorded for each Device's device (`EnapterState.left_ids`). A site that cannot
    be read is Unreachable there (the plan defers the Device's change); rejected
    credentials raise once every read ended, as `engine.observe` does."""
    state = observed.extra.get(COMPONENT)
    if not isinstance(state, EnapterState) or not last:
        return
    state.left_sites = to_read(fleet, whole, state, last)
    state.left_ids = {name: ids[name] for name in state.left_sites if name in ids}
    wanted = sorted({s for sites in state.left_sites.values() for s in sites} - set(state.devices))
    if not wanted:
        return
    gather = Gather(policy)
    client = enapter_api(session)

    async def devices_of(site_id: str) -> None:
        state.devices[site_id] = await gather.read_as(
            lambda: client.site_devices(site_id), enapter_convert.devices
        )

    await all_of(*(devices_of(site_id) for site_id in wanted))
    if gather.auth_errors:
        raise gather.auth_errors[0]
    found = [device.id for device in devices_in(state, wanted)]
    if found:
        state.written_files |= enapter_files.removable(session.settings, whole, found, audience)
