"""Helpers for tests against the Novacore simulator: a controllable clock (the Flatpeak
simulator's tests use it too), and a gateway key that builds and signs claim messages the
way a real Zap does (platform-apis §1.3), without depending on the Zap simulator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

START = 1_780_000_000.0  # a fixed "now" (2026-05-28), so timestamps in tests are stable


@dataclass
class FakeClock:
    """An injectable clock; tests move it with `advance`."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class GatewayKey:
    """A gateway's P-256 key pair, as burnt in at manufacturing."""

    serial: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key_hex(self) -> str:
        """X||Y, 128 hex characters with no `04` prefix: what the firmware reports."""
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return point[1:].hex()

    def sign(self, message: str, *, der: bool = False) -> str:
        """ECDSA over SHA-256(message): raw r||s hex (firmware) or DER hex (newer docs)."""
        signature = self.key.sign(message.encode(), ec.ECDSA(hashes.SHA256()))
        if der:
            return signature.hex()
        r, s = decode_dss_signature(signature)
        return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()

    def claim_message(self, claimer_id: str, now: float, *, nonce: str | None = None,
                      unix: bool = False) -> str:
        """`claimer_id|nonce|timestamp|serial`, as `/api/crypto/sign` builds it."""
        nonce = nonce or str(100000 + secrets.randbelow(900000))
        stamp = (str(int(now)) if unix
                 else datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return f"{claimer_id}|{nonce}|{stamp}|{self.serial}"

    def claim_body(self, org_id: str, claimer_id: str, now: float, *,
                   message: str | None = None, der: bool = False,
                   public_key: str | None = None) -> dict[str, Any]:
        """A `POST /gateways/claim` body signed by this gateway."""
        message = message or self.claim_message(claimer_id, now)
        return {"org_id": org_id, "gateway_serial": self.serial,
                "public_key": public_key or self.public_key_hex,
                "message": message, "signature": self.sign(message, der=der)}
