"""The operator's own requests to the API server (beside kopf's) are given up after
`kube_client.REQUEST_TIMEOUT` when it takes them and never answers (packets dropped, a
server hung), with an error saying so, instead of holding a thread, and the operator's
exit with it, for minutes: a config Secret read, and written. A request is not sent again
after its timeout (it would be, three times, by default)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from harness import loopback_api_server

from reconciler.errors import ProviderUnavailable
from reconciler.operator import kube_client
from reconciler.operator.secrets import KubeSecrets


def _hung_server(taken: list[str] | None = None) -> tuple[Any, asyncio.Event]:
    """An aiohttp handler that answers nothing until the event is set (the requests it
    takes listed in `taken`)."""
    answered = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        if taken is not None:
            taken.append(request.method)
        await answered.wait()
        return web.json_response({})

    return hang, answered


async def test_a_secret_read_the_api_server_does_not_answer_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[str] = []
    hang, answered = _hung_server(taken)
    monkeypatch.setattr(kube_client, "REQUEST_TIMEOUT", (1.0, 1.0))
    async with loopback_api_server(hang, tmp_path, monkeypatch):
        try:
            with pytest.raises(KeyError) as refused:
                await asyncio.wait_for(KubeSecrets().read("fleet", "ferroamp-mqtt"), 60)
        finally:
            answered.set()
    # Given up after one timeout: not sent again after each (urllib3's default), which
    # would hold the read for four.
    assert taken == ["GET"]
    said = str(refused.value.args[0])
    assert said.startswith(
        "secret fleet/ferroamp-mqtt cannot be read (the API server did not answer: "), said


async def test_a_config_secret_write_the_api_server_does_not_answer_is_retryable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Secret looked up first (absent: 404), then its creation never answered: a
    retryable error (it may have been written), not a refusal."""
    answered = asyncio.Event()

    async def absent_then_hang(request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.json_response(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                 "reason": "NotFound", "message": "not found"}, status=404)
        await answered.wait()
        return web.json_response({})

    monkeypatch.setattr(kube_client, "REQUEST_TIMEOUT", (1.0, 1.0))
    async with loopback_api_server(absent_then_hang, tmp_path, monkeypatch):
        try:
            with pytest.raises(ProviderUnavailable) as unanswered:
                await asyncio.wait_for(asyncio.to_thread(
                    KubeSecrets()._write, "fleet", "ucm-config", {"config.json": "{}"},
                    "ucm", "dev-1"), 20)
        finally:
            answered.set()
    assert str(unanswered.value).startswith(
        "secret fleet/ucm-config: the API server did not answer its write ("), unanswered.value
