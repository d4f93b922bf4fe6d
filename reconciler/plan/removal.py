"""PURE: the changes that take a deleted resource out of the world, for deletion with
`deletionPolicy: Release` (the operator's finalizer): a gateway is released from its
organisation; a device is deleted in the clouds first (Novacore, and Enapter Cloud:
`plan.enapter_removal`), then removed from its gateway.
What could not be read is deferred, never taken for gone: the removal is tried again.
A gateway released also loses the copies of devices moved to another gateway
(`moved_copies`), as `apply --prune` removes them while it is declared; either removal
goes only once the device is on its new gateway (`copy_waits`). A device whose new Gateway
is being deleted or gone stays on the released gateway's Zap, said (`left_on_zap`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from reconciler.model.base import Resource
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.plan.actions import Action, Change, Reason, address_of
from reconciler.plan.device_gateways import undeclared_device_name
from reconciler.plan.enapter_removal import enapter_removal
from reconciler.plan.enapter_witnesses import Witnessed
from reconciler.plan.moves import Declaration, declarations
from reconciler.plan.novacore_sites import match_site
from reconciler.plan.observed import Observed, Unreachable, ZapDevice, ZapState
from reconciler.plan.zap_settings import observed_connection


def removal_changes(
    resource: Resource, fleet: Fleet, observed: Observed, *, novacore_id: str | None = None,
    enapter_id: str | None = None, witnessed: Witnessed | None = None,
    others: Collection[str] = (),
) -> list[Change]:
    """The changes that release `resource`. `novacore_id` is the Novacore id a device was
    last seen with: it is deleted by that id when its site cannot be looked up (the Site
    object is gone too, or its Novacore site is not found). `enapter_id`, its Enapter id,
    likewise when its Site object is gone; without it, `witnessed` says the Enapter site to
    look in, and `others` the Enapter ids other objects recorded (`enapter_removal`)."""
    if isinstance(resource, Gateway):
        return _gateway_removal(resource, fleet, observed)
    if isinstance(resource, Device):
        return _device_removal(
            resource, fleet, observed, novacore_id, enapter_id, witnessed, others
        )
    return []


def _gateway_removal(gateway: Gateway, fleet: Fleet, observed: Observed) -> list[Change]:
    zap = gateway.spec.zap
    if zap is None:
        return []
    for org, serials in observed.novacore_gateways.items():
        if isinstance(serials, set) and zap.serial in serials:
            return [
                Change(
                    address=address_of("Gateway", gateway.name, "novacore"),
                    kind="Gateway",
                    name=gateway.name,
                    component="novacore",
                    action=Action.RELEASE,
                    reason=Reason.DELETION_POLICY,
                    site=gateway.spec.site_ref,
                    before={"serial": zap.serial, "org_id": org},
                    external_id=zap.serial,
                    message=f"released from {org} (deletionPolicy Release)",
                )
            ]
    unread = [u for u in observed.novacore_gateways.values() if isinstance(u, Unreachable)]
    if unread:
        # Perhaps claimed into an organisation that could not be listed: not taken for free.
        return [
            Change.new(
                "Gateway",
                gateway.name,
                "novacore",
                Action.DEFER,
                Reason.TARGET_UNREACHABLE,
                site=gateway.spec.site_ref,
                external_id=zap.serial,
                message=f"not released: Novacore could not be read: {unread[0].reason}",
            )
        ]
    return []


@dataclass(frozen=True, slots=True)
class MovedCopy:
    """A device on the Zap of a gateway that a Device declares behind another gateway:
    the copy its move left behind."""

    sn: str
    device: ZapDevice  # as the Zap reports it
    to: Declaration  # where it is declared now

    def description(self, gateway: str) -> str:
        """What the copy is, found on `gateway`: "inverter SG0001 on gateway home-zap is
        declared on gateway other-zap (Device inv)"."""
        return (
            f"{self.device.device_type or 'device'} {self.sn} on gateway {gateway} is "
            f"declared on gateway {self.to.gateway} (Device {self.to.device})"
        )


