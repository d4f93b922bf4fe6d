"""The requests the providers' clients build are the ones httpx's own client builds from
the same settings: a read, or a write of a JSON body, built in one step (`ApiClient`) has
the same method, URL, headers in the same order, body and timeouts as one built field by
field, a body httpx cannot encode fails as it fails there, and a call with anything else
of its own (content, params, headers, a timeout) is built by httpx itself."""

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
    # JSON bodies: httpx's encoding (no spaces, UTF-8 unescaped), its Content-Length in
    # bytes, not characters, and its Content-Type after the client's headers.
    ("POST", "/api/devices", {"json": {"name": "Wärmepumpe ☀ 東京 🔋", "note": "a\u2028b\"\\\n"}}),
    ("PUT", "/sites/s1", {"json": {"site": {"ders": [{"type": "pv", "w": [1, 2.5]}], "on": True,
                                            "off": False, "none": None}}}),
    ("PATCH", "/sites/s1", {"json": {}}),
    ("POST", "/api/devices", {"json": []}),
    ("post", "/api/devices", {"json": [0.1, -0.0, 1e-07, 1.5e300, 2**70, -3, 0]}),
    ("DELETE", "/sites/s1", {"json": {"force": True}}),
    ("POST", "/api/crypto/sign", {"json": "a message"}),
    ("PUT", "/flag", {"json": False}),
    ("PUT", "/count", {"json": 0}),
    ("POST", "/note", {"json": ""}),
    ("GET", "/search", {"json": {"q": "a"}}),  # a body on a read: httpx sends it as given
    ("POST", "/api/devices", {"json": {"sn": "X"}, "data": {}}),
    ("POST", httpx.URL("http://10.1.2.3:8080/api/devices"), {"json": {"sn": "Y"}}),
    ("POST", "devices", {"json": {"sn": "Z"}}),  # relative without a slash: httpx's merge
    ("POST", "/api/devices", {"json": {"sn": "X"}, "headers": {"X-Request": "1"}}),
    ("POST", "/api/devices", {"json": {"sn": "X"}, "params": {"dry": "1"}}),
    ("POST", "/api/devices", {"json": {"sn": "X"}, "timeout": 3.0}),
    ("POST", "/api/devices", {"json": None}),  # no body after all: Content-Length: 0
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
    {"Content-Type": "application/merge-patch+json"},  # kept by httpx over a body's own
    {"Accept": "application/json", "content-length": "0"},
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


@pytest.mark.parametrize("body", [
    {"ratio": float("nan")}, [float("inf")], -float("inf"),  # no JSON number
    {"when": object()},  # nothing JSON encodes
    {"name": "\ud800"},  # a lone surrogate: no UTF-8
    {(1, 2): "a key JSON has not"},
])
async def test_a_body_httpx_cannot_encode_fails_as_it_fails_there(body: Any) -> None:
    ours, theirs = _clients("https://api.example.com", {})
    async with ours, theirs:
        with pytest.raises(Exception) as expected:
            theirs.build_request("POST", "/api/devices", json=body)
        with pytest.raises(expected.type) as raised:
            ours.build_request("POST", "/api/devices", json=body)
    assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "answer"), [
    pytest.param("GET", "/api/v1/sites", {}, 200, [], id="read"),
    # A write of a JSON body.
    pytest.param("POST", "/api/devices", {"json": {
        "sn": "ZAP-1", "name": "Batterie ü", "limits": {"w": 4.5e3, "soc": [10, 90]}}},
        201, {"id": "d1"}, id="write"),
])
async def test_a_request_sent_through_is_built_as_httpx_builds_it(
        method: str, path: str, kwargs: dict[str, Any], status: int, answer: Any) -> None:
    """As the providers call: `AsyncClient.request` passes every argument, None if not given."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=answer)

    for client in (
        transport.new_client("https://api.example.com", headers={"Authorization": "Bearer t"},
                             transport=httpx.MockTransport(record)),
        httpx.AsyncClient(base_url="https://api.example.com",
                          headers={"Authorization": "Bearer t"},
                          transport=httpx.MockTransport(record), timeout=transport.DEFAULT_TIMEOUT),
    ):
        async with client:
            assert await transport.send_json(client, method, path, **kwargs) == answer
    assert _built(seen[0]) == _built(seen[1])
