"""PURE: the Enapter Cloud half of a Device's removal with `deletionPolicy: Release` (the
operator's finalizer, `plan.removal`): its Enapter device, found by its natural key in its
Site's Enapter site (the hardware id, or the slug of a standalone or Lua device) as every
plan finds it, never by the id a status recorded. So a device provisioned by an apply that
failed before its id reached the object's status is deleted all the same, and one deleted
meanwhile is not deleted twice. Enapter refuses to delete a device that others run on (a
UCM's Lua devices, a LINK master's slaves): its removal waits, blocked, naming them. What
could not be read is deferred, never taken for gone."""

from __future__ import annotations

from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Action, Change, Reason
from reconciler.plan.enapter_fields import COMPONENT, find_device
from reconciler.plan.enapter_observed import EnapterState
from reconciler.plan.enapter_sites import match_site
from reconciler.plan.observed import Observed, Unreachable
from reconciler.printable import echo


def enapter_removal(device: Device, fleet: Fleet, observed: Observed) -> list[Change]:
    """The deletion of `device`'s Enapter device, if it declares one and it is there; none
    when its Site is not on Enapter or could not be looked up (not declared any more)."""
    site = fleet.site_of_device(device)
    state = observed.extra.get(COMPONENT)
    if (
        device.spec.enapter is None
        or site is None
        or site.spec.enapter is None
        or not isinstance(state, EnapterState)
    ):
        return []
    change = Change.new(
        "Device",
        device.name,
        COMPONENT,
        Action.DELETE,
        Reason.DELETION_POLICY,
        site=site.name,
        message="deleted in Enapter Cloud (deletionPolicy Release)",
    )
    sites = state.sites
    remote_site = match_site(site, sites) if isinstance(sites, list) else None
    devices = state.devices.get(remote_site.id) if remote_site is not None else None
    unread = next((u for u in (sites, devices) if isinstance(u, Unreachable)), None)
    if unread is not None:
        change.deferred_action = change.action
        change.action, change.reason = Action.DEFER, Reason.TARGET_UNREACHABLE
        change.message = f"not deleted in Enapter Cloud, which could not be read: {unread.reason}"
        return [change]
    if not isinstance(devices, list):
        return []  # no Enapter site of its Site's: nothing of it there
    remote, _ = find_device(device, devices)
    if remote is None:
        return []
    change.external_id = remote.id
    change.before = {"type": remote.type, "name": remote.name, "slug": remote.slug}
    running = sorted(f"{d.type} {d.id} ({echo(d.name)})" for d in devices
                     if d.upstream_id == remote.id)
    if running:
        change.blocked = True
        change.message = (
            f"not deleted in Enapter Cloud: devices run on Enapter device {remote.id} "
            f"({', '.join(running)}), and Enapter refuses to delete it while they do; delete "
            "them first (their Devices with deletionPolicy Release, or in Enapter Cloud)"
        )
    return [change]
