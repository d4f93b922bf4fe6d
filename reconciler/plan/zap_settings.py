"""The device settings on a Sourceful Zap, in the Zap's own vocabulary: the body a device is
added with (`zap_settings`, never with a secret), the connection a Zap reports for one
(`observed_connection`), how the two differ (`zap_connection_diff`, and `zap_reset_diff` for
settings a spec declares no more), whether applying adds a device to its Zap
(`is_added_to_zap`), and the DER publishing flags a device's DERs ask for (`publish_flags`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.model.der import DerFields
from reconciler.model.device import Connection, Device, ModbusRtu, ModbusTcp, Mqtt, P1Uart, Parity
from reconciler.model.vocab import local_der_type
from reconciler.model.zap_endpoints import normal_host
from reconciler.plan import removed_fields
from reconciler.plan.actions import FieldDiff
from reconciler.plan.diff import compared_only_where_reported
from reconciler.plan.observed import ZapDevice

# Zap RTU parity is numeric (platform-apis §1.2: "parity 0/1/2").
_RTU_PARITY = {Parity.NONE: 0, Parity.ODD: 1, Parity.EVEN: 2}


def zap_settings(connection: Connection) -> dict[str, Any]:
    """The device config in the Zap's own field names (POST /api/devices body), without
    any secret. The password of an MQTT device is added by the provider at apply time."""
    # Each body is one literal: a fleet-wide plan makes 10,000 of them.
    connection_type, settings = connection.chosen()
    body: dict[str, Any]
    if isinstance(settings, ModbusTcp):
        body = {
            "type": connection_type,
            "ip": settings.host,
            "port": settings.port,
            "unit_id": settings.unit_id,
            "profile": settings.profile,
        }
    elif isinstance(settings, ModbusRtu):
        body = {
            "type": connection_type,
            "baud_rate": settings.baud_rate,
            "unit_id": settings.unit_id,
            "profile": settings.profile,
            "parity": _RTU_PARITY[Parity(settings.parity)],
            "data_bits": settings.data_bits,
            "stop_bits": settings.stop_bits,
        }
    elif isinstance(settings, P1Uart):
        body = {
            "type": connection_type,
            "profile": settings.profile,
            "baud_rate": settings.baud_rate,
            "data_bits": settings.data_bits,
            "parity": str(settings.parity),
            "stop_bits": settings.stop_bits,
        }
        if settings.manufacturer:
            body["manufacturer"] = settings.manufacturer
    elif isinstance(settings, Mqtt):
        body = {
            "type": connection_type,
            "profile": settings.profile,
            "broker_host": settings.broker_host,
            "broker_port": settings.broker_port,
        }
        if settings.username:
            body["username"] = settings.username
        if settings.client_id:
            body["client_id"] = settings.client_id
    else:
        body = {"type": connection_type}
    return body


# Connection settings a Zap keeps only when a device is added with them. GET /api/devices
# lists each device's persisted config (platform-apis §1.2, which shows `username` and
# `client_id` there), so a Zap that leaves one out has none set: a declared one differs.
# Settings with a default (port, baud rate, ...) are another matter: a Zap that does not
# echo one says nothing of it, and it is not compared.
_SET_ONLY_WHEN_GIVEN = ("manufacturer", "username", "client_id")


def observed_connection(on_zap: ZapDevice) -> dict[str, Any]:
    """The connection the Zap reports for a device, in `zap_settings`' vocabulary."""
    # A type or profile the Zap leaves out is not reported, not reported empty: compared,
    # it would differ from the declared one however often the device was added again.
    reported: dict[str, Any] = {}
    if on_zap.connection_type:
        reported["type"] = on_zap.connection_type
    if on_zap.profile is not None:
        reported["profile"] = on_zap.profile
    reported.update(on_zap.settings)
    return reported


# `zap_settings`' keys that are not the model's field names.
_MODEL_FIELD_OF_ZAP_KEY = {"ip": "host"}


