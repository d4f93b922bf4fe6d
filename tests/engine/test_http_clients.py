"""The providers' HTTP clients against a real server on loopback: how a path joins the
base URL, escaping kept as sent, no cookies kept between calls, and read timeouts mapped
to a retryable error; gateways that share one client; a redirect not followed, so the
token goes nowhere the settings do not name; a long error body cut, with its length said;
an answer's headers handed on as received, a compressed body decoded."""

from __future__ import annotations

import asyncio
import gc
import gzip
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from reconciler.errors import ProviderRejected, ProviderUnavailable
from reconciler.providers import transport
from reconciler.providers.aiohttp_transport import AiohttpTransport
from reconciler.providers.zap.client import ZapClient

Seen = list[dict[str, str]]


@pytest.fixture
async def server(serve: Any) -> tuple[str, Seen]:
    seen: Seen = []

    async def record(request: web.Request) -> web.Response:
        seen.append({"path": request.raw_path, "cookie": request.headers.get("Cookie", "")})
        if request.query.get("slow"):
            await asyncio.sleep(1)
        response = web.json_response({"ok": True})
        response.set_cookie("session", "abc")
        return response

    return await serve(record), seen


@pytest.fixture
async def pool() -> AsyncIterator[AiohttpTransport]:
    shared = AiohttpTransport(ssl_context=ssl.create_default_context(), limit=8)
    yield shared
    await shared.aclose()


