"""Observation: read the actual state of a fleet in as few calls as the APIs allow, every
site concurrently. Per organisation: its sites and its gateways; per Novacore site: its
devices; per Zap: its devices. No per-device calls, except reading the serial of a device
that is about to be added and asks for an identity check. Nothing here writes.

A source that cannot be read becomes `Unreachable` (the planner defers what depends on
it), and so does one that answers in a shape no documentation gives (the error it raised,
type and message, is the reason): the other sites are read and planned as ever, as an
apply fails only the change whose answer it was (`engine.apply`). Rejected credentials
stop the run instead, since retrying cannot fix them. A declared organisation the token
may not read (403 or 404 for its sites or gateways) becomes `NoAccess`: the token is good,
only the sites of that organisation cannot be planned (the planner blocks them, and the
rest of the fleet goes on).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from reconciler.engine.fanout import all_of
from reconciler.engine.gather import Gather
from reconciler.engine.retry import READ_ATTEMPTS, RetryPolicy
from reconciler.engine.session import Session
from reconciler.errors import ProviderAuthError
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan import moves, renames
from reconciler.plan.advice import Audience
from reconciler.plan.novacore_sites import (
    SiteIndex,
    applied_site,
    needs_rename_search,
    same_named,
    site_hardware_ids,
    unclaimed_sites,
)
from reconciler.plan.observed import (
    IdentityReading,
    NovacoreDevice,
    NovacoreSite,
    Observed,
    Unreachable,
    ZapState,
)
from reconciler.plan.retired import RetiredSite
from reconciler.plan.retired_gateways import is_claimed_where_remembered
from reconciler.plan.zap_settings import is_added_to_zap
from reconciler.providers.modbus import identity
from reconciler.providers.novacore import convert as novacore_convert
from reconciler.providers.novacore.client import NovacoreClient
from reconciler.providers.zap import convert as zap_convert

A = TypeVar("A")  # an API's answer
R = TypeVar("R")  # the record made of it
# (fleet, session, observed, policy, whole fleet, audience): see `observe`.
Observer = Callable[[Fleet, Session, Observed, RetryPolicy, Fleet, Audience], Awaitable[None]]

# Other platforms add their observers here (called after the Sourceful ones).
EXTRA_OBSERVERS: list[Observer] = []


def novacore_orgs(fleet: Fleet) -> set[str]:
    orgs = {s.spec.novacore.org_id for s in fleet.sites.values() if s.spec.novacore}
    orgs |= {g.spec.zap.org_id for g in fleet.gateways.values() if g.spec.zap and g.spec.zap.org_id}
    return orgs


SiteObserved = Callable[[str], None]


async def observe(
    fleet: Fleet,
    session: Session,
    policy: RetryPolicy | None = None,
    *,
    audience: Audience,
    into: Observed | None = None,
    on_site: SiteObserved | None = None,
    whole_fleet: Fleet | None = None,
    release_orgs: Iterable[str] = (),
    site_orgs: Iterable[str] = (),
    applied_sites: Mapping[str, RetiredSite] | None = None,
    lookup_sites: Iterable[str] = (),
    removed_fields: Mapping[str, Sequence[str]] | None = None,
    retired_gateways: Iterable[Gateway | None] = (),
) -> Observed:
    """Read the fleet's actual state (into `into`, or a new `Observed`). `on_site(name)` is
    called for each site once everything planning it needs is read, while other reads
    may still be in flight (see `plan.planner.PlanBuilder`). `whole_fleet` is the declared
    fleet `fleet` is part of (`plan.planner.PlanOptions.whole_fleet`). The gateways of
    `release_orgs` are listed too, declared or not (`state.Inventory.release_orgs`), and
    the sites of `site_orgs` (where Sites declared no more were applied: `plan.retired`).
    `applied_sites`: where earlier applies put declared Sites (a Site renamed in git keeps
    its site: `plan.novacore_sites.applied_site`). The Novacore devices of `lookup_sites`, Sites
    of `whole_fleet` that `fleet` does not hold, are read too (`PlanOptions.lookup_sites`).
    `removed_fields`: address -> the fields a resource declared at the last apply and not
    now (`plan.planner.PlanBuilder.removed`): a Zap connection setting among them adds the
    device again, so its serial is read, as for any other replace. `retired_gateways`:
    gateways declared no more whose release the plan may make (`plan.retired_gateways`):
    the Zap of each still claimed where it was is read once the gateways are listed.
    `audience`: who what the state directory holds is said to, read by an observer of
    `EXTRA_OBSERVERS` (`plan.advice`), when it cannot be read."""
    policy = policy or RetryPolicy(attempts=READ_ATTEMPTS)
    observed = into if into is not None else Observed()
    whole = whole_fleet or fleet
    lookup = [
        whole.sites[name]
        for name in dict.fromkeys(lookup_sites)
        if name in whole.sites and name not in fleet.sites and whole.sites[name].spec.novacore
    ]
    reads = _SourcefulReads(
        fleet, session, Gather(policy), observed, whole, set(release_orgs), set(site_orgs),
        applied_sites or {}, lookup, removed_fields or {},
        [g for g in retired_gateways if g is not None],
    )
    if reads.novacore is not None and not session.settings.novacore_token:
        # Sent without one, every call is refused with a 401, which reads as a token
        # expired or wrong: say what is missing instead, before anything is read.
        raise ProviderAuthError(
            "the fleet names Novacore organisations (or the state directory remembers ones "
            "applied there) but no Novacore token is set: set RECONCILER_NOVACORE_TOKEN or "
            "RECONCILER_NOVACORE_TOKEN_FILE",
            operation="novacore.list_sites",
        )
    await reads.run(on_site)
    for extra in EXTRA_OBSERVERS:
        await extra(fleet, session, observed, policy, whole, audience)
    if reads.gather.auth_errors:
        raise reads.gather.auth_errors[0]
    return observed


class _SourcefulReads:
    """The reads of Novacore and the Zaps for one observation.

    Every read starts as soon as what it needs is known (a site's devices once its
    organisation's sites are listed; a serial once its Zap answered), so the calls in
    flight never drain between two rounds of reads: with 1,000 sites that wait was a third
    of a no-op plan's wall time. For the same reason each site is reported done as soon
    as its own reads are, so it can be planned while the others are still read."""

    def __init__(
        self,
        fleet: Fleet,
        session: Session,
        gather: Gather,
        observed: Observed,
        whole_fleet: Fleet,
        release_orgs: set[str],
        site_orgs: set[str],
        applied_sites: Mapping[str, RetiredSite],
        lookup_sites: list[Site],
        removed_fields: Mapping[str, Sequence[str]],
        retired_gateways: list[Gateway],
    ):
        self.fleet = fleet
        # Read only when still claimed (`_retired_zap`): nothing is read for them otherwise.
        self.retired_gateways = retired_gateways
        # What renamed Sites are recognised by (plan.planner.PlanOptions.whole_fleet).
        self.whole = whole_fleet
        self.session = session
        self.gather = gather
        self.observed = observed
        # Sites read only for the devices a Device of `fleet` may move from; their
        # organisations are listed as declared ones are (one out of reach: nothing found).
        self.lookup_sites = lookup_sites
        # Address -> the fields declared no more (`observe`): a device they add again
        # to its Zap has its serial read first.
        self.removed_fields = removed_fields
        # The organisations the fleet declares: one the token may not read blocks the
        # sites that declare it (NoAccess). Those read only for what was applied before
        # (`site_orgs`, `release_orgs`) still stop the run on a 403, as any read does.
        lookup_orgs = {s.spec.novacore.org_id for s in lookup_sites if s.spec.novacore}
        fleet_orgs = novacore_orgs(fleet)  # once: a pass through every Site and Gateway
        self.declared_orgs = fleet_orgs | lookup_orgs
        self.orgs = sorted(self.declared_orgs | site_orgs)
        self.gateway_orgs = sorted(fleet_orgs | site_orgs | release_orgs)
        self.novacore = session.novacore if self.gateway_orgs or self.orgs else None
        # Set once an organisation's sites are listed (or found unreachable)...
        self.listed = {org: asyncio.Event() for org in self.orgs}
        # ...and once every organisation's sites and gateways are.
        self.clouds_listed = asyncio.Event()
        self.indexes: dict[str, SiteIndex] = {}
        self.applied_sites = applied_sites
        self.unclaimed: dict[str, list[NovacoreSite]] = {}
        self.unclaimed_reads: dict[str, asyncio.Future[list[None]]] = {}
        # Set once every site's Novacore devices are read: a site with a device that is not
        # in its own Novacore site is planned only then, since it may move in from another.
        self.devices_unread = len(lookup_sites) + sum(
            1 for s in fleet.sites.values() if s.spec.novacore is not None
        )
        self.devices_read = asyncio.Event()
        self.declared: dict[str, list[moves.Declaration]] | None = None
        if not self.devices_unread:
            self.devices_read.set()

    async def run(self, on_site: SiteObserved | None) -> None:
        # Gateways are read with their site; one whose site is not declared (the operator
        # may see it before its Site) on its own.
        unsited = [
            g
            for g in self.fleet.gateways.values()
            if g.spec.zap is not None and g.spec.site_ref not in self.fleet.sites
        ]
        await all_of(
            self._clouds(),
            *(self._site(site, on_site) for site in self.fleet.sites.values()),
            *(self._zap(g) for g in unsited),
            *(self._lookup_site(site) for site in self.lookup_sites),
            *(self._retired_zap(g) for g in self.retired_gateways),
        )

    async def _clouds(self) -> None:
        try:
            await all_of(
                *(self._org_sites(org) for org in self.orgs),
                *(self._org_gateways(org) for org in self.gateway_orgs),
            )
        finally:
            self.clouds_listed.set()

    async def _site(self, site: Site, on_site: SiteObserved | None) -> None:
        # One after the other within a site (sites run concurrently): a task per read of
        # 1,000 sites cost more CPU than the overlap gained.
        for gateway in self.fleet.gateways_of(site.name):
            if gateway.spec.zap is not None:
                await self._zap(gateway)
        if site.spec.novacore is not None:
            await self._lookup_site(site)
        if on_site is not None:
            await self.clouds_listed.wait()
            if moves.needs_fleet_lookup(
                self.fleet, site, self._own_devices(site), self._declarations
            ):
                await self.devices_read.wait()
            on_site(site.name)

    def _declarations(self) -> dict[str, list[moves.Declaration]]:
        """Where the whole fleet declares each hardware id, worked out once."""
        if self.declared is None:
            self.declared = moves.declarations(self.whole)
        return self.declared

    async def _lookup_site(self, site: Site) -> None:
        """Read the Novacore devices of `site`, counting it among those read (the sites
        that may need every site's devices wait for the count to reach zero)."""
        try:
            await self._site_devices(site)
        finally:
            self.devices_unread -= 1
            if not self.devices_unread:
                self.devices_read.set()

    async def _read_into(
        self,
        table: dict[str, R | Unreachable],
        key: str,
        call: Callable[[], Awaitable[A]],
        convert: Callable[[A], R],
        *,
        org_scoped: bool = False,
    ) -> None:
        """One read into `table[key]`: its answer converted, or Unreachable."""
        table[key] = await self.gather.read_as(call, convert, org_scoped=org_scoped)

    @property
    def _cloud(self) -> NovacoreClient:
        assert self.novacore is not None, "Novacore is read only when an organisation is to be read"
        return self.novacore

    async def _org_sites(self, org: str) -> None:
        novacore = self._cloud
        try:
            await self._read_into(
                self.observed.novacore_sites,
                org,
                lambda: novacore.list_sites(org),
                lambda answer: novacore_convert.sites(answer, org),
                org_scoped=org in self.declared_orgs,
            )
        finally:
            self.listed[org].set()

    async def _org_gateways(self, org: str) -> None:
        novacore = self._cloud
        await self._read_into(
            self.observed.novacore_gateways,
            org,
            lambda: novacore.list_gateways(org),
            novacore_convert.gateway_serials,
            org_scoped=org in self.declared_orgs,
        )

    async def _site_devices(self, site: Site) -> None:
        """The devices of the Novacore site the Site matches, once its organisation's sites
        are listed (none when it matches none: the planner creates it, or renames the site
        it was called before)."""
        assert site.spec.novacore is not None
        org = site.spec.novacore.org_id
        await self.listed[org].wait()
        sites = self.observed.novacore_sites.get(org)
        if not isinstance(sites, list):
            return
        index = self._index(org, sites)
        match = self._applied_site(site, org, index)
        if match is None:
            if needs_rename_search(self.whole, site):
                await self._unclaimed_devices(org, index)
            return
        await self._read_site_devices(match.id)
        await self._same_named_devices(site, match, index)

    async def _same_named_devices(self, site: Site, match: NovacoreSite, index: SiteIndex) -> None:
        """The devices of the other sites of the name `site` is found by
        (`plan.novacore_sites.same_named`), read only when a hardware id declared behind its
        gateways is not among those of `match`, the site it uses: another state directory's
        apply into one of them made Novacore rebind the device there, and the plan is to say
        that it moves back (`plan.moves`), not that it is created. Names are unique in a
        fleet as applied, so this costs a no-op plan no call."""
        others = same_named(site, index)
        own = self.observed.novacore_devices.get(match.id)
        if not others or not isinstance(own, list):
            return
        if site_hardware_ids(self.whole, site) <= {d.hardware_id for d in own}:
            return
        await all_of(*(self._read_site_devices(o.id) for o in others
                       if o.id not in self.observed.novacore_devices))

    def _index(self, org: str, sites: list[NovacoreSite]) -> SiteIndex:
        """The sites listed of `org` by id and name, indexed once per observation."""
        index = self.indexes.get(org)
        if index is None:
            index = self.indexes[org] = SiteIndex(sites)
        return index

    def _applied_site(self, site: Site, org: str, index: SiteIndex) -> NovacoreSite | None:
        return applied_site(
            self.whole, site, index, self.applied_sites, lambda: self._unclaimed(org, index)
        )

    def _unclaimed(self, org: str, index: SiteIndex) -> list[NovacoreSite]:
        found = self.unclaimed.get(org)
        if found is None:
            found = self.unclaimed[org] = unclaimed_sites(self.whole, org, index)
        return found

    def _own_devices(self, site: Site) -> list[NovacoreDevice] | Unreachable | None:
        """The devices read of the Novacore site `site` matches (None: it matches none)."""
        novacore = site.spec.novacore
        if novacore is None:
            return None
        sites = self.observed.novacore_sites.get(novacore.org_id)
        if not isinstance(sites, list):
            return Unreachable("sites not listed")
        match = self._applied_site(site, novacore.org_id, self._index(novacore.org_id, sites))
        return self.observed.novacore_devices.get(match.id) if match is not None else None

    async def _read_site_devices(self, site_id: str) -> None:
        novacore = self._cloud
        await self._read_into(
            self.observed.novacore_devices,
            site_id,
            lambda: novacore.site_devices(site_id),
            novacore_convert.devices,
        )

    def _unclaimed_devices(self, org: str, index: SiteIndex) -> asyncio.Future[list[None]]:
        """The devices of every site of `org` that no declared Site matches, read once per
        observation and only when a Site matches no site by name: the planner looks there
        for the site a renamed Site was called before (`plan.novacore_sites.find_renamed`)."""
        reads = self.unclaimed_reads.get(org)
        if reads is None:
            unclaimed = self._unclaimed(org, index)
            if len(unclaimed) > renames.SEARCH_LIMIT:
                unclaimed = []  # too many to read on every plan; the planner says so
            reads = self.unclaimed_reads[org] = asyncio.ensure_future(
                all_of(*(self._read_site_devices(c.id) for c in unclaimed))
            )
        return reads

    async def _retired_zap(self, gateway: Gateway) -> None:
        """The Zap of a gateway declared no more, when it is claimed where it was: its
        release is then planned or reported, with the copies of devices moved off it
        (`plan.retired_gateways`). Its devices are only listed (none is added to it), and
        taken for its own only once what answers at its URL reports its serial."""
        await self.clouds_listed.wait()
        if is_claimed_where_remembered(gateway, self.observed):
            await self._zap(gateway)
            await confirm_zap_serial(self.session, self.gather, gateway, self.observed)

    async def _zap(self, gateway: Gateway) -> None:
        state = await read_zap(self.session, self.gather, gateway, self.observed)
        if state is None:
            return
        unverified = _devices_to_verify(self.fleet, gateway, state, self.removed_fields)
        if unverified:
            await all_of(
                *(
                    _read_identity(self.fleet, self.session, device, self.observed, self.gather)
                    for device in unverified
                )
            )


async def read_zap(
    session: Session, gather: Gather, gateway: Gateway, observed: Observed
) -> ZapState | None:
    """Read the devices on the Zap of `gateway` into `observed` (Unreachable there when it
    does not answer); its state, or None when it was not read."""
    client = session.zap(gateway)
    state = await gather.read_as(client.devices, zap_convert.zap_state)
    if isinstance(state, Unreachable):
        # Named by the URL called (RECONCILER_GATEWAY_URLS may override the YAML's).
        observed.zaps[gateway.name] = Unreachable(
            state.reason, url=client.url, retry_after=state.retry_after
        )
        return None
    observed.zaps[gateway.name] = state
    return state


async def confirm_zap_serial(
    session: Session, gather: Gather, gateway: Gateway, observed: Observed
) -> None:
    """Whether the devices read from the Zap of `gateway` (in `observed`) are that
    gateway's: when it reports another serial (`GET /api/crypto`), its record becomes
    Unreachable, saying so. For a gateway being released, whose devices declared behind
    another gateway are removed from its Zap as moved copies: the URL an earlier apply
    remembered can reach another Zap now (a DHCP lease moved, a swapped unit), whose
    devices are declared there, and whose serial refuses every removal (`Executors.zap`),
    holding the release back at every run. Read only when the Zap holds devices."""
    state = observed.zaps.get(gateway.name)
    if not isinstance(state, ZapState) or not state.devices:
        return
    assert gateway.spec.zap is not None
    declared = gateway.spec.zap.serial
    client = session.zap(gateway)
    crypto = await gather.read(client.crypto)
    if isinstance(crypto, Unreachable):
        observed.zaps[gateway.name] = Unreachable(
            crypto.reason, url=client.url, retry_after=crypto.retry_after
        )
        return
    reported = zap_convert.reported_serial(crypto)
    if reported != declared:
        observed.zaps[gateway.name] = Unreachable(
            zap_convert.other_serial(client.url, reported, declared), url=client.url
        )


def _devices_to_verify(
    fleet: Fleet,
    gateway: Gateway,
    state: ZapState,
    removed_fields: Mapping[str, Sequence[str]],
) -> list[Device]:
    """Devices of the gateway with `checkSerial` that applying adds to its Zap: not there
    yet, or there with another connection, declared or set back to its default as a field
    declared no more (`removed_fields`; removed and added again). Only Modbus TCP
    devices, as the planner checks: a serial marked unread for a Modbus RTU device would
    leave a saved plan refused, as not checkable, at every apply."""
    return [
        device
        for device in fleet.serial_checked_of(gateway.name)
        if is_added_to_zap(
            device,
            state.devices.get(device.spec.hardware_id or ""),
            removed_fields.get(device.address, ()),
        )
    ]


def register_reader(session: Session, fleet: Fleet, device: Device) -> identity.RegisterReader:
    """How to read the device's registers: through its gateway or directly."""
    connection = device.spec.connection
    assert connection is not None and connection.modbus_tcp is not None
    tcp = connection.modbus_tcp
    if device.spec.verification.via == "direct":
        endpoint = f"{tcp.host}:{tcp.port}"
        return identity.direct_reader(
            tcp.host,
            tcp.port,
            tcp.unit_id,
            timeout=session.settings.modbus_timeout,
            admit=lambda: session.modbus_limits.slot(endpoint),
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
    fleet: Fleet, session: Session, device: Device, observed: Observed, gather: Gather
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
