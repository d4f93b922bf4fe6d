"""Planning for Sourceful: Novacore sites, gateway claims, devices on the Zap, DER
publishing flags on the Zap, and device provisioning in Novacore.

Order inside a site: site → gateway claim → identity check → device on the Zap → cloud
provisioning → DER publishing; removals run the other way. A site with an unreachable
gateway or cloud defers as a whole: nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.der import DerFields
from reconciler.model.device import (
    Connection,
    Device,
    ModbusRtu,
    ModbusTcp,
    Mqtt,
    P1Uart,
    Parity,
)
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import DeletionPolicy, Gateway
from reconciler.model.site import Site
from reconciler.model.vocab import local_der_type
from reconciler.plan import moves, removed_fields, renames
from reconciler.plan.actions import (
    Action,
    Change,
    FieldDiff,
    Reason,
    address_of,
    defer,
    update_or_in_sync,
)
from reconciler.plan.diff import compared_only_where_reported, declared_diff
from reconciler.plan.moves import Declaration, OrgMove, Provisioned, ProvisionedIndex
from reconciler.plan.observed import (
    NoAccess,
    NovacoreDevice,
    NovacoreSite,
    Observed,
    Unreachable,
    ZapDevice,
    ZapState,
)
from reconciler.plan.renames import Rename
from reconciler.plan.retired import RetiredSite
from reconciler.printable import quoted

# Zap RTU parity is numeric (platform-apis §1.2: "parity 0/1/2").
_RTU_PARITY = {Parity.NONE: 0, Parity.ODD: 1, Parity.EVEN: 2}


def zap_settings(connection: Connection) -> dict[str, Any]:
    """The device config in the Zap's own field names (POST /api/devices body), without
    any secret. The password of an MQTT device is added by the provider at apply time."""
    # Each body is one literal: a fleet-wide plan makes 10,000 of them.
    connection_type, settings = connection.chosen()
    body: dict[str, Any]
    if isinstance(settings, ModbusTcp):
        body = {
            "type": connection_type,
            "ip": settings.host,
            "port": settings.port,
            "unit_id": settings.unit_id,
            "profile": settings.profile,
        }
    elif isinstance(settings, ModbusRtu):
        body = {
            "type": connection_type,
            "baud_rate": settings.baud_rate,
            "unit_id": settings.unit_id,
            "profile": settings.profile,
            "parity": _RTU_PARITY[Parity(settings.parity)],
            "data_bits": settings.data_bits,
            "stop_bits": settings.stop_bits,
        }
    elif isinstance(settings, P1Uart):
        body = {
            "type": connection_type,
            "profile": settings.profile,
            "baud_rate": settings.baud_rate,
            "data_bits": settings.data_bits,
            "parity": str(settings.parity),
            "stop_bits": settings.stop_bits,
        }
        if settings.manufacturer:
            body["manufacturer"] = settings.manufacturer
    elif isinstance(settings, Mqtt):
        body = {
            "type": connection_type,
            "profile": settings.profile,
            "broker_host": settings.broker_host,
            "broker_port": settings.broker_port,
        }
        if settings.username:
            body["username"] = settings.username
        if settings.client_id:
            body["client_id"] = settings.client_id
    else:
        body = {"type": connection_type}
    return body


def undeclared_device_name(gateway: str, sn: str) -> str:
    """The name in a change of a device found on a gateway but not declared."""
    return f"{gateway}.{sn}"


def gateway_of_change(fleet: Fleet, change: Change) -> str:
    """The gateway of a Device change: the declared device's, or the one an undeclared
    device was found on (`undeclared_device_name`)."""
    device = fleet.devices.get(change.name)
    if device is not None:
        return device.spec.gateway_ref or ""
    # Gateway names may hold dots too: the longest declared gateway the name starts with.
    name = change.name
    cut = name.rfind(".")
    while cut > 0:
        if name[:cut] in fleet.gateways:
            return name[:cut]
        cut = name.rfind(".", 0, cut)
    return name.split(".", 1)[0]


def bound_device(candidates: list[NovacoreDevice], serial: str) -> NovacoreDevice | None:
    """Of the site's Novacore devices with a declared device's hardware id, the one it is:
    the one bound to its gateway (or bound to none Novacore reports), else one bound to
    another gateway (the device moved, and is provisioned again behind its new one)."""
    for candidate in candidates:
        if candidate.gateway_serial in (None, serial):
            return candidate
    return candidates[0] if candidates else None


def serial_release(serial: str, org: str, message: str) -> Change:
    """The release from `org` of gateway `serial`, one no Gateway declares any more (its
    deletionPolicy Release remembered): named by its serial, as it has no resource."""
    return Change(
        address=address_of("Gateway", serial, "novacore"),
        kind="Gateway",
        name=serial,
        component="novacore",
        action=Action.RELEASE,
        reason=Reason.DELETION_POLICY,
        before={"serial": serial, "org_id": org},
        external_id=serial,
        message=message,
    )


def claim_org(gateway: Gateway, site: Site | None) -> str:
    """The Novacore organisation a gateway is claimed into: its own `orgId`, else its
    Site's ("" when neither says)."""
    zap = gateway.spec.zap
    assert zap is not None
    if zap.org_id:
        return zap.org_id
    return site.spec.novacore.org_id if site is not None and site.spec.novacore else ""


def no_access_message(org: str, denied: NoAccess, field_name: str) -> str:
    """Why nothing is planned in an organisation the token may not read, and what to fix."""
    return (
        f"Novacore organisation {org} cannot be read with this token ({denied.reason}); "
        f"nothing is claimed or provisioned in it. Correct {field_name}, or give the "
        f"token's identity a role in {org}"
    )


# Connection settings a Zap keeps only when a device is added with them. GET /api/devices
# lists each device's persisted config (platform-apis §1.2, which shows `username` and
# `client_id` there), so a Zap that leaves one out has none set: a declared one differs.
# Settings with a default (port, baud rate, ...) are another matter: a Zap that does not
# echo one says nothing of it, and it is not compared.
_SET_ONLY_WHEN_GIVEN = ("manufacturer", "username", "client_id")


def observed_connection(on_zap: ZapDevice) -> dict[str, Any]:
    """The connection the Zap reports for a device, in `zap_settings`' vocabulary."""
    # A type or profile the Zap leaves out is not reported, not reported empty: compared,
    # it would differ from the declared one however often the device was added again.
    reported: dict[str, Any] = {}
    if on_zap.connection_type:
        reported["type"] = on_zap.connection_type
    if on_zap.profile is not None:
        reported["profile"] = on_zap.profile
    reported.update(on_zap.settings)
    return reported


# `zap_settings`' keys that are not the model's field names.
_MODEL_FIELD_OF_ZAP_KEY = {"ip": "host"}


def declared_zap_settings(connection: Connection, body: dict[str, Any]) -> dict[str, Any]:
    """Of `body` (`zap_settings(connection)`), the settings the spec sets: a default the
    spec leaves out is sent when the device is added, but not compared with what the Zap
    has. A device configured by hand on port 1502 would otherwise be removed from its Zap
    for a port 502 nobody declared, and added again where it does not answer."""
    _, settings = connection.chosen()
    declared = settings.model_fields_set
    return {key: value for key, value in body.items()
            if key == "type" or _MODEL_FIELD_OF_ZAP_KEY.get(key, key) in declared}


def zap_connection_diff(desired: dict[str, Any], before: dict[str, Any]) -> list[FieldDiff]:
    """How the declared connection (`declared_zap_settings`) differs from the one the Zap
    reports (`observed_connection`): a setting the Zap does not report is not compared,
    unless it is one the Zap reports whenever it has it (`_SET_ONLY_WHEN_GIVEN`)."""
    diff = compared_only_where_reported(desired, before)
    for key in _SET_ONLY_WHEN_GIVEN:
        if key in desired and key not in before:
            diff.append(FieldDiff("add", key, None, desired[key]))
    return diff


