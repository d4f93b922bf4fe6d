"""Fixtures of the end-to-end engine tests: a factory of simulated worlds (simulators for a
fleet, started on loopback in the test's event loop, stopped after it) and a check that no
asyncio task outlives its test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from simworld import Doc, MakeWorld, World, load, world_env
from task_leaks import no_task_left_running

from reconciler.engine.config import load_settings
from reconciler.sim.fleet import SimFleet


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    async with no_task_left_running():
        yield


Handler = Callable[[web.Request], Any]
Serve = Callable[[Handler], Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts a server on loopback that answers every path with `handler`; gives its URL.
    Stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def make_world(no_leaked_tasks: None, tmp_path: Path) -> AsyncIterator[MakeWorld]:
    started: list[SimFleet] = []

    async def make(docs: Iterable[Doc], *, shared_modbus: bool = False,
                   env: dict[str, str] | None = None,
                   before_start: Callable[[SimFleet], Any] | None = None) -> World:
        fleet = load(docs)
        sims = SimFleet()
        sims.seed_fleet(fleet, shared_modbus=shared_modbus)
        if before_start is not None:
            before_start(sims)
        await sims.start()
        started.append(sims)
        variables = world_env(sims, tmp_path / "state", env)
        return World(sims, fleet, load_settings(variables), variables)

    yield make
    for sims in started:
        await sims.stop()
