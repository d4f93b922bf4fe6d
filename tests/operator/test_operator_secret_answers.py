"""The operator's Secret reads and writes the API server answers with an error. A password's
Secret that does not exist says so. A config Secret changed by someone else between its
read and its write, or a server error, is tried again; a write forbidden names the chart's
value that grants it; any other refusal says only its status (the body may echo the
request, which holds keys)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from harness import loopback_api_server

from reconciler.errors import ProviderError, ProviderRejected, ProviderUnavailable
from reconciler.operator.secrets import KubeSecrets

SECRET_VALUE = "the-config-holds-this-key"


def _status(code: int, reason: str) -> web.Response:
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
         "reason": reason, "message": f"echoed: {SECRET_VALUE}"}, status=code)


@pytest.mark.parametrize(("code", "reason", "expected", "said"), [
    (409, "AlreadyExists", ProviderUnavailable,
     "secret fleet/ucm-config changed between its read and its write (HTTP 409)"),
    (503, "ServiceUnavailable", ProviderUnavailable,
     "secret fleet/ucm-config was not written: the API server answered HTTP 503"),
    (403, "Forbidden", ProviderRejected,
     "secret fleet/ucm-config cannot be written (HTTP 403, forbidden): the chart grants it "
     "with rbac.writeConfigSecrets"),
    (422, "Invalid", ProviderRejected,
     "secret fleet/ucm-config cannot be written: the API server refused it (HTTP 422)"),
])
async def test_a_refused_config_secret_write_says_why_and_is_retried_only_when_it_can_pass(
    code: int, reason: str, expected: type[ProviderError], said: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Secret is absent when read (404), then its creation is answered `code`."""
    created: list[str] = []

    async def absent_then_refused(request: web.Request) -> web.Response:
        if request.method == "GET":
            return _status(404, "NotFound")
        created.append(request.method)
        return _status(code, reason)

    async with loopback_api_server(absent_then_refused, tmp_path, monkeypatch):
        with pytest.raises(ProviderError) as refused:
            await asyncio.wait_for(asyncio.to_thread(
                KubeSecrets()._write, "fleet", "ucm-config",
                {"config.json": SECRET_VALUE}, "ucm", "dev-1"), 20)
    assert created == ["POST"]
    assert type(refused.value) is expected
    assert str(refused.value) == said
    assert refused.value.retryable is (expected is ProviderUnavailable)
    assert SECRET_VALUE not in str(refused.value)


async def test_a_password_secret_that_does_not_exist_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def absent(request: web.Request) -> web.Response:
        return _status(404, "NotFound")

    async with loopback_api_server(absent, tmp_path, monkeypatch):
        with pytest.raises(KeyError) as missing:
            await asyncio.wait_for(KubeSecrets().read("fleet", "ferroamp-mqtt"), 60)
    assert missing.value.args == ("secret fleet/ferroamp-mqtt does not exist",)
