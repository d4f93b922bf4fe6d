"""Enapter devices read by id, where no declared Site says in which Enapter site to look:
the device a Device's status recorded (`status.externalIds.enapter`) once its Site object
is gone (a namespace's deletion removes its objects in no order), the devices of the
Enapter site its status recorded its device in (`status.externalIds.enapterSite`) when its
id was not, and the device a config Secret was written for (`operator.left_secrets`),
which may be in another site than the Device's Site's now (its `siteRef` changed, its
Enapter device not moved).

A device found is read with the devices of its site, so that the plan sees what runs on
it, as it does where the Site is declared. Enapter's 404 for a device is taken for "not
there" only once the site listing, which every token has, answered at the same URL: a
404 for that listing says the URL is not the API's, and then nothing is taken for gone.
What could not be read is `Unreachable`, never gone."""

from __future__ import annotations

from collections.abc import Collection

from reconciler.engine.enapter import URL_SETTING, enapter_api
from reconciler.engine.gather import Gather
from reconciler.engine.retry import RetryPolicy
from reconciler.engine.session import Session
from reconciler.errors import ProviderAuthError
from reconciler.plan.enapter_fields import COMPONENT
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterSiteState, EnapterState
from reconciler.plan.observed import Observed, Unreachable
from reconciler.providers.enapter import convert as enapter_convert

Read = EnapterDeviceState | Unreachable | None


async def observe_by_id(
    session: Session, observed: Observed, policy: RetryPolicy, device_ids: Collection[str]
) -> None:
    """Read into `observed` (`EnapterState.by_id`) each of `device_ids`, and the devices of
    the site of each found. Raises the first credentials refused (ProviderAuthError), once
    every read ended, as `engine.observe` does."""
    gather = Gather(policy)
    state = await _state(session, gather, observed)
    for device_id in device_ids:
        state.by_id[device_id] = await _device(session, gather, state.sites, device_id)
    found = {d.site_id for d in state.by_id.values() if isinstance(d, EnapterDeviceState)}
    for site_id in sorted(found - set(state.devices)):
        state.devices[site_id] = await _site_devices(session, gather, site_id)
    if gather.auth_errors:
        raise gather.auth_errors[0]


async def observe_site(
    session: Session, observed: Observed, policy: RetryPolicy, site_id: str
) -> None:
    """Read into `observed` (`EnapterState.devices`) the devices of Enapter site `site_id`,
    the one a Device's status recorded its device in (`status.externalIds.enapterSite`),
    with the listing of sites: a site the listing holds no more was deleted, with its
    devices, and its devices are not asked for. Raises the credentials refused
    (ProviderAuthError), as `observe_by_id`."""
    gather = Gather(policy)
    state = await _state(session, gather, observed)
    listed = isinstance(state.sites, list) and any(s.id == site_id for s in state.sites)
    if listed and site_id not in state.devices:
        state.devices[site_id] = await _site_devices(session, gather, site_id)
    if gather.auth_errors:
        raise gather.auth_errors[0]


async def read_by_id(session: Session, policy: RetryPolicy, device_id: str) -> Read:
    """Enapter device `device_id` as read, None when Enapter says it is not there, or
    Unreachable. Raises the credentials refused (ProviderAuthError)."""
    gather = Gather(policy)
    read = await _device(session, gather, await _sites(session, gather), device_id)
    if gather.auth_errors:
        raise gather.auth_errors[0]
    return read


async def _state(session: Session, gather: Gather, observed: Observed) -> EnapterState:
    """`observed`'s Enapter state, made with the listing of sites on its first read."""
    state = observed.extra.get(COMPONENT)
    if not isinstance(state, EnapterState):
        state = EnapterState(sites=await _sites(session, gather))
        observed.extra[COMPONENT] = state
    return state


async def _site_devices(
    session: Session, gather: Gather, site_id: str
) -> list[EnapterDeviceState] | Unreachable:
    client = enapter_api(session)
    return await gather.read_as(lambda: client.site_devices(site_id), enapter_convert.devices)


async def _sites(session: Session, gather: Gather) -> list[EnapterSiteState] | Unreachable:
    if not session.settings.enapter_token:
        error = ProviderAuthError(
            "an Enapter device is to be read but RECONCILER_ENAPTER_TOKEN is not set",
            operation="enapter.list_sites",
        )
        gather.auth_errors.append(error)
        return Unreachable(str(error))
    client = enapter_api(session)
    return await gather.read_as(client.list_sites, enapter_convert.sites, listing=URL_SETTING)


async def _device(
    session: Session, gather: Gather, sites: list[EnapterSiteState] | Unreachable,
    device_id: str,
) -> Read:
    if isinstance(sites, Unreachable):
        # Its 404 could be the URL's, not the device's: nothing is taken for gone.
        return sites
    client = enapter_api(session)
    answer = await gather.read(lambda: client.device(device_id))
    if answer is None or isinstance(answer, Unreachable):
        return answer
    converted = enapter_convert.devices([answer])
    if not converted:
        return Unreachable(f"Enapter device {device_id}: the answer holds no device id")
    return converted[0]
