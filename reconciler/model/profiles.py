"""Device profiles the Zap firmware supports out of the box (GET /api/devices/supported):
for each profile, the device type it reports and the connection types it works over.

The loader checks a Device's `connection.*.profile` against this table, and the Zap
simulator serves it, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.vocab import DeviceType


@dataclass(frozen=True)
class Profile:
    name: str
    display_name: str
    device_type: DeviceType
    connection_types: tuple[str, ...]


_MODBUS = ("modbus_tcp", "modbus_rtu")

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("sungrow", "Sungrow", DeviceType.INVERTER, _MODBUS),
        Profile("solis", "Solis", DeviceType.INVERTER, _MODBUS),
        Profile("deye", "Deye", DeviceType.INVERTER, _MODBUS),
        Profile("sma", "SMA", DeviceType.INVERTER, _MODBUS),
        Profile("huawei", "Huawei", DeviceType.INVERTER, _MODBUS),
        Profile("fronius", "Fronius", DeviceType.INVERTER, _MODBUS),
        Profile("solaredge", "SolarEdge", DeviceType.INVERTER, _MODBUS),
        Profile("p1_meter", "P1 Meter", DeviceType.ENERGY_METER, ("p1_uart",)),
        Profile("ambibox", "Ambibox", DeviceType.V2X_CHARGER, ("mqtt",)),
        Profile("ferroamp", "Ferroamp", DeviceType.BATTERY, ("mqtt",)),
    )
}


def profiles_for(connection_type: str) -> list[str]:
    """Names of the profiles that work over a connection type, sorted."""
    return sorted(p.name for p in PROFILES.values() if connection_type in p.connection_types)
