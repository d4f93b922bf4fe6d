"""An Event posted once the operator stops (kopf's poster of Events ended: see
test_operator_stop for those written) that the API server refuses, or does not answer, is
logged at WARNING, whole, rather than lost without a word (or holding the exit)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import kopf
import pytest
from aiohttp import web
from harness import loopback_api_server

from reconciler.operator import kube_client
from reconciler.operator.events import Events

MESSAGE = "device/home-inverter[novacore]: create skipped: not started: stopping"


async def _warn_at_stop() -> None:
    """The Warning a reconcile posts of the inverter once the operator stops."""
    stopped = asyncio.Event()
    stopped.set()
    body = kopf.Body({
        "apiVersion": "energy.reconciler.dev/v1alpha1", "kind": "Device",
        "metadata": {"name": "home-inverter", "namespace": "fleet", "uid": "u-1"},
    })
    await Events(stopped).warn(body, reason="ApplyFailed", message=MESSAGE)


async def test_an_event_the_api_server_refuses_at_the_stop_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[tuple[str, str, Any]] = []

    async def refuse(request: web.Request) -> web.Response:
        asked.append((request.method, request.path, await request.json()))
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
             "reason": "Forbidden", "message": "events is forbidden"},
            status=403,
        )

    async with loopback_api_server(refuse, tmp_path, monkeypatch):
        with caplog.at_level(logging.WARNING, logger="reconciler.operator.events"):
            await _warn_at_stop()
    ((method, path, event),) = asked
    assert (method, path) == ("POST", "/api/v1/namespaces/fleet/events")
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "ApplyFailed", MESSAGE)
    assert event["involvedObject"]["name"] == "home-inverter"
    assert [r.getMessage() for r in caplog.records] == [
        f"Device/home-inverter: Event not posted (HTTP 403 Forbidden): Warning ApplyFailed: "
        f"{MESSAGE}"
    ]


async def test_an_event_the_api_server_does_not_answer_at_the_stop_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that takes the request and never answers: the write is given up after the
    request timeout (1 s here), and said, instead of holding the operator's exit."""
    answered = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await answered.wait()
        return web.json_response({})

    monkeypatch.setattr(kube_client, "REQUEST_TIMEOUT", (1.0, 1.0))
    async with loopback_api_server(hang, tmp_path, monkeypatch):
        try:
            with caplog.at_level(logging.WARNING, logger="reconciler.operator.events"):
                await asyncio.wait_for(_warn_at_stop(), 60)
        finally:
            answered.set()
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith("Device/home-inverter: Event not posted ("), said
    assert said.endswith(f"): Warning ApplyFailed: {MESSAGE}"), said
