"""Planning for Enapter Cloud (API v3): the Enapter site, the Enapter Gateway, and devices of
every provisioning kind, plus the records of what Enapter reports (`EnapterState`, the
`enapter` section of `Observed.extra`). Pure: the observer in `engine.enapter` fills the
records; `plan.platforms` registers `plan_enapter`.

Order inside a site: site → gateway → UCM / vUCM / LINK master / embedded / standalone →
Lua device on its runtime, LINK slave on its master (each device `depends_on` what it runs
on). Removals (only with `--prune`, only devices found in a managed site that are not
declared) run the other way: downstream devices first, because Enapter refuses to delete
an upstream device with devices still running on it.

Natural keys, so no local state is needed to find remote devices: the hardware id for the
kinds that have one (the Enapter types in `HARDWARE_TYPES`), and (site, slug) for
standalone and Lua devices, whose slug defaults to the resource name.

Existing devices are never provisioned again: a name or slug change is a PATCH, a blueprint
change an `assign_blueprint`, a protocol change or a missing config output a
`generate_config`. Communication configs carry credentials; they never appear here, only
whether the declared output (a file, or a Secret where the operator can check) exists and
for which device an earlier apply wrote the file, and which file an earlier apply wrote for
a device that a delete, or its config written to another file, removes after it, or that
an update removes once the device's configOutput names it no more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.device import SLUG_KEYED, Device, EnapterKind
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan import renames
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
from reconciler.plan.observed import Observed, Unreachable
from reconciler.plan.renames import Rename

COMPONENT = "enapter"

# Enapter device types (platform-apis §2.1 DeviceType).
GATEWAY = "GATEWAY"
NATIVE = "NATIVE"
EMBEDDED_UCM = "EMBEDDED_UCM"
TYPE_OF_KIND: dict[EnapterKind, str] = {
    EnapterKind.UCM: "HARDWARE_UCM",
    EnapterKind.VUCM: "VIRTUAL_UCM",
    EnapterKind.EMBEDDED: EMBEDDED_UCM,
    EnapterKind.LINK_MASTER: "LINK_MASTER_UCM",
    EnapterKind.LINK_SLAVE: "LINK_SLAVE_UCM",
    EnapterKind.STANDALONE: "STANDALONE",
    EnapterKind.LUA: "LUA",
}
# Types that own their hardware id. LUA and NATIVE devices report the hardware id of the
# module they run on, and standalone devices a synthetic one, so none of those is a key.
HARDWARE_TYPES = frozenset(
    {GATEWAY, "HARDWARE_UCM", "VIRTUAL_UCM", EMBEDDED_UCM, "LINK_MASTER_UCM", "LINK_SLAVE_UCM"}
)
# Kinds whose provisioning takes a protocol and answers with a communication config.
CONFIG_ON_PROVISION = frozenset({EnapterKind.UCM, EnapterKind.EMBEDDED})
# Enapter generates no config for UCM_LUA communication (seed 003).
NO_CONFIG = frozenset({EnapterKind.LUA})
# MQTT communication types and the protocol each one means.
PROTOCOL_OF_COMMUNICATION = {"MQTT_V1_TLS": "MQTTS", "MQTT_V1_PLAINTEXT": "MQTT"}
# The diff path of a config file an earlier apply wrote for a device whose configOutput
# names it no more: its update removes it (`engine.enapter_files`).
WRITTEN_FILE = "written_config_file"
# Runtimes and masters are planned before the devices that run on them.
_RANK = {EnapterKind.LINK_SLAVE: 1, EnapterKind.LUA: 1}


# -- observed records -------------------------------------------------------------------------


@dataclass(frozen=True)
class EnapterSiteState:
    """One entry of GET v3/sites."""

    id: str
    name: str
    timezone: str
    location: dict[str, Any] | None = None


@dataclass(frozen=True)
class EnapterDeviceState:
    """One entry of GET v3/sites/{id}/devices?expand=communication,properties."""

    id: str
    site_id: str
    type: str
    name: str
    slug: str
    blueprint_id: str | None = None
    hardware_id: str | None = None
    upstream_id: str | None = None
    communication_type: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigOutputState:
    """Whether a device's declared config output exists. `target` names it for messages
    (a path or a Secret name); it never holds the config. `written_for`: the Enapter
    device id the records say the file or Secret was written for (still as written), None
    when no record names it; one written for another device holds no config of this one.
    `foreign`: a Secret the reconciler did not write, which it does not write over."""

    target: str
    present: bool
    written_for: str | None = None
    foreign: bool = False


@dataclass
class EnapterState:
    """The `enapter` section of `Observed.extra`."""

    # GET v3/sites (every page), or Unreachable.
    sites: list[EnapterSiteState] | Unreachable
    # Enapter site id -> its devices, for the sites the fleet declares and that exist.
    devices: dict[str, list[EnapterDeviceState] | Unreachable] = field(default_factory=dict)
    # Device resource name -> its config output, where the observer could check it.
    config_outputs: dict[str, ConfigOutputState] = field(default_factory=dict)
    # Whether this run can write `configOutput.secretName` (the operator can; the CLI not).
    secret_store: bool = False
    # Ids of the sites no declared Site matches, whose devices were read because a Site
    # matches no site by name: where the site it was renamed from is looked for.
    unclaimed: tuple[str, ...] = ()
    # Enapter device id -> the config files earlier applies wrote for it, still as written
    # and named by no declared Device: its delete, or its update once its config is where
    # its Device declares it now, removes them (`engine.enapter_files`).
    written_files: dict[str, list[str]] = field(default_factory=dict)
    # Enapter device id -> (Site name, config files) for each device whose delete an
    # apply of that Site sent, and whose files it had not removed yet
    # (`engine.enapter_files`).
    interrupted_deletes: dict[str, tuple[str, list[str]]] = field(default_factory=dict)


# -- declared fields and natural keys ---------------------------------------------------------


def kind_of(device: Device) -> EnapterKind:
    assert device.spec.enapter is not None
    return EnapterKind(device.spec.enapter.kind)


def device_slug(device: Device) -> str | None:
    """The slug a device is found by (`Device.enapter_slug`, which the fleet's uniqueness
    rule uses too); None where Enapter picks."""
    assert device.spec.enapter is not None
    return device.enapter_slug


def site_fields(site: Site) -> dict[str, Any]:
    """Declared fields of the Enapter site."""
    out: dict[str, Any] = {"name": site.spec.display_name, "timezone": site.spec.timezone}
    location = site.spec.location
    if location is not None:
        declared: dict[str, Any] = {"latitude": location.latitude, "longitude": location.longitude}
        if location.name:
            declared["name"] = location.name
        out["location"] = declared
    return out


def location_body(site: Site) -> dict[str, Any] | None:
    """The site location as Enapter takes it (site create and gateway provisioning). The
    name is always sent: Enapter otherwise names the location after the site."""
    location = site.spec.location
    if location is None:
        return None
    return {
        "name": location.name or site.spec.display_name,
        "latitude": location.latitude,
        "longitude": location.longitude,
    }


def compares_protocol(device: Device) -> bool:
    """The protocol matters where provisioning takes it or a config is delivered."""
    enapter = device.spec.enapter
    assert enapter is not None
    kind = kind_of(device)
    delivered = enapter.config_output is not None and kind not in NO_CONFIG
    return kind in CONFIG_ON_PROVISION or delivered


def device_fields(device: Device) -> dict[str, Any]:
    """Declared fields of the device in Enapter's terms (no secret, no remote id)."""
    enapter = device.spec.enapter
    assert enapter is not None
    kind = kind_of(device)
    out: dict[str, Any] = {"type": TYPE_OF_KIND[kind], "name": device.display_name}
    if device.spec.hardware_id is not None and kind not in SLUG_KEYED:
        out["hardware_id"] = device.spec.hardware_id
    slug = device_slug(device)
    if slug is not None:
        out["slug"] = slug
    if enapter.blueprint_id is not None:
        out["blueprint_id"] = enapter.blueprint_id
    if enapter.embedded_type is not None:
        out["embedded_type"] = str(enapter.embedded_type)
    if compares_protocol(device):
        out["protocol"] = str(enapter.protocol)
    if enapter.runtime_ref is not None:
        out["runtime"] = enapter.runtime_ref
    if enapter.master_ref is not None:
        out["master"] = enapter.master_ref
    output = enapter.config_output
    if output is not None and output.file is not None:
        out["config_file"] = output.file
    elif output is not None and output.secret_name is not None:
        out["config_secret"] = output.secret_name
    return out


