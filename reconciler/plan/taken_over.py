"""PURE: the Device that takes over what a Device being released declares: one of the
namespace, not being deleted itself, that declares the same device by the natural key
every plan finds it by. That is what a rename leaves (the object deleted, and another
created with the same device under a new name, as a rename in git does under Argo CD or
Flux, which apply the new object and prune the old). The CLI finds devices by natural
key, so a renamed Device finds its device where it is; the operator's finalizer would
delete it in the clouds and on its Zap first, and the new Device create it again under
new ids, its Novacore history and DERs lost. So the release leaves it to the other
Device, as `apply` would.

The natural keys: on a Zap, the Gateway and `hardwareId` (its Zap device and its Novacore
device); on Enapter, the Site and the Enapter key (the hardware id, or the slug of a
standalone or Lua device). A Device that declares the same device under another Gateway
or Site takes nothing over: that is a move, whose copy the release removes as usual."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.device import SLUG_KEYED, Device
from reconciler.model.fleet import Fleet


def taken_over_by(device: Device, fleet: Fleet, heirs: Iterable[Device]) -> Device | None:
    """The first of `heirs` (the other Devices of `fleet` that may take a device over: the
    operator's are those not being deleted, whose spec is valid once the objects being
    deleted are gone) that declares `device`'s device; None when none does."""
    key = natural_key(device, fleet)
    if key is None:
        return None
    return next(
        (heir for heir in heirs if heir is not device and natural_key(heir, fleet) == key),
        None,
    )


def natural_key(device: Device, fleet: Fleet) -> tuple[str, ...] | None:
    """What finds `device`'s device outside: its Gateway and hardware id, or its Site and
    Enapter key; None for one that has neither (a Flatpeak-only device, or an Enapter one
    whose slug Enapter picks)."""
    spec = device.spec
    if spec.enapter is not None:
        site = fleet.site_of_device(device)
        if site is None:
            return None
        if spec.enapter.kind in SLUG_KEYED:
            slug = device.enapter_slug
            return ("enapter", site.name, "slug", slug) if slug is not None else None
        if spec.hardware_id is None:
            return None
        return ("enapter", site.name, "hardware", spec.hardware_id)
    if spec.gateway_ref and spec.hardware_id is not None:
        return ("gateway", spec.gateway_ref, spec.hardware_id)
    return None
