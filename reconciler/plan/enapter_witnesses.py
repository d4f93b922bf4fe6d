"""PURE: where to look for the Enapter device of a Device being released whose Site object
is gone (a namespace's deletion removes its objects in no order) and whose status recorded
no Enapter id (an apply that provisioned it failed, or was killed, before its id reached
the status). Its own status says it first: the Enapter site its reconcile found its device
in, or provisioned it into (`status.externalIds.enapterSite`, `plan.enapter_device_site`),
recorded before anything was applied (`own_site`). A Device an older operator wrote
recorded none: then what says it is the Enapter ids the namespace's other objects of that
Site recorded (`status.externalIds.enapter`): its Enapter Gateway's gateway device, and
the devices of the other Devices of that Site. Its Gateway gone too, no Site is known: the
devices of the other Devices behind that Gateway, provisioned in its Site's Enapter site
as it was, say it still. Read by those ids (`engine.enapter_by_id`), the Enapter site they
are in is where its device is looked for, by its natural key, as where the Site is
declared (`plan.enapter_removal`).

Nothing is guessed: a witness that could not be read defers the release; witnesses in
more than one Enapter site (an object moved to the Site without its Enapter device) name
no one site, and none found (none recorded, or all gone) names none either: then the
device is not looked for, and the release says what may be left (`unknown_device`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.model.device import SLUG_KEYED, Device
from reconciler.model.fleet import Fleet
from reconciler.plan.enapter_fields import COMPONENT, device_slug, kind_of
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterState
from reconciler.plan.observed import Observed, Unreachable
from reconciler.printable import echo

# (kind, name) of an object -> the Enapter id its status records (`NamespaceFleet`).
RecordedIds = Mapping[tuple[str, str], str]


@dataclass(frozen=True)
class Witnessed:
    """What the witnesses of a Device's Enapter site, read by id, say of it."""

    # The one Enapter site they are in; None when they name none, or more than one.
    site_id: str | None = None
    # Why one of them could not be read: nothing is known until it is.
    unread: Unreachable | None = None
    # Every Enapter site they are in, when more than one: no guess among them.
    sites: tuple[str, ...] = ()
    # Whether any was recorded: none, there is no way to know where to look.
    recorded: bool = False
    # Whether `site_id` is the one the Device's own status recorded (`own_site`), not one
    # its witnesses are in.
    own: bool = False


def own_site(site_id: str) -> Witnessed:
    """The Enapter site `site_id` the Device's own status recorded its device in
    (`status.externalIds.enapterSite`): its own word, taken before any witness's."""
    return Witnessed(site_id=site_id, recorded=True, own=True)


def site_name(device: Device, fleet: Fleet) -> str | None:
    """The name of the Site `device` is in: its `siteRef`, or its Gateway's; None when its
    Gateway is not declared either."""
    if device.spec.gateway_ref:
        gateway = fleet.gateways.get(device.spec.gateway_ref)
        return gateway.spec.site_ref if gateway is not None else None
    return device.spec.site_ref or None


def gateway_gone(device: Device, fleet: Fleet) -> str | None:
    """The name of `device`'s Gateway when that Gateway is not declared (any more)."""
    ref = device.spec.gateway_ref
    return ref if ref and ref not in fleet.gateways else None


def witnesses(device: Device, fleet: Fleet, recorded: RecordedIds) -> list[str]:
    """The Enapter ids the other objects of `device`'s Site recorded: its Gateway's first,
    then the other Gateways' and Devices' of that Site, each once. Its Gateway gone too,
    its Site is not known: those the other Devices behind that Gateway recorded."""
    found: dict[str, None] = {}

    def add(kind: str, name: str) -> None:
        recorded_id = recorded.get((kind, name))
        if recorded_id:
            found[recorded_id] = None

    gone = gateway_gone(device, fleet)
    if gone is not None:
        # Provisioned in the Enapter site of their Gateway's Site, as this one was; one
        # moved since names another site too, and then none is guessed (`witnessed`).
        for other in fleet.devices.values():
            if (other.name != device.name and other.spec.enapter is not None
                    and other.spec.gateway_ref == gone):
                add("Device", other.name)
        return list(found)
    site = site_name(device, fleet)
    if site is None:
        return []
    if device.spec.gateway_ref:
        add("Gateway", device.spec.gateway_ref)
    for gateway in fleet.gateways.values():
        if gateway.spec.site_ref == site and gateway.spec.enapter is not None:
            add("Gateway", gateway.name)
    for other in fleet.devices.values():
        if (other.name != device.name and other.spec.enapter is not None
                and site_name(other, fleet) == site):
            add("Device", other.name)
    return list(found)


def witnessed(observed: Observed, ids: Iterable[str]) -> Witnessed:
    """Where the devices of `ids`, read by id into `observed` (`EnapterState.by_id`), are."""
    ids = list(ids)
    if not ids:
        return Witnessed()
    state = observed.extra.get(COMPONENT)
    if not isinstance(state, EnapterState):
        return Witnessed(unread=Unreachable("Enapter Cloud was not read"), recorded=True)
    sites: dict[str, None] = {}
    for recorded_id in ids:
        read = state.by_id.get(recorded_id)
        if isinstance(read, Unreachable):
            return Witnessed(unread=read, recorded=True)
        if isinstance(read, EnapterDeviceState):
            sites[read.site_id] = None
    if len(sites) == 1:
        [site_id] = sites
        return Witnessed(site_id=site_id, recorded=True)
    return Witnessed(sites=tuple(sites), recorded=True)


def natural_key(device: Device) -> str:
    """`device`'s natural key in Enapter, said: its slug or its hardware id."""
    if kind_of(device) in SLUG_KEYED:
        return f"slug {device_slug(device)!r}"
    return f"hardware id {device.spec.hardware_id}"


def witnesses_said(device: Device, fleet: Fleet) -> str:
    """Who `witnesses` asks of `device`, said: its Site's other objects, or, its Gateway
    gone, the other Devices behind that Gateway."""
    gone = gateway_gone(device, fleet)
    if gone is None:
        return "the other objects of its Site"
    return f"the other Devices behind its Gateway {echo(gone)}"


def unknown_device(device: Device, seen: Witnessed, fleet: Fleet) -> str:
    """What is said of `device`'s Enapter device when its Site is gone (or not known, its
    Gateway gone), its status recorded neither its id nor its site, and `seen` names no
    Enapter site to look in: it is not looked for by a guess, which could delete another
    site's device of the same key; the user is told what to look for."""
    gone = gateway_gone(device, fleet)
    who = "the objects of its Site" if gone is None else witnesses_said(device, fleet)
    if seen.sites:
        why = (
            f"{who} recorded Enapter devices in more than one Enapter site "
            f"({', '.join(seen.sites)}), so which one was its Site's is not known"
        )
    elif seen.recorded:
        why = f"the Enapter devices {witnesses_said(device, fleet)} recorded are gone"
    elif gone is None:
        why = "no other object of its Site recorded an Enapter device id to find its site by"
    else:
        why = (
            "no other Device behind that Gateway recorded an Enapter device id to find its "
            "site by"
        )
    lost = (
        "its Site is deleted" if gone is None
        else f"its Gateway {echo(gone)} is deleted, so its Site is not known"
    )
    return (
        f"{lost}, its status recorded neither an Enapter device id nor the Enapter site of "
        f"its device (an apply that provisioned it may have failed before its id was "
        f"recorded, by an operator that recorded no site), and {why}, so nothing "
        f"was looked for or deleted in Enapter Cloud: an Enapter device of "
        f"{natural_key(device)} may be left there; delete it in Enapter Cloud if it is"
    )
