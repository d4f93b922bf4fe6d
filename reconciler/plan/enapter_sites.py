"""Which Enapter site a Site is: the one it declares by id or name (`match_site`), else the
unclaimed one it was renamed from, recognised by its devices' hardware ids and slugs
(`find_renamed`); and where else a hardware id it declares is, as Enapter keeps one in one
site of the organisation: in an unclaimed site (`held_elsewhere`) or in another declared
Site's, which declares it no more (`moved_from`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.plan import renames
from reconciler.plan.actions import address_of
from reconciler.plan.advice import Advice, Audience
from reconciler.plan.enapter_fields import COMPONENT, HARDWARE_TYPES, declared_by, site_keys
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterSiteState, EnapterState
from reconciler.plan.observed import Unreachable
from reconciler.plan.renames import Rename
from reconciler.printable import echo


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


def needs_rename_search(fleet: Fleet, site: Site) -> bool:
    """Whether to look for the Enapter site this Site was renamed from, when no site has its
    name: it is found by name (no `siteId`) and has objects to recognise it by."""
    enapter = site.spec.enapter
    return enapter is not None and enapter.site_id is None and any(site_keys(fleet, site))


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


# What becomes of what a site pinned by `siteId` holds and its Site does not declare.
_UNDECLARED = Advice(cli="listed as unmanaged, or deleted with --prune",
                     operator="listed in status.unmanaged")


@dataclass(frozen=True)
class HeldElsewhere:
    """An unclaimed Enapter site holding hardware ids a Site declares (`held_elsewhere`)."""

    site: EnapterSiteState
    # Hardware id -> the device there that has it.
    declared: dict[str, EnapterDeviceState]
    # What it also holds that the Site does not declare (what kept the rename search from
    # taking it), NATIVE halves of embedded UCMs aside.
    undeclared: list[EnapterDeviceState]

    def message(self, audience: Audience) -> str:
        """What holds the hardware ids, why that site is not this Site's, and what to do,
        said for `audience` (`plan.advice`)."""
        site = f"Enapter site {self.site.id} ({echo(self.site.name)})"
        ids = ", ".join(sorted(self.declared))
        held = f"{site} holds hardware id{'s' if len(self.declared) > 1 else ''} {ids}"
        pin = f"set `siteId: {self.site.id}` on this Site to use that site"
        if not self.undeclared:
            return f"{held} and nothing this Site does not declare: {pin}"
        shown = [
            f"{d.type} device {d.id} ({echo(d.name)}, slug {d.slug})" for d in self.undeclared[:3]
        ]
        more = len(self.undeclared) - len(shown)
        listed = ", ".join(shown) + (f" and {more} more" if more else "")
        return (
            f"{held}, but is not taken for this Site renamed because it also holds {listed}, "
            f"which this Site does not declare: {pin} (what it does not declare is then "
            f"{_UNDECLARED.to(audience)}), or delete or declare "
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
            f"({echo(self.site.name)}) of Site {self.owner.name}, which declares it no more "
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


def held_message(hardware_id: str, held: HeldElsewhere, audience: Audience) -> str:
    return (
        f"hardware id {hardware_id} is in another Enapter site, and Enapter keeps a "
        f"hardware id in one site, so provisioning it here would fail: "
        f"{held.message(audience)}"
    )
