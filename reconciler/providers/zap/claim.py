"""The check of a claim a Zap signed, before it goes to Novacore with the operator's token.

`/api/crypto/sign` is sent the claimer id and answers the four-part message
`claimer_id|nonce|timestamp|gateway_serial` with an ES256 signature over it (platform-apis
§0.2, §1.4). The gateway is reached by plain http on the local network, so what answers
may not be the Zap: the message must be the one asked for (four parts, our claimer first,
the declared serial last, so not a message signed for another identity or gateway and
replayed) and the signature must verify against the public key the gateway reported.

Encodings differ between firmware and docs (§0.3, §0.3a): the signature is hex of raw r‖s
(128 characters) or of DER; the key is X‖Y (128 hex characters) or SEC1 with `04` first.
Whatever the Zap used, the claim goes to Novacore in one form (`novacore_form`): raw r‖s
and X‖Y, what FTW, Sourceful's own Novacore client, sends and says Nova's verifier expects.
"""

from __future__ import annotations

import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

_HEX = re.compile(r"[0-9a-f]+")
# A signature is 64 bytes raw or about 72 as DER; anything much longer is not one.
_LONGEST_SIGNATURE = 160
_SHOWN = 80


def claim_problem(
    *, message: object, signature: object, public_key: object, claimer: str, serial: str
) -> str | None:
    """Why the claim the gateway signed must not be sent, or None when it holds."""
    if not isinstance(message, str) or not isinstance(signature, str):
        return "the gateway's answer to /api/crypto/sign has no message and signature"
    parts = message.split("|")
    if len(parts) != 4:
        return (f"the signed message has {len(parts)} parts, not the four of "
                "claimer|nonce|timestamp|serial")
    if parts[0] != claimer:
        return (f"the signed message is for claimer {_shown(parts[0])}, not {claimer!r}: "
                "it was not signed for this claim")
    if parts[3] != serial:
        return f"the signed message is for gateway {_shown(parts[3])}, not {serial!r}"
    key = _public_key(public_key)
    if key is None:
        return ("the public key the gateway reports (GET /api/crypto publicKey) is not a "
                "P-256 key in hex (X‖Y, or SEC1 starting with 04)")
    if _verifying(key, message, signature) is None:
        return "the signature does not verify against the public key the gateway reports"
    return None


def novacore_form(*, message: str, signature: str, public_key: str) -> tuple[str, str]:
    """The public key as X‖Y and the signature as raw r‖s, each lowercase hex of 128
    characters, for a claim `claim_problem` found to hold. A Zap whose firmware answers
    DER and a `04`-prefixed key (as the newer docs show) would otherwise have its claim
    refused by a Novacore that reads only the form FTW sends."""
    key = _public_key(public_key)
    rs = _verifying(key, message, signature) if key is not None else None
    if key is None or rs is None:
        raise ValueError("the claim does not hold: check it with claim_problem first")
    numbers = key.public_numbers()
    xy = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    return xy.hex(), (rs[0].to_bytes(32, "big") + rs[1].to_bytes(32, "big")).hex()


def _shown(text: str) -> str:
    """What the gateway sent, quoted and cut short: it may be anything."""
    return repr(text[:_SHOWN]) + ("…" if len(text) > _SHOWN else "")


def _public_key(value: object) -> ec.EllipticCurvePublicKey | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if len(text) == 128:
        text = "04" + text
    if len(text) != 130 or not text.startswith("04") or not _HEX.fullmatch(text):
        return None
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(text))
    except ValueError:  # not a point of the curve
        return None


def _verifying(
    key: ec.EllipticCurvePublicKey, message: str, signature: str
) -> tuple[int, int] | None:
    """(r, s) of the signature if it verifies, read as raw r‖s or as DER; else None."""
    text = signature.strip().lower()
    if len(text) > _LONGEST_SIGNATURE or len(text) % 2 or not _HEX.fullmatch(text):
        return None
    raw = bytes.fromhex(text)
    candidates = [raw]  # DER
    if len(raw) == 64:
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        candidates.insert(0, encode_dss_signature(r, s))
    for candidate in candidates:
        try:
            key.verify(candidate, message.encode(), ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(candidate)
        except (InvalidSignature, ValueError):
            continue
        return r, s
    return None
