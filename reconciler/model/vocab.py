"""The vocabularies of device and DER types, and the one place that translates between
the Zap gateway's local DER names and Novacore's cloud DER names.

The Zap local API says `pv` and `v2x_charger`; Novacore says `solar` and `ev_charger_port`
(see platform-apis §0.1 and §6). Users always write the cloud names.
"""

from __future__ import annotations

from enum import StrEnum


class DeviceType(StrEnum):
    """Novacore device types (the device-provisioning table of the Novacore docs)."""

    INVERTER = "inverter"
    BATTERY = "battery"
    EV_CHARGER = "ev_charger"
    V2X_CHARGER = "v2x_charger"
    ENERGY_METER = "energy_meter"


class DerType(StrEnum):
    """Novacore (cloud) DER types."""

    SOLAR = "solar"
    BATTERY = "battery"
    METER = "meter"
    EV_CHARGER_PORT = "ev_charger_port"


# Which DER types a device of each type may provide (Novacore "Device type → Allowed DER types").
ALLOWED_DER_TYPES: dict[DeviceType, frozenset[DerType]] = {
    DeviceType.INVERTER: frozenset({DerType.SOLAR, DerType.BATTERY, DerType.METER}),
    DeviceType.BATTERY: frozenset({DerType.BATTERY, DerType.METER}),
    DeviceType.EV_CHARGER: frozenset({DerType.EV_CHARGER_PORT}),
    DeviceType.V2X_CHARGER: frozenset({DerType.EV_CHARGER_PORT}),
    DeviceType.ENERGY_METER: frozenset({DerType.METER}),
}

# Cloud DER type -> the name the Zap local API uses for the same DER.
_LOCAL_NAME: dict[DerType, str] = {
    DerType.SOLAR: "pv",
    DerType.BATTERY: "battery",
    DerType.METER: "meter",
    DerType.EV_CHARGER_PORT: "v2x_charger",
}
_CLOUD_TYPE: dict[str, DerType] = {local: cloud for cloud, local in _LOCAL_NAME.items()}

# The Zap reports these `device_type` values for devices (GET /api/devices); they are the
# Novacore device types with the same spelling.
ZAP_DEVICE_TYPES = frozenset(t.value for t in DeviceType)

# DER names: "alphanumeric + dash/underscore, at most 64 characters" (Novacore).
DER_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def local_der_type(cloud: DerType | str) -> str:
    """The Zap local API's name for a cloud DER type (`solar` -> `pv`)."""
    # A member's value finds it in the table directly (StrEnum members hash and compare as
    # their values): converting each DER of a large fleet through DerType() was slow. Other
    # values still go through DerType(), to fail as before.
    local = _LOCAL_NAME.get(cloud)  # type: ignore[arg-type]
    return local if local is not None else _LOCAL_NAME[DerType(cloud)]


def cloud_der_type(local: str) -> DerType:
    """The cloud DER type for a Zap local DER name (`pv` -> `solar`). KeyError if unknown."""
    return _CLOUD_TYPE[local]


def is_local_der_type(local: str) -> bool:
    return local in _CLOUD_TYPE


def allowed_der_types(device_type: DeviceType | str) -> frozenset[DerType]:
    return ALLOWED_DER_TYPES[DeviceType(device_type)]
