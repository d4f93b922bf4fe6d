"""Secrets a request carried, taken out of what its answer says: a server that echoes the
request in an error (validation errors often do) would otherwise put a token, an API key
or an MQTT password into a plan, a progress line or a Kubernetes event. An echo need not
spell a secret as it was sent: JSON escapes a quote, a backslash or a non-ASCII letter
(once, or twice for a body echoed as a string), and a form or a URL percent-encodes it."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx

MASK = "***"
# Header names and JSON keys whose values are credentials.
_SECRET_WORDS = ("auth", "token", "secret", "password", "api-key", "api_key", "apikey",
                 "private_key", "private-key")
# Shorter values are not masked: they would mask ordinary words in the answer.
_SHORTEST = 4


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _header_secrets(value: str) -> Iterator[str]:
    yield value
    scheme, _, credential = value.partition(" ")
    if not credential:
        return
    yield credential
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return
        yield decoded
        yield decoded.partition(":")[2]


def _body_secrets(value: Any, secret: bool = False) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _body_secrets(item, secret or _is_secret_name(str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _body_secrets(item, secret)
    elif secret and isinstance(value, str):
        yield value


def sent_secrets(request: httpx.Request) -> set[str]:
    """The credentials in a request's headers (the whole value, the part after the scheme,
    and a Basic pair decoded) and under secret-named keys of its JSON body."""
    found: set[str] = set()
    for name, value in request.headers.items():
        if _is_secret_name(name):
            found.update(_header_secrets(value))
    if "json" in request.headers.get("content-type", ""):
        with contextlib.suppress(ValueError, httpx.RequestNotRead):
            found.update(_body_secrets(json.loads(request.content)))
    return {secret for secret in found if len(secret) >= _SHORTEST}


def _spellings(secret: str) -> set[str]:
    """How an answer may quote `secret`: as sent, inside a JSON string (escaped to ASCII or
    not, with `/` escaped or not, once or twice), and percent-encoded."""
    forms = (True, False)  # ensure_ascii: \u00e4 or ä
    escaped = {json.dumps(secret, ensure_ascii=flag)[1:-1] for flag in forms}
    escaped |= {text.replace("/", "\\/") for text in escaped}
    twice = {json.dumps(text, ensure_ascii=flag)[1:-1] for text in escaped for flag in forms}
    encoded = {urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    return {secret} | escaped | twice | encoded


def redact(text: str, secrets: set[str]) -> str:
    """`text` with each secret, in each of its spellings, replaced by ***, the longest
    first (a token contains no shorter secret's mask)."""
    spellings = {spelling for secret in secrets for spelling in _spellings(secret)}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, MASK)
    return text
