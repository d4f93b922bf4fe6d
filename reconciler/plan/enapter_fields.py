"""Enapter's vocabulary and the natural keys of its devices: the device types each
provisioning kind is (`TYPE_OF_KIND`), which own a hardware id (`HARDWARE_TYPES`), the
declared fields of a Site and a Device in Enapter's terms (`site_fields`, `device_fields`),
and the remote gateway or device a declared one is (`find_gateway`, `find_device`), found
by hardware id or, for standalone and Lua devices, by (site, slug).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reconciler.model.device import SLUG_KEYED, Device, EnapterKind
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan.enapter_observed import EnapterDeviceState
from reconciler.printable import echo

COMPONENT = "enapter"

# Enapter device types (platform-apis §2.1 DeviceType).
GATEWAY = "GATEWAY"
NATIVE = "NATIVE"
EMBEDDED_UCM = "EMBEDDED_UCM"
TYPE_OF_KIND: dict[EnapterKind, str] = {
    EnapterKind.UCM: "HARDWARE_UCM",
    EnapterKind.VUCM: "VIRTUAL_UCM",
    EnapterKind.EMBEDDED: EMBEDDED_UCM,
    EnapterKind.LINK_MASTER: "LINK_MASTER_UCM",
    EnapterKind.LINK_SLAVE: "LINK_SLAVE_UCM",
    EnapterKind.STANDALONE: "STANDALONE",
    EnapterKind.LUA: "LUA",
}
# Types that own their hardware id. LUA and NATIVE devices report the hardware id of the
# module they run on, and standalone devices a synthetic one, so none of those is a key.
HARDWARE_TYPES = frozenset(
    {GATEWAY, "HARDWARE_UCM", "VIRTUAL_UCM", EMBEDDED_UCM, "LINK_MASTER_UCM", "LINK_SLAVE_UCM"}
)
# Kinds whose provisioning takes a protocol and answers with a communication config.
CONFIG_ON_PROVISION = frozenset({EnapterKind.UCM, EnapterKind.EMBEDDED})
# Enapter generates no config for UCM_LUA communication (seed 003).
NO_CONFIG = frozenset({EnapterKind.LUA})
# MQTT communication types and the protocol each one means.
PROTOCOL_OF_COMMUNICATION = {"MQTT_V1_TLS": "MQTTS", "MQTT_V1_PLAINTEXT": "MQTT"}


def kind_of(device: Device) -> EnapterKind:
    assert device.spec.enapter is not None
    return EnapterKind(device.spec.enapter.kind)


def device_slug(device: Device) -> str | None:
    """The slug a device is found by (`Device.enapter_slug`, which the fleet's uniqueness
    rule uses too); None where Enapter picks."""
    assert device.spec.enapter is not None
    return device.enapter_slug


def site_fields(site: Site) -> dict[str, Any]:
    """Declared fields of the Enapter site."""
    out: dict[str, Any] = {"name": site.spec.display_name, "timezone": site.spec.timezone}
    location = site.spec.location
    if location is not None:
        declared: dict[str, Any] = {"latitude": location.latitude, "longitude": location.longitude}
        if location.name:
            declared["name"] = location.name
        out["location"] = declared
    return out


def location_body(site: Site) -> dict[str, Any] | None:
    """The site location as Enapter takes it (site create and gateway provisioning). The
    name is always sent: Enapter otherwise names the location after the site."""
    location = site.spec.location
    if location is None:
        return None
    return {
        "name": location.name or site.spec.display_name,
        "latitude": location.latitude,
        "longitude": location.longitude,
    }


def compares_protocol(device: Device) -> bool:
    """The protocol matters where provisioning takes it or a config is delivered."""
    enapter = device.spec.enapter
    assert enapter is not None
    kind = kind_of(device)
    delivered = enapter.config_output is not None and kind not in NO_CONFIG
    return kind in CONFIG_ON_PROVISION or delivered


def device_fields(device: Device) -> dict[str, Any]:
    """Declared fields of the device in Enapter's terms (no secret, no remote id)."""
    enapter = device.spec.enapter
    assert enapter is not None
    kind = kind_of(device)
    out: dict[str, Any] = {"type": TYPE_OF_KIND[kind], "name": device.display_name}
    if device.spec.hardware_id is not None and kind not in SLUG_KEYED:
        out["hardware_id"] = device.spec.hardware_id
    slug = device_slug(device)
    if slug is not None:
        out["slug"] = slug
    if enapter.blueprint_id is not None:
        out["blueprint_id"] = enapter.blueprint_id
    if enapter.embedded_type is not None:
        out["embedded_type"] = str(enapter.embedded_type)
    if compares_protocol(device):
        out["protocol"] = str(enapter.protocol)
    if enapter.runtime_ref is not None:
        out["runtime"] = enapter.runtime_ref
    if enapter.master_ref is not None:
        out["master"] = enapter.master_ref
    output = enapter.config_output
    if output is not None and output.file is not None:
        out["config_file"] = output.file
    elif output is not None and output.secret_name is not None:
        out["config_secret"] = output.secret_name
    return out


