"""Which MQTT password each Zap device was last given, as keyed fingerprints.

A Zap never reports a device's password, so a password changed in its Secret or variable
would otherwise never show up in a plan: the device keeps the old one until someone
notices it has stopped reporting. The ledger keeps, per device, an HMAC-SHA256 of the
password last sent to it (or found in place when the ledger first saw it), under a random
key of its own kept beside it, readable by its owner only. A fingerprint cannot be turned
back into the password, and without the key it cannot even be tested against a guess.

Devices are keyed by what identifies them on their Zap (gateway serial and hardware id),
so renaming a Device resource keeps its entry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

from reconciler.model.device import Device, SecretSource
from reconciler.model.fleet import Fleet

KEY_BYTES = 32
# A fingerprint as `CredentialLedger.fingerprint` makes it: an HMAC-SHA256 in lowercase hex.
FINGERPRINT_DIGITS = 2 * hashlib.sha256().digest_size
_FINGERPRINT = re.compile(f"[0-9a-f]{{{FINGERPRINT_DIGITS}}}")


def is_fingerprint(value: object) -> bool:
    """Whether `value` is a fingerprint the ledger made, not one edited or cut short."""
    return isinstance(value, str) and _FINGERPRINT.fullmatch(value) is not None


def device_key(gateway_serial: str, hardware_id: str) -> str:
    return f"{gateway_serial}/{hardware_id}"


def key_from_text(text: str) -> bytes:
    """A ledger key from a configured secret text (the operator's), any length."""
    return hashlib.sha256(text.encode()).digest()


def key_id(key: bytes) -> str:
    """Names a key without revealing it: fingerprints are compared only under their key."""
    return hashlib.sha256(b"key-id\0" + key).hexdigest()[:16]


def mqtt_passwords(fleet: Fleet) -> Iterator[tuple[Device, SecretSource, str]]:
    """Each Zap device of `fleet` that is sent an MQTT password: the device, where the
    password comes from, and its key in the ledger."""
    for device in fleet.mqtt_password_devices():
        mqtt = device.spec.connection.mqtt if device.spec.connection else None
        assert mqtt is not None and mqtt.password_from is not None
        gateway = fleet.gateways.get(device.spec.gateway_ref or "")
        serial = gateway.spec.zap.serial if gateway and gateway.spec.zap else ""
        yield device, mqtt.password_from, device_key(serial, device.spec.hardware_id or "")


@dataclass
class CredentialLedger:
    key: bytes = field(default_factory=lambda: secrets.token_bytes(KEY_BYTES), repr=False)
    # device_key -> hex HMAC of the password last known to be on the device
    entries: dict[str, str] = field(default_factory=dict)
    # The key was made here and is not stored yet (`StateDir.write_credentials` stores it).
    new_key: bool = False
    # Whether anything was recorded since the ledger was read.
    dirty: bool = False

    def fingerprint(self, device: str, value: str) -> str:
        # The device key is part of the message: two devices sharing a password do not
        # share a fingerprint, so the ledger does not even tell which passwords are equal.
        message = device.encode() + b"\0" + value.encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def knows(self, device: str) -> bool:
        return device in self.entries

    def changed(self, device: str, value: str) -> bool:
        """Whether `value` differs from the password last recorded for `device` (False
        when none is recorded: nothing is known to compare with)."""
        recorded = self.entries.get(device)
        if recorded is None:
            return False
        return not hmac.compare_digest(recorded, self.fingerprint(device, value))

    def record(self, device: str, value: str) -> None:
        fingerprint = self.fingerprint(device, value)
        if self.entries.get(device) != fingerprint:
            self.entries[device] = fingerprint
            self.dirty = True