def declared_zap_settings(connection: Connection, body: dict[str, Any]) -> dict[str, Any]:
    """Of `body` (`zap_settings(connection)`), the settings the spec sets: a default the
    spec leaves out is sent when the device is added, but not compared with what the Zap
    has. A device configured by hand on port 1502 would otherwise be removed from its Zap
    for a port 502 nobody declared, and added again where it does not answer."""
    _, settings = connection.chosen()
    declared = settings.model_fields_set
    return {key: value for key, value in body.items()
            if key == "type" or _MODEL_FIELD_OF_ZAP_KEY.get(key, key) in declared}


def zap_connection_diff(desired: dict[str, Any], before: dict[str, Any]) -> list[FieldDiff]:
    """How the declared connection (`declared_zap_settings`) differs from the one the Zap
    reports (`observed_connection`): a setting the Zap does not report is not compared,
    unless it is one the Zap reports whenever it has it (`_SET_ONLY_WHEN_GIVEN`)."""
    diff = [
        change for change in compared_only_where_reported(desired, before)
        if not _same_host(change)
    ]
    for key in _SET_ONLY_WHEN_GIVEN:
        if key in desired and key not in before:
            diff.append(FieldDiff("add", key, None, desired[key]))
    return diff


# The Zap's keys that hold a host (`zap_settings`).
_HOST_KEYS = frozenset({"ip", "broker_host"})


def _same_host(change: FieldDiff) -> bool:
    """Whether `change` is of a host written otherwise but the same one (a name in
    another case, an IP address in another form: `model.zap_endpoints.normal_host`): the
    Zap cannot change a connection, so a difference here would remove the device and add
    it again, for nothing. Normalised only where the texts differ: a fleet-wide plan
    compares 10,000 hosts that are the same text."""
    return (
        change.path in _HOST_KEYS
        and isinstance(change.old, str)
        and isinstance(change.new, str)
        and normal_host(change.old) == normal_host(change.new)
    )


def zap_reset_diff(
    desired: dict[str, Any], before: dict[str, Any], removed_paths: Sequence[str]
) -> tuple[list[FieldDiff], list[str]]:
    """What setting back the connection settings a spec declares no more (`removed_paths`,
    `plan.removed_fields`) changes on the Zap, beside the declared drift: each defaulted
    one compared as `desired` (`zap_settings`) sends it, each one set only when given
    removed where the Zap has it; and the paths of those that differ."""
    defaulted, unset = removed_fields.zap_removed(removed_paths)
    compared = {key: desired[key] for key in defaulted if key in desired}
    diff = compared_only_where_reported(compared, before)
    for key in unset:
        if key in before and key not in desired:
            diff.append(FieldDiff("remove", key, before[key], None))
    paths = {**defaulted, **unset}
    return diff, [paths[d.path] for d in diff]


def is_added_to_zap(
    device: Device, on_zap: ZapDevice | None, removed_paths: Sequence[str] = ()
) -> bool:
    """Whether applying adds the device to its Zap: it is not there yet, or its declared
    connection differs (the Zap cannot change one, so the device is removed and added
    again), or a connection setting its spec declares no more (`removed_paths`,
    `plan.removed_fields`) is set back to its default, as the planner does."""
    if on_zap is None:
        return True
    assert device.spec.connection is not None
    connection = device.spec.connection
    desired = zap_settings(connection)
    before = observed_connection(on_zap)
    if zap_connection_diff(declared_zap_settings(connection, desired), before):
        return True
    return bool(removed_paths) and bool(zap_reset_diff(desired, before, removed_paths)[0])


def publish_flags(
    ders: list[DerFields], detected: Mapping[str, bool] | None = None
) -> dict[str, bool]:
    """Desired `enabled` flag per local DER type of a device that declares `ders`
    (`Fleet.ders_of`): on when a declared DER of that type publishes. With `detected`,
    the DER types the Zap reports for the device: only those can be switched, and those
    not declared are off."""
    flags: dict[str, bool] = {}
    for der in ders:
        local = local_der_type(der.type)
        if detected is None or local in detected:
            flags[local] = flags.get(local, False) or der.publish
    for local in detected or ():
        flags.setdefault(local, False)
    return flags
