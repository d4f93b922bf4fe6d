"""The objects a Site's Enapter site and Flatpeak location hold that nothing declares, for
its `status.unmanaged` (`unmanaged`): the devices there no Device (nor, in Enapter, the
Gateway) is, as the CLI's plan of the whole fleet lists them.

A Site's reconcile plans its closure, the Site alone: that plan takes every device of its
Enapter site and of its Flatpeak location for undeclared. So the platform's planner is run
again here on what that reconcile read, with the namespace's objects, and the entries it
files under this Site are kept: in Enapter, which plans site by site, the Site with its
Gateways and Devices; in Flatpeak, whose devices are the account's and are matched by
reference id whatever their Site, the whole namespace, of which only what the planner
leaves unmanaged is worked out (`FlatpeakPlanner.undeclared`, no change planned), and
only the entries filed under this Site are made, in time of the namespace plus the
account: every Site's reconcile asks it, and planning the whole namespace each time made a
drift check of N Sites take time of N squared and more, as describing every Site's devices
did (each Site's reconcile still goes through the namespace once: it builds it).
Pure: nothing more is read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.model.base import Resource
from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.operator.objects import closure
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.enapter import EnapterPlanner
from reconciler.plan.enapter_fields import COMPONENT as ENAPTER
from reconciler.plan.enapter_fields import site_devices
from reconciler.plan.enapter_observed import EnapterState
from reconciler.plan.flatpeak import COMPONENT as FLATPEAK
from reconciler.plan.flatpeak import FlatpeakPlanner, FlatpeakState
from reconciler.plan.observed import Observed

Found = list[Mapping[str, Any]]


def enapter_devices(site: Site, whole: Fleet, observed: Observed) -> Found | None:
    """The devices of the Enapter site `site` matched that none of its Gateways and Devices
    is; None when they could not be read (the planner then lists none)."""
    state = observed.extra.get(ENAPTER)
    if not isinstance(state, EnapterState):
        return None
    picked: list[Resource] = []
    for resource in [site, *whole.gateways_of(site.name), *site_devices(whole, site)]:
        picked += [r for r in closure(whole, resource).resources() if r not in picked]
    # A replace's interrupted delete is a change, which the Site's reconcile applies
    # (`interrupted_deletes`), not listed; a --prune's (an apply of the CLI on the same
    # state directory) is listed, as the CLI's plan without --prune lists it.
    changes, found = EnapterPlanner(
        Fleet.of(picked), state, whole_fleet=whole, audience=Audience.OPERATOR
    ).plan()
    matched = next(
        (c for c in changes if c.kind == "Site" and c.name == site.name and c.component == ENAPTER),
        None,
    )
    if matched is None or matched.action is Action.DEFER:
        return None
    if matched.external_id is not None and not isinstance(
        state.devices.get(matched.external_id), list
    ):
        return None
    return [e for e in found if e.get("site") == site.name]


def flatpeak_devices(site: Site, whole: Fleet, observed: Observed) -> Found | None:
    """The devices on the Flatpeak location of `site` that no Device of the namespace is,
    and the older ones with the reference id of one of its Devices; None when the account
    could not be read."""
    state = observed.extra.get(FLATPEAK)
    if not isinstance(state, FlatpeakState) or not (
        isinstance(state.locations, list) and isinstance(state.devices, list)
    ):
        return None
    return list(FlatpeakPlanner(
        whole, state, whole_fleet=whole, audience=Audience.OPERATOR
    ).undeclared(site.name))
