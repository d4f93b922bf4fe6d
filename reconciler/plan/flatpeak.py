"""Planning for Flatpeak: one location per site (tariff-aware control needs a postal
address) and the devices registered on it, plus the records of what Flatpeak reports
(`FlatpeakState`, the `flatpeak` section of `Observed.extra`). Pure: the observer in
`engine.flatpeak` fills the records; `plan.platforms` registers `plan_flatpeak`.

Keys: a location is the one the site names by `locationId`, else the one whose
`reference_id` is the site's resource name; a device is the one whose `reference_id` is
declared (the newest, where several have it: the others are reported, and deleted with
`--prune` as undeclared devices are). Only declared fields are compared (properties key by
key; a declared postal address is the whole address, so a line it leaves out is removed),
and a change is a PATCH of the fields that differ. A Site renamed therefore gets a new
location, and its devices move to it in the same apply (`location_to_create` stands for its
id until then).
A device put on its Site's location leaves the other locations of this fleet and keeps
any other (`FlatpeakPlanner._fleet_locations`).

A Flatpeak account may hold devices of other systems, so the planner looks only at devices
on the locations it manages: those are reported when undeclared, and deleted with
`--prune` only when every location they are on is a managed one. Locations themselves
are never deleted; one an earlier apply made that no Site matches any more is reported
(`plan.retired_locations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.plan.actions import (
    Action,
    Change,
    FieldDiff,
    Reason,
    defer,
    update_or_in_sync,
)
from reconciler.plan.advice import PRUNED, Advice, Audience
from reconciler.plan.diff import declared_diff
from reconciler.plan.observed import Observed, Unreachable

COMPONENT = "flatpeak"

# Site postal address field -> Flatpeak postal_address field.
ADDRESS_FIELDS = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "city",
    "post_code": "post_code",
    "country_code": "country_code",
}
DEVICE_FIELDS = ("reference_id", "type", "manufacturer", "model_code", "model_name")


# -- observed records -------------------------------------------------------------------------


@dataclass(frozen=True)
class FlatpeakLocationState:
    """One entry of GET /locations."""

    id: str
    reference_id: str | None
    customer_id: str | None = None
    postal_address: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FlatpeakDeviceState:
    """One entry of GET /devices."""

    id: str
    reference_id: str
    type: str | None = None
    locations: tuple[str, ...] = ()
    manufacturer: str | None = None
    model_code: str | None = None
    model_name: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class FlatpeakState:
    """The `flatpeak` section of `Observed.extra`: the account's locations and devices
    (every page of each list), or why they could not be read."""

    locations: list[FlatpeakLocationState] | Unreachable
    devices: list[FlatpeakDeviceState] | Unreachable
    # Location ids earlier applies made or matched for a Site (the state directory's
    # inventory, put here by the engine): this fleet's, though no declared Site may match
    # them any more, so a device is moved off them, as off another declared Site's.
    remembered: frozenset[str] = frozenset()


# -- declared fields and keys -----------------------------------------------------------------


def postal_address(site: Site) -> dict[str, Any] | None:
    """The site's postal address in Flatpeak's field names (declared fields only)."""
    address = site.spec.location.address if site.spec.location is not None else None
    if address is None:
        return None
    values = address.model_dump()
    return {
        remote: values[local]
        for local, remote in ADDRESS_FIELDS.items()
        if values.get(local) is not None
    }


def location_fields(site: Site) -> dict[str, Any]:
    """Declared fields of the site's location."""
    flatpeak = site.spec.flatpeak
    assert flatpeak is not None
    out: dict[str, Any] = {}
    if flatpeak.location_id is None:
        out["reference_id"] = site.name
    if flatpeak.customer_id is not None:
        out["customer_id"] = flatpeak.customer_id
    address = postal_address(site)
    if address is not None:
        out["postal_address"] = address
    return out


def device_fields(device: Device) -> dict[str, Any]:
    """Declared fields of the device in Flatpeak's (snake_case) names."""
    flatpeak = device.spec.flatpeak
    assert flatpeak is not None
    values = flatpeak.model_dump(exclude_none=True)
    out = {key: values[key] for key in DEVICE_FIELDS if key in values}
    if values.get("properties"):
        out["properties"] = dict(values["properties"])
    return out


