"""PURE: the changes that take a deleted resource out of the world, for deletion with
`deletionPolicy: Release` (the operator's finalizer): a gateway is released from its
organisation; a device is deleted in the clouds first, then removed from its gateway."""

from __future__ import annotations

from reconciler.model.base import Resource
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.plan.actions import Action, Change, Reason, address_of
from reconciler.plan.observed import Observed, ZapState
from reconciler.plan.sourceful import match_site


def removal_changes(resource: Resource, fleet: Fleet, observed: Observed) -> list[Change]:
    if isinstance(resource, Gateway):
        return _gateway_removal(resource, fleet, observed)
    if isinstance(resource, Device):
        return _device_removal(resource, fleet, observed)
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
    return []


def _device_removal(device: Device, fleet: Fleet, observed: Observed) -> list[Change]:
    changes: list[Change] = []
    site = fleet.site_of_device(device)
    hardware_id = device.spec.hardware_id
    cloud_address = address_of("Device", device.name, "novacore")
    if site is not None and site.spec.novacore is not None and hardware_id:
        candidates = observed.novacore_sites.get(site.spec.novacore.org_id)
        match = match_site(site, candidates) if isinstance(candidates, list) else None
        devices = observed.novacore_devices.get(match.id) if match else None
        for cloud in devices if isinstance(devices, list) else []:
            if cloud.hardware_id == hardware_id:
                changes.append(
                    Change(
                        address=cloud_address,
                        kind="Device",
                        name=device.name,
                        component="novacore",
                        action=Action.DELETE,
                        reason=Reason.DELETION_POLICY,
                        site=site.name,
                        external_id=cloud.id,
                        message="deleted in Novacore (deletionPolicy Release)",
                    )
                )
    state = observed.zaps.get(device.spec.gateway_ref or "")
    if isinstance(state, ZapState) and hardware_id in state.devices:
        changes.append(
            Change(
                address=address_of("Device", device.name, "zap"),
                kind="Device",
                name=device.name,
                component="zap",
                action=Action.DELETE,
                reason=Reason.DELETION_POLICY,
                site=site.name if site else "",
                external_id=hardware_id,
                depends_on=[cloud_address] if changes else [],
                message="removed from its gateway (deletionPolicy Release)",
            )
        )
    return changes