def zap_reset_diff(
    desired: dict[str, Any], before: dict[str, Any], removed_paths: Sequence[str]
) -> tuple[list[FieldDiff], list[str]]:
    """What setting back the connection settings a spec declares no more (`removed_paths`,
    `plan.removed_fields`) changes on the Zap, beside the declared drift: each defaulted
    one compared as `desired` (`zap_settings`) sends it, each one set only when given
    removed where the Zap has it; and the paths of those that differ."""
    defaulted, unset = removed_fields.zap_removed(removed_paths)
    compared = {key: desired[key] for key in defaulted if key in desired}
    diff = compared_only_where_reported(compared, before)
    for key in unset:
        if key in before and key not in desired:
            diff.append(FieldDiff("remove", key, before[key], None))
    paths = {**defaulted, **unset}
    return diff, [paths[d.path] for d in diff]


def is_added_to_zap(
    device: Device, on_zap: ZapDevice | None, removed_paths: Sequence[str] = ()
) -> bool:
    """Whether applying adds the device to its Zap: it is not there yet, or its declared
    connection differs (the Zap cannot change one, so the device is removed and added
    again), or a connection setting its spec declares no more (`removed_paths`,
    `plan.removed_fields`) is set back to its default, as the planner does."""
    if on_zap is None:
        return True
    assert device.spec.connection is not None
    connection = device.spec.connection
    desired = zap_settings(connection)
    before = observed_connection(on_zap)
    if zap_connection_diff(declared_zap_settings(connection, desired), before):
        return True
    return bool(removed_paths) and bool(zap_reset_diff(desired, before, removed_paths)[0])


def publish_flags(
    ders: list[DerFields], detected: Mapping[str, bool] | None = None
) -> dict[str, bool]:
    """Desired `enabled` flag per local DER type of a device that declares `ders`
    (`Fleet.ders_of`): on when a declared DER of that type publishes. With `detected`,
    the DER types the Zap reports for the device: only those can be switched, and those
    not declared are off."""
    flags: dict[str, bool] = {}
    for der in ders:
        local = local_der_type(der.type)
        if detected is None or local in detected:
            flags[local] = flags.get(local, False) or der.publish
    for local in detected or ():
        flags.setdefault(local, False)
    return flags


def novacore_fields(device: Device, ders: list[DerFields]) -> dict[str, Any]:
    """Declared fields of a device that declares `ders` (`Fleet.ders_of`), in Novacore's
    vocabulary."""
    spec = device.spec
    out: dict[str, Any] = {"name": device.display_name, "device_type": spec.device_type}
    if spec.manufacturer:
        out["manufacturer"] = spec.manufacturer
    if spec.model:
        out["model"] = spec.model
    out["ders"] = {d.name: str(d.type) for d in ders}
    return out


def _cloud_drift(after: dict[str, Any], before: dict[str, Any]) -> list[FieldDiff]:
    """What to update on a Novacore device whose device type and DER types are as declared:
    the fields it reports that differ and the DERs it lacks. The DERs it has that are not
    declared are no drift: Novacore cannot delete them (`_unmanaged_ders` reports them)."""
    diff = compared_only_where_reported({k: v for k, v in after.items() if k != "ders"}, before)
    diff += declared_diff(after["ders"], before["ders"], prefix="ders.")
    return diff


def _der_type_changed(declared: dict[str, str], observed: dict[str, str]) -> bool:
    """Whether a declared DER that Novacore has is there with another type."""
    for name, der_type in declared.items():
        if name in observed and observed[name] != der_type:
            return True
    return False


def _observed_novacore_fields(device: NovacoreDevice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": device.name,
        "device_type": device.device_type,
        "ders": {d.name: d.type for d in device.ders},
    }
    if device.manufacturer is not None:
        out["manufacturer"] = device.manufacturer
    if device.model is not None:
        out["model"] = device.model
    return out


class SiteIndex:
    """The sites of one organisation by id and by name (the first of a name wins), so that
    matching a thousand Sites against a thousand Novacore sites stays linear."""

    def __init__(self, candidates: list[NovacoreSite]) -> None:
        self.by_id = {c.id: c for c in candidates}
        self.by_name: dict[str, NovacoreSite] = {}
        for candidate in candidates:
            self.by_name.setdefault(candidate.name, candidate)


def match_site(site: Site, candidates: list[NovacoreSite] | SiteIndex) -> NovacoreSite | None:
    """The Novacore site a Site declares: by `siteId` when given, else by display name."""
    novacore = site.spec.novacore
    assert novacore is not None
    index = candidates if isinstance(candidates, SiteIndex) else SiteIndex(candidates)
    if novacore.site_id is not None:
        return index.by_id.get(novacore.site_id)
    return index.by_name.get(site.spec.display_name)


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


@dataclass(slots=True)
class _GatewayContext:
    """What every device behind one gateway is planned against, worked out once per gateway."""

    site: str  # the site's resource name
    gateway: str  # the gateway's resource name
    serial: str  # the gateway's serial
    in_novacore: bool  # whether the site provisions its devices in Novacore
    claim: Change  # the gateway's claim
    site_change: Change | None  # the site's Novacore change, when it has a novacore block
    zap: ZapState | None  # what the Zap reports, None when it could not be read
    org: str | None = None  # the site's Novacore organisation, when it has a novacore block
    site_id: str | None = None  # the Novacore site the site matches, when it matches one
    # What the claim and the site change mean for every device (neither changes while the
    # gateway's devices are planned): the dependencies a device starts from (read-only:
    # each change takes a copy), the site change's address where a device's provisioning
    # waits for it, and what blocks the device.
    claim_deps: list[str] = field(init=False)
    site_dep: str | None = field(init=False)
    blocked_by_claim: Change | None = field(init=False)
    blocked_by_site: Change | None = field(init=False)

    def __post_init__(self) -> None:
        claim, site_change = self.claim, self.site_change
        self.claim_deps = [claim.address] if claim.is_change else []
        self.blocked_by_claim = claim if claim.blocked else None
        self.site_dep = None
        self.blocked_by_site = None
        if site_change is not None:
            self.site_dep = site_change.address if site_change.is_change else None
            self.blocked_by_site = site_change if site_change.blocked else None


