"""PURE: devices that move to another gateway or site with their hardware.

Novacore knows one device per hardware id in an organisation: provisioning a hardware id
it has already rebinds that device to the new gateway and site (200 with `created: false`,
platform-apis §1.4), keeping its id and DERs. So a Device declared behind a gateway of one
Site and provisioned in another Site's Novacore site is that device moving, not a new one
next to an undeclared one, and the site it leaves must not prune it.

Between organisations there is no such rebinding: Novacore keeps a hardware id per
organisation, and provisioning it in another one makes a new device there (new device and
DER ids; moving a device between organisations is documented nowhere, platform-apis §1.4).
So a Device declared in a Site of another organisation than the Novacore device with its
hardware id is a replace: the new device is provisioned first, then the old one is deleted
from the organisation it leaves (by the change of the site it moves to), and that site
never deletes it on its own, pruning or not (`declared_in_other_org`).

Sites are planned one at a time, in whatever order their observations come in, so each
side decides from what does not depend on that order: the site a device moves to from
every site's observed devices (the engine reads them all before planning such a site,
`needs_fleet_lookup`), the site it leaves from the declared fleet alone (`declarations`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.plan.observed import NovacoreDevice, Observed, Unreachable


@dataclass(frozen=True, slots=True)
class Declaration:
    """Where the fleet declares a hardware id: a Device behind a Zap gateway of a Site."""

    device: str  # the Device's resource name
    gateway: str  # its Gateway's resource name
    site: str  # the Gateway's Site's resource name
    org: str | None  # the Site's Novacore organisation; None when it has no novacore block


def declarations(fleet: Fleet) -> dict[str, list[Declaration]]:
    """Every hardware id the fleet declares behind a Zap gateway, and where."""
    found: dict[str, list[Declaration]] = {}
    for device in fleet.devices.values():
        hardware_id = device.spec.hardware_id
        gateway = fleet.gateways.get(device.spec.gateway_ref or "")
        if hardware_id is None or gateway is None or gateway.spec.zap is None:
            continue
        site = fleet.sites.get(gateway.spec.site_ref)
        org = site.spec.novacore.org_id if site is not None and site.spec.novacore else None
        found.setdefault(hardware_id, []).append(
            Declaration(device.name, gateway.name, gateway.spec.site_ref, org)
        )
    return found


def declared_elsewhere(
    found: dict[str, list[Declaration]], hardware_id: str, site: str, org: str
) -> list[Declaration]:
    """The declarations of `hardware_id` in other sites of organisation `org`: where a
    Novacore device of `site` with that hardware id moves to."""
    return [d for d in found.get(hardware_id, ()) if d.org == org and d.site != site]


def declared_in_other_org(
    found: dict[str, list[Declaration]], hardware_id: str, org: str
) -> list[Declaration]:
    """The declarations of `hardware_id` in Sites of organisations other than `org`, when
    `org` declares it nowhere: where a Novacore device of `org` with that hardware id moves
    to, provisioned anew (see the module docstring). None when `org` declares it too: the
    device stays, and the other organisation gets a device of its own."""
    declared = found.get(hardware_id, ())
    if any(d.org == org for d in declared):
        return []
    return [d for d in declared if d.org is not None]


def needs_fleet_lookup(
    fleet: Fleet,
    site: Site,
    own: list[NovacoreDevice] | Unreachable | None,
    found: Callable[[], dict[str, list[Declaration]]] | None = None,
) -> bool:
    """Whether planning `site` may need the Novacore devices of other sites: a hardware id
    declared behind its gateways is not among `own`, the devices of the Novacore site it
    matches (None: it matches none yet), so it may be provisioned in another site and move
    here; or one of `own` is declared in another organisation only (`found` gives the whole
    fleet's `declarations`), and whether it is provisioned there yet decides what becomes
    of it here. False when its own devices could not be read: it defers then anyway."""
    if site.spec.novacore is None or isinstance(own, Unreachable):
        return False
    org = site.spec.novacore.org_id
    declared: set[str] = set()
    on_zaps: set[str] = set()  # declared behind its Zap gateways: in `declarations`, in `org`
    for gateway in fleet.gateways_of(site.name):
        ids = fleet.hardware_ids_of(gateway.name)
        declared |= ids
        if gateway.spec.zap is not None:
            on_zaps |= ids
    if own is None:
        return bool(declared)
    if found is not None:
        # A device declared behind a Zap of this site is declared in `org`, so it moves to
        # no other organisation: only the others are looked up in the whole fleet's
        # declarations, worked out only then (a no-op plan has none).
        others = [d.hardware_id for d in own if d.hardware_id not in on_zaps]
        if others:
            table = found()
            if any(declared_in_other_org(table, hardware_id, org) for hardware_id in others):
                return True
    return not declared <= {d.hardware_id for d in own}


@dataclass(frozen=True, slots=True)
class Provisioned:
    """A Novacore device and the id of the Novacore site it is in."""

    site_id: str
    device: NovacoreDevice


@dataclass(frozen=True, slots=True)
class OrgMove:
    """A Novacore device a Device moves away from: in organisation `org`, in the Novacore
    site that Site `site` declares."""

    org: str
    site: str
    provisioned: Provisioned


class ProvisionedIndex:
    """The observed Novacore devices of every site by hardware id. It takes in the sites
    observed since it was last asked (sites are planned while others are still read), so a
    thousand lookups cost one pass over the devices, not a thousand."""

    def __init__(self, observed: Observed) -> None:
        self._observed = observed
        self._seen: set[str] = set()
        self._by_hardware: dict[str, list[Provisioned]] = {}

    def _catch_up(self) -> None:
        tables = self._observed.novacore_devices
        if len(tables) == len(self._seen):
            return
        for site_id, devices in tables.items():
            if site_id in self._seen:
                continue
            self._seen.add(site_id)
            if isinstance(devices, Unreachable):
                continue
            for device in devices:
                self._by_hardware.setdefault(device.hardware_id, []).append(
                    Provisioned(site_id, device)
                )

    def elsewhere(
        self, hardware_id: str, org_sites: Collection[str], site_id: str | None
    ) -> Provisioned | None:
        """The device with `hardware_id` in a site of `org_sites` other than `site_id`:
        the one Novacore rebinds when the hardware id is provisioned again. Of several
        (duplicates made before moves were recognised), the lowest id, so the plan does
        not depend on the order sites were read in."""
        self._catch_up()
        candidates = [
            p
            for p in self._by_hardware.get(hardware_id, ())
            if p.site_id != site_id and p.site_id in org_sites
        ]
        return min(candidates, key=lambda p: p.device.id) if candidates else None

    def outside(self, hardware_id: str, org_sites: Collection[str]) -> list[Provisioned]:
        """The devices with `hardware_id` in sites not of `org_sites`: of other
        organisations, where a device moving into this one may come from."""
        self._catch_up()
        return [p for p in self._by_hardware.get(hardware_id, ()) if p.site_id not in org_sites]
