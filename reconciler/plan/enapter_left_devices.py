"""PURE: the Enapter device a Device keyed by its slug (standalone, Lua) left in the Enapter
site its Site was before, its Site now another Enapter site (`siteId` set or changed, or a
new site made for it). Enapter cannot move a device between sites, and a device provisioned
anew in the new site would leave the old one running in the old site, holding credentials,
which no plan would look at again: the plan replaces it instead (deleted where it was, then
provisioned in the new site: `plan.enapter`).

Where it was is what the front end recorded of it: the operator the Enapter site its
Device's status names (`status.externalIds.enapterSite`), the CLI the Enapter sites its
inventory remembers an apply made or matched for its Site (`Inventory.enapter_sites`,
`remembered_sites`). It is looked for there by its natural key (its slug) only when its
Site's own site lacks it, so a plan with nothing to do reads nothing more, and only in a
site no declared Site is now: what one is is that Site's to manage (`to_read`). Devices
keyed by a hardware id are not here: Enapter keeps a hardware id in one site of the
organisation, and `plan.enapter_sites.held_elsewhere` says where one is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.model.device import SLUG_KEYED, Device
from reconciler.model.fleet import Fleet
from reconciler.plan.enapter_fields import find_device, kind_of
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterSiteState, EnapterState
from reconciler.plan.enapter_sites import match_site
from reconciler.plan.observed import Unreachable
from reconciler.printable import echo

# Device name -> the Enapter sites its device was applied in before, as recorded.
LastSites = Mapping[str, tuple[str, ...]]
# The key of a replace's `before` that names the Enapter site its device is left in.
LEFT_SITE = "enapter_site"


def remembered_sites(fleet: Fleet, remembered: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """The CLI's record (`remembered`: Enapter site id -> the Site an apply made or matched
    it for), said per Device: those of its Site, for each slug-keyed Device of `fleet`."""
    by_site: dict[str, list[str]] = {}
    for site_id, site_name in sorted(remembered.items()):
        by_site.setdefault(site_name, []).append(site_id)
    out: dict[str, tuple[str, ...]] = {}
    for device in _slug_keyed(fleet):
        site = fleet.site_of_device(device)
        if site is not None and site.name in by_site:
            out[device.name] = tuple(by_site[site.name])
    return out


def to_read(
    fleet: Fleet, whole: Fleet, state: EnapterState, last: LastSites
) -> dict[str, tuple[str, ...]]:
    """Device name -> the sites of `last` to look for its device in: listed, not its
    Site's own, nor any declared Site's (of `whole`), for each slug-keyed Device of `fleet`
    whose Site's own site (read) lacks its slug, or has no site yet."""
    if not isinstance(state.sites, list) or not last:
        return {}
    listed = {site.id for site in state.sites}
    claimed = {
        match.id
        for site in whole.sites.values()
        if site.spec.enapter is not None
        for match in (match_site(site, state.sites),)
        if match is not None
    }
    out: dict[str, tuple[str, ...]] = {}
    for device in _slug_keyed(fleet):
        site = fleet.site_of_device(device)
        if site is None or site.spec.enapter is None or not last.get(device.name):
            continue
        own = match_site(site, state.sites)
        if own is not None:
            devices = state.devices.get(own.id)
            if not isinstance(devices, list) or find_device(device, devices)[0] is not None:
                continue  # not read (the plan defers it), or found where it is declared
        sites = tuple(
            site_id for site_id in last[device.name]
            if site_id in listed and site_id not in claimed
        )
        if sites:
            out[device.name] = sites
    return out


@dataclass(frozen=True)
class LeftDevice:
    """A Device's device found in the Enapter site it was in before (`left_device`)."""

    site: EnapterSiteState
    device: EnapterDeviceState

    def where(self) -> str:
        return (
            f"its device is {self.device.type} device {self.device.id} "
            f"({echo(self.device.name)}) in Enapter site {self.site.id} "
            f"({echo(self.site.name)}), the Enapter site its Site was before"
        )


def left_device(
    device: Device, state: EnapterState, own: str | None
) -> LeftDevice | Unreachable | None:
    """`device`'s device in one of the sites it was looked for in (`state.left_sites`),
    other than `own` (the site its Site is now, when it has one), of the id recorded for it
    when one is (`state.left_ids`); Unreachable when one of those could not be read:
    whether it is there is not known."""
    if not isinstance(state.sites, list):
        return None
    sites = {site.id: site for site in state.sites}
    for site_id in state.left_sites.get(device.name, ()):
        devices = state.devices.get(site_id)
        if site_id == own or site_id not in sites or devices is None:
            continue
        if isinstance(devices, Unreachable):
            return Unreachable(
                f"devices of Enapter site {site_id}, where its device was before its Site "
                f"moved: {devices.reason}"
            )
        found, _ = find_device(device, devices)
        recorded = state.left_ids.get(device.name)
        # Of its slug but not the id recorded for it: another's (a Device of another
        # namespace, its Site now the old site), not to be deleted.
        if found is not None and recorded in (None, found.id):
            return LeftDevice(sites[site_id], found)
    return None


def devices_in(state: EnapterState, site_ids: Iterable[str]) -> list[EnapterDeviceState]:
    """The devices read in the sites `site_ids` (those not read, or unreadable, have none)."""
    return [
        device
        for site_id in site_ids
        for devices in (state.devices.get(site_id),)
        if isinstance(devices, list)
        for device in devices
    ]


def _slug_keyed(fleet: Fleet) -> list[Device]:
    return [
        device for device in fleet.devices.values()
        if device.spec.enapter is not None and kind_of(device) in SLUG_KEYED
    ]
