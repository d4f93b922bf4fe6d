"""PURE: the object that takes over what a Device or Gateway being released declares: one
of the namespace, not being deleted itself, that declares the same device or gateway by
the natural key every plan finds it by. That is what a rename leaves (the object deleted,
and another created with the same device under a new name, as a rename in git does under
Argo CD or Flux, which apply the new object and prune the old). The CLI finds devices by
natural key, so a renamed Device finds its device where it is; the operator's finalizer
would delete it in the clouds and on its Zap first, and the new Device create it again
under new ids, its Novacore history and DERs lost. So the release leaves it to the other
object, as `apply` would. A Gateway renamed likewise: released, its gateway would leave
its organisation, and its devices its Zap (the Devices moved to the new name would count
as moved off it), to be claimed and added again.

The natural keys: a device's gateway (its serial, or the Gateway's name when it is not
declared) and `hardwareId` (its Zap device and its Novacore device); on Enapter, its Site
and Enapter key (the hardware id, or the slug of a standalone or Lua device); a gateway's
serial (a Zap) or hardware id (an Enapter Gateway). A Device that declares the same
device behind another gateway or Site takes nothing over: that is a move, whose copy the
release removes as usual."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from reconciler.model.device import SLUG_KEYED, Device
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway

Declaring = TypeVar("Declaring", Device, Gateway)


def taken_over_by(
    resource: Declaring,
    fleet: Fleet,
    others: Iterable[Declaring],
    may_take_over: Callable[[Declaring], bool],
) -> Declaring | None:
    """The first of `others` (the objects of its kind in `fleet`) that declares the same
    device or gateway as `resource` and `may_take_over` (the operator's: one not being
    deleted, whose spec is valid once the objects being deleted are gone); None when none
    does. Asked only of those that declare the same."""
    key = natural_key(resource, fleet)
    if key is None:
        return None
    return next(
        (
            other
            for other in others
            if other is not resource and natural_key(other, fleet) == key
            and may_take_over(other)
        ),
        None,
    )


def natural_key(resource: Device | Gateway, fleet: Fleet) -> tuple[str, ...] | None:
    """What finds `resource`'s device or gateway outside: a device's Gateway and hardware
    id, or its Site and Enapter key; a gateway's serial or Enapter hardware id. None for a
    device that has neither (a Flatpeak-only device, or an Enapter one whose slug Enapter
    picks)."""
    if isinstance(resource, Gateway):
        if resource.spec.zap is not None:
            return ("zap", resource.spec.zap.serial)
        if resource.spec.enapter is not None:
            return ("enapter gateway", resource.spec.enapter.hardware_id)
        return None
    spec = resource.spec
    if spec.enapter is not None:
        site = fleet.site_of_device(resource)
        if site is None:
            return None
        if spec.enapter.kind in SLUG_KEYED:
            slug = resource.enapter_slug
            return ("enapter", site.name, "slug", slug) if slug is not None else None
        if spec.hardware_id is None:
            return None
        return ("enapter", site.name, "hardware", spec.hardware_id)
    if spec.gateway_ref and spec.hardware_id is not None:
        gateway = fleet.gateways.get(spec.gateway_ref)
        # A renamed Gateway's devices, moved to the new name, are behind the same gateway.
        held_by = natural_key(gateway, fleet) if gateway is not None else None
        return ("device", *(held_by or ("Gateway", spec.gateway_ref)), spec.hardware_id)
    return None