def match_site(site: Site, candidates: Iterable[EnapterSiteState]) -> EnapterSiteState | None:
    """The Enapter site a Site declares: by `siteId` when given, else by display name."""
    enapter = site.spec.enapter
    assert enapter is not None
    for candidate in candidates:
        if enapter.site_id is not None:
            if candidate.id == enapter.site_id:
                return candidate
        elif candidate.name == site.spec.display_name:
            return candidate
    return None


def unclaimed_sites(
    sites: list[EnapterSiteState], declared: Iterable[Site]
) -> list[EnapterSiteState]:
    """The remote sites that none of the `declared` Sites matches."""
    claimed = {
        match.id
        for site in declared
        if site.spec.enapter is not None
        for match in (match_site(site, sites),)
        if match is not None
    }
    return [s for s in sites if s.id not in claimed]


def site_devices(fleet: Fleet, site: Site) -> list[Device]:
    """The Site's Enapter devices (behind its gateways, and cloud-only), in fleet order."""
    return [
        d
        for d in fleet.devices.values()
        if d.spec.enapter is not None and fleet.site_of_device(d) is site
    ]


def site_keys(fleet: Fleet, site: Site) -> tuple[set[str], set[str]]:
    """(hardware ids, slugs): the natural keys of the Site's gateways and devices."""
    hardware = {
        g.spec.enapter.hardware_id for g in fleet.gateways_of(site.name) if g.spec.enapter
    }
    slugs: set[str] = set()
    for device in site_devices(fleet, site):
        if kind_of(device) in SLUG_KEYED:
            slugs.add(device_slug(device) or "")
        elif device.spec.hardware_id is not None:
            hardware.add(device.spec.hardware_id)
    return hardware, slugs - {""}


def needs_rename_search(fleet: Fleet, site: Site) -> bool:
    """Whether to look for the Enapter site this Site was renamed from, when no site has its
    name: it is found by name (no `siteId`) and has objects to recognise it by."""
    enapter = site.spec.enapter
    return enapter is not None and enapter.site_id is None and any(site_keys(fleet, site))


def declared_by(fleet: Fleet, site: Site) -> Callable[[EnapterDeviceState], bool]:
    """Whether a remote device carries a hardware id or slug the Site declares."""
    hardware, slugs = site_keys(fleet, site)

    def declared(remote: EnapterDeviceState) -> bool:
        # A NATIVE device is the half Enapter makes for an embedded UCM: the module's id.
        if remote.type in HARDWARE_TYPES or remote.type == NATIVE:
            return remote.hardware_id in hardware
        return remote.slug in slugs

    return declared


def find_renamed(fleet: Fleet, site: Site, state: EnapterState) -> Rename[EnapterSiteState]:
    """The unclaimed Enapter site that is this Site renamed (see `plan.renames`): one whose
    devices all carry a hardware id or slug the Site declares."""
    assert isinstance(state.sites, list)
    candidates = [s for s in state.sites if s.id in state.unclaimed]
    return renames.find_renamed(candidates, state.devices, declared_by(fleet, site))


def hardware_missing(
    fleet: Fleet, site: Site, devices: list[EnapterDeviceState] | Unreachable
) -> bool:
    """Whether the Site's matched Enapter site (its `devices`, read) lacks a hardware id
    the Site declares: the observer then reads the unclaimed sites too, as Enapter keeps a
    hardware id in one site of the organisation and provisioning it here would fail if it
    is in another (`held_elsewhere`)."""
    if isinstance(devices, Unreachable):
        return False
    hardware, _ = site_keys(fleet, site)
    return bool(hardware - {d.hardware_id for d in devices if d.type in HARDWARE_TYPES})