def moved_away(gateway: Gateway, fleet: Fleet, observed: Observed) -> list[MovedCopy]:
    """The devices on the Zap of `gateway` that a Device of `fleet` (the whole declared
    state) declares behind another gateway, by name; none when the Zap was not read. A
    device nobody declares is not one, nor is one still declared on `gateway`."""
    state = observed.zaps.get(gateway.name)
    if not isinstance(state, ZapState):
        return []
    declared = declarations(fleet)
    found: list[MovedCopy] = []
    for sn, device in state.devices.items():
        elsewhere = [d for d in declared.get(sn, ()) if d.gateway != gateway.name]
        if elsewhere:
            found.append(MovedCopy(sn, device, elsewhere[0]))
    return found


def behind_undeclared(gateway: Gateway, fleet: Fleet, observed: Observed) -> list[MovedCopy]:
    """The devices on the Zap of `gateway` that a Device of `fleet` declares behind a
    Gateway `fleet` does not hold (deleted, or not declared yet), and that no Device
    declares behind a Gateway it holds (`moved_away`, or still on `gateway`): no Zap is
    known where they belong. None when the Zap was not read."""
    state = observed.zaps.get(gateway.name)
    if not isinstance(state, ZapState):
        return []
    declared = declarations(fleet)
    found: dict[str, MovedCopy] = {}
    for device in fleet.devices.values():
        sn, ref = device.spec.hardware_id, device.spec.gateway_ref
        if sn is None or not ref or ref in fleet.gateways or sn not in state.devices:
            continue
        if sn not in declared and sn not in found:
            found[sn] = MovedCopy(sn, state.devices[sn], Declaration(device.name, ref, "", None))
    return list(found.values())


def left_on_zap(gateway: str, copy: MovedCopy, state: str) -> str:
    """What the release of `gateway` says of `copy`, left on its Zap though its device is
    declared behind another Gateway, which is `state` ("being deleted", "deleted")."""
    return (
        f"{copy.description(gateway)}, a Gateway {state}: left on this gateway's Zap, where "
        "it may be the device's only place (taken off, it could be on no Zap); remove it "
        "there by hand if it is not to stay"
    )


def moved_copies(gateway: Gateway, fleet: Fleet, observed: Observed) -> list[Change]:
    """The removal from the Zap of `gateway`, released, of the devices a Device of `fleet`
    (the whole namespace) declares behind another gateway: the copy a move left behind,
    which the CLI's plan reports as declared elsewhere and `apply --prune` removes. A
    device nobody declares stays (the operator prunes nothing), and so does one still
    declared here. A Zap that could not be read has nothing known to remove (the caller
    says so): a broken gateway is still released."""
    return [moved_copy_removal(gateway, copy) for copy in moved_away(gateway, fleet, observed)]


def copy_waits(copy: MovedCopy, moving: Sequence[Change], observed: Observed) -> str | None:
    """Why the removal of `copy` from the gateway it was left on waits, or None when it may
    go once `moving` (the changes of the Device it is a copy of, which it is ordered after)
    are done. Taken off before the device is on its new gateway, it would be on no Zap: so
    it waits while one of those changes is deferred or blocked (the new Zap offline, the
    device's serial not the declared one), and, with no change of the device on its new
    Zap in the plan (a plan of a part of the fleet), until that Zap was read holding it."""
    waiting = next((c for c in moving if c.blocked or c.action is Action.DEFER), None)
    if waiting is not None:
        state = "blocked" if waiting.blocked else "deferred"
        return f"its device moves first, and {waiting.address} is {state}"
    if any(c.component == "zap" for c in moving):
        return None  # after the device's add there: an apply where it fails skips this
    there = observed.zaps.get(copy.to.gateway)
    if isinstance(there, ZapState) and copy.sn in there.devices:
        return None
    if isinstance(there, Unreachable):
        seen = f"its Zap could not be read: {there.reason}"
    elif there is None:
        seen = "its Zap was not read"
    else:
        seen = "its Zap does not hold it"
    return f"removed once {copy.sn} is on gateway {copy.to.gateway} ({seen})"


