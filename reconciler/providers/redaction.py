"""Secrets a request carried, taken out of what its answer says: a server that echoes the
request in an error (validation errors often do) would otherwise put a token, an API key
or an MQTT password into a plan, a progress line or a Kubernetes event. An echo need not
spell a secret as it was sent: JSON escapes a quote, a backslash or a non-ASCII letter
(once, or twice for a body echoed as a string), and a form or a URL percent-encodes it.
Nor need it spell it whole: a server that cuts what it echoes ("Bearer eyJhbGciOi…")
leaves a prefix of a token, which is masked as well (`_mask_cut_tokens`)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import string
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
# A token's prefix echoed cut short is masked from this many characters on: fewer could be
# a word of the answer, and tell little of the token.
_SHORTEST_PREFIX = 8
# The characters a token is made of (base64url, with `.` between a JWT's parts): a prefix
# followed by one of them is a different token sharing its start, not a cut echo.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-_+/=")


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


def sent_tokens(request: httpx.Request) -> set[str]:
    """The credentials of a request's secret-named headers without their scheme (a bearer
    token, an API key, Basic's base64 and its password): made by a machine, so a prefix of
    one long enough is no word an answer would hold otherwise. (Not a Device's password,
    which a person chose and may start with a word.)"""
    found: set[str] = set()
    for name, value in request.headers.items():
        if not _is_secret_name(name):
            continue
        scheme, _, credential = value.partition(" ")
        found.add(credential or scheme)
        if scheme.lower() == "basic" and credential:
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                found.add(base64.b64decode(credential, validate=True).decode().partition(":")[2])
    return {token for token in found if len(token) > _SHORTEST_PREFIX}


def _spellings(secret: str) -> set[str]:
    """How an answer may quote `secret`: as sent, inside a JSON string (escaped to ASCII or
    not, with `/` escaped or not, once or twice), and percent-encoded."""
    forms = (True, False)  # ensure_ascii: \u00e4 or ä
    escaped = {json.dumps(secret, ensure_ascii=flag)[1:-1] for flag in forms}
    escaped |= {text.replace("/", "\\/") for text in escaped}
    twice = {json.dumps(text, ensure_ascii=flag)[1:-1] for text in escaped for flag in forms}
    encoded = {urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    return {secret} | escaped | twice | encoded


def redact(text: str, secrets: set[str], tokens: set[str] | frozenset[str] = frozenset()) -> str:
    """`text` with each secret, in each of its spellings, replaced by ***, the longest
    first (a token contains no shorter secret's mask); then each prefix of a `tokens`
    spelling echoed cut short."""
    spellings = {spelling for secret in secrets for spelling in _spellings(secret)}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, MASK)
    for token in sorted({s for t in tokens for s in _spellings(t)}, key=len, reverse=True):
        text = _mask_cut_tokens(text, token)
    return text


def _within_token(text: str, index: int) -> bool:
    """Whether the character at `index` is part of a token: one of its characters, or a
    `.` between two of them (a JWT's), not the `.` of `...` or of a sentence's end."""
    if not 0 <= index < len(text):
        return False
    if text[index] in _TOKEN_CHARS:
        return True
    return (text[index] == "." and 0 < index < len(text) - 1
            and text[index - 1] in _TOKEN_CHARS and text[index + 1] in _TOKEN_CHARS)


def _mask_cut_tokens(text: str, token: str) -> str:
    """`text` with every word that is a prefix of `token`, at least _SHORTEST_PREFIX
    characters long, masked: an echo the server cut ("Bearer eyJhbGciOi…", "abcdefgh...",
    or at the end of its text). A prefix that runs on into other token characters is
    another token sharing the start (every JWT of one algorithm starts alike): kept."""
    head = token[:_SHORTEST_PREFIX]
    index = text.find(head)
    while index != -1:
        end = index + len(head)
        while end - index < len(token) and end < len(text) and text[end] == token[end - index]:
            end += 1
        if not _within_token(text, index - 1) and not _within_token(text, end):
            text = text[:index] + MASK + text[end:]
            index = text.find(head, index + len(MASK))
        else:
            index = text.find(head, index + 1)
    return text
