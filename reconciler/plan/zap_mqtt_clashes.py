"""PURE: an MQTT device about to be added to a Zap that already has a device at the same
broker, with the same profile, under another serial.

The Zap does not take the serial a Device declares: it names an MQTT device after what it
finds at the broker (platform-apis: `ambibox_192.168.1.50`, the profile and the broker's
host). A Device whose `hardwareId` is not that serial is planned as a device to add, and
the add finds the serial taken: the Zap refuses it (409 `Device already exists`), on every
apply. The plan blocks it instead, before anything is written, naming the device already
there and what to change (`mqtt_clash`, `clash_message`).
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.device import Connection, Device
from reconciler.plan.observed import ZapDevice, ZapState
from reconciler.printable import quoted

_DEFAULT_BROKER_PORT = 1883  # the Zap's, when it does not report one


def mqtt_clash(connection: Connection, hardware_id: str, zap: ZapState) -> ZapDevice | None:
    """The device on `zap` that an MQTT `connection` about to be added would be taken for:
    another serial than `hardware_id` at the same broker host and port, with the same
    profile. None for any other connection, or when no device is there."""
    mqtt = connection.mqtt
    if mqtt is None:
        return None
    for on_zap in zap.devices.values():
        if on_zap.sn == hardware_id or on_zap.connection_type != "mqtt":
            continue
        settings = on_zap.settings
        if (
            on_zap.profile == mqtt.profile
            and settings.get("broker_host") == mqtt.broker_host
            and settings.get("broker_port", _DEFAULT_BROKER_PORT) == mqtt.broker_port
        ):
            return on_zap
    return None


def clash_message(
    gateway: str, device: Device, held: ZapDevice, devices: Iterable[Device]
) -> str:
    """Why the add of `device` is blocked, `held` being on `gateway` already: which device
    that is (the Device of `devices` declaring it there, or none), and what to change."""
    mqtt = device.spec.connection.mqtt if device.spec.connection is not None else None
    assert mqtt is not None
    owner = next(
        (
            d.name
            for d in devices
            if d.name != device.name
            and d.spec.hardware_id == held.sn
            and d.spec.gateway_ref == gateway
        ),
        None,
    )
    whose = f"declared by Device {owner}" if owner is not None else "which no Device declares"
    fix = (
        "remove one of the two Devices, or correct `connection.mqtt` of this one"
        if owner is not None
        else f"correct `hardwareId` to {quoted(held.sn)} if it is that device, or "
        "`connection.mqtt` if it is another"
    )
    return (
        f"gateway {gateway} already has MQTT device {quoted(held.sn)} ({whose}) at broker "
        f"{mqtt.broker_host}:{mqtt.broker_port} with profile {mqtt.profile}: the Zap names "
        f"an MQTT device after its broker and profile, not after `hardwareId` "
        f"{device.spec.hardware_id!r}, and refuses (409) to add a second one there; nothing "
        f"is added. {fix[0].upper()}{fix[1:]}"
    )
