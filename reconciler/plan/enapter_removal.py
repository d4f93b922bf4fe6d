"""PURE: the Enapter Cloud half of a Device's removal with `deletionPolicy: Release` (the
operator's finalizer, `plan.removal`): its Enapter device, found by its natural key in its
Site's Enapter site (the hardware id, or the slug of a standalone or Lua device) as every
plan finds it, never by the id a status recorded. So a device provisioned by an apply that
failed before its id reached the object's status is deleted all the same, and one deleted
meanwhile is not deleted twice. Enapter refuses to delete a device that others run on (a
UCM's Lua devices, a LINK master's slaves): its removal waits, blocked, naming them. What
could not be read is deferred, never taken for gone.

A Device whose Site object is gone (a namespace's deletion removes its objects in no
order) has no Enapter site to look in: its device is read by the id its status recorded
(`status.externalIds.enapter`, `engine.enapter_by_id`), with the devices of its site. Not
there, it is not deleted (gone meanwhile, or by an earlier attempt); found, it is deleted
or waits for the devices that run on it as above; unread, the delete is deferred. Its id
not recorded, it is looked for by its natural key in the Enapter site its status recorded
it in (`status.externalIds.enapterSite`), or else in the one its witnesses say
(`plan.enapter_witnesses`)."""

from __future__ import annotations

from collections.abc import Collection

from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Action, Change, Reason
from reconciler.plan.enapter_fields import COMPONENT, find_device
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterState
from reconciler.plan.enapter_sites import match_site
from reconciler.plan.enapter_witnesses import (
    Witnessed,
    gateway_gone,
    natural_key,
    witnesses_said,
)
from reconciler.plan.observed import Observed, Unreachable
from reconciler.printable import echo

# What a removal that did not read the recorded id by it finds: nothing known of it, so
# nothing deleted (`engine.enapter_by_id` reads it where the operator releases it).
_NOT_READ = Unreachable("the Enapter device its status recorded was not read by its id")


def enapter_removal(
    device: Device, fleet: Fleet, observed: Observed, enapter_id: str | None = None,
    witnessed: Witnessed | None = None, others: Collection[str] = (),
) -> list[Change]:
    """The deletion of `device`'s Enapter device, if it declares one and it is there; none
    when its Site is not on Enapter. `enapter_id`: the id it was last seen with, by which
    it is found when its Site is not declared any more. Without it, `witnessed`: the
    Enapter site the other objects of its Site say (`plan.enapter_witnesses`), where it is
    looked for by its natural key, but for the devices of `others` (ids other objects of
    the namespace recorded); none without either."""
    site = fleet.site_of_device(device)
    state = observed.extra.get(COMPONENT)
    if device.spec.enapter is not None and site is None and enapter_id:
        return _by_recorded_id(device, enapter_id, state)
    if device.spec.enapter is not None and site is None and witnessed is not None:
        return _in_witnessed_site(device, fleet, witnessed, state, others)
    if (
        device.spec.enapter is None
        or site is None
        or site.spec.enapter is None
        or not isinstance(state, EnapterState)
    ):
        return []
    change = _deletion(device, site.name, "deleted in Enapter Cloud (deletionPolicy Release)")
    sites = state.sites
    remote_site = match_site(site, sites) if isinstance(sites, list) else None
    devices = state.devices.get(remote_site.id) if remote_site is not None else None
    unread = next((u for u in (sites, devices) if isinstance(u, Unreachable)), None)
    if unread is not None:
        return [_deferred(change, unread)]
    if not isinstance(devices, list):
        return []  # no Enapter site of its Site's: nothing of it there
    remote, _ = find_device(device, devices)
    if remote is None:
        return []
    return [_found(change, remote, devices)]


def _deletion(device: Device, site: str, message: str) -> Change:
    """`site`: the name of its Site, "" when that is gone (as every change says it)."""
    return Change.new(
        "Device",
        device.name,
        COMPONENT,
        Action.DELETE,
        Reason.DELETION_POLICY,
        site=site,
        message=message,
    )


def _deferred(change: Change, unread: Unreachable) -> Change:
    change.deferred_action = change.action
    change.action, change.reason = Action.DEFER, Reason.TARGET_UNREACHABLE
    change.message = f"not deleted in Enapter Cloud, which could not be read: {unread.reason}"
    return change


def _found(
    change: Change, remote: EnapterDeviceState, devices: list[EnapterDeviceState]
) -> Change:
    """`change`, the delete of `remote`, blocked while `devices` (its site's) run on it:
    Enapter refuses to delete it while they do."""
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
    return change


def _in_witnessed_site(
    device: Device, fleet: Fleet, seen: Witnessed, state: object, others: Collection[str]
) -> list[Change]:
    """The deletion of `device`'s Enapter device, its Site gone and its id not recorded,
    found by its natural key in the Enapter site `seen` names (the one its status
    recorded, or its witnesses'): none when it is not there (never provisioned, or gone,
    or its site is), or it is one another object recorded as its own; deferred when the
    site, or a witness, could not be read."""
    gone = gateway_gone(device, fleet)
    if seen.own:
        where = "the Enapter site its status recorded, " + (
            "its Site being deleted" if gone is None
            else f"its Gateway {echo(gone)} being deleted"
        )
    elif gone is None:
        where = "the Enapter site of its Site's other objects, its Site being deleted"
    else:
        where = (
            f"the Enapter site of {witnesses_said(device, fleet)}, that Gateway being deleted"
        )
    change = _deletion(
        device, "", f"deleted in Enapter Cloud, found by its {natural_key(device)} in "
        f"{where} (deletionPolicy Release)",
    )
    if seen.unread is not None:
        return [_deferred(change, seen.unread)]
    if seen.site_id is None or not isinstance(state, EnapterState):
        return []
    if isinstance(state.sites, Unreachable):
        return [_deferred(change, state.sites)]
    if not any(s.id == seen.site_id for s in state.sites):
        return []  # the site was deleted, and its devices with it
    devices = state.devices.get(seen.site_id, _NOT_READ)
    if isinstance(devices, Unreachable):
        return [_deferred(change, devices)]
    remote, _ = find_device(device, devices)
    if remote is None or remote.id in others:
        return []
    return [_found(change, remote, devices)]


def _by_recorded_id(device: Device, enapter_id: str, state: object) -> list[Change]:
    """The deletion of Enapter device `enapter_id`, which `device`'s status recorded, its
    Site gone, as read by that id (`EnapterState.by_id`): none when Enapter says it is not
    there (deleted meanwhile, or by an earlier attempt); deferred when it, or the devices
    of its site, could not be read."""
    change = _deletion(
        device, "", "deleted in Enapter Cloud, by the id its status recorded, its Site "
        "being deleted (deletionPolicy Release)",
    )
    change.external_id = enapter_id
    read = state.by_id.get(enapter_id, _NOT_READ) if isinstance(state, EnapterState) else _NOT_READ
    if isinstance(read, Unreachable):
        return [_deferred(change, read)]
    if read is None:
        return []
    assert isinstance(state, EnapterState)
    devices = state.devices.get(read.site_id, _NOT_READ)
    if isinstance(devices, Unreachable):
        return [_deferred(change, devices)]
    if not any(d.id == read.id for d in devices):
        return []  # deleted between the two reads
    return [_found(change, read, devices)]