@dataclass(frozen=True)
class LocationIndex:
    """The account's locations by id and by reference id, the first of each as listed:
    a plan matches every Site of the fleet (and of the whole fleet) against them, which
    scanning the list took time of the Sites times the locations."""

    by_id: dict[str, FlatpeakLocationState]
    by_reference: dict[str, FlatpeakLocationState]

    @classmethod
    def of(cls, candidates: Iterable[FlatpeakLocationState]) -> LocationIndex:
        by_id: dict[str, FlatpeakLocationState] = {}
        by_reference: dict[str, FlatpeakLocationState] = {}
        for candidate in candidates:
            by_id.setdefault(candidate.id, candidate)
            if candidate.reference_id is not None:
                by_reference.setdefault(candidate.reference_id, candidate)
        return cls(by_id, by_reference)

    def match(self, site: Site) -> FlatpeakLocationState | None:
        """The location the Site names by `locationId`, else the one whose reference id
        is the Site's resource name."""
        flatpeak = site.spec.flatpeak
        assert flatpeak is not None
        if flatpeak.location_id is not None:
            return self.by_id.get(flatpeak.location_id)
        return self.by_reference.get(site.name)


def _lines_left_out(after: dict[str, Any], location: FlatpeakLocationState) -> list[FieldDiff]:
    """A declared address is the whole address: a line it leaves out (`line2`) that the
    location has is removed, set to null in `after` (the PATCH sends it so). Compared line by
    line, a new street would keep the old flat number and name an address that is not the
    site's. `state`, which a Site cannot declare, is left as it is."""
    declared = after.get("postal_address")
    if declared is None:
        return []
    diff = []
    for remote in ADDRESS_FIELDS.values():
        old = location.postal_address.get(remote)
        if remote not in declared and old not in (None, ""):
            declared[remote] = None
            diff.append(FieldDiff("remove", f"postal_address.{remote}", old, None))
    return diff


def location_to_create(site: Site) -> str:
    """The id a plan shows for the location it creates for `site`, unknown until the apply
    makes it; the executor puts the real id in its place."""
    return f"(the location created for Site {site.name})"


def observed_device_fields(remote: FlatpeakDeviceState) -> dict[str, Any]:
    out: dict[str, Any] = {"reference_id": remote.reference_id}
    for key in ("type", "manufacturer", "model_code", "model_name"):
        value = getattr(remote, key)
        if value is not None:
            out[key] = value
    out["properties"] = dict(remote.properties)
    out["locations"] = list(remote.locations)
    return out


