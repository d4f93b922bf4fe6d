"""Constants and helpers shared by the Zap and Modbus simulator tests: the simulated LAN's
addresses and serials, and signature checks done independently of the simulator (raw r‖s
and X‖Y as platform-apis §1.3 describes them)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

INVERTER_IP = "192.168.1.60"
SUNGROW_SERIAL = "A2350412345"
SOLIS_SERIAL = "1031A2350900417"
ZAP_SERIAL = "zap-0123456789abcdef"


def public_key_from_hex(xy_hex: str) -> ec.EllipticCurvePublicKey:
    raw = bytes.fromhex(xy_hex)
    assert len(raw) == 64, "publicKey must be X‖Y, 64 bytes"
    numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(raw[:32], "big"),
                                            int.from_bytes(raw[32:], "big"), ec.SECP256R1())
    return numbers.public_key()


def verify(public_key: ec.EllipticCurvePublicKey, sign_hex: str, message: str) -> None:
    """Raise InvalidSignature unless `sign_hex` (raw r‖s) signs SHA-256(message)."""
    raw = bytes.fromhex(sign_hex)
    assert len(raw) == 64, "sign must be raw r‖s, 64 bytes"
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, message.encode(), ec.ECDSA(hashes.SHA256()))
