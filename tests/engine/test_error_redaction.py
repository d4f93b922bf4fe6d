"""A server that echoes the request in its error answer (validation errors often do) must
not put what the request carried into an error message: the providers' real clients
against an echoing server on loopback."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from reconciler.errors import ProviderError
from reconciler.providers import transport
from reconciler.providers.aiohttp_transport import AiohttpTransport
from reconciler.providers.flatpeak.client import FlatpeakAuth, FlatpeakClient
from reconciler.providers.novacore.client import NovacoreClient
from reconciler.providers.zap.client import ZapClient

TOKEN = "nc-token-5d1f0a9e77"  # test values
PASSWORD = "mqtt-pw-0c4e8b1a"
ACCOUNT, API_KEY = "acc_7781", "fp-key-91ce23aa0b"


@pytest.fixture
async def echo(serve: Any) -> str:
    """Answers every request 422 with its headers and body, as some APIs do."""

    async def answer(request: web.Request) -> web.Response:
        echoed = {"detail": "invalid request", "headers": dict(request.headers),
                  "body": await request.text()}
        return web.json_response(echoed, status=422)

    return await serve(answer)


@pytest.fixture
async def pool() -> AsyncIterator[AiohttpTransport]:
    shared = AiohttpTransport(ssl_context=ssl.create_default_context(), limit=8)
    yield shared
    await shared.aclose()


def assert_told_without(error: ProviderError, *secrets: str) -> None:
    message = str(error)
    assert "HTTP 422" in message and "invalid request" in message, message
    assert "***" in message, "the echoed credential is masked, not dropped silently"
    for secret in secrets:
        assert secret not in message, f"{secret!r} is in the message: {message}"


async def test_a_bearer_token_echoed_by_the_cloud_is_masked(
        echo: str, pool: AiohttpTransport) -> None:
    http = transport.new_client(echo, transport=pool, headers={"Authorization": f"Bearer {TOKEN}"})
    async with http:
        with pytest.raises(ProviderError) as caught:
            await NovacoreClient(http).provision_device({"hardware_id": "SG1"})
    assert_told_without(caught.value, TOKEN)


@pytest.mark.parametrize("cut", [
    pytest.param(lambda token: f"Bearer {token[:10]}…", id="ellipsis"),
    pytest.param(lambda token: f"Bearer {token[:8]}...", id="three-dots"),
    pytest.param(lambda token: f"Bearer {token[:-1]}", id="end-of-text"),
    pytest.param(lambda token: f"'{token[:12]}' is not a valid token.", id="quoted"),
])
async def test_a_token_the_cloud_echoes_cut_short_is_masked(
        cut: Any, serve: Any, pool: AiohttpTransport) -> None:
    """A server that cuts what it echoes leaves a prefix of the token: from 8 characters
    on, the prefix is masked as the whole token is; a token that only starts alike (every
    JWT of one algorithm does), which runs on into other token characters, is kept."""
    other = TOKEN[:12] + "ffff.other-token"

    async def answer(request: web.Request) -> web.Response:
        echoed = cut(request.headers["Authorization"].removeprefix("Bearer "))
        return web.Response(status=422, text=f"invalid request: another is {other}; {echoed}")

    url = await serve(answer)
    http = transport.new_client(url, transport=pool, headers={"Authorization": f"Bearer {TOKEN}"})
    async with http:
        with pytest.raises(ProviderError) as caught:
            await NovacoreClient(http).provision_device({"hardware_id": "SG1"})
    message = str(caught.value)
    assert f"HTTP 422: invalid request: another is {other}; " in message, message
    echoed = message.rpartition("; ")[2]
    assert "***" in echoed and TOKEN[:8] not in echoed, message


async def test_an_mqtt_password_echoed_by_a_gateway_is_masked(
        echo: str, pool: AiohttpTransport) -> None:
    async with transport.new_client(echo, transport=pool) as http:
        with pytest.raises(ProviderError) as caught:
            await ZapClient(http, name="zap").add_device(
                {"type": "mqtt", "broker_host": "192.168.1.70", "password": PASSWORD})
    assert_told_without(caught.value, PASSWORD)
    assert "192.168.1.70" in str(caught.value), "what is not a secret is still told"


@pytest.mark.parametrize(
    "password", ["pässwörd-ÅÄÖ-zq91", 'pw"quoted\\back-zq52', "pw/slash+plus &amp-zq7"])
async def test_a_password_the_echo_escapes_is_masked_in_each_spelling(
        password: str, serve: Any, pool: AiohttpTransport) -> None:
    """A JSON echo spells a password with non-ASCII letters, a quote or a backslash
    otherwise than it was sent (`\\u00e4`, `\\"`), once or twice escaped, and a form echo
    percent-encodes it: each spelling is the password."""

    async def answer(request: web.Request) -> web.Response:
        text = await request.text()
        echoed = {"detail": "invalid request", "body": await request.json(), "raw": text,
                  "form": urllib.parse.urlencode({"password": password})}
        return web.json_response(echoed, status=422)

    url = await serve(answer)
    async with transport.new_client(url, transport=pool) as http:
        with pytest.raises(ProviderError) as caught:
            await ZapClient(http, name="zap").add_device(
                {"type": "mqtt", "broker_host": "192.168.1.70", "password": password})
    message = str(caught.value)
    assert "***" in message and "192.168.1.70" in message, message
    spellings = {password, json.dumps(password)[1:-1], json.dumps(json.dumps(password)[1:-1])[1:-1],
                 urllib.parse.quote_plus(password)}
    for spelling in spellings:
        assert spelling not in message, f"{spelling!r} is in the message: {message}"
    assert "zq" not in message, f"a part of the password is in the message: {message}"


async def test_basic_credentials_echoed_at_login_are_masked(
        echo: str, pool: AiohttpTransport) -> None:
    auth = FlatpeakAuth(f"{echo}/login", ACCOUNT, API_KEY)
    async with transport.new_client(echo, transport=pool, auth=auth) as http:
        with pytest.raises(ProviderError) as caught:
            await FlatpeakClient(http).list_locations()
    encoded = base64.b64encode(f"{ACCOUNT}:{API_KEY}".encode()).decode()
    assert_told_without(caught.value, API_KEY, encoded)


def test_secrets_are_found_in_headers_and_under_secret_named_keys() -> None:
    import httpx

    from reconciler.providers.redaction import redact, sent_secrets

    request = httpx.Request(
        "POST", "http://127.0.0.1/x",
        headers={"X-Enapter-Auth-Token": "enapter-tok-1", "Accept": "application/json"},
        json={"name": "inverter", "mqtt": {"password": "pw-nested-1"}, "client_id": "zap-1"})
    found = sent_secrets(request)
    assert found == {"enapter-tok-1", "pw-nested-1"}
    echoed = json.dumps({"h": "enapter-tok-1", "p": "pw-nested-1", "n": "inverter"})
    assert redact(echoed, found) == '{"h": "***", "p": "***", "n": "inverter"}'


@pytest.mark.parametrize(("password", "before", "parts"), [
    pytest.param(PASSWORD, 41, ("mqtt-p", "4e8b1a"), id="across-the-cut"),
    pytest.param("two  spaces\tand a tab-zq33", 10, ("spaces", "zq33"), id="white-space"),
])
async def test_a_password_an_html_page_echoes_is_masked(
        password: str, before: int, parts: tuple[str, str], serve: Any,
        pool: AiohttpTransport) -> None:
    """A proxy's or a firewall's HTML page that shows the request it blocked is said by its
    text, cut short: the password in it is masked before that text is cut or its white
    space folded, so that no part of it is left."""

    async def answer(request: web.Request) -> web.Response:
        shown = "x" * before + " " + (await request.text()).replace("<", "&lt;")
        page = f"<html><body><h1>Request blocked</h1><pre>{shown}</pre></body></html>"
        return web.Response(status=403, text=page, content_type="text/html")

    url = await serve(answer)
    async with transport.new_client(url, transport=pool) as http:
        with pytest.raises(ProviderError) as caught:
            await ZapClient(http, name="zap").add_device(
                {"type": "mqtt", "broker_host": "192.168.1.70", "password": password})
    message = str(caught.value)
    assert "HTTP 403: Request blocked" in message and "an HTML page" in message, message
    assert "***" in message, message
    for part in parts:
        assert part not in message, f"a part of the password is in the message: {message}"
