"""Calls go through the HTTP proxy the standard variables name (HTTP_PROXY, HTTPS_PROXY,
ALL_PROXY, in lowercase too) and around it for the hosts NO_PROXY lists, as curl's do: a
forwarding proxy on loopback sees them, or does not. https goes through a CONNECT tunnel
with the server's certificate verified as without a proxy. The proxy's credentials are
sent to it and shown nowhere: not in an error, not in a plan."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from simworld import MakeWorld, standard_site, write
from test_tls import HttpsFront, private_ca

from reconciler.engine.config import load_settings
from reconciler.errors import ConfigError, ProviderAuthError
from reconciler.providers import transport
from reconciler.providers.proxy import Proxies

_LOOPBACK = ("127.0.0.1", "localhost")
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


class ForwardingProxy:
    """A minimal HTTP proxy on loopback: plain http requests in absolute form are passed on
    (one per connection), CONNECT opens a tunnel. It reaches loopback only. With
    `credentials` ("user:password") it answers 407 to a request without them."""

    def __init__(self, credentials: str = "") -> None:
        self.credentials = credentials
        self.seen: list[tuple[str, str]] = []  # (method, target) of what it passed on
        self.authorizations: list[str] = []
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")[:-2]
        method, target, version = request_line.split(" ")
        headers = [tuple(line.split(":", 1)) for line in lines]
        authorization = next((v.strip() for k, v in headers
                              if k.lower() == "proxy-authorization"), "")
        self.authorizations.append(authorization)
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if self.credentials and authorization != expected:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Authenticate: Basic realm=\"test\"\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            assert host in _LOOPBACK, target
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            self.seen.append((method, target))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            try:
                await asyncio.gather(_pipe(reader, upstream_writer),
                                     _pipe(upstream_reader, writer))
            finally:
                upstream_writer.close()
            return
        url = httpx.URL(target)
        assert url.host in _LOOPBACK and url.scheme == "http", target
        self.seen.append((method, target))
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
        body = await reader.readexactly(length)
        kept = [f"{k}:{v}" for k, v in headers
                if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")]
        path = url.raw_path.decode()
        upstream_reader, upstream_writer = await asyncio.open_connection(url.host, url.port)
        try:
            await self._forward(writer, upstream_reader, upstream_writer,
                                f"{method} {path} {version}", kept, body)
        finally:
            upstream_writer.close()

    @staticmethod
    async def _forward(writer: asyncio.StreamWriter, upstream_reader: asyncio.StreamReader,
                       upstream_writer: asyncio.StreamWriter, request_line: str,
                       kept: list[str], body: bytes) -> None:
        upstream_writer.write("\r\n".join([request_line, *kept,
                                           "Connection: close", "", ""]).encode("latin-1"))
        upstream_writer.write(body)
        await upstream_writer.drain()
        # The answer is passed on as it comes, its connection closing after it: one request
        # per connection, so no pooled connection to the proxy is ever found closed.
        answer_head = (await upstream_reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *answer_lines = answer_head.split("\r\n")[:-2]
        answer_kept = [line for line in answer_lines
                       if line.split(":", 1)[0].lower() not in ("connection", "keep-alive")]
        writer.write("\r\n".join([status_line, *answer_kept, "Connection: close", "", ""])
                     .encode("latin-1"))
        await _pipe(upstream_reader, writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()


@pytest.fixture
async def proxies() -> AsyncIterator[list[ForwardingProxy]]:
    started: list[ForwardingProxy] = []
    yield started
    for proxy in started:
        await proxy.stop()


async def _proxy(started: list[ForwardingProxy], credentials: str = "") -> tuple[
        ForwardingProxy, str]:
    proxy = ForwardingProxy(credentials)
    started.append(proxy)
    return proxy, await proxy.start()


def _hosts(world_env: dict[str, str]) -> set[str]:
    """host:port of every simulator the settings name (Novacore and the Zaps)."""
    urls = [world_env["RECONCILER_NOVACORE_URL"]]
    urls += [item.partition("=")[2] for item in world_env["RECONCILER_GATEWAY_URLS"].split(",")]
    return {httpx.URL(url).netloc.decode() for url in urls}


async def test_calls_go_through_http_proxy_and_no_proxy_takes_hosts_past_it(
        make_world: MakeWorld, proxies: list[ForwardingProxy]) -> None:
    world = await make_world(standard_site(1))
    proxy, address = await _proxy(proxies)

    world.settings = load_settings({**world.env, "HTTP_PROXY": f"http://{address}"})
    _, report = await world.apply()
    assert report.ok, report.as_dict()
    assert {httpx.URL(target).netloc.decode() for _, target in proxy.seen} == _hosts(world.env)
    assert not (await world.plan()).plan.has_changes

    # A range, the lowercase variable (which wins), and the proxy no longer needed to answer.
    await proxy.stop()
    proxy.seen.clear()
    world.settings = load_settings({**world.env, "http_proxy": f"http://{address}",
                                    "HTTP_PROXY": "http://127.0.0.1:9",
                                    "NO_PROXY": "10.0.0.0/8, 127.0.0.0/8"})
    assert not (await world.plan()).plan.has_changes
    assert proxy.seen == []

    # One host by address and port: only that one is called directly.
    proxy, address = await _proxy(proxies)
    novacore = httpx.URL(world.env["RECONCILER_NOVACORE_URL"]).netloc.decode()
    world.settings = load_settings({**world.env, "ALL_PROXY": f"http://{address}",
                                    "NO_PROXY": novacore})
    assert not (await world.plan()).plan.has_changes
    called = {httpx.URL(target).netloc.decode() for _, target in proxy.seen}
    assert called == _hosts(world.env) - {novacore}


async def test_https_goes_through_a_connect_tunnel_with_the_certificate_verified(
        make_world: MakeWorld, proxies: list[ForwardingProxy], tmp_path: Path) -> None:
    ca, cert, key = private_ca(tmp_path)
    world = await make_world(standard_site(1))
    front = HttpsFront(world.sims.novacore.url)
    url = await front.start(cert, key)
    try:
        proxy, address = await _proxy(proxies)
        env = {**world.env, "RECONCILER_NOVACORE_URL": url, "HTTPS_PROXY": address}

        world.settings = load_settings(env)
        with pytest.raises(ProviderAuthError) as refused:
            await world.plan()
        assert "TLS certificate verification failed" in str(refused.value)
        assert front.received == 0 and proxy.seen[0] == ("CONNECT", url.removeprefix("https://"))

        world.settings = load_settings({**env, "RECONCILER_CA_BUNDLE": str(ca)})
        _, report = await world.apply()
        assert report.ok, report.as_dict()
        assert front.received > 0
        # Only https goes through: the Zaps are called over http, for which no proxy is set.
        assert {method for method, _ in proxy.seen} == {"CONNECT"}
    finally:
        assert front.runner is not None
        await front.runner.cleanup()


def _cli_env(world_env: dict[str, str], **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith("RECONCILER_") and k.lower() not in _PROXY_VARIABLES}
    return {**inherited, **world_env, "NO_COLOR": "1", **extra}


async def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_proxy_credentials_are_sent_to_it_and_shown_nowhere(
        make_world: MakeWorld, proxies: list[ForwardingProxy], tmp_path: Path) -> None:
    docs = standard_site(1)
    world = await make_world(docs)
    fleet = str(write(tmp_path / "sites", docs).parent)
    proxy, address = await _proxy(proxies, credentials="ops:pr0xy-s3cret")

    code, out = await _run(_cli_env(world.env, HTTP_PROXY=f"http://ops:wr0ng-s3cret@{address}"),
                           "plan", fleet)
    assert code == 1, out
    assert "HTTP 407" in out and "give them in the proxy URL" in out, out
    assert "wr0ng-s3cret" not in out and "ops:" not in out, out
    assert proxy.seen == []
    proxy.authorizations.clear()

    # Percent-encoded in the URL, as a password with '@' or ':' must be.
    code, out = await _run(_cli_env(world.env, HTTP_PROXY=f"http://ops:pr0xy%2Ds3cret@{address}"),
                           "plan", fleet)
    assert code == 0, out
    assert "pr0xy" not in out and "%2D" not in out, out
    assert {httpx.URL(target).netloc.decode() for _, target in proxy.seen} == _hosts(world.env)
    expected = "Basic " + base64.b64encode(b"ops:pr0xy-s3cret").decode()
    assert set(proxy.authorizations) == {expected}

    # A proxy that does not answer: the error names it, without the credentials.
    code, out = await _run(_cli_env(world.env, HTTP_PROXY="http://ops:pr0xy-s3cret@127.0.0.1:9"),
                           "plan", "--offline", "fail", fleet)
    assert code == 1, out
    assert "the proxy http://127.0.0.1:9 (from HTTP_PROXY): connection refused" in out, out
    assert "pr0xy" not in out, out


async def test_a_proxy_whose_name_is_not_found_is_named_not_the_server(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """A typo in the proxy's host: its name is not found, which aiohttp says as the
    server's own failure, as though the cloud's URL were wrong."""
    docs = standard_site(1)
    world = await make_world(docs)
    fleet = str(write(tmp_path / "sites", docs).parent)
    # `.invalid` is never a name (RFC 6761): no resolver finds it.
    proxy = "http://ops:pr0xy-s3cret@proxy.invalid:3128"
    code, out = await _run(_cli_env(world.env, HTTP_PROXY=proxy, RECONCILER_RETRIES="1"),
                           "plan", "--offline", "fail", fleet)
    assert code == 1, out
    novacore = world.env["RECONCILER_NOVACORE_URL"]
    named = "the proxy http://proxy.invalid:3128 (from HTTP_PROXY): "
    assert f"cannot reach {novacore}: {named}" in out, out
    assert "pr0xy" not in out, out


async def test_a_proxy_variable_that_cannot_be_used_is_named_without_its_credentials(
        make_world: MakeWorld, tmp_path: Path) -> None:
    docs = standard_site(1)
    world = await make_world(docs)
    fleet = str(write(tmp_path / "sites", docs).parent)
    code, out = await _run(_cli_env(world.env, HTTPS_PROXY="socks5://ops:s3cret@127.0.0.1:1080",
                                    no_proxy="192.168.0.0/33"), "plan", fleet)
    assert code == 1, out
    assert "HTTPS_PROXY" in out and "expected an http:// proxy URL" in out, out
    assert "socks5://***@127.0.0.1:1080" in out and "s3cret" not in out, out
    assert "no_proxy" in out and "'192.168.0.0/33' is no address range" in out, out

    with pytest.raises(ConfigError) as bad:
        load_settings({**world.env, "HTTP_PROXY": "http://ops:s3cret@:3128"})
    assert "s3cret" not in str(bad.value) and "HTTP_PROXY" in str(bad.value)


async def test_the_httpx_transport_goes_through_the_proxy_too(
        serve: object, proxies: list[ForwardingProxy]) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    url = await serve(answer)  # type: ignore[operator]
    proxy, address = await _proxy(proxies, credentials="ops:s3cret")
    through = Proxies.from_environ({"HTTP_PROXY": f"http://ops:s3cret@{address}"})
    async with transport.new_client(url, proxies=through) as client:
        assert (await client.get("/v1/a")).json() == {"path": "/v1/a"}
    assert proxy.seen == [("GET", f"{url}/v1/a")]

    around = Proxies.from_environ({"HTTP_PROXY": f"http://{address}", "NO_PROXY": "127.0.0.1"})
    async with transport.new_client(url, proxies=around) as client:
        assert (await client.get("/v1/b")).json() == {"path": "/v1/b"}
    assert len(proxy.seen) == 1


@pytest.mark.parametrize(("no_proxy", "url", "direct"), [
    ("example.com", "https://example.com/", True),
    ("example.com", "https://api.example.com/", True),
    (".example.com", "https://example.com/", True),
    ("*.example.com", "https://a.b.example.com/", True),
    ("example.com", "https://notexample.com/", False),
    ("EXAMPLE.com", "https://Api.Example.COM./", True),
    ("192.168.0.0/16", "http://192.168.1.20/", True),
    ("192.168.0.0/16", "http://192.169.1.20/", False),
    ("192.168.0.0/16", "http://host.192.168.0.0/", False),  # a name is not resolved
    ("1.2.3", "http://4.1.2.3/", False),  # an address is no name under a domain
    ("10.0.0.5", "http://10.0.0.5:8080/", True),
    ("10.0.0.5:8080", "http://10.0.0.5/", False),
    ("fd00::/8", "http://[fd12::1]/", True),
    ("[::1]:8080", "http://[::1]:8080/", True),
    ("::1", "http://[::1]:8080/", True),
    ("gw.lan:80", "http://gw.lan/", True),
    ("gw.lan , other", "http://other/", True),
    ("*", "https://anything.example/", True),
    ("", "http://127.0.0.1/", False),  # loopback is not spared unless listed
])
def test_no_proxy_entries(no_proxy: str, url: str, direct: bool) -> None:
    proxies = Proxies.from_environ({"ALL_PROXY": "proxy.corp:3128", "NO_PROXY": no_proxy})
    parsed = httpx.URL(url)
    proxy = proxies.for_url(parsed.scheme, parsed.host, parsed.port)
    assert (proxy is None) == direct
    if proxy is not None:
        assert str(proxy) == "the proxy http://proxy.corp:3128 (from ALL_PROXY)"
