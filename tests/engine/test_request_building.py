"""The requests the providers' clients build are the ones httpx's own client builds from
the same settings: a read built in one step (`ApiClient`) has the same method, URL,
headers in the same order, body and timeouts as one built field by field, and a call with
anything of its own (a body, params, headers, a timeout) is built by httpx itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconciler.providers import transport


def _never(request: httpx.Request) -> httpx.Response:
    raise AssertionError("nothing is sent")


def _clients(base_url: str, headers: dict[str, str]) -> tuple[httpx.AsyncClient, ...]:
    ours = transport.new_client(base_url, headers=headers,
                                transport=httpx.MockTransport(_never),
                                timeout=httpx.Timeout(7.0, connect=2.0))
    theirs = httpx.AsyncClient(base_url=ours.base_url, headers=headers,
                               transport=httpx.MockTransport(_never),
                               timeout=httpx.Timeout(7.0, connect=2.0))
    return ours, theirs


def _built(request: httpx.Request) -> tuple[Any, ...]:
    return (request.method, str(request.url), request.headers.raw, request.content,
            request.extensions, type(request.stream))


CALLS: list[tuple[str, str | httpx.URL, dict[str, Any]]] = [
    ("GET", "/api/v1/sites/a%2Fb/devices?limit=5", {}),
    ("get", httpx.URL("http://10.1.2.3:8080/zap/b/api/devices"), {}),
    ("DELETE", "/api/devices/X%20Y", {}),
    ("HEAD", "https://gw.example.com/api/devices", {}),
    ("GET", "sites", {}),  # relative without a slash: httpx's merge
    ("POST", "/api/devices", {}),  # no body: httpx says Content-Length: 0
    ("POST", "/api/devices", {"json": {"sn": "X", "ratio": 0.5}}),
    ("PUT", "/api/devices/X", {"content": b"raw"}),
    ("GET", "/sites", {"params": {"org_id": "org 1"}}),
    ("GET", "/sites", {"headers": {"X-Request": "1"}}),
    ("GET", "/sites", {"timeout": 1.0}),
    ("GET", "/sites", {"timeout": None}),
    ("GET", "/sites", {"extensions": {"trace": None}}),
]


@pytest.mark.parametrize("base_url", ["https://api.example.com/v1/", "http://127.0.0.1:9"])
@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer tok-test-1"},  # a test value
    {"Host": "named.example.com", "X-Client": "1"},  # a Host of its own, which httpx keeps
    {},
])
@pytest.mark.parametrize(("method", "url", "kwargs"), CALLS)
async def test_a_request_is_built_as_httpx_builds_it(
        base_url: str, headers: dict[str, str], method: str, url: str | httpx.URL,
        kwargs: dict[str, Any]) -> None:
    ours, theirs = _clients(base_url, headers)
    async with ours, theirs:
        expected = theirs.build_request(method, url, **kwargs)
        assert _built(ours.build_request(method, url, **kwargs)) == _built(expected)


async def test_a_read_through_request_is_built_as_httpx_builds_it() -> None:
    """As the providers call: `AsyncClient.request` passes every argument, None if not given."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    for client in (
        transport.new_client("https://api.example.com", headers={"Authorization": "Bearer t"},
                             transport=httpx.MockTransport(record)),
        httpx.AsyncClient(base_url="https://api.example.com",
                          headers={"Authorization": "Bearer t"},
                          transport=httpx.MockTransport(record), timeout=transport.DEFAULT_TIMEOUT),
    ):
        async with client:
            assert await transport.send_json(client, "GET", "/api/v1/sites") == []
    assert _built(seen[0]) == _built(seen[1])