@dataclass(frozen=True)
class HeldElsewhere:
    """An unclaimed Enapter site holding hardware ids a Site declares (`held_elsewhere`)."""

    site: EnapterSiteState
    # Hardware id -> the device there that has it.
    declared: dict[str, EnapterDeviceState]
    # What it also holds that the Site does not declare (what kept the rename search from
    # taking it), NATIVE halves of embedded UCMs aside.
    undeclared: list[EnapterDeviceState]

    def message(self) -> str:
        """What holds the hardware ids, why that site is not this Site's, and what to do."""
        site = f"Enapter site {self.site.id} ({self.site.name!r})"
        ids = ", ".join(sorted(self.declared))
        held = f"{site} holds hardware id{'s' if len(self.declared) > 1 else ''} {ids}"
        pin = f"set `siteId: {self.site.id}` on this Site to use that site"
        if not self.undeclared:
            return f"{held} and nothing this Site does not declare: {pin}"
        shown = [
            f"{d.type} device {d.id} ({d.name!r}, slug {d.slug})" for d in self.undeclared[:3]
        ]
        more = len(self.undeclared) - len(shown)
        listed = ", ".join(shown) + (f" and {more} more" if more else "")
        return (
            f"{held}, but is not taken for this Site renamed because it also holds {listed}, "
            f"which this Site does not declare: {pin} (what it does not declare is then "
            "listed as unmanaged, or deleted with --prune), or delete or declare "
            f"{'that device' if len(self.undeclared) == 1 else 'those devices'}"
        )


def held_elsewhere(
    fleet: Fleet, site: Site, state: EnapterState, own: str | None
) -> list[HeldElsewhere]:
    """The unclaimed sites read (other than `own`, the Site's) that hold a hardware id the
    Site declares. Enapter keeps a hardware id in one site of the organisation, so the
    Site's gateway or device cannot be provisioned while one does."""
    if not isinstance(state.sites, list):
        return []
    hardware, _ = site_keys(fleet, site)
    declared = declared_by(fleet, site)
    out: list[HeldElsewhere] = []
    for candidate in state.sites:
        devices = state.devices.get(candidate.id)
        if candidate.id == own or candidate.id not in state.unclaimed:
            continue
        if not isinstance(devices, list):
            continue  # not read (too many to search) or unreadable: nothing to tell
        found = {
            d.hardware_id: d
            for d in devices
            if d.type in HARDWARE_TYPES and d.hardware_id is not None and d.hardware_id in hardware
        }
        if found:
            out.append(HeldElsewhere(candidate, found, [d for d in devices if not declared(d)]))
    return out


@dataclass(frozen=True)
class HeldByOtherSite:
    """A hardware id a Site declares, found in the Enapter site of another declared Site
    that declares it no more: the device moved between Sites in git (`moved_from`)."""

    owner: Site  # the Site whose Enapter site holds it
    site: EnapterSiteState
    device: EnapterDeviceState

    @property
    def delete_address(self) -> str:
        """The address of the delete that `--prune` plans for it in the owner's site."""
        return address_of("Device", f"{self.owner.name}.{self.device.slug}", COMPONENT)

    def where(self) -> str:
        return (
            f"hardware id {self.device.hardware_id} is in Enapter site {self.site.id} "
            f"({self.site.name!r}) of Site {self.owner.name}, which declares it no more "
            f"({self.device.type} device {self.device.id}), and Enapter keeps a hardware id "
            "in one site"
        )


def moved_from(
    whole: Fleet, site: Site, state: EnapterState, hardware_id: str | None
) -> HeldByOtherSite | None:
    """The device with `hardware_id` in the Enapter site of another declared Site (read),
    where that Site does not declare it: provisioning it in `site` fails (409) until it is
    deleted there."""
    if hardware_id is None or not isinstance(state.sites, list):
        return None
    for owner in whole.sites.values():
        if owner is site or owner.spec.enapter is None:
            continue
        remote = match_site(owner, state.sites)
        devices = state.devices.get(remote.id) if remote is not None else None
        if remote is None or not isinstance(devices, list):
            continue
        declared = declared_by(whole, owner)
        for device in devices:
            if (
                device.type in HARDWARE_TYPES
                and device.hardware_id == hardware_id
                and not declared(device)
            ):
                return HeldByOtherSite(owner, remote, device)
    return None


def find_gateway(
    gateway: Gateway, devices: Iterable[EnapterDeviceState]
) -> EnapterDeviceState | None:
    assert gateway.spec.enapter is not None
    hardware_id = gateway.spec.enapter.hardware_id
    return next((d for d in devices if d.type == GATEWAY and d.hardware_id == hardware_id), None)


def find_device(
    device: Device, devices: Iterable[EnapterDeviceState]
) -> tuple[EnapterDeviceState | None, str | None]:
    """The remote device by natural key, or (None, why it cannot be created) when the key is
    held by a device of another type."""
    kind = kind_of(device)
    expected = TYPE_OF_KIND[kind]
    if kind in SLUG_KEYED:
        slug = device_slug(device)
        holder = next((d for d in devices if d.slug == slug), None)
        what = f"slug {slug!r}"
    else:
        holder = next(
            (
                d
                for d in devices
                if d.hardware_id == device.spec.hardware_id and d.type in HARDWARE_TYPES
            ),
            None,
        )
        what = f"hardware id {device.spec.hardware_id}"
    if holder is None or holder.type == expected:
        return holder, None
    return None, (
        f"{what} belongs to {holder.type} device {holder.id} ({holder.name!r}), not a "
        f"{expected}; Enapter cannot change a device's type: delete that device in "
        f"Enapter Cloud or correct the declaration"
    )


def observed_protocol(remote: EnapterDeviceState) -> str | None:
    return PROTOCOL_OF_COMMUNICATION.get(remote.communication_type or "")


# -- the planner ------------------------------------------------------------------------------


@dataclass
class _SiteWork:
    """What one site's planning has found so far."""

    site: Site
    site_change: Change
    devices: list[EnapterDeviceState]
    gateway_changes: dict[str, Change] = field(default_factory=dict)
    device_changes: dict[str, Change] = field(default_factory=dict)
    # Remote id -> the resource name it was matched to.
    matched: dict[str, str] = field(default_factory=dict)
    # Unclaimed sites holding hardware ids the Site declares (`held_elsewhere`).
    elsewhere: list[HeldElsewhere] = field(default_factory=list)

    def held_by(self, hardware_id: str | None) -> HeldElsewhere | None:
        return next((h for h in self.elsewhere if hardware_id in h.declared), None)


