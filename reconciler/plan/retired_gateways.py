"""PURE: the Zap gateways no Gateway declares any more whose Zap an earlier apply
remembered (the state directory's inventory keeps each one's name, Site and URL,
`RememberedZap`), and the copies on their Zap of devices moved to another gateway in the
same edit. Releasing such a gateway (deletionPolicy Release, `apply --prune`) first
removes those copies, as `apply --prune` removes them from a gateway still declared
(`plan.removal.moved_copies`, the operator's rule); without `--prune` they are reported;
a Zap that could not be read is released all the same, its release saying a copy may
stay. One with deletionPolicy Orphan is read too, never written: its copies are reported
as left on it, until an apply has said so (the inventory then forgets its Zap, which is
not read on every plan after). Each is known by its serial: a name declared again for
another serial (a swapped Zap), or remembered for two, does not hide its Zap. Devices
nobody declares stay on it, as on any gateway removed from the desired state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from reconciler.model.base import API_VERSION
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import DeletionPolicy, Gateway
from reconciler.plan.advice import Advice, Audience
from reconciler.plan.observed import Observed, Unreachable
from reconciler.plan.removal import moved_away


@dataclass(frozen=True)
class RememberedZap:
    """A Zap gateway as an apply declared it: its Gateway's name, its Site, its URL."""

    gateway: str
    site: str
    url: str


def retired_gateways(
    remembered: Mapping[str, RememberedZap | None],
    orgs: Mapping[str, str],
    policies: Mapping[str, str],
    fleet: Fleet,
) -> dict[str, Gateway | None]:
    """Serial -> the Gateway last applied for it (its deletionPolicy of `policies`, `orgId`
    the organisation it was claimed into), for the serials of `remembered` (undeclared
    ones, `state.Inventory.retired_zaps`): None where the inventory holds no usable record
    of its Zap (written before it kept one). Each is keyed by its serial: one whose name a
    declared Gateway has now (a swapped-out serial), or that another of them was
    remembered under too, is named `NAME@SERIAL` (`retired_label`), so that its Zap is
    read, and the copies on it removed, apart from the other Zap of that name."""
    names = Counter(zap.gateway for zap in remembered.values() if zap is not None)
    found: dict[str, Gateway | None] = {}
    for serial, zap in sorted(remembered.items()):
        if zap is None:
            found[serial] = None
            continue
        shared = zap.gateway in fleet.gateways or names[zap.gateway] > 1
        label = retired_label(zap.gateway, serial) if shared else zap.gateway
        policy = policies.get(serial, DeletionPolicy.RELEASE.value)
        found[serial] = _gateway(serial, zap, orgs.get(serial), policy, label)
    return found


def retired_label(name: str, serial: str) -> str:
    """What a retired gateway is called when its name is not its own any more:
    `home-zap@zap-0001`. No declared Gateway can be called so ('@' is not allowed in a
    name), and a change's name (`NAME@SERIAL.SN`) leads back to it as a name does."""
    return f"{name}@{serial}"


def retired_names(retired: Mapping[str, Gateway | None]) -> set[str]:
    """The names of the retired gateways whose Zap is known."""
    return {gateway.name for gateway in retired.values() if gateway is not None}


def _gateway(
    serial: str, zap: RememberedZap, org: str | None, policy: str, label: str
) -> Gateway | None:
    try:
        gateway = Gateway.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": "Gateway",
                "metadata": {"name": zap.gateway},
                "spec": {
                    "siteRef": zap.site,
                    "zap": {"serial": serial, "url": zap.url, **({"orgId": org} if org else {})},
                    "deletionPolicy": policy,
                },
            }
        )
    except ValidationError:
        return None  # a record edited by hand: its Zap is not known
    if label == gateway.name:
        return gateway
    # Named apart from the Gateway that has its name now (validated with the name, which
    # the label is not: it is never declared, only planned and read).
    metadata = gateway.metadata.model_copy(update={"name": label})
    return gateway.model_copy(update={"metadata": metadata})


def is_claimed_where_remembered(gateway: Gateway, observed: Observed) -> bool:
    """Whether the serial of `gateway`, a retired one, is claimed in the organisation it was
    remembered in: only then is its release planned or reported, and its Zap read."""
    zap = gateway.spec.zap
    assert zap is not None
    claimed = observed.novacore_gateways.get(zap.org_id or "")
    return isinstance(claimed, set) and zap.serial in claimed


# What removes the copy a device moved to another gateway left on this one's Zap: the
# CLI's `--prune`. The operator's user is told where the device is, and the event that
# lists it says to remove it by hand.
COPY_PRUNED = Advice(cli="; use --prune to remove it from this gateway", operator="")


def moved_copies_reported(
    gateway: Gateway, fleet: Fleet, observed: Observed, audience: Audience
) -> list[dict[str, Any]]:
    """The copies on the Zap of `gateway` of devices declared elsewhere, as the unmanaged
    objects a plan reports: with deletionPolicy Release, those `--prune` removes (said as
    for a gateway still declared, to `audience`); with Orphan, left on it, as nothing is
    written there."""
    orphan = gateway.spec.deletion_policy == DeletionPolicy.ORPHAN
    then = (
        "; left on it (deletionPolicy Orphan: nothing is written to its Zap); remove it "
        "there by hand"
        if orphan
        else COPY_PRUNED.to(audience)
    )
    return [
        {
            "platform": "zap",
            "gateway": gateway.name,
            "id": copy.sn,
            "description": f"{copy.description(gateway.name)}, not here{then}",
            "prunable": not orphan,
        }
        for copy in moved_away(gateway, fleet, observed)
    ]


def unread_note(gateway: Gateway | None, observed: Observed) -> str:
    """What the release of a retired gateway says when its Zap was not read (no record of
    it, or it did not answer): a copy of a device moved from it may stay. "" when read."""
    if gateway is None:
        where = "its Zap was not read, the state directory's inventory holding no URL for it"
    else:
        state = observed.zaps.get(gateway.name)
        if not isinstance(state, Unreachable):
            return ""
        where = f"the Zap of gateway {gateway.name} could not be read ({state.reason})"
    return (
        f"{where}: a device moved from it to another Gateway may still be configured on it; "
        "remove it there by hand"
    )
