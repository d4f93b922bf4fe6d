"""Observation: read the actual state of a fleet in as few calls as the APIs allow, all
concurrently. Per organisation: its sites and its gateways; per Novacore site: its
devices; per Zap: its devices. No per-device calls, except reading the serial of a device
that is about to be added and asks for an identity check. Nothing here writes.

A source that cannot be read becomes `Unreachable` (the planner defers what depends on
it); rejected credentials stop the run instead, since retrying cannot fix them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from reconciler.engine.retry import RetryPolicy, retrying
from reconciler.engine.session import Session
from reconciler.errors import ProviderAuthError, ProviderError
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan.observed import IdentityReading, Observed, Unreachable, ZapState
from reconciler.plan.sourceful import SiteIndex, match_site
from reconciler.providers.modbus import identity
from reconciler.providers.novacore import convert as novacore_convert
from reconciler.providers.zap import convert as zap_convert

T = TypeVar("T")
Observer = Callable[[Fleet, Session, Observed, RetryPolicy], Awaitable[None]]

# Other platforms add their observers here (called after the Sourceful ones).
EXTRA_OBSERVERS: list[Observer] = []


def novacore_orgs(fleet: Fleet) -> set[str]:
    orgs = {s.spec.novacore.org_id for s in fleet.sites.values() if s.spec.novacore}
    orgs |= {g.spec.zap.org_id for g in fleet.gateways.values() if g.spec.zap and g.spec.zap.org_id}
    return orgs


class _Gather:
    """Runs reads concurrently; records auth failures to raise after all finished."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.auth_errors: list[ProviderAuthError] = []

    async def read(self, call: Callable[[], Awaitable[T]]) -> T | Unreachable:
        try:
            return await retrying(call, self.policy)
        except ProviderAuthError as exc:
            self.auth_errors.append(exc)
            return Unreachable(str(exc))
        except ProviderError as exc:
            return Unreachable(str(exc))


async def observe(fleet: Fleet, session: Session, policy: RetryPolicy | None = None) -> Observed:
    policy = policy or RetryPolicy(attempts=3)
    gather = _Gather(policy)
    observed = Observed()
    orgs = sorted(novacore_orgs(fleet))
    zap_gateways = [g for g in fleet.gateways.values() if g.spec.zap is not None]
    novacore = session.novacore if orgs else None
    sites_of_org: dict[str, list[Site]] = {}
    for site in fleet.sites.values():
        if site.spec.novacore is not None:
            sites_of_org.setdefault(site.spec.novacore.org_id, []).append(site)

    # Every read starts as soon as what it needs is known (a site's devices once its
    # organisation's sites are listed; a serial once its Zap answered), so the calls in
    # flight never drain between two rounds of reads: with 1,000 sites that wait was a
    # third of a no-op plan's wall time.
    async def org_sites(org: str) -> None:
        assert novacore is not None
        result = await gather.read(lambda: novacore.list_sites(org))
        if isinstance(result, Unreachable):
            observed.novacore_sites[org] = result
            return
        sites = observed.novacore_sites[org] = novacore_convert.sites(result, org)
        index = SiteIndex(sites)
        matches = (match_site(site, index) for site in sites_of_org.get(org, []))
        await asyncio.gather(*(site_devices(match.id) for match in matches if match is not None))

    async def site_devices(site_id: str) -> None:
        assert novacore is not None
        result = await gather.read(lambda: novacore.site_devices(site_id))
        observed.novacore_devices[site_id] = (
            result if isinstance(result, Unreachable) else novacore_convert.devices(result)
        )

    async def org_gateways(org: str) -> None:
        assert novacore is not None
        result = await gather.read(lambda: novacore.list_gateways(org))
        observed.novacore_gateways[org] = (
            result if isinstance(result, Unreachable) else novacore_convert.gateway_serials(result)
        )

    async def zap_devices(gateway: Gateway) -> None:
        client = session.zap(gateway)
        result = await gather.read(client.devices)
        if isinstance(result, Unreachable):
            observed.zaps[gateway.name] = result
            return
        state = observed.zaps[gateway.name] = zap_convert.zap_state(result)
        await asyncio.gather(
            *(
                _read_identity(fleet, session, device, observed, gather)
                for device in _devices_to_verify(fleet, gateway, state)
            )
        )

    await asyncio.gather(
        *(org_sites(o) for o in orgs),
        *(org_gateways(o) for o in orgs),
        *(zap_devices(g) for g in zap_gateways),
    )
    for extra in EXTRA_OBSERVERS:
        await extra(fleet, session, observed, policy)
    if gather.auth_errors:
        raise gather.auth_errors[0]
    return observed


def _devices_to_verify(fleet: Fleet, gateway: Gateway, state: ZapState) -> list[Device]:
    """Devices of the gateway with `checkSerial` that are not on its Zap yet."""
    return [
        device
        for device in fleet.devices_of(gateway.name)
        if device.spec.verification.check_serial and device.spec.hardware_id not in state.devices
    ]


def register_reader(session: Session, fleet: Fleet, device: Device) -> identity.RegisterReader:
    """How to read the device's registers: through its gateway or directly."""
    connection = device.spec.connection
    assert connection is not None and connection.modbus_tcp is not None
    tcp = connection.modbus_tcp
    if device.spec.verification.via == "direct":
        return identity.direct_reader(
            tcp.host, tcp.port, tcp.unit_id, timeout=min(5.0, session.settings.timeout)
        )
    gateway = fleet.gateways[device.spec.gateway_ref or ""]
    return identity.gateway_reader(
        session.zap(gateway).modbus_read, tcp.host, tcp.port, tcp.unit_id
    )


async def read_device_serial(session: Session, fleet: Fleet, device: Device) -> str:
    connection = device.spec.connection
    assert connection is not None
    return await identity.read_serial(
        connection.settings.profile, register_reader(session, fleet, device)
    )


async def _read_identity(
    fleet: Fleet, session: Session, device: Device, observed: Observed, gather: _Gather
) -> None:
    connection = device.spec.connection
    if connection is None or connection.modbus_tcp is None:
        observed.identities[device.name] = IdentityReading(
            None, "only Modbus TCP devices can be checked before they are added"
        )
        return
    result = await gather.read(lambda: read_device_serial(session, fleet, device))
    observed.identities[device.name] = (
        IdentityReading(None, result.reason)
        if isinstance(result, Unreachable)
        else IdentityReading(result)
    )