@dataclass
class EnapterPlanner:
    """Plans the Enapter part of one fleet. Construct, then call `plan()`."""

    fleet: Fleet
    state: EnapterState | None
    prune: bool = False
    changes: list[Change] = field(default_factory=list)
    unmanaged: list[dict[str, Any]] = field(default_factory=list)
    # What a renamed Site is recognised by (planner.PlanOptions.whole_fleet); None: `fleet`.
    whole_fleet: Fleet | None = None
    # Creates of hardware ids another declared Site's Enapter site holds (`moved_from`),
    # settled once every site is planned, as they wait for that site's delete.
    moves: list[tuple[Change, HeldByOtherSite]] = field(default_factory=list)

    def plan(self) -> tuple[list[Change], list[dict[str, Any]]]:
        for site in self.fleet.sites.values():
            if site.spec.enapter is not None:
                self._plan_site(site)
        self._settle_moves()
        return self.changes, self.unmanaged

    def _moved(self, work: _SiteWork, change: Change, hardware_id: str | None) -> None:
        """Note a create whose hardware id another declared Site's Enapter site holds."""
        if self.state is None or change.blocked:
            return
        held = moved_from(self.whole_fleet or self.fleet, work.site, self.state, hardware_id)
        if held is not None:
            self.moves.append((change, held))

    def _settle_moves(self) -> None:
        """A device moved between Sites in git is provisioned in its new site only after
        `--prune` deleted it from its old one: Enapter refuses (409) a hardware id another
        site holds, and the two sites' changes would otherwise run side by side. Without
        that delete in this plan the create is blocked, saying what to do."""
        by_address = {c.address: c for c in self.changes}
        for change, held in self.moves:
            if change.action is not Action.CREATE or change.blocked:
                continue  # deferred, or blocked since (by what it depends on)
            delete = by_address.get(held.delete_address)
            if delete is not None and delete.action is Action.DELETE and not delete.blocked:
                change.depends_on = [*change.depends_on, delete.address]
                change.message = (
                    f"{held.where()}: it is deleted there first ({delete.address}, --prune), "
                    f"then provisioned here; {change.message}"
                )
            elif delete is not None and delete.blocked:
                _block(change, delete)
            else:
                change.blocked = True
                change.message = (
                    f"{held.where()}, so provisioning it here would fail until it is deleted "
                    f"there: apply with --prune, Site {held.owner.name} included, to delete "
                    "it there and provision it here"
                )

    def _change(
        self, kind: str, name: str, action: Action, reason: Reason, site: Site, **kwargs: Any
    ) -> Change:
        change = Change.new(kind, name, COMPONENT, action, reason, site=site.name, **kwargs)
        self.changes.append(change)
        return change

    # -- site ------------------------------------------------------------------------------

    def _plan_site(self, site: Site) -> None:
        first = len(self.changes)
        why: list[str] = []
        sites = self.state.sites if self.state is not None else Unreachable("not observed")
        remote: EnapterSiteState | None = None
        elsewhere: list[HeldElsewhere] = []
        if isinstance(sites, Unreachable):
            why.append(f"Enapter sites: {sites.reason}")
            site_change = self._change(
                "Site",
                site.name,
                Action.DEFER,
                Reason.TARGET_UNREACHABLE,
                site,
                after=site_fields(site),
            )
        else:
            remote = match_site(site, sites)
            rename = None
            whole = self.whole_fleet or self.fleet
            if remote is None and self.state is not None and needs_rename_search(whole, site):
                rename = find_renamed(whole, site, self.state)
                remote = rename.site
            site_change = self._site_change(site, remote, rename)
            if rename is not None and rename.unreachable:
                why.append(f"looking for the site it was renamed from: {rename.problem}")
            elif self.state is not None:
                elsewhere = held_elsewhere(whole, site, self.state, remote.id if remote else None)
                if elsewhere and remote is None and not site_change.blocked:
                    # A new site would stay empty: its gateway's and devices' provisioning
                    # fails (409) while their hardware ids are in another site, and every
                    # later plan, finding the empty site by name, would try again.
                    site_change.blocked = True
                    site_change.diff = []
                    site_change.message = (
                        f"{site_change.message}, and creating it would leave it empty: "
                        "Enapter keeps a hardware id in one site of the organisation. "
                        + "; ".join(h.message() for h in elsewhere)
                    )
        devices: list[EnapterDeviceState] = []
        devices_unread = False
        if remote is not None:
            observed = (
                self.state.devices.get(remote.id, Unreachable("not observed"))
                if self.state is not None
                else Unreachable("not observed")
            )
            if isinstance(observed, Unreachable):
                why.append(f"devices of Enapter site {remote.id}: {observed.reason}")
                devices_unread = True
            else:
                devices = observed
        work = _SiteWork(site, site_change, devices, elsewhere=elsewhere)
        for gateway in self.fleet.gateways_of(site.name):
            if gateway.spec.enapter is not None:
                self._plan_gateway(work, gateway)
        for device in self._devices_of(site):
            self._plan_device(work, device)
        if why:
            sites_unread = isinstance(sites, Unreachable)
            _defer(
                self.changes[first:],
                "; ".join(why),
                lambda change: sites_unread or (devices_unread and change.kind != "Site"),
            )
        else:
            self._note_twins(work)
            self._undeclared(work)
            self._slug_holders(work)

    def _slug_holders(self, work: _SiteWork) -> None:
        """A slug a Device declares that another device of the site has: Enapter keeps a
        slug unique in a site and refuses (409) to give it to a second device, on every
        apply. The change waits for the change that frees the slug (the other declared
        Device's own slug change, or its delete with --prune) or, with none, is blocked,
        naming the device that has it."""
        by_address = {c.address: c for c in self.changes}
        waiting: list[tuple[Change, Change]] = []
        for name, change in work.device_changes.items():
            device = self.fleet.devices[name]
            slug = device.spec.enapter.slug if device.spec.enapter is not None else None
            if not slug or change.blocked or kind_of(device) in SLUG_KEYED:
                continue  # a slug-keyed device with that slug is this one
            if change.action is Action.UPDATE and not any(d.path == "slug" for d in change.diff):
                continue
            if change.action not in (Action.CREATE, Action.UPDATE):
                continue
            holder = next(
                (d for d in work.devices if d.slug == slug and d.id != change.external_id), None
            )
            if holder is None:
                continue
            owner = work.matched.get(holder.id)
            whose = f"Device {owner}'s" if owner is not None else "which this Site does not declare"
            held = (
                f"slug {slug} belongs to {holder.type} device {holder.id} ({holder.name!r}), "
                f"{whose}, and Enapter keeps a slug unique in a site"
            )
            if owner is not None:
                frees = work.device_changes.get(owner)
                if frees is not None and not any(d.path == "slug" for d in frees.diff):
                    frees = None
            else:
                delete = address_of("Device", f"{work.site.name}.{holder.slug}", COMPONENT)
                frees = by_address.get(delete)
            if frees is None or frees.blocked or _waits_for(frees, change, by_address):
                change.blocked = True
                change.message = f"{held}: " + (
                    "give one of them another slug"
                    if owner is not None
                    else "delete it (apply --prune) or declare another slug"
                )
                continue
            change.depends_on = [*change.depends_on, frees.address]
            change.message += f"; {held}: this waits for {frees.address}, which frees it"
            waiting.append((change, frees))
        # One blocked since (each of two swapping their slugs waits for the other) blocks
        # what waits for it, which would otherwise run and fail.
        while blocked := [(c, f) for c, f in waiting if f.blocked and not c.blocked]:
            for change, frees in blocked:
                _block(change, frees)

    def _note_twins(self, work: _SiteWork) -> None:
        """A Lua device's slug is its key, so a slug changed in git creates a second device
        and leaves the old one, undeclared: say so on the create where an undeclared Lua
        device runs the same blueprint on the same runtime, as both will run."""
        for name, change in work.device_changes.items():
            enapter = self.fleet.devices[name].spec.enapter
            runtime = work.device_changes.get(enapter.runtime_ref or "") if enapter else None
            if change.action is not Action.CREATE or change.blocked:
                continue
            if runtime is None or runtime.external_id is None:
                continue  # a new runtime runs nothing yet
            twin = next(
                (
                    d
                    for d in work.devices
                    if d.type == TYPE_OF_KIND[EnapterKind.LUA]
                    and d.id not in work.matched
                    and d.upstream_id == runtime.external_id
                    and d.blueprint_id == (change.after or {}).get("blueprint_id")
                ),
                None,
            )
            if twin is None:
                continue
            where, after = (
                ("deleted below, --prune", "this apply deletes the old one")
                if self.prune
                else ("unmanaged, below", "it will run twice until --prune removes the old one")
            )
            change.message += (
                f"; the device with slug {twin.slug} ({where}) runs the same blueprint on "
                f"this runtime: if this is a slug change, {after}"
            )

    def _site_change(
        self,
        site: Site,
        remote: EnapterSiteState | None,
        rename: Rename[EnapterSiteState] | None = None,
    ) -> Change:
        enapter = site.spec.enapter
        assert enapter is not None
        after = site_fields(site)
        if remote is None:
            not_found = f"no Enapter site named {site.spec.display_name!r}"
            blocked_because = None
            if rename is not None and rename.problem is not None and not rename.unreachable:
                blocked_because = f"{not_found}, and {rename.problem}"
            elif enapter.site_id is not None:
                blocked_because = (
                    f"Enapter site {enapter.site_id} does not exist (or this token cannot see "
                    "it); remove `siteId` to create a new site"
                )
            return self._change(
                "Site",
                site.name,
                Action.CREATE,
                Reason.NOT_FOUND,
                site,
                after=after,
                blocked=blocked_because is not None,
                diff=declared_diff(after, None) if blocked_because is None else [],
                message=blocked_because or (rename.not_found(not_found) if rename else not_found),
            )
        before: dict[str, Any] = {"name": remote.name, "timezone": remote.timezone}
        if remote.location is not None:
            before["location"] = dict(remote.location)
        diff = declared_diff(after, before)
        return self._change(
            "Site",
            site.name,
            *update_or_in_sync(diff),
            site,
            before=before,
            after=after,
            diff=diff,
            external_id=remote.id,
            message=renames.RENAMED_MESSAGE.format(id=remote.id) if rename is not None else "",
        )

    # -- gateway ---------------------------------------------------------------------------

    def _plan_gateway(self, work: _SiteWork, gateway: Gateway) -> None:
        spec = gateway.spec.enapter
        assert spec is not None
        site = work.site
        after = {"hardware_id": spec.hardware_id, "firmware_version": spec.firmware_version}
        deps = [work.site_change.address] if work.site_change.is_change else []
        remote = find_gateway(gateway, work.devices)
        if remote is None:
            other = next((d for d in work.devices if d.type == GATEWAY), None)
            change = self._change(
                "Gateway",
                gateway.name,
                Action.CREATE,
                Reason.NOT_FOUND,
                site,
                after=after,
                diff=declared_diff(after, None),
                depends_on=deps,
                message="not provisioned in Enapter Cloud; the gateway's "
                "communication config is not kept (a Gateway has no "
                "configOutput)",
            )
            if other is not None:
                change.blocked = True
                change.message = (
                    f"the Enapter site already has gateway {other.id} (hardware id "
                    f"{other.hardware_id}) and a site has one gateway: remove it "
                    "first or declare that one"
                )
            held = work.held_by(spec.hardware_id)
            if held is not None:
                change.blocked = True
                change.message = _held_message(spec.hardware_id, held)
            self._moved(work, change, spec.hardware_id)
        else:
            work.matched[remote.id] = gateway.name
            before: dict[str, Any] = {"hardware_id": remote.hardware_id}
            if remote.properties.get("gateway_version") is not None:
                before["firmware_version"] = remote.properties["gateway_version"]
            diff = compared_only_where_reported(after, before)
            if diff:
                change = self._change(
                    "Gateway",
                    gateway.name,
                    Action.UPDATE,
                    Reason.DRIFT,
                    site,
                    before=before,
                    after=after,
                    diff=diff,
                    depends_on=deps,
                    external_id=remote.id,
                    message="the firmware version is recorded by provisioning the gateway again "
                    "with the same hardware id (its new config is not kept)",
                )
            else:
                change = self._change(
                    "Gateway",
                    gateway.name,
                    Action.NO_OP,
                    Reason.IN_SYNC,
                    site,
                    before=before,
                    after=after,
                    external_id=remote.id,
                )
        if work.site_change.blocked and change.is_change:
            _block(change, work.site_change)
        work.gateway_changes[gateway.name] = change

    # -- devices ---------------------------------------------------------------------------

    def _devices_of(self, site: Site) -> list[Device]:
        devices = site_devices(self.fleet, site)
        return sorted(devices, key=lambda d: _RANK.get(kind_of(d), 0))  # stable: fleet order

    def _dependencies(self, work: _SiteWork, device: Device) -> list[Change]:
        enapter = device.spec.enapter
        assert enapter is not None
        out = [work.site_change]
        if device.spec.gateway_ref is not None:
            gateway = work.gateway_changes.get(device.spec.gateway_ref)
            out += [gateway] if gateway is not None else []
        else:
            # Modules of a site run on its gateway (when it has one): provision that first.
            out += list(work.gateway_changes.values())
        for ref in (enapter.runtime_ref, enapter.master_ref):
            upstream = work.device_changes.get(ref or "")
            if upstream is not None:
                out.append(upstream)
        return out

    def _plan_device(self, work: _SiteWork, device: Device) -> None:
        dependencies = self._dependencies(work, device)
        deps = [c.address for c in dependencies if c.is_change]
        remote, problem = find_device(device, work.devices)
        if remote is None:
            change = self._create_device(work, device, deps, problem)
        else:
            work.matched[remote.id] = device.name
            change = self._compare_device(work, device, remote, deps)
        blocker = next((c for c in dependencies if c.blocked), None)
        if blocker is not None and change.is_change and not change.blocked:
            _block(change, blocker)
        work.device_changes[device.name] = change

    def _create_device(
        self, work: _SiteWork, device: Device, deps: list[str], problem: str | None
    ) -> Change:
        after = device_fields(device)
        change = self._change(
            "Device",
            device.name,
            Action.CREATE,
            Reason.NOT_FOUND,
            work.site,
            after=after,
            diff=declared_diff(after, None),
            depends_on=deps,
            message="not provisioned in Enapter Cloud; " + self._config_note(device),
        )
        held = None if kind_of(device) in SLUG_KEYED else work.held_by(device.spec.hardware_id)
        foreign = self._foreign(device) if kind_of(device) not in NO_CONFIG else None
        if problem is not None:
            change.blocked = True
            change.message = problem
        elif foreign is not None:
            # Provisioned now, its config would go nowhere (and may not be asked again).
            change.blocked = True
            change.message = f"not provisioned in Enapter Cloud: {foreign}"
        elif held is not None:
            change.blocked = True
            change.message = _held_message(device.spec.hardware_id or "", held)
        elif kind_of(device) not in SLUG_KEYED:
            self._moved(work, change, device.spec.hardware_id)
        return change

    def _config_note(self, device: Device) -> str:
        """What happens to the communication config a create or regeneration issues."""
        enapter = device.spec.enapter
        assert enapter is not None
        output = enapter.config_output
        kind = kind_of(device)
        if output is None:
            if kind in CONFIG_ON_PROVISION:
                return "no configOutput: the communication config it returns is not kept"
            return "no communication config is requested (no configOutput)"
        if kind in NO_CONFIG:
            return "a Lua device has no communication config of its own; configOutput is ignored"
        if output.file is not None:
            return f"its communication config is written to {self._target(device)} (mode 0600)"
        if self.state is not None and self.state.secret_store:
            return f"its communication config is written to Secret {output.secret_name}"
        return (
            f"configOutput.secretName {output.secret_name!r} is written only by the operator; "
            "this run keeps no communication config (use configOutput.file with the CLI)"
        )

    def _target(self, device: Device) -> str:
        known = self.state.config_outputs.get(device.name) if self.state is not None else None
        if known is not None:
            return known.target
        enapter = device.spec.enapter
        assert enapter is not None and enapter.config_output is not None
        return str(enapter.config_output.file or enapter.config_output.secret_name)

    def _observed_fields(
        self, work: _SiteWork, device: Device, remote: EnapterDeviceState
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"type": remote.type, "name": remote.name, "slug": remote.slug}
        if remote.hardware_id is not None and remote.type in HARDWARE_TYPES:
            out["hardware_id"] = remote.hardware_id
        if remote.blueprint_id is not None:
            out["blueprint_id"] = remote.blueprint_id
        if remote.properties.get("device_type") is not None:
            out["embedded_type"] = remote.properties["device_type"]
        protocol = observed_protocol(remote)
        if protocol is not None:
            out["protocol"] = protocol
        upstream = work.matched.get(remote.upstream_id or "", remote.upstream_id)
        enapter = device.spec.enapter
        assert enapter is not None
        if enapter.runtime_ref is not None:
            out["runtime"] = upstream
        if enapter.master_ref is not None:
            out["master"] = upstream
        if self._has_config(device, remote):
            after = device_fields(device)
            for key in ("config_file", "config_secret"):
                if key in after:
                    out[key] = after[key]
        return out

    def _others_config(self, device: Device, remote: EnapterDeviceState) -> str | None:
        """The other Enapter device the records say the device's config file was written
        for (one deleted since, or another device): the file holds no config of this one.
        A file no record names (written before records were kept, or by hand) is taken
        for the device's config."""
        presence = self.state.config_outputs.get(device.name) if self.state is not None else None
        if presence is None or not presence.present or presence.written_for == remote.id:
            return None
        return presence.written_for

    def _has_config(self, device: Device, remote: EnapterDeviceState) -> bool:
        """Whether the device's declared config output holds a config of it, as observed."""
        presence = self.state.config_outputs.get(device.name) if self.state is not None else None
        return (
            presence is not None
            and presence.present
            and not presence.foreign
            and self._others_config(device, remote) is None
        )

    def _foreign(self, device: Device) -> str | None:
        """Why the device's config is not written to its Secret (one the reconciler did
        not write, which may hold someone's credentials), or None when it may be."""
        presence = self.state.config_outputs.get(device.name) if self.state is not None else None
        if presence is None or not presence.foreign:
            return None
        return (
            f"{presence.target} exists and was not written by the reconciler (the operator "
            "labels the Secrets it writes app.kubernetes.io/managed-by=energy-reconciler), so "
            "the communication config is not written over it: delete it, or name another "
            "Secret in configOutput.secretName"
        )

    def _compare_device(
        self, work: _SiteWork, device: Device, remote: EnapterDeviceState, deps: list[str]
    ) -> Change:
        after = device_fields(device)
        before = self._observed_fields(work, device, remote)
        presence = self.state.config_outputs.get(device.name) if self.state is not None else None
        compared = {
            k: v for k, v in after.items() if k not in ("protocol", "config_file", "config_secret")
        }
        diff = declared_diff(compared, before)
        diff += compared_only_where_reported(
            {k: v for k, v in after.items() if k == "protocol"}, before
        )
        if presence is not None and not self._has_config(device, remote):
            key = "config_file" if "config_file" in after else "config_secret"
            diff.append(FieldDiff("add", key, None, after[key]))
        if not any(d.path == "config_file" for d in diff):
            # Files its configOutput names no more (it names a Secret, none, or another
            # file that holds its config already, or removing one failed before): the
            # update removes them. One whose config is written to another file says so in
            # the note of that write.
            diff += [FieldDiff("remove", WRITTEN_FILE, p, None) for p in self._written(remote.id)]
        kwargs: dict[str, Any] = {
            "before": before,
            "after": after,
            "diff": diff,
            "external_id": remote.id,
        }
        if not diff:
            return self._change(
                "Device", device.name, Action.NO_OP, Reason.IN_SYNC, work.site, **kwargs
            )
        paths = {d.path for d in diff}
        if "embedded_type" in paths:
            return self._change(
                "Device",
                device.name,
                Action.REPLACE,
                Reason.CANNOT_UPDATE,
                work.site,
                depends_on=deps,
                blocked=True,
                **kwargs,
                message=f"hardware id {device.spec.hardware_id} is registered as "
                f"{before.get('embedded_type')}; Enapter cannot change an "
                "embedded device's type: delete it in Enapter Cloud or "
                "correct `embeddedType`",
            )
        moved = paths & {"runtime", "master"}
        if moved:
            upstream = after.get("runtime") or after.get("master")
            return self._change(
                "Device",
                device.name,
                Action.REPLACE,
                Reason.CANNOT_UPDATE,
                work.site,
                depends_on=deps,
                **kwargs,
                message=f"Enapter cannot move a device to another "
                f"{'runtime' if 'runtime' in moved else 'LINK master'}: it "
                f"is deleted and provisioned again on {upstream}; "
                + self._config_note(device)
                + self._replaced_file_note(remote.id),
            )
        return self._update_device(work, device, remote, deps, paths, kwargs)

    def _update_device(
        self,
        work: _SiteWork,
        device: Device,
        remote: EnapterDeviceState,
        deps: list[str],
        paths: set[str],
        kwargs: dict[str, Any],
    ) -> Change:
        enapter = device.spec.enapter
        assert enapter is not None
        notes = []
        if paths & {"name", "slug"}:
            notes.append("renamed with PATCH")
        if "blueprint_id" in paths:
            notes.append("blueprint changed with assign_blueprint")
        blocked = False
        if paths & {"protocol", "config_file", "config_secret"}:
            other = self._others_config(device, remote)
            if "config_file" in paths and other is not None:
                notes.append(
                    f"the config file {self._target(device)} holds the communication config "
                    f"an earlier apply wrote for another Enapter device ({other}), not this "
                    "one's: a new communication config is generated and written there; "
                    "install it on the device"
                )
            elif "config_file" in paths:
                notes.append(
                    f"the config file {self._target(device)} is missing (the one local "
                    "file a plan looks at): a new communication config is generated "
                    "and written there; install it on the device"
                )
            elif "config_secret" in paths and other is not None:
                notes.append(
                    f"{self._target(device)} holds the communication config written for "
                    f"another Enapter device ({other}), not this one's: a new communication "
                    "config is generated and written there; install it on the device"
                )
            elif "config_secret" in paths and self._foreign(device) is None:
                notes.append(
                    f"{self._target(device)} is missing: a new communication config is "
                    "generated and written there; install it on the device"
                )
            else:
                notes.append(
                    f"switching to {enapter.protocol} needs a new communication config "
                    "(generate_config); " + self._config_note(device)
                )
            blocked = enapter.config_output is None or (
                enapter.config_output.file is None
                and not (self.state is not None and self.state.secret_store)
            )
            foreign = self._foreign(device)
            if blocked:
                notes = [
                    f"switching to {enapter.protocol} needs a new communication config, "
                    "and this run has nowhere to write it: add configOutput.file"
                ]
            elif foreign is not None:
                blocked, notes = True, [foreign]
            elif "config_file" in paths:
                notes[-1] += self._superseded_file_note(remote.id)
        if WRITTEN_FILE in paths and not blocked:
            notes.append(self._unnamed_file_note(device, remote.id))
        return self._change(
            "Device",
            device.name,
            Action.UPDATE,
            Reason.DRIFT,
            work.site,
            depends_on=deps,
            blocked=blocked,
            message="; ".join(notes),
            **kwargs,
        )

    # -- undeclared devices ------------------------------------------------------------------

    def _undeclared(self, work: _SiteWork) -> None:
        by_id = {d.id: d for d in work.devices}

        def goes_with_parent(device: EnapterDeviceState) -> bool:
            # The NATIVE half of an embedded UCM is deleted with it and cannot be alone.
            parent = by_id.get(device.upstream_id or "")
            return device.type == NATIVE and parent is not None and parent.type == EMBEDDED_UCM

        self._interrupted_deletes(work)
        kept = [d for d in work.devices if not goes_with_parent(d)]
        undeclared = [d for d in kept if d.id not in work.matched]
        if not undeclared:
            return
        if not self.prune:
            for device in undeclared:
                self.unmanaged.append(
                    {
                        "platform": "enapter",
                        "site": work.site.name,
                        "id": device.id,
                        "description": f"Enapter {device.type} device {device.id} "
                        f"({device.name!r}, slug {device.slug}) in site {work.site.name} "
                        "is not declared",
                        "prunable": True,
                    }
                )
            return
        children: dict[str, list[EnapterDeviceState]] = {}
        for device in kept:
            children.setdefault(device.upstream_id or "", []).append(device)
        planned: dict[str, Change] = {}
        for device in undeclared:
            self._delete_subtree(work, device, children, planned)

    def _written(self, device_id: str) -> list[str]:
        """The config files earlier applies wrote for the device that its delete, or its
        update, removes (`EnapterState.written_files`)."""
        return self.state.written_files.get(device_id, []) if self.state is not None else []

    def _interrupted_deletes(self, work: _SiteWork) -> None:
        """The config files of devices of this site whose delete an earlier apply sent and
        that are gone now, the apply having stopped before it removed their file: removed
        with --prune (a delete again, which finds the device gone, then the removal)."""
        interrupted = self.state.interrupted_deletes if self.state is not None else {}
        present = {d.id for d in work.devices}
        for device_id, (site_name, paths) in sorted(interrupted.items()):
            if site_name != work.site.name or device_id in present:
                continue
            description = (
                f"Enapter device {device_id} of site {work.site.name} is gone: an apply "
                f"deleted it and stopped before it removed {_listed(paths)}, "
                f"{_the(paths, 'config file')} written for it"
            )
            if not self.prune:
                self.unmanaged.append(
                    {
                        "platform": "enapter",
                        "site": work.site.name,
                        "id": device_id,
                        "description": description + " (--prune removes it)",
                        "prunable": True,
                    }
                )
                continue
            self._change(
                "Device",
                f"{work.site.name}.{device_id}",
                Action.DELETE,
                Reason.NOT_DECLARED,
                work.site,
                external_id=device_id,
                before={"id": device_id},
                message=description + "; removed (--prune)",
            )

    def _superseded_file_note(self, device_id: str) -> str:
        """What writing the device's config to the file its Device declares now does to
        the file an earlier apply wrote it to (its configOutput.file changed since)."""
        paths = self._written(device_id)
        if not paths:
            return ""
        return (
            f"; once it is written, {_listed(paths)}, {_the(paths, 'file')} an earlier "
            f"apply wrote its config to, {_is(paths)} removed"
        )

    def _unnamed_file_note(self, device: Device, device_id: str) -> str:
        """What an update does to the config file an earlier apply wrote for the device
        that its configOutput names no more, with no new config written elsewhere."""
        enapter = device.spec.enapter
        assert enapter is not None and self.state is not None
        output = enapter.config_output
        names = (
            f"its configOutput.file names {self._target(device)} now"
            if output is not None and output.file is not None
            else "its configOutput names no file now"
        )
        paths = self._written(device_id)
        return (
            f"{names}: {_listed(paths)}, {_the(paths, 'config file')} an earlier apply "
            f"wrote for it, {_is(paths)} removed"
        )

    def _replaced_file_note(self, device_id: str) -> str:
        """What a replace does to the config files an earlier apply wrote for the device it
        deletes that its Device names no more (one it names is written anew)."""
        paths = self._written(device_id)
        if not paths:
            return ""
        return (
            f"; once it is provisioned again, {_listed(paths)}, "
            f"{_the(paths, 'config file')} an earlier apply wrote for the device it "
            f"replaces, {_is(paths)} removed"
        )

    def _written_file_note(self, device_id: str) -> str:
        """What a delete does to the config files an earlier apply wrote for the device."""
        paths = self._written(device_id)
        if not paths:
            return ""
        return (
            f"; then {_listed(paths)}, {_the(paths, 'config file')} an earlier apply wrote "
            f"for it, {_is(paths)} removed"
        )

    def _delete_subtree(
        self,
        work: _SiteWork,
        device: EnapterDeviceState,
        children: dict[str, list[EnapterDeviceState]],
        planned: dict[str, Change],
    ) -> Change | None:
        """Plan the deletion of `device` after everything running on it (post-order)."""
        if device.id in planned:
            return planned[device.id]
        if device.id in work.matched:
            return None  # declared: kept
        below = [
            self._delete_subtree(work, child, children, planned)
            for child in children.get(device.id, [])
        ]
        kept = [work.matched[c.id] for c in children.get(device.id, []) if c.id in work.matched]
        name = f"{work.site.name}.{device.slug}"
        description = (
            f"Enapter {device.type} device {device.id} ({device.name!r}, slug "
            f"{device.slug}) in site {work.site.name} is not declared"
        )
        change = self._change(
            "Device",
            name,
            Action.DELETE,
            Reason.NOT_DECLARED,
            work.site,
            external_id=device.id,
            before={"type": device.type, "name": device.name, "slug": device.slug},
            depends_on=[c.address for c in below if c is not None],
            message=description + "; deleted (--prune), after the devices running on it"
            + self._written_file_note(device.id),
        )
        blocker = next((c for c in below if c is not None and c.blocked), None)
        if kept:
            change.blocked = True
            change.message = (
                f"{description}, but declared devices run on it "
                f"({', '.join(sorted(kept))}); Enapter refuses to delete it "
                "while they do"
            )
        elif blocker is not None:
            _block(change, blocker)
        planned[device.id] = change
        return change


