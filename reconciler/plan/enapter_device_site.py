"""PURE: the Enapter site a Device's Enapter device was found in, or is provisioned into,
as a plan says: what its status records (`status.externalIds.enapterSite`), next to the
device's id. It is the Device's own word of where its device is, for its release
(`operator.removal`) to look for it there by its natural key when its id never reached the
status (an apply that provisioned it failed, or was killed, before its id was recorded)
and its Site object is gone, so that nothing else says which Enapter site that was.

It is recorded from the plan, not from what an apply did: a create that fails after
Enapter made the device (an answer lost) leaves the site behind all the same, which is
the case it is for. Only what the plan knows is said: a device found in its Site's
Enapter site, or a create of it there that is to be sent (not blocked). Nothing is said
(the site recorded before stays) when Enapter could not be read, when its Site's Enapter
site is still to be made, or when its create waits for the device to leave another site
(`plan.enapter_sites.held_elsewhere`, `moved_from`): its device, if any, is where it was.
Nor when its device is to be replaced from the site its Site was before into its Site's
now (`plan.enapter_left_devices`): until that replace is done the device is in the old
site, where a replace that failed is looked for again; once it is done, the new site is
recorded (`replaced_into`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from reconciler.plan.actions import Action, Change
from reconciler.plan.enapter_fields import COMPONENT
from reconciler.plan.enapter_left_devices import LEFT_SITE

# The key of `status.externalIds` that records it.
KEY = "enapterSite"


def device_site(own: Iterable[Change], changes: Iterable[Change]) -> str | None:
    """The id of the Enapter site the Device change of `own` (a Device's own changes) finds
    its device in, or provisions it into, as its Site's change among `changes` (the whole
    plan) says; None when it says none (see the module's docstring)."""
    device = _device_change(own)
    if device is None or device.action is Action.DEFER or _leaves_site(device):
        return None
    found = device.external_id is not None and device.action is not Action.CREATE
    provisioning = device.action is Action.CREATE and not device.blocked
    if not (found or provisioning):
        return None
    return _site_id(device, changes)


def replaced_into(
    own: Iterable[Change], changes: Iterable[Change], done: Collection[str]
) -> str | None:
    """The id of the Enapter site the Device change of `own` replaced its device into from
    the site its Site was before, once that replace is done (its address in `done`, the
    addresses of the changes applied); None otherwise."""
    device = _device_change(own)
    if device is None or not _leaves_site(device) or device.address not in done:
        return None
    return _site_id(device, changes)


def _device_change(own: Iterable[Change]) -> Change | None:
    return next((c for c in own if c.kind == "Device" and c.component == COMPONENT), None)


def _leaves_site(device: Change) -> bool:
    """Whether the change replaces the device from another Enapter site into its Site's
    (blocked or not: its reason is then the blocker's)."""
    return device.action is Action.REPLACE and LEFT_SITE in (device.before or {})


def _site_id(device: Change, changes: Iterable[Change]) -> str | None:
    site = next(
        (c for c in changes
         if c.kind == "Site" and c.component == COMPONENT and c.name == device.site),
        None,
    )
    # A Site change holds the id of the Enapter site it matched (`plan.enapter`); one to be
    # created holds none, and nothing is in it yet.
    return site.external_id if site is not None else None
