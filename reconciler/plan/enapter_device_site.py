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
(`plan.enapter_sites.held_elsewhere`, `moved_from`): its device, if any, is where it was."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.plan.actions import Action, Change
from reconciler.plan.enapter_fields import COMPONENT

# The key of `status.externalIds` that records it.
KEY = "enapterSite"


def device_site(own: Iterable[Change], changes: Iterable[Change]) -> str | None:
    """The id of the Enapter site the Device change of `own` (a Device's own changes) finds
    its device in, or provisions it into, as its Site's change among `changes` (the whole
    plan) says; None when it says none (see the module's docstring)."""
    device = next(
        (c for c in own if c.kind == "Device" and c.component == COMPONENT), None
    )
    if device is None or device.action is Action.DEFER:
        return None
    found = device.external_id is not None and device.action is not Action.CREATE
    provisioning = device.action is Action.CREATE and not device.blocked
    if not (found or provisioning):
        return None
    site = next(
        (c for c in changes
         if c.kind == "Site" and c.component == COMPONENT and c.name == device.site),
        None,
    )
    # A Site change holds the id of the Enapter site it matched (`plan.enapter`); one to be
    # created holds none, and nothing is in it yet.
    return site.external_id if site is not None else None
