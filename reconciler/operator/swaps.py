"""A Gateway object whose `spec.zap.serial` changed (a unit swapped for a new one): what its
status remembers of its claims (`status.claims`), which serials swapped out of the spec
its reconcile may release, and what it says of those it keeps. The CLI does this with the
state directory's inventory and `apply --prune`; the operator has no inventory, so each
Gateway object remembers the gateways it claimed. Pure: `reconcile.py` observes, plans
and applies."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from reconciler.model.fleet import Fleet
from reconciler.model.gateway import DeletionPolicy
from reconciler.model.status import ClaimedGateway
from reconciler.operator.objects import LAST_VALID_SPEC
from reconciler.plan.actions import Action, Change
from reconciler.plan.novacore_claims import serial_release
from reconciler.plan.observed import Observed, Unreachable

# The status field (`model.status.ResourceStatus.claims`).
CLAIMS = "claims"
# A Novacore device's state once its gateway was released or transferred.
ORPHANED = "orphaned"


def recorded(status: Mapping[str, Any] | None, fleet: Fleet | None = None) -> list[ClaimedGateway]:
    """The claims a Gateway's status records; an entry that does not parse is skipped (it
    names nothing that could be released safely). A status with no `claims` at all, as an
    older operator wrote it, holds the claim that operator made all the same (`fleet`, the
    namespace's, names the organisation: `_claimed_before_claims`)."""
    entries = (status or {}).get(CLAIMS)
    if entries is None and fleet is not None:
        return _claimed_before_claims(status or {}, fleet)
    claims: list[ClaimedGateway] = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            claims.append(ClaimedGateway.model_validate(entry))
        except ValidationError:
            continue
    return claims


def _claimed_before_claims(status: Mapping[str, Any], fleet: Fleet) -> list[ClaimedGateway]:
    """The claim an operator that kept no `status.claims` made: the serial and deletion
    policy of the spec last reconciled (`status.lastValidSpec`), claimed (its `Claimed`
    condition) into the organisation that spec, or its Site, names. Without it, a serial
    swapped before this operator's first reconcile of the Gateway would be forgotten, left
    claimed with `deletionPolicy: Release`; none when the status does not say all that."""
    claimed = any(
        isinstance(c, Mapping) and c.get("type") == "Claimed" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    try:
        spec = json.loads(status.get(LAST_VALID_SPEC) or "")
    except (TypeError, ValueError):
        return []
    zap = spec.get("zap") if isinstance(spec, dict) else None
    if not claimed or not isinstance(zap, dict) or not isinstance(zap.get("serial"), str):
        return []
    site = fleet.sites.get(str(spec.get("siteRef") or ""))
    org = zap.get("orgId") or (site.spec.novacore.org_id if site and site.spec.novacore else "")
    policy = spec.get("deletionPolicy") or DeletionPolicy.ORPHAN.value
    if not isinstance(org, str) or not org or not isinstance(policy, str):
        return []
    return [ClaimedGateway(serial=zap["serial"], org_id=org, deletion_policy=policy)]


def declared_serials(
    gateways: Iterable[tuple[str, Mapping[str, Any]]], own: tuple[str, str]
) -> dict[str, str]:
    """Serial -> the Gateway object ("namespace/name") that declares it, of the Gateway
    documents (namespace, document) given, but for the object `own` (namespace, name)."""
    declared: dict[str, str] = {}
    for namespace, body in gateways:
        name = str((body.get("metadata") or {}).get("name"))
        zap = (body.get("spec") or {}).get("zap")
        serial = zap.get("serial") if isinstance(zap, Mapping) else None
        if isinstance(serial, str) and (namespace, name) != own:
            declared.setdefault(serial, f"{namespace}/{name}")
    return declared


@dataclass
class SwappedOut:
    """The serials a Gateway object claimed before its spec named another one."""

    # Serial -> its claim, to be released (deletionPolicy Release) once that is safe.
    release: dict[str, ClaimedGateway] = field(default_factory=dict)
    # What is said of the serials left claimed and forgotten now (event messages).
    kept: list[str] = field(default_factory=list)


def swapped_out(
    claims: Iterable[ClaimedGateway], serial: str, declared_elsewhere: Mapping[str, str]
) -> SwappedOut:
    """Sort the claimed serials other than `serial` (the declared one): those to release,
    and those left claimed, saying why: their policy keeps them, or another Gateway object
    of the cluster declares them (its reconcile claims it, or a unit moved between two)."""
    out = SwappedOut()
    for claim in claims:
        if claim.serial == serial or claim.serial in out.release:
            continue
        what = f"gateway {claim.serial}, swapped out of the spec for {serial},"
        if claim.deletion_policy != DeletionPolicy.RELEASE.value:
            out.kept.append(
                f"{what} stays claimed by {claim.org_id} (deletionPolicy "
                f"{claim.deletion_policy}); release it in Novacore by hand if it is not used"
            )
        elif claim.serial in declared_elsewhere:
            out.kept.append(
                f"{what} stays claimed by {claim.org_id}: Gateway "
                f"{declared_elsewhere[claim.serial]} declares it"
            )
        else:
            out.release[claim.serial] = claim
    return out


def releasable(
    swapped: SwappedOut, serial: str, claims: Iterable[ClaimedGateway]
) -> frozenset[str]:
    """The serials of `swapped.release` whose release this reconcile plans: all of them
    once the declared `serial` is claimed (its claim recorded by an earlier reconcile:
    `current_claims`), none before. Until then each waits for that claim whatever its
    devices (`release_step`), and planning its release would read the devices of every
    site of its organisation (`engine.release_reads`) at each retry for nothing."""
    if any(claim.serial == serial for claim in claims):
        return frozenset(swapped.release)
    return frozenset()


@dataclass(frozen=True)
class Step:
    """What this reconcile does with a serial swapped out: apply `change` (its release),
    wait (keep the claim, saying why in `message`), or forget it (nothing to release)."""

    claim: ClaimedGateway
    message: str
    change: Change | None = None
    forget: bool = False


def ownership_step(claim: ClaimedGateway, serial: str, observed: Observed) -> Step | None:
    """What is done with `claim` (swapped out for `serial`) when it is no longer, or not
    known to be, its organisation's to release: left to another organisation that holds
    it now, waited for while its organisation's gateways are unread, forgotten once
    nobody holds it. None when it is still claimed where it was."""
    old, org = claim.serial, claim.org_id
    what = f"gateway {old}, swapped out of the spec for {serial},"
    elsewhere = sorted(
        other
        for other, serials in observed.novacore_gateways.items()
        if other != org and isinstance(serials, set) and old in serials
    )
    if elsewhere:
        return Step(claim, f"{what} is claimed by {elsewhere[0]} now, not by {org} where it "
                    "was claimed with deletionPolicy Release: left claimed there", forget=True)
    listed = observed.novacore_gateways.get(org)
    if isinstance(listed, Unreachable) or listed is None:
        why = listed.reason if listed is not None else "not read"
        return Step(claim, f"{what} is released once the gateways of {org} can be read ({why})")
    if old not in listed:
        return Step(claim, f"{what} is claimed by {org} no more: nothing to release",
                    forget=True)
    return None


def release_step(
    claim: ClaimedGateway,
    serial: str,
    claimed: bool,
    changes: Iterable[Change],
    observed: Observed,
    *,
    planned: bool = True,
) -> Step:
    """What to do now with `claim`, swapped out for `serial` (`claimed`: whether that one
    is claimed, found so by this plan; `planned`: whether this plan was asked to release
    it, `releasable`). Released only once the new one is claimed and no Novacore device
    is bound to the old one any more (a release orphans them); never from an organisation
    that is not the one it was claimed into."""
    old = claim.serial
    what = f"gateway {old}, swapped out of the spec for {serial},"
    ownership = ownership_step(claim, serial, observed)
    if ownership is not None:
        return ownership
    if not claimed:
        return Step(claim, f"{what} is released once gateway {serial} is claimed")
    if not planned:
        # Claimed, but found so first by this plan: the next one plans the release.
        return Step(claim, f"{what} is released at the next reconcile, gateway {serial} "
                    "being claimed now")
    bound = bound_devices(old, observed)
    if bound:
        return Step(
            claim,
            f"{what} is released once the Novacore devices bound to it move to gateway "
            f"{serial} (each with its Device's reconcile; delete those no Device declares): "
            + ", ".join(sorted(bound)[:10]),
        )
    change = next(
        (
            c
            for c in changes
            if c.kind == "Gateway" and c.name == old and c.component == "novacore"
            and c.action in (Action.RELEASE, Action.DEFER)
        ),
        None,
    )
    if change is None:
        return Step(claim, f"{what} is not planned for release")
    if change.blocked or change.action is Action.DEFER:
        return Step(claim, f"{what} is released once it can be: {change.message}")
    return Step(claim, f"{what} is released (deletionPolicy Release)", change=change)


def bound_devices(serial: str, observed: Observed) -> list[str]:
    """The Novacore devices read that are bound to `serial` ("id (hardware id)"). One
    orphaned already (its gateway was released or transferred before) still names the
    serial but has lost its gateway, so a release takes nothing more from it: not counted,
    as the planner counts none (`plan.sourceful_unmanaged`, `_release_after_devices`), else the
    operator would wait forever where `apply --prune` releases."""
    return [
        f"{device.id} ({device.hardware_id})"
        for devices in observed.novacore_devices.values()
        if isinstance(devices, list)
        for device in devices
        if device.gateway_serial == serial and device.state != ORPHANED
    ]


def deletion_step(claim: ClaimedGateway, serial: str, observed: Observed) -> Step:
    """What the deletion of the Gateway object does with `claim`, swapped out of its spec
    for `serial` and still waiting for its release: released now (deletionPolicy Release)
    once no Novacore device of its organisation is bound to it any more, else waited for,
    saying why (the finalizer stays); forgotten when nothing is left to release. The
    devices of every site of the organisation are read (`engine.release_reads`)."""
    old, org = claim.serial, claim.org_id
    what = f"gateway {old}, swapped out of the spec for {serial},"
    ownership = ownership_step(claim, serial, observed)
    if ownership is not None:
        return ownership
    sites = observed.novacore_sites.get(org)
    if not isinstance(sites, list):
        unread = [sites.reason if sites is not None else "its sites not listed"]
    else:
        unread = [
            f"site {site.id}: {devices.reason if devices is not None else 'not read'}"
            for site in sites
            if not isinstance(devices := observed.novacore_devices.get(site.id), list)
        ]
    if unread:
        return Step(claim, f"{what} is released once the Novacore devices of {org}, which "
                    f"may be bound to it, can be read ({unread[0]})")
    bound = bound_devices(old, observed)
    if bound:
        return Step(
            claim,
            f"{what} is released once no Novacore device is bound to it any more (a release "
            "orphans them: delete them, or their Devices with deletionPolicy Release, or "
            "move them to another gateway): " + ", ".join(sorted(bound)[:10]),
        )
    change = serial_release(old, org, f"{what} released from {org} (deletionPolicy Release)")
    return Step(claim, change.message, change=change)


def inventory(release: Mapping[str, ClaimedGateway]) -> tuple[dict[str, str], dict[str, str]]:
    """The planner's inventory of the serials to release (`PlanOptions.inventory`,
    `inventory_orgs`)."""
    return (
        {s: c.deletion_policy for s, c in release.items()},
        {s: c.org_id for s, c in release.items()},
    )


def current_claims(
    serial: str,
    claimed: ClaimedGateway | None,
    recorded: Iterable[ClaimedGateway],
    waiting: Iterable[ClaimedGateway],
) -> list[ClaimedGateway]:
    """`status.claims` after a reconcile: the declared `serial`'s claim (`claimed`: as found
    now; as recorded while it is not claimed), then those swapped out whose release waits."""
    current = claimed or next((c for c in recorded if c.serial == serial), None)
    return ([current] if current is not None else []) + [
        c for c in waiting if c.serial != serial
    ]