async def test_a_path_joins_the_base_url_with_its_query(
        server: tuple[str, Seen], pool: AiohttpTransport) -> None:
    url, seen = server
    async with transport.new_client(f"{url}/v1/", transport=pool) as client:
        await transport.send_json(client, "GET", "/sites", params={"org_id": "org 1"})
        await transport.send_json(client, "GET", "/sites/a%2Fb/devices?limit=5")
    async with transport.new_client(url, transport=pool) as client:
        await transport.send_json(client, "POST", "/api/devices", json={"sn": "X"})
    assert [s["path"] for s in seen] == [
        "/v1/sites?org_id=org+1",
        "/v1/sites/a%2Fb/devices?limit=5",  # escaped as sent, not decoded or escaped again
        "/api/devices",
    ]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_not_followed_and_the_token_stays_home(
        status: int, serve: Any, pool: AiohttpTransport) -> None:
    elsewhere: Seen = []

    async def other_host(request: web.Request) -> web.Response:
        elsewhere.append({"path": request.path, "auth": request.headers.get("Authorization", "")})
        return web.json_response([])

    target = await serve(other_host)

    async def redirecting(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": f"{target}/sites"})

    url = await serve(redirecting)
    headers = {"Authorization": "Bearer tok-never-elsewhere-41"}  # a test value
    async with transport.new_client(url, transport=pool, headers=headers) as client:
        with pytest.raises(ProviderRejected, match=f"HTTP {status}"):
            await transport.send_json(client, "GET", "/sites")
    assert elsewhere == [], "the redirect was followed, with the token"


async def test_no_cookie_is_kept_between_calls(
        server: tuple[str, Seen], pool: AiohttpTransport) -> None:
    url, seen = server
    async with transport.new_client(url, transport=pool) as client:
        await transport.send(client, "GET", "/first")
        await transport.send(client, "GET", "/second")
        assert not client.cookies
        with pytest.raises(ValueError, match="no cookies"):
            client.cookies = {"session": "abc"}  # type: ignore[assignment]
    assert [s["cookie"] for s in seen] == ["", ""]


async def test_a_long_error_body_is_cut_and_its_length_said(
        serve: Any, pool: AiohttpTransport) -> None:
    """A gateway that explains a refusal at length: the message keeps the start of its
    answer, on one line, and says how long the whole was, not the rest of it."""
    body = "device rejected:\n" + "\n".join(f"  field{i}: not a valid value" for i in range(60))

    async def refusing(request: web.Request) -> web.Response:
        return web.Response(status=422, text=body)

    url = await serve(refusing)
    async with transport.new_client(url, transport=pool) as client:
        with pytest.raises(ProviderRejected) as caught:
            await ZapClient(client, name="zap").add_device({"type": "p1_meter"})
    one_line = " ".join(body.split())
    assert len(one_line) == 1_626
    assert str(caught.value) == ("zap.add_device /api/devices: HTTP 422: "
                                 f"{one_line[:300]}… (1,626 characters)")


async def test_a_read_timeout_is_retryable(
        server: tuple[str, Seen], pool: AiohttpTransport) -> None:
    url, _ = server
    async with transport.new_client(url, transport=pool, timeout=httpx.Timeout(0.2)) as client:
        with pytest.raises(ProviderUnavailable, match="timed out") as caught:
            await transport.send(client, "GET", "/api/devices?slow=1")
    assert caught.value.retryable


async def test_a_refused_connection_is_retryable_and_said_in_words(
        pool: AiohttpTransport) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with transport.new_client(f"http://127.0.0.1:{port}", transport=pool) as client:
        with pytest.raises(ProviderUnavailable) as caught:
            await transport.send(client, "GET", "/api/devices", operation="zap.list_devices")
    assert str(caught.value) == (
        f"zap.list_devices: cannot reach http://127.0.0.1:{port}: connection refused")
    assert caught.value.retryable


async def test_a_read_response_is_freed_without_the_cycle_collector(
        server: tuple[str, Seen], pool: AiohttpTransport) -> None:
    url, _ = server
    async with transport.new_client(url, transport=pool) as client:
        await transport.send_json(client, "GET", "/warm-up")
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                assert await transport.send_json(client, "GET", "/api/devices") == {"ok": True}
            left = [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
        finally:
            gc.enable()
    assert left == []


async def test_gateways_sharing_one_client_each_reach_their_own_url(
        serve: Any, pool: AiohttpTransport) -> None:
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(f"{request.host} {request.raw_path}")
        return web.json_response({"devices": []})

    first, second = await serve(answer), await serve(answer)
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}"
    async with transport.new_client("", transport=pool) as shared:
        zaps = [ZapClient(shared, name="a", url=first),
                ZapClient(shared, name="b", url=f"{second}/zap/b/")]  # behind a proxy
        for zap in zaps:
            assert await zap.devices() == {"devices": []}
        with pytest.raises(ProviderUnavailable) as caught:
            await ZapClient(shared, name="c", url=refused).devices()
    assert seen == [f"{first.removeprefix('http://')} /api/devices",
                    f"{second.removeprefix('http://')} /zap/b/api/devices"]
    assert str(caught.value) == f"zap.list_devices: cannot reach {refused}: connection refused"


async def test_a_header_that_is_no_utf8_is_handed_on_as_the_bytes_received(
        pool: AiohttpTransport) -> None:
    """A proxy or a gateway's firmware that writes a Latin-1 byte in a header: the answer
    is read, its headers the bytes that came, as httpx's own transport would give them."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nX-Site: caf\xe9\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 2\r\n\r\n[]")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with transport.new_client(f"http://127.0.0.1:{port}", transport=pool) as client:
            response = await transport.send(client, "GET", "/api/devices")
    finally:
        server.close()
        await server.wait_closed()
    assert response.json() == []
    assert response.headers.raw == [(b"X-Site", b"caf\xe9"),
                                    (b"Content-Type", b"application/json"),
                                    (b"Content-Length", b"2")]
    assert response.headers["X-Site"] == "café"  # httpx's reading of a byte no UTF-8 has


@pytest.mark.parametrize("body", [b'{"devices": []}', b""])
async def test_a_compressed_answer_is_decoded_and_its_headers_say_so(
        body: bytes, serve: Any, pool: AiohttpTransport) -> None:
    """The body as sent before compression, and the headers httpx gives a body read whole:
    no Content-Encoding, and the decoded length (none for an empty body)."""
    async def compressed(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(body), headers={
            "Content-Encoding": "gzip", "Content-Type": "application/json", "X-Kept": "yes"})

    url = await serve(compressed)
    async with transport.new_client(url, transport=pool) as client:
        response = await transport.send(client, "GET", "/api/devices")
    assert response.content == body
    names = [name for name, _ in response.headers.raw]
    assert b"Content-Encoding" not in names and b"Transfer-Encoding" not in names
    assert response.headers["X-Kept"] == "yes"
    assert response.headers.get("Content-Length") == (str(len(body)) if body else None)
    if body:
        assert names[-1] == b"Content-Length"  # where httpx puts the length it adds