def patch_body(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """PATCH body: the declared fields that differ. Properties are compared key by key, and
    when one differs they are sent whole, the device's undeclared ones as it has them: the
    spec leaves unchanged only the parameters not sent, and an API that takes `properties`
    whole would otherwise lose every property but the changed ones (and the next plan put
    those back, losing the others, at every apply)."""
    body: dict[str, Any] = {}
    for key, value in after.items():
        if key == "properties":
            old = before.get("properties") or {}
            if any(old.get(k) != v for k, v in value.items()):
                kept = {k: v for k, v in old.items() if v is not None}
                body["properties"] = kept | value
        elif before.get(key) != value:
            body[key] = value
    return body


# -- the planner ------------------------------------------------------------------------------


# Why the CLI's `--prune` leaves a device also on locations of other fleets; the operator's
# user, who has no such flag, is told only where it is.
_LEAVES = Advice(cli=", so --prune leaves it", operator="")


@dataclass
class FlatpeakPlanner:
    """Plans the Flatpeak part of one fleet. Construct, then call `plan()`."""

    fleet: Fleet
    state: FlatpeakState | None
    prune: bool = False
    # The whole declared fleet when `fleet` is a part of it: its Sites' locations are this
    # fleet's too (`_fleet_locations`).
    whole_fleet: Fleet | None = None
    # Who reads the plan: how its advice is worded (planner.PlanOptions.audience).
    audience: Audience = field(kw_only=True)
    changes: list[Change] = field(default_factory=list)
    unmanaged: list[dict[str, Any]] = field(default_factory=list)
    _sites_of: dict[str, list[str]] = field(default_factory=dict)
    _ours: frozenset[str] = frozenset()
    # Indexed once per plan, so that a plan takes time of the fleet plus the account, not
    # of their product: the locations, the devices by reference id (the newest of each),
    # and the Flatpeak Devices of each Site by name, in fleet order.
    _locations: LocationIndex = field(default_factory=lambda: LocationIndex({}, {}))
    _by_reference: dict[str, FlatpeakDeviceState] = field(default_factory=dict)
    _site_devices: dict[str, list[Device]] = field(default_factory=dict)

    def plan(self) -> tuple[list[Change], list[dict[str, Any]]]:
        self._index()
        for site in self.fleet.sites.values():
            if site.spec.flatpeak is not None:
                self._plan_site(site)
        self._undeclared()
        return self.changes, self.unmanaged

    def undeclared(self, site: str | None = None) -> list[dict[str, Any]]:
        """What `plan()` lists as unmanaged (with `prune` off), without planning a change;
        with `site`, only what it files under that Site. The operator asks it of its whole
        namespace at every Site's reconcile, so only the locations are indexed
        (`_index_locations`), not what planning the devices needs, and no entry is made
        for the devices of the other Sites' locations: describing every Site's at each
        Site's reconcile was most of the time a drift check of a namespace took."""
        self._index_locations()
        self._undeclared(site)
        return [e for e in self.unmanaged if site is None or e["site"] == site]

    def _index_locations(self) -> None:
        """The account's locations (`LocationIndex`), and the Sites that match each."""
        locations = self.state.locations if self.state is not None else None
        self._locations = LocationIndex.of(locations if isinstance(locations, list) else [])
        self._sites_of = self._sites_by_location()

    def _index(self) -> None:
        self._index_locations()
        devices = self.state.devices if self.state is not None else None
        self._by_reference = {}
        for remote in devices if isinstance(devices, list) else []:
            self._by_reference.setdefault(remote.reference_id, remote)  # newest first
        self._site_devices = {}
        # Only the devices of Flatpeak Sites are planned (`_plan_site`): a fleet with none
        # has no Device to go through (10,000 at 1,000 sites, at every plan).
        if any(site.spec.flatpeak is not None for site in self.fleet.sites.values()):
            for device in self.fleet.devices.values():
                site = self.fleet.site_of_device(device) if device.spec.flatpeak else None
                if site is not None:
                    self._site_devices.setdefault(site.name, []).append(device)
        self._ours = self._fleet_locations()

    def _sites_by_location(self) -> dict[str, list[str]]:
        """Location id -> the Sites that match it, in fleet order: the first manages it
        (`_managed`). Validation refuses two Sites with one `locationId`; one Site's
        `locationId` can still be the location another finds by reference id."""
        locations = self.state.locations if self.state is not None else None
        out: dict[str, list[str]] = {}
        if not isinstance(locations, list):
            return out
        for site in self.fleet.sites.values():
            if site.spec.flatpeak is not None:
                location = self._locations.match(site)
                if location is not None:
                    out.setdefault(location.id, []).append(site.name)
        return out

    def _fleet_locations(self) -> frozenset[str]:
        """The locations that are this fleet's: each declared Site's (by `locationId` or
        reference id) and those earlier applies made or matched (`FlatpeakState.remembered`).
        A device is kept on any other location: the account may hold other systems', and
        their devices may be on ours too."""
        if self.state is None:
            return frozenset()
        ours = set(self.state.remembered)
        for site in (self.whole_fleet or self.fleet).sites.values():
            if site.spec.flatpeak is None:
                continue
            if site.spec.flatpeak.location_id is not None:
                ours.add(site.spec.flatpeak.location_id)
            location = self._locations.match(site)
            if location is not None:
                ours.add(location.id)
        return frozenset(ours)

    def _change(
        self, kind: str, name: str, action: Action, reason: Reason, site: Site, **kwargs: Any
    ) -> Change:
        change = Change.new(kind, name, COMPONENT, action, reason, site=site.name, **kwargs)
        self.changes.append(change)
        return change

    def _devices_of(self, site: Site) -> list[Device]:
        return self._site_devices.get(site.name, [])

    # -- a site: its location, then its devices ----------------------------------------------

    def _plan_site(self, site: Site) -> None:
        first = len(self.changes)
        unobserved = Unreachable("not observed")
        state = self.state or FlatpeakState(unobserved, unobserved)
        why = [
            f"Flatpeak {what}: {obs.reason}"
            for what, obs in (("locations", state.locations), ("devices", state.devices))
            if isinstance(obs, Unreachable)
        ]
        location = self._locations.match(site)
        location_change = self._location_change(site, location)
        if location is not None:
            self._block_shared(site, location, location_change)
        for device in self._devices_of(site):
            assert device.spec.flatpeak is not None
            self._plan_device(
                site,
                device,
                location,
                location_change,
                self._by_reference.get(device.spec.flatpeak.reference_id),
            )
        if why:
            unread = {
                kind
                for kind, obs in (("Site", state.locations), ("Device", state.devices))
                if isinstance(obs, Unreachable)
            }
            for change in self.changes[first:]:
                if change.action is not Action.NO_OP:
                    defer(change, "; ".join(why), unread=change.kind in unread)

    def _location_change(self, site: Site, location: FlatpeakLocationState | None) -> Change:
        flatpeak = site.spec.flatpeak
        assert flatpeak is not None
        after = location_fields(site)
        if location is None:
            change = self._change(
                "Site",
                site.name,
                Action.CREATE,
                Reason.NOT_FOUND,
                site,
                after=after,
                diff=declared_diff(after, None),
                message=f"no Flatpeak location with reference id {site.name!r}",
            )
            if flatpeak.location_id is not None:
                change.blocked = True
                change.message = (
                    f"Flatpeak location {flatpeak.location_id} does not exist in "
                    "this account; remove `locationId` to create one"
                )
            elif "postal_address" not in after:
                change.blocked = True
                change.message = (
                    "a Flatpeak location needs a postal address: set "
                    "spec.location.address on the Site"
                )
            return change
        before: dict[str, Any] = {
            "reference_id": location.reference_id,
            "postal_address": dict(location.postal_address),
        }
        if location.customer_id is not None:
            before["customer_id"] = location.customer_id
        diff = declared_diff(after, before)
        diff += _lines_left_out(after, location)
        return self._change(
            "Site",
            site.name,
            *update_or_in_sync(diff),
            site,
            before=before,
            after=after,
            diff=diff,
            external_id=location.id,
        )

    def _block_shared(
        self, site: Site, location: FlatpeakLocationState, change: Change
    ) -> None:
        """A location other Sites match too is written by none of them: each would put its
        own address and customer there in turn, one apply each, for ever. A Site that
        matches it as declared has nothing to write and is not blocked."""
        others = [name for name in self._sites_of.get(location.id, []) if name != site.name]
        if not others or not change.is_change:
            return
        change.blocked = True
        change.message = (
            f"Flatpeak location {location.id} (reference id {location.reference_id!r}) is "
            f"also the location of Site {', '.join(others)}: a location belongs to one Site; "
            "give each its own (`flatpeak.locationId` names another location, or none to "
            "find or create one by the Site's name)"
        )

    def _plan_device(
        self,
        site: Site,
        device: Device,
        location: FlatpeakLocationState | None,
        location_change: Change,
        remote: FlatpeakDeviceState | None,
    ) -> None:
        after = device_fields(device)
        if location is not None:
            after["locations"] = [location.id]
        deps = [location_change.address] if location_change.is_change else []
        if remote is None:
            change = self._change(
                "Device",
                device.name,
                Action.CREATE,
                Reason.NOT_FOUND,
                site,
                after=after,
                diff=declared_diff(after, None),
                depends_on=deps,
                message=f"no Flatpeak device with reference id {after['reference_id']!r}",
            )
        else:
            before = observed_device_fields(remote)
            diff = declared_diff({k: v for k, v in after.items() if k != "locations"}, before)
            # Only the site's location is declared; other locations are not compared, and
            # when the device is put on the site's, those that are not this fleet's are
            # kept (another system's use of the device), while this fleet's are left: the
            # location of the Site's old name, or of another Site it was declared in.
            kept = [loc for loc in remote.locations if loc not in self._ours]
            if location is None and location_change.action is Action.CREATE:
                # The site's location is new (a Site renamed gets one, its reference id
                # being the resource name): the device moves to it in this apply, after
                # it is created, so that one apply converges.
                after["locations"] = [*kept, location_to_create(site)]
                diff.append(
                    FieldDiff("change", "locations", list(remote.locations), after["locations"])
                )
            elif location is not None and location.id not in remote.locations:
                after["locations"] = [*kept, location.id]
                diff.append(
                    FieldDiff("change", "locations", list(remote.locations), after["locations"])
                )
            else:
                after.pop("locations", None)
                before.pop("locations", None)
            action, reason = update_or_in_sync(diff)
            change = self._change(
                "Device",
                device.name,
                action,
                reason,
                site,
                before=before,
                after=after,
                diff=diff,
                external_id=remote.id,
                depends_on=deps if diff else [],
            )
        if location_change.blocked and change.is_change:
            change.blocked = True
            change.reason = Reason.DEPENDENCY_BLOCKED
            change.message = f"blocked by {location_change.address}: {location_change.message}"

    # -- devices on managed locations that are not declared ----------------------------------

    def _managed(self) -> dict[str, Site]:
        """Location id -> the Site that manages it, the first that matches it; empty when
        the locations could not be read (`_undeclared` asks for none when the devices
        could not): a device is undeclared only on a location a Site is known to manage."""
        return {location: self.fleet.sites[names[0]] for location, names in self._sites_of.items()}

    def _undeclared(self, only: str | None = None) -> None:
        """The devices on the locations this fleet manages that no Device is, and the
        older ones with a Device's reference id; with `only`, those that could be filed
        under that Site: on a location it manages, or with the reference id of a Device."""
        if self.state is None or not isinstance(self.state.devices, list):
            return
        managed = self._managed()
        mine = (
            None if only is None
            else frozenset(loc for loc, site in managed.items() if site.name == only)
        )
        declared = {
            d.spec.flatpeak.reference_id: d
            for d in self.fleet.devices.values()
            if d.spec.flatpeak is not None
        }
        newest: dict[str, FlatpeakDeviceState] = {}
        for remote in self.state.devices:  # newest first, as `_plan_site` takes them
            kept = newest.setdefault(remote.reference_id, remote)
            device = declared.get(remote.reference_id)
            if device is not None:
                if kept is not remote:
                    self._duplicate(remote, kept, device, managed)
                continue
            if mine is not None and mine.isdisjoint(remote.locations):
                continue
            ours = [managed[loc] for loc in remote.locations if loc in managed]
            if not ours:
                continue
            site = ours[0]
            others = [loc for loc in remote.locations if loc not in managed]
            description = (
                f"Flatpeak device {remote.id} ({remote.reference_id!r}) on the "
                f"location of site {site.name} is not declared"
            )
            if others:
                description += (
                    f"; it is also on locations this fleet does not manage "
                    f"({', '.join(others)}){_LEAVES.to(self.audience)}"
                )
            self._delete_or_report(site, remote, f"{site.name}.{remote.reference_id}",
                                   description, prunable=not others)

    def _duplicate(
        self,
        remote: FlatpeakDeviceState,
        kept: FlatpeakDeviceState,
        device: Device,
        managed: dict[str, Site],
    ) -> None:
        """A device with a declared reference id other than the newest, the one the Device
        is (an interrupted create can leave one): wherever it is, its reference id says it
        is this fleet's, so it is reported; it is deleted with `--prune` where an undeclared
        device would be, when it is only on locations this fleet manages."""
        ours = [managed[loc] for loc in remote.locations if loc in managed]
        site = self.fleet.site_of_device(device) or (ours[0] if ours else None)
        if site is None:
            return
        others = [loc for loc in remote.locations if loc not in managed]
        description = (
            f"Flatpeak device {remote.id} has the reference id {remote.reference_id!r} of "
            f"Device {device.name}, which is Flatpeak device {kept.id} (the newest of them); "
            f"{remote.id} is not managed"
        )
        if others:
            description += (
                f"; it is on locations this fleet does not manage ({', '.join(others)})"
                f"{_LEAVES.to(self.audience)}"
            )
        self._delete_or_report(site, remote, f"{site.name}.{remote.reference_id}.{remote.id}",
                               description, prunable=bool(ours) and not others)

    def _delete_or_report(self, site: Site, remote: FlatpeakDeviceState, name: str,
                          description: str, *, prunable: bool) -> None:
        """A Flatpeak device nobody declares (`description` says why, and why `--prune`
        leaves it where it does): deleted with `--prune` when `prunable`, else reported."""
        if self.prune and prunable:
            self._change(
                "Device",
                name,
                Action.DELETE,
                Reason.NOT_DECLARED,
                site,
                external_id=remote.id,
                before=observed_device_fields(remote),
                message=f"{description}; deleted{PRUNED.to(self.audience)}",
            )
            return
        self.unmanaged.append(
            {
                "platform": "flatpeak",
                "site": site.name,
                "id": remote.id,
                "description": description,
                "prunable": prunable,
            }
        )


def plan_flatpeak(
    fleet: Fleet,
    observed: Observed,
    prune: bool,
    whole_fleet: Fleet | None,
    audience: Audience,
) -> tuple[list[Change], list[dict[str, Any]]]:
    """The registered planner: reads `observed.extra["flatpeak"]` (a `FlatpeakState`).
    Locations are keyed by resource name; the whole fleet tells which are this fleet's."""
    state = observed.extra.get(COMPONENT)
    return FlatpeakPlanner(
        fleet, state if isinstance(state, FlatpeakState) else None, prune, whole_fleet,
        audience=audience,
    ).plan()