def site_devices(fleet: Fleet, site: Site) -> list[Device]:
    """The Site's Enapter devices (behind its gateways, and cloud-only), in fleet order."""
    return [
        d
        for d in fleet.devices.values()
        if d.spec.enapter is not None and fleet.site_of_device(d) is site
    ]


def site_keys(fleet: Fleet, site: Site) -> tuple[set[str], set[str]]:
    """(hardware ids, slugs): the natural keys of the Site's gateways and devices."""
    hardware = {
        g.spec.enapter.hardware_id for g in fleet.gateways_of(site.name) if g.spec.enapter
    }
    slugs: set[str] = set()
    for device in site_devices(fleet, site):
        if kind_of(device) in SLUG_KEYED:
            slugs.add(device_slug(device) or "")
        elif device.spec.hardware_id is not None:
            hardware.add(device.spec.hardware_id)
    return hardware, slugs - {""}


def declared_by(fleet: Fleet, site: Site) -> Callable[[EnapterDeviceState], bool]:
    """Whether a remote device carries a hardware id or slug the Site declares."""
    hardware, slugs = site_keys(fleet, site)

    def declared(remote: EnapterDeviceState) -> bool:
        # A NATIVE device is the half Enapter makes for an embedded UCM: the module's id.
        if remote.type in HARDWARE_TYPES or remote.type == NATIVE:
            return remote.hardware_id in hardware
        return remote.slug in slugs

    return declared


def find_gateway(
    gateway: Gateway, devices: Iterable[EnapterDeviceState]
) -> EnapterDeviceState | None:
    assert gateway.spec.enapter is not None
    hardware_id = gateway.spec.enapter.hardware_id
    return next((d for d in devices if d.type == GATEWAY and d.hardware_id == hardware_id), None)


def find_device(
    device: Device, devices: Iterable[EnapterDeviceState]
) -> tuple[EnapterDeviceState | None, str | None]:
    """The remote device by natural key, or (None, why it cannot be created) when the key is
    held by a device of another type."""
    kind = kind_of(device)
    expected = TYPE_OF_KIND[kind]
    if kind in SLUG_KEYED:
        slug = device_slug(device)
        holder = next((d for d in devices if d.slug == slug), None)
        what = f"slug {slug!r}"
    else:
        holder = next(
            (
                d
                for d in devices
                if d.hardware_id == device.spec.hardware_id and d.type in HARDWARE_TYPES
            ),
            None,
        )
        what = f"hardware id {device.spec.hardware_id}"
    if holder is None or holder.type == expected:
        return holder, None
    return None, (
        f"{what} belongs to {holder.type} device {holder.id} ({echo(holder.name)}), not a "
        f"{expected}; Enapter cannot change a device's type: delete that device in "
        f"Enapter Cloud or correct the declaration"
    )


def observed_protocol(remote: EnapterDeviceState) -> str | None:
    return PROTOCOL_OF_COMMUNICATION.get(remote.communication_type or "")