@dataclass
class SourcefulPlanner:
    """Plans one fleet. Construct, then call `plan()`; `plan_site()` before that plans a
    site as soon as its observations are in (the engine does so while it still observes
    the rest)."""

    fleet: Fleet
    observed: Observed
    prune: bool = False
    # Gateway serial -> deletion policy remembered from earlier applies (the inventory).
    inventory: dict[str, str] = field(default_factory=dict)
    # Gateway serial -> the organisation it was declared in, remembered likewise.
    inventory_orgs: dict[str, str] = field(default_factory=dict)
    # Undeclared gateways released as with `prune` (planner.PlanOptions.release_serials).
    release_serials: frozenset[str] = frozenset()
    changes: list[Change] = field(default_factory=list)
    unmanaged: list[dict[str, Any]] = field(default_factory=list)
    # Site resource name -> the Novacore site it matched.
    _site_indexes: dict[str, SiteIndex] = field(default_factory=dict)
    _matched_site: dict[str, NovacoreSite] = field(default_factory=dict)
    # What a renamed Site is recognised by (planner.PlanOptions.whole_fleet); None: `fleet`.
    whole_fleet: Fleet | None = None
    # Where earlier applies put declared Sites (planner.PlanOptions.applied_sites).
    applied_sites: Mapping[str, RetiredSite] = field(default_factory=dict)
    # Resource address -> the fields declared at the last apply and not now
    # (`plan.removed_fields`): a Zap connection setting among them is set back.
    removed_fields: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # Org id -> its sites no declared Site matches (where renamed Sites are looked for).
    _unclaimed_sites: dict[str, list[NovacoreSite]] = field(default_factory=dict)
    # Site resource name -> its unmanaged objects (kept per site: sites may be planned in
    # any order, and the report lists them in the fleet's order).
    _site_unmanaged: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Where devices moved from and to (plan.moves), worked out when first needed.
    _declarations: dict[str, list[Declaration]] | None = None
    _provisioned: ProvisionedIndex | None = None
    _org_site_ids: dict[str, set[str]] = field(default_factory=dict)
    _site_orgs: dict[str, str] | None = None
    _gateway_names: dict[str, str] | None = None
    # Gateway serial -> the pruned Novacore deletes of devices bound to it: an undeclared
    # gateway is released only after them (removal runs provisioning's order backwards).
    _pruned_behind: dict[str, list[str]] = field(default_factory=dict)
    # Address of a pruned Novacore delete -> the site's declared Gateway its device is
    # bound to: it goes with that gateway in a selection (`planner`), as the device's copy
    # on the Zap does, not with the site alone.
    pruned_on: dict[str, str] = field(default_factory=dict)

    def plan(self) -> tuple[list[Change], list[dict[str, Any]]]:
        """Every site not planned yet, then what spans sites. The changes come in the order
        sites were planned; the caller sorts them (`planner.PlanBuilder.finish`)."""
        for name in self.fleet.sites:
            self.plan_site(name)
        self.unmanaged = [
            entry for name in self.fleet.sites for entry in self._site_unmanaged.get(name, [])
        ]
        self._unmanaged_gateways()
        return self.changes, self.unmanaged

    def plan_site(self, name: str) -> None:
        """Plan one site (once). Call it only when everything the site reads is observed:
        every organisation's sites and gateways, the Zaps of its gateways (and the serials
        read from their new devices), and the Novacore devices of the site it matches."""
        if name in self._site_unmanaged:
            return
        site = self.fleet.sites[name]
        first = len(self.unmanaged)
        gateways = self.fleet.gateways_of(name)
        if site.spec.novacore is not None or gateways:
            self._plan_site(site, gateways)
        self._site_unmanaged[name] = self.unmanaged[first:]
        del self.unmanaged[first:]

    # -- helpers ---------------------------------------------------------------------------

    def _add(self, change: Change) -> Change:
        self.changes.append(change)
        return change

    def _change(
        self,
        kind: str,
        name: str,
        component: str,
        action: Action,
        reason: Reason,
        site: str,
        *,
        message: str = "",
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        diff: Sequence[FieldDiff] = (),
        external_id: str | None = None,
        depends_on: Sequence[str] = (),
        blocked: bool = False,
    ) -> Change:
        """Add a change of the site named `site`. Built here rather than through
        Change.new: a fleet-wide plan makes 30,000 of these. An empty diff or dependency
        list is left to the shared empty default."""
        # Positional, in the order of Change's fields (keywords cost a tenth of a plan).
        change = Change(
            address_of(kind, name, component),
            kind,
            name,
            component,
            action,
            reason,
            message,
            site,
            before,
            after,
            diff or (),
            external_id,
            depends_on or (),
            blocked,
        )
        self.changes.append(change)
        return change

    # -- site ------------------------------------------------------------------------------

    def _plan_site(self, site: Site, gateways: list[Gateway]) -> None:
        first = len(self.changes)
        site_name = site.name
        site_change = self._plan_novacore_site(site)
        novacore_site = self._matched_site.get(site_name)
        devices_obs: list[NovacoreDevice] | Unreachable | None = None
        if novacore_site is not None:
            devices_obs = self.observed.novacore_devices.get(novacore_site.id, [])
        unreachable: list[str] = []
        if isinstance(devices_obs, Unreachable):
            unreachable.append(f"Novacore devices of site {novacore_site.id}: {devices_obs.reason}")  # type: ignore[union-attr]
        if site_change is not None and site_change.action is Action.DEFER:
            unreachable.append(site_change.message)
        by_hardware: dict[str, list[NovacoreDevice]] = {}
        if isinstance(devices_obs, list):
            for cloud_device in devices_obs:
                by_hardware.setdefault(cloud_device.hardware_id, []).append(cloud_device)
        matched: set[str] = set()  # ids of the Novacore devices declared devices are
        offline: set[str] = set()  # gateways whose Zap did not answer
        for gateway in gateways:
            zap = gateway.spec.zap
            if zap is None:
                continue
            gateway_name = gateway.name
            claim = self._plan_claim(site, gateway)
            if (
                claim.reason is Reason.NO_ACCESS
                and site_change is not None
                and site_change.reason is Reason.NO_ACCESS
                and not zap.org_id
            ):
                # One organisation out of reach: said once, at the site.
                self._block(claim, site_change)
            if claim.action is Action.DEFER:
                # Who owns the gateway is unknown: adding devices to it would be a guess.
                unreachable.append(claim.message)
            observed_zap = self.observed.zaps.get(gateway_name)
            if observed_zap is None:
                observed_zap = Unreachable("not observed")
            zap_obs: ZapState | None = None
            if isinstance(observed_zap, Unreachable):
                called = observed_zap.url or zap.url  # an override, where one was used
                unreachable.append(f"gateway {gateway_name} ({called}): {observed_zap.reason}")
                offline.add(gateway_name)
            else:
                zap_obs = observed_zap
            at = _GatewayContext(
                site=site_name,
                gateway=gateway_name,
                serial=zap.serial,
                in_novacore=site.spec.novacore is not None,
                claim=claim,
                site_change=site_change,
                zap=zap_obs,
                org=site.spec.novacore.org_id if site.spec.novacore is not None else None,
                site_id=novacore_site.id if novacore_site is not None else None,
            )
            # Every hardware id declared on the gateway: what the Zap holds beyond is unmanaged.
            on_gateway: set[str | None] = set()
            for device in self.fleet.devices_of(gateway_name):
                spec = device.spec
                hardware_id = spec.hardware_id
                on_gateway.add(hardware_id)
                if hardware_id is None or spec.connection is None:
                    continue
                cloud = bound_device(by_hardware.get(hardware_id, []), zap.serial)
                cloud_site = at.site_id
                left: OrgMove | None = None
                if cloud is not None:
                    matched.add(cloud.id)
                elif at.in_novacore:
                    # Not in its own site: it may be in another one, and move here with its
                    # hardware (Novacore rebinds a hardware id it has; plan.moves).
                    found = self._provisioned_elsewhere(at, hardware_id)
                    if found is not None:
                        cloud, cloud_site = found.device, found.site_id
                    else:
                        # Or in another organisation, which no rebinding leaves.
                        left = self._provisioned_in_other_org(at, hardware_id)
                self._plan_device(at, device, cloud, cloud_site, left)
            if zap_obs is not None:
                self._unmanaged_zap_devices(site, gateway, zap_obs, on_gateway)
        if isinstance(devices_obs, list):
            pruned = self._unmanaged_cloud_devices(site, devices_obs, matched)
            for change in self.changes[first:]:
                # A device pruned from its Zap goes after its Novacore record: deleted the
                # other way round, a failed delete would leave a record reading nothing.
                if (
                    change.component == "zap"
                    and change.action is Action.DELETE
                    and change.external_id in pruned
                ):
                    change.depends_on = [pruned[change.external_id]]
        if unreachable:
            # The site's devices in Novacore are not known when they, or the site list
            # that says which site is this Site's, could not be read.
            cloud_unread = isinstance(devices_obs, Unreachable) or (
                site_change is not None and site_change.action is Action.DEFER
            )
            self._defer(self.changes[first:], "; ".join(unreachable), offline, cloud_unread)

    def _plan_novacore_site(self, site: Site) -> Change | None:
        novacore = site.spec.novacore
        if novacore is None:
            return None
        after = {"name": site.spec.display_name, "org_id": novacore.org_id}

        def site_change(action: Action, reason: Reason, **kwargs: Any) -> Change:
            return self._change("Site", site.name, "novacore", action, reason, site.name,
                                after=after, **kwargs)

        observed = self.observed.novacore_sites.get(novacore.org_id)
        if isinstance(observed, NoAccess):
            # Blocked, not deferred: reading again gives the same answer, and each apply
            # would retry a site whose claim and provisioning can only fail. Nothing of the
            # site is written (its claim and devices wait on this); other sites go on.
            return site_change(
                Action.VERIFY,
                Reason.NO_ACCESS,
                blocked=True,
                message=no_access_message(
                    novacore.org_id, observed, f"`spec.novacore.orgId` of Site {site.name}"
                ),
            )
        if isinstance(observed, Unreachable) or observed is None:
            reason = observed.reason if isinstance(observed, Unreachable) else "not observed"
            return site_change(
                Action.DEFER,
                Reason.TARGET_UNREACHABLE,
                message=f"Novacore organisation {novacore.org_id}: {reason}",
            )
        index = self._site_index(novacore.org_id, observed)
        match = match_site(site, index)
        remembered = None
        if match is None:
            remembered = applied_site(
                self._whole, site, index, self.applied_sites,
                lambda: self._unclaimed(novacore.org_id, index),
            )
        not_found = f"no site named {site.spec.display_name!r} in {novacore.org_id}"
        rename: Rename[NovacoreSite] | None = None
        # Hardware ids to recognise the site it was renamed from by, if it is looked for.
        search_ids = (
            rename_search_ids(self._whole, site) if match is None and remembered is None
            else set()
        )
        if search_ids:
            rename = find_renamed(
                self._whole, site, self._unclaimed(novacore.org_id, index),
                self.observed.novacore_devices, search_ids,
            )
            if rename.unreachable:
                return site_change(
                    Action.DEFER,
                    Reason.TARGET_UNREACHABLE,
                    message=f"looking for the site it was renamed from: {rename.problem}",
                )
            if rename.problem is not None:
                return site_change(
                    Action.CREATE,
                    Reason.NOT_FOUND,
                    blocked=True,
                    message=f"{not_found}, and {rename.problem}",
                )
            match = rename.site
        match = match or remembered
        if match is None:
            if novacore.site_id is not None:
                return site_change(
                    Action.CREATE,
                    Reason.NOT_FOUND,
                    blocked=True,
                    message=f"site {novacore.site_id} does not exist in "
                    f"{novacore.org_id}; remove `siteId` to create a new site",
                )
            if rename is not None:
                not_found = rename.not_found(not_found)
            return site_change(
                Action.CREATE, Reason.NOT_FOUND, diff=declared_diff(after, None), message=not_found
            )
        self._matched_site[site.name] = match
        before = {"name": match.name, "org_id": match.org_id}
        diff = declared_diff(after, before)
        action, reason = update_or_in_sync(diff)
        # Matched here only through a rename search (the site was found by what it holds),
        # or through the inventory (an earlier apply put the Site there).
        message = ""
        if rename is not None:
            message = renames.RENAMED_MESSAGE.format(id=match.id)
        elif remembered is not None:
            message = renames.REMEMBERED_MESSAGE.format(id=match.id)
        return site_change(
            action, reason, before=before, diff=diff, external_id=match.id, message=message
        )

    @property
    def _whole(self) -> Fleet:
        return self.whole_fleet or self.fleet

    def _unclaimed(self, org: str, index: SiteIndex) -> list[NovacoreSite]:
        found = self._unclaimed_sites.get(org)
        if found is None:
            found = self._unclaimed_sites[org] = unclaimed_sites(self._whole, org, index)
        return found

    # -- gateway claim ---------------------------------------------------------------------

    def _owner_of(self, serial: str) -> tuple[str | None, str | None]:
        """(owning org among the observed ones, reason it is unknown)."""
        for org, gateways in self.observed.novacore_gateways.items():
            if isinstance(gateways, Unreachable):
                continue
            if serial in gateways:
                return org, None
        return None, None

    def _plan_claim(self, site: Site, gateway: Gateway) -> Change:
        zap = gateway.spec.zap
        assert zap is not None
        target = claim_org(gateway, site)
        after = {"serial": zap.serial, "org_id": target}
        target_obs = self.observed.novacore_gateways.get(target)
        if isinstance(target_obs, NoAccess):
            field_name = (
                f"`spec.zap.orgId` of Gateway {gateway.name}"
                if zap.org_id
                else f"`spec.novacore.orgId` of Site {site.name}"
            )
            return self._change(
                "Gateway",
                gateway.name,
                "novacore",
                Action.CLAIM,
                Reason.NO_ACCESS,
                site.name,
                after=after,
                blocked=True,
                message=no_access_message(target, target_obs, field_name),
            )
        if isinstance(target_obs, Unreachable) or target_obs is None:
            reason = target_obs.reason if isinstance(target_obs, Unreachable) else "not observed"
            return self._change(
                "Gateway",
                gateway.name,
                "novacore",
                Action.DEFER,
                Reason.TARGET_UNREACHABLE,
                site.name,
                after=after,
                message=f"gateways of {target}: {reason}",
            )
        owner, _ = self._owner_of(zap.serial)
        if owner == target:
            return self._change(
                "Gateway",
                gateway.name,
                "novacore",
                Action.NO_OP,
                Reason.IN_SYNC,
                site.name,
                before=after,
                after=after,
                external_id=zap.serial,
            )
        if owner is not None:
            before = {"serial": zap.serial, "org_id": owner}
            message = (
                f"gateway {zap.serial} is owned by {owner}; claiming it into {target} "
                f"orphans {owner}'s devices on it"
            )
            if not zap.allow_transfer:
                return self._change(
                    "Gateway",
                    gateway.name,
                    "novacore",
                    Action.TRANSFER,
                    Reason.TRANSFER_NOT_ALLOWED,
                    site.name,
                    before=before,
                    after=after,
                    diff=declared_diff(after, before),
                    blocked=True,
                    message=message + "; set `allowTransfer: true` on the Gateway to allow it",
                )
            return self._change(
                "Gateway",
                gateway.name,
                "novacore",
                Action.TRANSFER,
                Reason.OWNED_BY_OTHER_ORG,
                site.name,
                before=before,
                after=after,
                diff=declared_diff(after, before),
                message=message,
            )
        return self._change(
            "Gateway",
            gateway.name,
            "novacore",
            Action.CLAIM,
            Reason.NOT_FOUND,
            site.name,
            after=after,
            diff=declared_diff(after, None),
            message=f"gateway {zap.serial} is not claimed by {target}",
        )

    # -- devices ---------------------------------------------------------------------------

    def _plan_device(
        self,
        at: _GatewayContext,
        device: Device,
        cloud: NovacoreDevice | None,
        cloud_site: str | None,
        left: OrgMove | None = None,
    ) -> None:
        """The changes of one declared device behind the gateway of `at`: on the Zap, in
        Novacore (`cloud`, found in the Novacore site `cloud_site`; or none, and `left` in
        another organisation), its DER publishing."""
        # Each model attribute is read once here and passed on: a fleet-wide plan reads
        # 10,000 devices, and every read of a pydantic field is a lookup in a cold object.
        name = device.name
        spec = device.spec
        connection = spec.connection
        hardware_id = spec.hardware_id
        assert connection is not None and hardware_id is not None
        zap_obs = at.zap.devices.get(hardware_id) if at.zap is not None else None
        desired = zap_settings(connection)
        deps = at.claim_deps
        blocked_by = at.blocked_by_claim

        before = observed_connection(zap_obs) if zap_obs is not None else None
        diff = (zap_connection_diff(declared_zap_settings(connection, desired), before)
                if before is not None else [])
        reset: list[str] = []
        removed_paths = self.removed_fields.get(f"device/{name}")
        if removed_paths and before is not None:
            more, reset = zap_reset_diff(desired, before, removed_paths)
            diff += more
        if (
            (zap_obs is None or diff)
            and spec.verification.check_serial
            and connection.modbus_tcp is not None
            and at.zap is not None
        ):
            # Read the serial at the address about to be added, before anything is written:
            # a replace removes the device that works first.
            verify = self._plan_verify(at.site, device, deps)
            deps = [verify.address]
            if verify.blocked:
                blocked_by = verify

        zap_change: Change | None = None
        if zap_obs is None:
            zap_change = self._change(
                "Device",
                name,
                "zap",
                Action.CREATE,
                Reason.NOT_FOUND,
                at.site,
                after=desired,
                diff=declared_diff(desired, None),
                depends_on=list(deps),
                message=f"not configured on gateway {at.gateway}",
            )
        elif diff or name in self.observed.changed_secrets:
            # The Zap reports no password, so a changed one is known only from the
            # credential ledger (engine.credentials); it is sent again the same way.
            message = (
                "the Zap cannot change a device's connection; it is removed and added again"
                if diff
                else f"{self.observed.changed_secrets[name]} changed since it was sent to "
                "the device; it is removed and added again with the new one"
            )
            reason = Reason.CANNOT_UPDATE if diff else Reason.SECRET_CHANGED
            if reset:
                fields = ", ".join(f"spec.{path}" for path in reset)
                message = (
                    f"{fields} {removed_fields.REASON_TEXT}: the Zap's default is set again; "
                    f"{message}"
                )
                if len(reset) == len(diff):
                    reason = Reason.FIELD_REMOVED
            zap_change = self._change(
                "Device",
                name,
                "zap",
                Action.REPLACE,
                reason,
                at.site,
                before=before,
                after=desired,
                diff=diff,
                depends_on=list(deps),
                external_id=zap_obs.sn,
                message=message,
            )
        elif name in self.observed.missing_secrets:
            # In place, but whether its password changed cannot be checked: said, as for a
            # device to add, instead of taken for in sync. What does not send the password
            # (the cloud record, the DERs) goes on.
            zap_change = self._change(
                "Device",
                name,
                "zap",
                Action.VERIFY,
                Reason.SECRET_MISSING,
                at.site,
                before=before,
                after=desired,
                external_id=zap_obs.sn,
                blocked=True,
                message=f"{self.observed.missing_secrets[name]}; whether the device still has "
                "the declared password cannot be checked: provide it",
            )
        else:
            self._change(
                "Device",
                name,
                "zap",
                Action.NO_OP,
                Reason.IN_SYNC,
                at.site,
                before=before,
                after=desired,
                external_id=zap_obs.sn,
            )
        if zap_change is not None and zap_change.action is not Action.VERIFY:
            deps = [zap_change.address]
            if blocked_by is not None:
                self._block(zap_change, blocked_by)
            elif name in self.observed.missing_secrets:
                # Adding the device sends its password: without it nothing can be done.
                zap_change.blocked = True
                zap_change.message = (
                    f"{self.observed.missing_secrets[name]}; provide it before applying"
                )
                blocked_by = zap_change

        ders = self.fleet.ders_of(name)
        cloud_deps = list(deps)
        if at.site_dep is not None:
            cloud_deps.append(at.site_dep)
        cloud_change = self._plan_cloud_device(
            at, name, device, ders, cloud, cloud_site, cloud_deps, left
        )
        if blocked_by is None:
            blocked_by = at.blocked_by_site
        if cloud_change is not None and blocked_by is not None:
            self._block(cloud_change, blocked_by)
        # Depend only on changes: a no-op is never run, so waiting on it waits on nothing
        # (a device re-added to its Zap must be there before its DERs are switched).
        publish_deps = list(deps)
        if cloud_change is not None and cloud_change.is_change:
            publish_deps = [cloud_change.address]
        publish = self._plan_publish(
            at.site,
            name,
            hardware_id,
            ders,
            zap_obs,
            publish_deps,
            added_again=zap_change is not None and zap_change.action is Action.REPLACE,
        )
        if publish is not None and blocked_by is not None:
            self._block(publish, blocked_by)

    def _plan_verify(self, site: str, device: Device, deps: list[str]) -> Change:
        expected = device.spec.hardware_id
        reading = self.observed.identities.get(device.name)
        after = {"serial": expected}
        if reading is None or reading.error is not None:
            why = reading.error if reading is not None else "not read"
            return self._change(
                "Device",
                device.name,
                "identity",
                Action.VERIFY,
                Reason.IDENTITY_CHECK,
                site,
                after=after,
                depends_on=list(deps),
                message=f"serial not read yet ({why}); it is checked before the device is added",
            )
        if reading.serial != expected:
            serial = reading.serial or ""
            # Said, as the escape alone is easily read past: not padding, but more text.
            nul = ", which goes on after a NUL byte (\\x00)" if "\0" in serial else ""
            return self._change(
                "Device",
                device.name,
                "identity",
                Action.VERIFY,
                Reason.IDENTITY_MISMATCH,
                site,
                before={"serial": reading.serial},
                after=after,
                blocked=True,
                depends_on=list(deps),
                message=f"the device reports serial {quoted(serial)}{nul}, not "
                f"hardwareId {expected!r}; it is not provisioned. Check "
                "the address or correct `hardwareId`",
            )
        return self._change(
            "Device",
            device.name,
            "identity",
            Action.VERIFY,
            Reason.IDENTITY_CHECK,
            site,
            before={"serial": reading.serial},
            after=after,
            depends_on=list(deps),
            message="serial matches hardwareId; checked again before adding",
        )

    def _plan_cloud_device(
        self,
        at: _GatewayContext,
        name: str,
        device: Device,
        ders: list[DerFields],
        cloud: NovacoreDevice | None,
        cloud_site: str | None,
        deps: list[str],
        left: OrgMove | None = None,
    ) -> Change | None:
        if not at.in_novacore:
            return None
        after = novacore_fields(device, ders)
        if cloud is None and left is not None:
            return self._plan_org_move(at, name, after, deps, left)
        if cloud is None:
            return self._change(
                "Device",
                name,
                "novacore",
                Action.CREATE,
                Reason.NOT_FOUND,
                at.site,
                after=after,
                diff=declared_diff(after, None),
                depends_on=deps,
                message="not provisioned in Novacore",
            )
        before = _observed_novacore_fields(cloud)
        for key in cloud.unset:
            # Declared, and reported empty: a value to set, not a field left unreported.
            if key in after:
                before[key] = None
        moved = self._moved_from(at, cloud, cloud_site, before, after)
        replaced_because = ""
        if before != after and (
            before["device_type"] != after["device_type"]
            or _der_type_changed(after["ders"], before["ders"])
        ):
            replaced_because = (
                "device type or a DER type changed; Novacore cannot update them in place"
            )
            if moved:
                replaced_because = f"{moved}; {replaced_because}"
        if replaced_because:
            return self._replace_device(
                at, name, Reason.CANNOT_UPDATE, before, after, deps, cloud.id, replaced_because
            )
        # Kept, with what it has: a DER nobody declares stays (a replace would drop it).
        self._unmanaged_ders(at, name, cloud, after["ders"])
        if moved:
            return self._plan_move(at, name, device, cloud, before, after, deps, moved)
        if before == after:
            # In sync, as most devices are: one comparison settles every field and DER.
            diff: list[FieldDiff] = []
        else:
            diff = _cloud_drift(after, before)
        message = ""
        if cloud.state == "orphaned":
            # Its gateway left the organisation and came back: provisioning binds it again.
            before["state"], after["state"] = "orphaned", "active"
            diff.append(FieldDiff("change", "state", "orphaned", "active"))
            message = "device is orphaned (its gateway changed organisation); provisioned again"
        action, reason = update_or_in_sync(diff)
        return self._change(
            "Device",
            name,
            "novacore",
            action,
            reason,
            at.site,
            before=before,
            after=after,
            diff=diff,
            depends_on=deps,
            external_id=cloud.id,
            message=message,
        )

    def _moved_from(
        self,
        at: _GatewayContext,
        cloud: NovacoreDevice,
        cloud_site: str | None,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> str:
        """Where a Novacore device is that is declared behind another gateway or in another
        site ("" when it is where it is declared). The gateway and the site it is bound to
        are set in `before` and the declared ones in `after`, so the diff shows the move."""
        other_gateway = cloud.gateway_serial not in (None, at.serial)
        other_site = cloud_site is not None and cloud_site != at.site_id
        if not (other_gateway or other_site):
            return ""
        old_gateway = self._gateway_name(cloud.gateway_serial) if other_gateway else at.gateway
        if other_gateway:
            before["gateway_serial"], after["gateway_serial"] = cloud.gateway_serial, at.serial
        if not other_site:
            return f"moves from gateway {old_gateway} to gateway {at.gateway}"
        assert cloud_site is not None
        old_site = self._site_name(at.org, cloud_site)
        before["site"], after["site"] = old_site, at.site
        return (
            f"moves from site {old_site} (gateway {old_gateway}) to site {at.site} "
            f"(gateway {at.gateway})"
        )

    def _plan_move(
        self,
        at: _GatewayContext,
        name: str,
        device: Device,
        cloud: NovacoreDevice,
        before: dict[str, Any],
        after: dict[str, Any],
        deps: list[str],
        moved: str,
    ) -> Change:
        """One change that moves a Novacore device to the gateway and site it is declared
        behind: provisioning its hardware id there rebinds it, with its id and DERs."""
        # The gateway and site it moves between are in both `before` and `after`: the
        # drift shows them with any field that changes too.
        diff = _cloud_drift(after, before)
        message = f"{moved}: provisioned there, Novacore rebinds device {cloud.id} (same id)"
        # A hardware id is one device in Novacore: declared twice, each declaration would
        # take it from the other on every apply.
        twice = [
            d
            for d in self._declared().get(device.spec.hardware_id or "", ())
            if d.device != name and d.org == at.org
        ]
        if twice:
            other = twice[0]
            message = (
                f"hardwareId {device.spec.hardware_id!r} is declared by Device {other.device} "
                f"too (gateway {other.gateway}, site {other.site}); Novacore has one device "
                f"per hardware id in an organisation, so it is not moved. Declare it once"
            )
        return self._change(
            "Device",
            name,
            "novacore",
            Action.UPDATE,
            Reason.MOVED,
            at.site,
            before=before,
            after=after,
            diff=diff,
            depends_on=deps,
            external_id=cloud.id,
            blocked=bool(twice),
            message=message,
        )

    def _plan_org_move(
        self, at: _GatewayContext, name: str, after: dict[str, Any], deps: list[str],
        left: OrgMove,
    ) -> Change:
        """A device provisioned in a site of another organisation, which no longer declares
        it: replaced, new one first. Provisioning it here makes a new device (Novacore
        rebinds a hardware id within an organisation only); the old one is deleted after
        that, so the hardware is never without a device, and never twice for good."""
        cloud = left.provisioned.device
        before = _observed_novacore_fields(cloud)
        old_gateway = self._gateway_name(cloud.gateway_serial) if cloud.gateway_serial else "none"
        before |= {"org_id": left.org, "site": left.site, "gateway_serial": cloud.gateway_serial}
        after = after | {"org_id": at.org, "site": at.site, "gateway_serial": at.serial}
        message = (
            f"moves from site {left.site} (gateway {old_gateway}) in {left.org} to site "
            f"{at.site} (gateway {at.gateway}) in {at.org}: Novacore does not move a device "
            f"between organisations, so it is provisioned in {at.org} as a new device (new "
            f"device and DER ids), then device {cloud.id} is deleted from {left.org}"
        )
        return self._replace_device(at, name, Reason.MOVED, before, after, deps, cloud.id,
                                    message)

    def _replace_device(
        self, at: _GatewayContext, name: str, reason: Reason, before: dict[str, Any],
        after: dict[str, Any], deps: list[str], device_id: str, message: str,
    ) -> Change:
        """The replace of Novacore device `device_id` by a new one provisioned for `name`.
        The new one has the declared DERs only: those the old one has that nobody declares
        (otherwise reported and left, `_unmanaged_ders`) are deleted with it, and said so."""
        diff = declared_diff(after, before)
        dropped = [n for n in before.get("ders", {}) if n not in after.get("ders", {})]
        if dropped:
            diff += [FieldDiff("remove", f"ders.{n}", before["ders"][n], None) for n in dropped]
            message += (
                f"; DER{'s' if len(dropped) > 1 else ''} {', '.join(dropped)}, not declared, "
                f"{'go' if len(dropped) > 1 else 'goes'} with device {device_id}"
            )
        return self._change(
            "Device",
            name,
            "novacore",
            Action.REPLACE,
            reason,
            at.site,
            before=before,
            after=after,
            diff=diff,
            depends_on=deps,
            external_id=device_id,
            message=message,
        )

    def _provisioned_in_other_org(self, at: _GatewayContext, hardware_id: str) -> OrgMove | None:
        """The Novacore device with `hardware_id` in a declared Site of another organisation
        that declares it nowhere (`moves.declared_in_other_org`): the one a Device declared
        behind `at`'s gateway moves here from. Of several, the lowest id."""
        if at.org is None or self._org_sites(at.org) is None:
            return None
        if self._provisioned is None:
            self._provisioned = ProvisionedIndex(self.observed)
        declared = self._declared().get(hardware_id, ())
        found: list[OrgMove] = []
        for provisioned in self._provisioned.outside(hardware_id, self._org_sites(at.org) or ()):
            org = self._org_of_site(provisioned.site_id)
            if org is None or any(d.org == org for d in declared):
                continue  # not listed, or still declared there: it stays
            site = self._declared_site(org, provisioned.site_id)
            if site is not None:  # a site nobody declares is left alone
                found.append(OrgMove(org, site, provisioned))
        return min(found, key=lambda m: m.provisioned.device.id) if found else None

    def _org_sites(self, org: str) -> set[str] | None:
        """The ids of the listed sites of `org` (None: not listed)."""
        org_sites = self._org_site_ids.get(org)
        if org_sites is None:
            listed = self.observed.novacore_sites.get(org)
            if not isinstance(listed, list):
                return None
            org_sites = self._org_site_ids[org] = {s.id for s in listed}
        return org_sites

    def _org_of_site(self, site_id: str) -> str | None:
        """The organisation whose listed sites include `site_id`."""
        if self._site_orgs is None:
            self._site_orgs = {
                s.id: org
                for org, listed in self.observed.novacore_sites.items()
                if isinstance(listed, list)
                for s in listed
            }
        return self._site_orgs.get(site_id)

    def _declared(self) -> dict[str, list[Declaration]]:
        if self._declarations is None:
            self._declarations = moves.declarations(self._whole)
        return self._declarations

    def _provisioned_elsewhere(self, at: _GatewayContext, hardware_id: str) -> Provisioned | None:
        """The Novacore device with `hardware_id` in another site of the organisation of
        `at`, which provisioning it behind `at`'s gateway moves here."""
        if at.org is None:
            return None
        org_sites = self._org_sites(at.org)
        if org_sites is None:
            return None
        if self._provisioned is None:
            self._provisioned = ProvisionedIndex(self.observed)
        return self._provisioned.elsewhere(hardware_id, org_sites, at.site_id)

    def _bound_gateway(self, site: Site, serial: str | None) -> str | None:
        """The Gateway of `site` that has `serial` (a Novacore device's gateway), if one
        is declared."""
        name = self._gateway_name(serial) if serial else None
        gateway = self.fleet.gateways.get(name or "")
        return name if gateway is not None and gateway.spec.site_ref == site.name else None

    def _gateway_name(self, serial: str | None) -> str:
        """The declared Gateway with this serial, else the serial."""
        if self._gateway_names is None:
            self._gateway_names = {
                g.spec.zap.serial: g.name for g in self._whole.gateways.values() if g.spec.zap
            }
        return self._gateway_names.get(serial or "", serial or "")

    def _site_index(self, org: str, listed: list[NovacoreSite]) -> SiteIndex:
        """The sites listed of `org` by id and name, indexed once per plan."""
        index = self._site_indexes.get(org)
        if index is None:
            index = self._site_indexes[org] = SiteIndex(listed)
        return index

    def _site_name(self, org: str | None, site_id: str) -> str:
        """The declared Site that matches the Novacore site `site_id` of `org`, else that
        site's name and id."""
        listed = self.observed.novacore_sites.get(org or "")
        if not isinstance(listed, list):
            return site_id
        declared = self._declared_site(org or "", site_id)
        if declared is not None:
            return declared
        known = self._site_index(org or "", listed).by_id.get(site_id)
        return f"{known.name!r} ({site_id})" if known is not None else site_id

    def _declared_site(self, org: str, site_id: str) -> str | None:
        """The declared Site that matches the Novacore site `site_id` of `org`."""
        listed = self.observed.novacore_sites.get(org)
        if not isinstance(listed, list):
            return None
        index = self._site_index(org, listed)
        for site in self._whole.sites.values():
            novacore = site.spec.novacore
            if novacore is not None and novacore.org_id == org:
                match = match_site(site, index)
                if match is not None and match.id == site_id:
                    return site.name
        return None

    def _plan_publish(
        self,
        site: str,
        name: str,
        hardware_id: str,
        ders: list[DerFields],
        zap_obs: ZapDevice | None,
        deps: list[str],
        *,
        added_again: bool = False,
    ) -> Change | None:
        """The DER publishing flags of device `name` (site `site`), declared as `ders`."""
        if added_again:
            # Removed and added again, the device starts with every DER switched off.
            flags = publish_flags(ders)
            before: dict[str, bool] | None = dict.fromkeys(flags, False)
        elif zap_obs is None:
            flags = publish_flags(ders)
            before = None
        else:
            flags = publish_flags(ders, zap_obs.ders)
            before = dict(zap_obs.ders)
        diff = declared_diff(flags, before)
        if before is None and not any(flags.values()):
            return None  # new devices start with every DER disabled: nothing to switch
        action, reason = update_or_in_sync(diff)
        return self._change(
            "Device",
            name,
            "publish",
            action,
            reason,
            site,
            before=before,
            after=flags,
            diff=diff,
            depends_on=deps if action is Action.UPDATE else [],
            external_id=hardware_id,
            message="added again with every DER switched off" if added_again and diff else "",
        )

    # -- unmanaged objects -----------------------------------------------------------------

    def _unmanaged_zap_devices(
        self, site: Site, gateway: Gateway, state: ZapState, declared: set[str | None]
    ) -> None:
        """Devices on the Zap that no hardware id `declared` on the gateway names."""
        for sn, zap_device in state.devices.items():
            if sn in declared:
                continue
            description = f"{zap_device.device_type or 'device'} {sn} on gateway {gateway.name}"
            elsewhere = [d for d in self._declared().get(sn, ()) if d.gateway != gateway.name]
            if elsewhere:
                # Moved with its hardware: the new gateway gets it; this one keeps a copy
                # that reads nothing until it is pruned.
                description += (
                    f" is declared on gateway {elsewhere[0].gateway} (Device "
                    f"{elsewhere[0].device}), not here"
                )
                if not self.prune:
                    description += "; use --prune to remove it from this gateway"
            else:
                description += " is not declared"
            entry = {
                "platform": "zap",
                "gateway": gateway.name,
                "id": sn,
                "description": description,
            }
            if self.prune:
                self._change(
                    "Device",
                    undeclared_device_name(gateway.name, sn),
                    "zap",
                    Action.DELETE,
                    Reason.MOVED if elsewhere else Reason.NOT_DECLARED,
                    site.name,
                    external_id=sn,
                    before=observed_connection(zap_device),
                    message=entry["description"] + "; removed (--prune)",
                    depends_on=[],
                )
            else:
                self.unmanaged.append(entry | {"prunable": True})

    def _unmanaged_cloud_devices(
        self, site: Site, devices: list[NovacoreDevice], matched: set[str]
    ) -> dict[str, str]:
        """Reports (or with --prune deletes) the site's Novacore devices no declared device
        is; returns the address of each delete by hardware id."""
        novacore = site.spec.novacore
        assert novacore is not None
        pruned: dict[str, str] = {}
        for cloud in devices:
            if cloud.id in matched:
                continue
            moving = moves.declared_elsewhere(
                self._declared(), cloud.hardware_id, site.name, novacore.org_id
            )
            if moving:
                # The site it moves to provisions it again, which rebinds it (plan.moves):
                # deleting it here, before or after that, would lose the device.
                self._site_moving_out(site, cloud, moving[0])
                continue
            leaving = moves.declared_in_other_org(
                self._declared(), cloud.hardware_id, novacore.org_id
            )
            if leaving:
                self._site_leaving_org(site, cloud, leaving[0])
                continue
            entry = {"platform": "novacore", "site": site.name}
            on = self._bound_gateway(site, cloud.gateway_serial)
            if on is not None:
                entry["gateway"] = on
            description = (
                f"Novacore device {cloud.id} ({cloud.hardware_id}, {cloud.name!r}) in site "
                f"{site.name} is not declared"
            )
            if cloud.state == "orphaned":
                # Not something someone added: it was bound to a gateway that has since left
                # the organisation, and says why it is still there.
                description += (
                    " and is orphaned (its gateway was released or transferred to another "
                    "organisation)"
                )
            entry |= {"id": cloud.id, "description": description}
            if self.prune:
                delete = self._change(
                    "Device",
                    f"{site.name}.{cloud.hardware_id}",
                    "novacore",
                    Action.DELETE,
                    Reason.NOT_DECLARED,
                    site.name,
                    external_id=cloud.id,
                    before=_observed_novacore_fields(cloud),
                    message=entry["description"] + "; deleted (--prune)",
                )
                pruned[cloud.hardware_id] = delete.address
                if on is not None:
                    self.pruned_on[delete.address] = on
                if cloud.gateway_serial:
                    self._pruned_behind.setdefault(cloud.gateway_serial, []).append(
                        delete.address
                    )
            else:
                self.unmanaged.append(entry | {"prunable": True})
        return pruned

    def _unmanaged_ders(
        self, at: _GatewayContext, name: str, cloud: NovacoreDevice, declared: dict[str, str]
    ) -> None:
        """DERs of the Novacore device of Device `name` that it does not declare (removed
        from the desired state, or added in Novacore). Novacore has no DER delete, so no
        plan can remove one, `--prune` included: each is reported, which is all the plan
        can do, rather than left in a no-op's message that the text and Markdown plans do
        not show."""
        for der in cloud.ders:
            if der.name in declared:
                continue
            self.unmanaged.append(
                {
                    "platform": "novacore",
                    "site": at.site,
                    "device": name,
                    "id": der.id,
                    "description": f"DER {der.name} ({der.type}, {der.id}) of Novacore device "
                    f"{cloud.id} (Device {name}) is not declared (Novacore has no DER delete; "
                    "left as it is)",
                    "prunable": False,
                }
            )

    def _site_moving_out(self, site: Site, cloud: NovacoreDevice, to: Declaration) -> None:
        """A Novacore device of `site` that the fleet declares in another site: said, never
        deleted (not even with --prune); the site it moves to plans the move."""
        self.unmanaged.append(
            {
                "platform": "novacore",
                "site": site.name,
                "id": cloud.id,
                "description": f"Novacore device {cloud.id} ({cloud.hardware_id}, "
                f"{cloud.name!r}) in site {site.name} is declared in site {to.site} "
                f"(Device {to.device}, gateway {to.gateway}); it moves there with "
                f"device/{to.device}[novacore] and is never pruned here",
                "prunable": False,
            }
        )

    def _site_leaving_org(self, site: Site, cloud: NovacoreDevice, to: Declaration) -> None:
        """A Novacore device of `site` that the fleet declares in a Site of another
        organisation only (plan.moves): the site it moves to replaces it, new one first,
        and deletes it here. Never deleted by this site before the new one exists, pruning
        or not; once it does (its replace made it but failed to delete this one), this
        site deletes it (the engine plans this site after every site's devices are read)."""
        novacore = site.spec.novacore
        assert novacore is not None and to.org is not None
        what = (
            f"Novacore device {cloud.id} ({cloud.hardware_id}, {cloud.name!r}) in site "
            f"{site.name}"
        )
        org_sites = self._org_sites(to.org)
        if self._provisioned is None:
            self._provisioned = ProvisionedIndex(self.observed)
        there = (
            self._provisioned.elsewhere(cloud.hardware_id, org_sites, None)
            if org_sites is not None
            else None
        )
        if there is not None:
            self._change(
                "Device",
                f"{site.name}.{cloud.hardware_id}",
                "novacore",
                Action.DELETE,
                Reason.MOVED,
                site.name,
                external_id=cloud.id,
                before=_observed_novacore_fields(cloud),
                message=f"{what} moved to site {to.site} of {to.org} (Device {to.device}), "
                f"where it is device {there.device.id}; deleted from {novacore.org_id}",
            )
            return
        self.unmanaged.append(
            {
                "platform": "novacore",
                "site": site.name,
                "id": cloud.id,
                "description": f"{what} is declared in site {to.site} of {to.org} (Device "
                f"{to.device}, gateway {to.gateway}); device/{to.device}[novacore] provisions "
                f"it there as a new device and it is deleted here once provisioned in "
                f"{to.org}, never before",
                "prunable": False,
            }
        )

    def _unmanaged_gateways(self) -> None:
        declared = self.fleet.zap_serials()
        for org, gateways in sorted(self.observed.novacore_gateways.items()):
            if isinstance(gateways, Unreachable):
                continue
            for serial in sorted(gateways - declared):
                policy = self.inventory.get(serial, DeletionPolicy.ORPHAN.value)
                description = f"gateway {serial} is claimed by {org} but not declared"
                declared_in = self.inventory_orgs.get(serial, org)
                if policy == DeletionPolicy.RELEASE.value and declared_in != org:
                    # Claimed into another organisation since (someone else's transfer):
                    # the policy was for our claim, and releasing theirs would orphan
                    # their devices on it.
                    self.unmanaged.append(
                        {
                            "platform": "novacore",
                            "id": serial,
                            "description": f"{description}; left claimed (its deletionPolicy "
                            f"Release was declared for it in {declared_in})",
                            "prunable": False,
                        }
                    )
                elif (
                    self.prune or serial in self.release_serials
                ) and policy == DeletionPolicy.RELEASE.value:
                    release = serial_release(
                        serial, org, description + "; released (deletionPolicy Release)"
                    )
                    self._release_after_devices(release, serial, org)
                    self._add(release)
                else:
                    why = (
                        "deletionPolicy Orphan"
                        if policy == DeletionPolicy.ORPHAN.value
                        else "use --prune to release it"
                    )
                    if not self.prune and policy == DeletionPolicy.RELEASE.value:
                        why = "deletionPolicy Release; use --prune to release it"
                    self.unmanaged.append(
                        {
                            "platform": "novacore",
                            "id": serial,
                            "description": f"{description}; left claimed ({why})",
                            # Without --prune, Release is what a prune would release.
                            "prunable": policy == DeletionPolicy.RELEASE.value,
                        }
                    )

    def _release_after_devices(self, release: Change, serial: str, org: str) -> None:
        """Release `serial` only after the Novacore devices bound to it are deleted
        (--prune) or moved behind another gateway (a swapped gateway): a release orphans
        whatever is still bound to it. While one of those changes is blocked or deferred
        (the new gateway not claimable yet, or offline), or the devices of a site of `org`
        could not be read, the release waits with it instead of orphaning them."""
        waits_for = set(self._pruned_behind.get(serial, []))
        for change in self.changes:
            if (
                change.kind == "Device"
                and change.component == "novacore"
                and change.is_change
                and (change.before or {}).get("gateway_serial") == serial
            ):
                waits_for.add(change.address)
        waiting = [c for c in self.changes if c.address in waits_for]
        release.depends_on = sorted(waits_for)
        blocked = next((c for c in waiting if c.blocked), None)
        if blocked is not None:
            self._block(release, blocked)
            return
        deferred = next((c for c in waiting if c.action is Action.DEFER), None)
        if deferred is not None:
            defer(
                release,
                f"the devices bound to it go first, and {deferred.address} is deferred",
                unread=False,
            )
            return
        org_sites = self._org_sites(org)
        if org_sites is None:
            listed = self.observed.novacore_sites.get(org)
            why = listed.reason if isinstance(listed, Unreachable) else "not read yet"
            defer(release, f"the sites of {org}, whose devices may be bound to it, could "
                  f"not be listed: {why}", unread=False)
            return
        handled = {c.external_id for c in waiting if c.external_id}
        bound: list[str] = []
        for site_id in sorted(org_sites):
            devices = self.observed.novacore_devices.get(site_id)
            if isinstance(devices, Unreachable) or devices is None:
                # Every site of the organisation is read once a release is planned
                # (`engine.release_reads`): one not read is one that could not be.
                why = devices.reason if devices is not None else "not read yet"
                defer(
                    release,
                    f"the Novacore devices of site {site_id}, which may be bound to it, "
                    f"could not be read: {why}",
                    unread=False,
                )
                return
            bound += [
                f"device {d.id} ({d.hardware_id}) in site {self._site_name(org, site_id)}"
                for d in devices
                if d.gateway_serial == serial and d.state != "orphaned" and d.id not in handled
            ]
        if bound:
            # Nothing this plan does takes them off it (a site no Site declares, or a device
            # no Device declares without --prune): releasing it would orphan them.
            release.blocked = True
            release.reason = Reason.DEPENDENCY_BLOCKED
            release.message = (
                f"{release.message}; blocked: Novacore devices are bound to it that this plan "
                f"does not move or delete, and a release orphans them: {', '.join(bound[:5])}"
                + (f" and {len(bound) - 5} more" if len(bound) > 5 else "")
                + "; delete them or move them to another gateway first"
            )

    # -- cross-cutting -----------------------------------------------------------------------

    @staticmethod
    def _block(change: Change, cause: Change) -> None:
        # What is in sync has nothing to wait for: a no-op counted as blocked made a plan
        # say "5 blocked" over three blocked rows, the no-ops being hidden.
        if not change.is_change:
            return
        change.blocked = True
        change.reason = Reason.DEPENDENCY_BLOCKED
        change.message = f"blocked by {cause.address}: {cause.message}"

    def _defer(
        self, changes: Iterable[Change], why: str, offline_gateways: set[str], cloud_unread: bool
    ) -> None:
        for change in changes:
            if change.action in (Action.NO_OP, Action.DEFER):
                continue
            unread = change.kind == "Device" and (
                cloud_unread
                if change.component == "novacore"
                else gateway_of_change(self.fleet, change) in offline_gateways
            )
            defer(change, why, unread=unread)
