"""PURE conversion of Zap local-API payloads into observed records."""

from __future__ import annotations

from typing import Any

from reconciler.plan.frozen_records import builder
from reconciler.plan.observed import ZapDevice, ZapState
from reconciler.printable import echo, printable

# Keys of a device entry that describe how the Zap connects to it (compared with the spec).
_SETTING_KEYS = (
    "ip",
    "port",
    "unit_id",
    "baud_rate",
    "parity",
    "data_bits",
    "stop_bits",
    "manufacturer",
    "broker_host",
    "broker_port",
    "username",
    "client_id",
)
# Each field positionally: see `plan.frozen_records` (a third of the cost per record).
_device = builder(ZapDevice)


def zap_state(payload: Any) -> ZapState:
    """GET /api/devices → ZapState. Accepts the current `{"count","devices"}` shape and the
    older bare list that used `serial_number` (as the Home Assistant integration does)."""
    entries = payload.get("devices", []) if isinstance(payload, dict) else payload or []
    # Written for speed: a no-op plan of 1,000 sites converts 10,000 of these entries.
    devices: dict[str, ZapDevice] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        get = entry.get
        sn = get("sn") or get("serial_number")
        if not sn:
            continue
        sn = str(sn)
        devices[sn] = _device(
            sn,
            str(get("type", "")),
            get("profile"),
            get("device_type"),
            {k: entry[k] for k in _SETTING_KEYS if k in entry},
            {
                str(d["type"]): bool(d.get("enabled", False))
                for d in get("ders", [])
                if isinstance(d, dict) and "type" in d
            },
            bool(get("connected", True)),
        )
    return ZapState(devices=devices)


def types_body(flags: dict[str, bool]) -> list[dict[str, Any]]:
    """Body items of POST /api/devices/{sn}/types."""
    return [{"type": local, "enabled": enabled} for local, enabled in sorted(flags.items())]


def reported_serial(crypto: Any) -> Any:
    """The serial a Zap's `GET /api/crypto` answer reports (`serialNumber`, `serial` on
    older firmware); None from an answer of another shape."""
    if not isinstance(crypto, dict):
        return None
    return crypto.get("serialNumber") or crypto.get("serial")


def other_serial(url: str, reported: Any, declared: str) -> str:
    """What is said of the Zap at `url` that reports `reported`, not the `declared` serial."""
    return f"the gateway at {url} reports serial {printable(echo(reported))}, not {declared!r}"
