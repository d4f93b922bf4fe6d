"""What an object's status says of the objects found that nothing declares
(`status.unmanaged`): the plan's `unmanaged` list, as `reconciler plan` lists it and the
watch agent logs it. The operator removes none of them (no `--prune`), so this is where a
user sees them: a device added by hand to a Zap, the copy a Device moved to another
Gateway left on its old Zap, a Novacore device of a Site that no Device is, another
Novacore site of the name a Site is found by (it uses the first), a device in a Site's
Enapter site or on its Flatpeak location that no Device is.

Each object is reported by one object only, the one whose reconcile reads where it is:
a Zap's devices by their Gateway, a Novacore site's devices by their Site, a Novacore
device's DERs by its Device, the devices of a Site's Enapter site and Flatpeak location by
that Site (`unmanaged_clouds`), and the gateways claimed in a Site's organisation that no
Gateway declares by that Site (the first by name of the namespace's Sites in that
organisation that are reconciled: not refused, not paused); those of an organisation no
Site of the namespace names, only the `zap.orgId` of Gateways, by the first such Gateway
by name that is reconciled. Each reconcile plans its object's closure
(`objects.closure`), which holds none of the Devices of a Gateway or a Site, nor the
Gateways of a Site: what that plan finds unmanaged is checked again here against every
Device of the namespace, and the gateways against every Gateway object the operator
serves, of every namespace (`Served`), as the CLI's plan of the whole fleet matches them.
Nothing more is read for it: a Site's reconcile lists its organisation's gateways at every
drift check already, a Gateway's the organisation it is claimed into. Pure: `reconcile.py`
plans, `handlers.py` writes the status and says a change of the set once by an event."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.model.base import Resource
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.model.status import UnmanagedObject, UnmanagedObjects
from reconciler.operator import unmanaged_clouds
from reconciler.operator.objects import claimed_serials
from reconciler.plan.actions import Action, Change
from reconciler.plan.novacore_claims import claim_org
from reconciler.plan.novacore_devices import bound_device
from reconciler.plan.observed import NovacoreDevice, Observed, ZapState
from reconciler.plan.render import objects

# The status field (`model.status.ResourceStatus.unmanaged`).
UNMANAGED = "unmanaged"
# The event that says, once, that the set changed.
EVENT_REASON = "Unmanaged"
# How many the status lists; `count` says how many there are.
SHOWN = 20
Entry = dict[str, str]


@dataclass(frozen=True)
class Served:
    """What the operator sees of the Gateway objects: the serials those it serves declare,
    or hold claimed (a serial swapped out of the spec, whose release waits: the Gateway
    says it), of every namespace its indexes hold. `scope`: "" when it serves the whole
    cluster; otherwise what it serves, said in each entry, as a Gateway it does not serve
    (another namespace, another shard) may declare the gateway."""

    serials: frozenset[str] = frozenset()
    scope: str = ""


def served(
    gateways: Iterable[Mapping[str, Any]], namespaces: Sequence[str], shard: str
) -> Served:
    """`Served` of the Gateway index documents of every namespace (`objects.index_document`)
    for an operator serving `namespaces` (none: all) and the objects of `shard` (a label
    selector; "": all)."""
    serials: set[str] = set()
    for body in gateways:
        zap = (body.get("spec") or {}).get("zap")
        serial = zap.get("serial") if isinstance(zap, Mapping) else None
        if isinstance(serial, str):
            serials.add(serial)
        serials.update(claimed_serials(body))
    parts = []
    if namespaces:
        parts.append(f"namespaces {', '.join(namespaces)}")
    if shard:
        parts.append(f"shard {shard}")
    scope = f" by a Gateway this operator serves ({'; '.join(parts)})" if parts else ""
    return Served(frozenset(serials), scope)


def found(
    resource: Resource,
    whole: Fleet,
    entries: Iterable[Mapping[str, Any]],
    observed: Observed,
    own: Sequence[Change],
    novacore_sites: Mapping[str, str],
    gateways: Served | None = None,
    reporting: Collection[tuple[str, str]] = (),
) -> list[Entry] | None:
    """The unmanaged objects `resource` reports, of its plan's `entries`; None when it
    reports none (not its kind), or when where they are could not be read this time (what
    its status says stays as it is, as the watch agent keeps a deferred site's).
    `novacore_sites`: Site name -> the id of the Novacore site it matched. For a Site or a
    Gateway, `gateways`: the Gateway objects served, against which the gateways claimed in
    its organisation are checked (None: they are not); `reporting`: the Sites and Gateways
    of the namespace whose reconcile reports, as (kind, name) (`_reports_org`: which of
    them reports an organisation's gateways)."""
    kind, name = resource.KIND, resource.name
    if isinstance(resource, Gateway):
        if resource.spec.zap is None:
            return None
        declared = {d.spec.hardware_id for d in whole.devices_of(name)}
        zap_parts: list[list[Entry] | None] = [
            _listed(
                e for e in entries
                if e.get("platform") == "zap" and e.get("gateway") == name
                and e.get("id") not in declared
            ) if isinstance(observed.zaps.get(name), ZapState) else None
        ]
        org = claim_org(resource, whole.sites.get(resource.spec.site_ref or ""))
        if gateways is not None and org:
            zap_parts.append(_org_gateways(resource, org, whole, entries, observed, gateways,
                                           reporting))
        return _all_read(zap_parts)
    if isinstance(resource, Site):
        parts: list[list[Entry] | None] = []
        novacore = resource.spec.novacore
        if novacore is not None:
            parts.append(_site_devices(resource, whole, entries, observed, own, novacore_sites))
            if gateways is not None:
                parts.append(_org_gateways(
                    resource, novacore.org_id, whole, entries, observed, gateways, reporting
                ))
        if resource.spec.enapter is not None:
            parts.append(_maybe(unmanaged_clouds.enapter_devices(resource, whole, observed)))
        if resource.spec.flatpeak is not None:
            parts.append(_maybe(unmanaged_clouds.flatpeak_devices(resource, whole, observed)))
        return _all_read(parts) if parts else None
    if kind == "Device":
        gateway = whole.gateways.get(getattr(resource.spec, "gateway_ref", None) or "")
        site = whole.sites.get(gateway.spec.site_ref) if gateway is not None else None
        if site is None or site.spec.novacore is None:
            return None
        if any(c.action is Action.DEFER for c in own if c.component == "novacore"):
            return None  # its Novacore device, and so its DERs, not read
        return _listed(e for e in entries if e.get("device") == name and "field" not in e)
    return None


def _all_read(parts: Sequence[list[Entry] | None]) -> list[Entry] | None:
    """The entries of every part, or None when one could not be read: the status then
    stays as it is, as a part would say the rest was gone."""
    read = [part for part in parts if part is not None]
    return None if len(read) < len(parts) else [e for part in read for e in part]


def _maybe(found: Iterable[Mapping[str, Any]] | None) -> list[Entry] | None:
    return None if found is None else _listed(found)


def _site_devices(
    site: Resource,
    whole: Fleet,
    entries: Iterable[Mapping[str, Any]],
    observed: Observed,
    own: Sequence[Change],
    novacore_sites: Mapping[str, str],
) -> list[Entry] | None:
    """The devices of the Novacore site `site` matched that no Device is, and the other
    sites of its name (`plan.sourceful_unmanaged`); None when its devices could not be read."""
    site_id = novacore_sites.get(site.name)
    if site_id is None:
        # Not found there (it is to be created), unless it could not be looked for.
        return None if any(_unsettled(c) for c in own) else []
    devices = observed.novacore_devices.get(site_id)
    if not isinstance(devices, list):
        return None
    matched = _matched(whole, site.name, devices)
    return _listed(
        e for e in entries
        if e.get("platform") == "novacore" and e.get("site") == site.name
        and "device" not in e and "field" not in e and e.get("id") not in matched
    )


def _org_gateways(
    reporter: Resource,
    org: str,
    whole: Fleet,
    entries: Iterable[Mapping[str, Any]],
    observed: Observed,
    gateways: Served,
    reporting: Collection[tuple[str, str]],
) -> list[Entry] | None:
    """The gateways claimed in `org` that no Gateway object served declares, as the CLI's
    plan says them (`plan.sourceful_unmanaged`: its plan of `reporter` alone lists them
    all), when `reporter` is the object of the namespace that reports them
    (`_reports_org`); None when they could not be listed."""
    if not _reports_org(reporter, org, whole, reporting):
        return []
    claimed = observed.novacore_gateways.get(org)
    if not isinstance(claimed, set):
        return None
    declared = whole.zap_serials() | gateways.serials
    listed: list[Mapping[str, Any]] = []
    for e in entries:
        serial = str(e.get("id", ""))
        head = f"gateway {serial} is claimed by {org} but not declared"
        description = str(e.get("description", ""))
        if (
            e.get("platform") != "novacore" or "site" in e or serial not in claimed
            or serial in declared or not description.startswith(head)
        ):
            continue
        listed.append({**e, "description": head + gateways.scope + description[len(head):]})
    return _listed(listed)


def _reports_org(
    reporter: Resource, org: str, whole: Fleet, reporting: Collection[tuple[str, str]]
) -> bool:
    """Whether `reporter` reports the gateways claimed in `org` that nothing declares: the
    first by name of the namespace's Sites in `org` that are `reporting`; where no Site of
    the namespace names `org` (only the `zap.orgId` of Gateways does), the first by name of
    the `reporting` Gateways claimed into it, whose plans list its gateways as a Site's
    list its organisation's."""
    sites = [
        name for name, site in whole.sites.items()
        if site.spec.novacore is not None and site.spec.novacore.org_id == org
    ]
    if sites:
        first = min((n for n in sites if ("Site", n) in reporting), default=None)
        return (reporter.KIND, reporter.name) == ("Site", first)
    claiming = [
        name for name, gateway in whole.gateways.items()
        if gateway.spec.zap is not None and ("Gateway", name) in reporting
        and claim_org(gateway, whole.sites.get(gateway.spec.site_ref or "")) == org
    ]
    return (reporter.KIND, reporter.name) == ("Gateway", min(claiming, default=None))


def _unsettled(change: Change) -> bool:
    return change.action is Action.DEFER or change.blocked


def _matched(whole: Fleet, site: str, devices: list[NovacoreDevice]) -> set[str]:
    """The ids of the Novacore devices of `site` that Devices of the namespace are, matched
    as the plan matches them (`plan.sourceful`): by hardware id, the one bound to its
    gateway first."""
    by_hardware: dict[str, list[NovacoreDevice]] = {}
    for cloud_device in devices:
        by_hardware.setdefault(cloud_device.hardware_id, []).append(cloud_device)
    matched: set[str] = set()
    for gateway in whole.gateways_of(site):
        if gateway.spec.zap is None:
            continue
        for device in whole.devices_of(gateway.name):
            hardware_id = device.spec.hardware_id
            if hardware_id is None or device.spec.connection is None:
                continue
            cloud = bound_device(by_hardware.get(hardware_id, []), gateway.spec.zap.serial)
            if cloud is not None:
                matched.add(cloud.id)
    return matched


def _listed(entries: Iterable[Mapping[str, Any]]) -> list[Entry]:
    """Each as the status lists it. The plans that found them were made for the operator
    (`plan.advice.Audience.OPERATOR`): they say nothing of the CLI's `--prune`, and the
    event that lists them says to remove them by hand."""
    return [
        {
            "platform": str(e.get("platform", "")),
            "id": str(e.get("id", "")),
            "description": str(e.get("description", "")),
        }
        for e in entries
    ]


def block(entries: Sequence[Entry]) -> dict[str, Any]:
    """`status.unmanaged`: how many, and the first `SHOWN`."""
    status = UnmanagedObjects(
        count=len(entries),
        objects=[UnmanagedObject.model_validate(e) for e in entries[:SHOWN]],
    )
    return status.model_dump(by_alias=True)


Said = tuple[int, tuple[str, ...]]


def said(entries: Sequence[Entry]) -> Said:
    """What a status records of `entries`, to compare with: the count and the first
    `SHOWN` descriptions."""
    return len(entries), tuple(e["description"] for e in entries[:SHOWN])


def recorded(status: Mapping[str, Any] | None) -> Said:
    """What `status.unmanaged` says (nothing found, when it says nothing)."""
    held = (status or {}).get(UNMANAGED)
    if not isinstance(held, Mapping):
        return 0, ()
    listed = held.get("objects")
    descriptions = tuple(
        str(o.get("description", "")) for o in listed if isinstance(o, Mapping)
    ) if isinstance(listed, list) else ()
    count = held.get("count")
    return (count if isinstance(count, int) else len(descriptions)), descriptions


def message(entries: Sequence[Entry]) -> str:
    """What the event says of the set found now."""
    if not entries:
        return "no objects found that nothing declares any more"
    listed = "; ".join(e["description"] for e in entries[:SHOWN])
    return (f"{objects(len(entries))} found that nothing declares, left as "
            f"{'it is' if len(entries) == 1 else 'they are'} (remove by hand, or declare): "
            f"{listed}")