def _listed(paths: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return paths[0] if len(paths) == 1 else f"{', '.join(paths[:-1])} and {paths[-1]}"


def _the(paths: list[str], noun: str) -> str:
    return f"the {noun}" if len(paths) == 1 else f"the {noun}s"


def _is(paths: list[str]) -> str:
    return "is" if len(paths) == 1 else "are"


def _held_message(hardware_id: str, held: HeldElsewhere) -> str:
    return (
        f"hardware id {hardware_id} is in another Enapter site, and Enapter keeps a "
        f"hardware id in one site, so provisioning it here would fail: {held.message()}"
    )


def _waits_for(change: Change, other: Change, by_address: dict[str, Change]) -> bool:
    """Whether `change` depends on `other`, directly or through what it depends on."""
    seen: set[str] = set()
    queue = list(change.depends_on)
    while queue:
        address = queue.pop()
        if address == other.address:
            return True
        if address not in seen and address in by_address:
            seen.add(address)
            queue += by_address[address].depends_on
    return False


def _block(change: Change, cause: Change) -> None:
    change.blocked = True
    change.reason = Reason.DEPENDENCY_BLOCKED
    change.message = f"blocked by {cause.address}: {cause.message}"


def _defer(changes: Iterable[Change], why: str, unread: Callable[[Change], bool]) -> None:
    """Defer every change (`defer`, which keeps a blocked change's cause first, the site
    planned as a deferral included); `unread` says which objects were not read."""
    for change in changes:
        if change.action is not Action.NO_OP:
            defer(change, why, unread=unread(change))


def plan_enapter(
    fleet: Fleet, observed: Observed, prune: bool, whole_fleet: Fleet | None = None
) -> tuple[list[Change], list[dict[str, Any]]]:
    """The registered planner: reads `observed.extra["enapter"]` (an `EnapterState`)."""
    state = observed.extra.get(COMPONENT)
    known = state if isinstance(state, EnapterState) else None
    return EnapterPlanner(fleet, known, prune, whole_fleet=whole_fleet).plan()
