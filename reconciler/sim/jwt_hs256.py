"""HS256 JSON Web Tokens for the Novacore simulator: encoding and verifying with nothing but
the standard library (`hmac`, `hashlib`, `base64`).

Novacore issues HS256 JWTs valid for 24 h (platform-apis §1.4, "Auth"). The simulator signs
them with its own secret and checks them on every request; nothing else uses this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

_HEADER = {"alg": "HS256", "typ": "JWT"}


class InvalidToken(ValueError):
    """The token is malformed, not HS256, or its signature does not match."""


class ExpiredToken(InvalidToken):
    """The token was valid once; its `exp` has passed."""


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    # JWTs drop the base64 padding; put it back before decoding.
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("token segment is not base64url") from exc


def _sign(signing_input: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def encode(claims: dict[str, Any], secret: bytes) -> str:
    """A compact HS256 JWT carrying `claims`."""
    header = _b64url_encode(json.dumps(_HEADER, separators=(",", ":")).encode())
    payload = _b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    return f"{header}.{payload}.{_b64url_encode(_sign(signing_input, secret))}"


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64url_decode(segment))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidToken("token segment is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidToken("token segment is not a JSON object")
    return value


def decode(token: str, secret: bytes, *, now: float) -> dict[str, Any]:
    """The claims of `token` if its signature matches `secret` and it has not expired at `now`.

    Raises `InvalidToken` (or its subclass `ExpiredToken`).
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("token must have three segments")
    header = _json_segment(parts[0])
    # Only HS256: accepting the header's `alg` blindly is the classic "alg: none" hole.
    if header.get("alg") != "HS256":
        raise InvalidToken("token algorithm must be HS256")
    expected = _sign(f"{parts[0]}.{parts[1]}".encode("ascii", "replace"), secret)
    if not hmac.compare_digest(expected, _b64url_decode(parts[2])):
        raise InvalidToken("token signature does not match")
    claims = _json_segment(parts[1])
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidToken("token has no numeric exp claim")
    if now >= exp:
        raise ExpiredToken("token expired")
    return claims