def moved_copy_removal(gateway: Gateway, copy: MovedCopy) -> Change:
    """The removal of `copy` from the Zap of `gateway`, released (`moved_copies`)."""
    return Change.new(
        "Device",
        undeclared_device_name(gateway.name, copy.sn),
        "zap",
        Action.DELETE,
        Reason.MOVED,
        site=gateway.spec.site_ref,
        external_id=copy.sn,
        before=observed_connection(copy.device),
        message=f"{copy.description(gateway.name)}: removed from this one (deletionPolicy Release)",
    )


def _device_removal(
    device: Device, fleet: Fleet, observed: Observed, novacore_id: str | None,
    enapter_id: str | None, witnessed: Witnessed | None, others: Collection[str],
) -> list[Change]:
    site = fleet.site_of_device(device)
    hardware_id = device.spec.hardware_id
    cloud = _cloud_removal(device, fleet, observed, novacore_id)
    cloud += enapter_removal(device, fleet, observed, enapter_id, witnessed, others)
    state = observed.zaps.get(device.spec.gateway_ref or "")
    change = Change.new(
        "Device",
        device.name,
        "zap",
        Action.DELETE,
        Reason.DELETION_POLICY,
        site=site.name if site else "",
        external_id=hardware_id,
        depends_on=[c.address for c in cloud],
        message="removed from its gateway (deletionPolicy Release)",
    )
    if isinstance(state, Unreachable):
        change.deferred_action = change.action
        change.action, change.reason = Action.DEFER, Reason.TARGET_UNREACHABLE
        change.message = f"not removed from its gateway, which could not be read: {state.reason}"
    elif not (isinstance(state, ZapState) and hardware_id in state.devices):
        # On no Zap (an Enapter gateway's device, or one gone from it): nothing to remove
        # there, nor to say it waits for.
        return cloud
    elif waiting := next((c for c in cloud if c.action is Action.DEFER or c.blocked), None):
        # Clouds first: the gateway keeps the device until its cloud record is deleted.
        change.deferred_action = change.action
        change.action, change.reason = Action.DEFER, Reason.DEPENDENCY_BLOCKED
        change.message = f"not removed from its gateway before {waiting.address} is deleted"
    return [*cloud, change]


def _cloud_removal(
    device: Device, fleet: Fleet, observed: Observed, novacore_id: str | None
) -> list[Change]:
    """The Novacore deletion of `device`: found by hardware id in its site, or by the id it
    was last seen with when its site cannot be looked up."""
    site = fleet.site_of_device(device)
    hardware_id = device.spec.hardware_id
    found: str | None = None
    unread: Unreachable | None = None
    looked_up = False
    if site is not None and site.spec.novacore is not None and hardware_id:
        candidates = observed.novacore_sites.get(site.spec.novacore.org_id)
        match = match_site(site, candidates) if isinstance(candidates, list) else None
        devices = observed.novacore_devices.get(match.id) if match else None
        if isinstance(candidates, Unreachable):
            unread = candidates
        elif isinstance(devices, Unreachable):
            unread = devices
        elif isinstance(devices, list):
            looked_up = True
            found = next((c.id for c in devices if c.hardware_id == hardware_id), None)
    elif site is not None:
        return []  # not a Novacore site: nothing there
    if not looked_up and unread is None:
        found = novacore_id
    if found is None and unread is None:
        return []
    change = Change.new(
        "Device",
        device.name,
        "novacore",
        Action.DELETE,
        Reason.DELETION_POLICY,
        site=site.name if site else "",
        external_id=found,
        message="deleted in Novacore (deletionPolicy Release)",
    )
    if unread is not None:
        change.deferred_action = change.action
        change.action, change.reason = Action.DEFER, Reason.TARGET_UNREACHABLE
        change.message = f"not deleted in Novacore, which could not be read: {unread.reason}"
    return [change]
