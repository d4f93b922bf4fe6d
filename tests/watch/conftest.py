"""Fixtures of the watch-agent tests: a simulated world for a tmp copy of the home-solna
example (stopped after the test) and a factory of `reconciler` subprocesses (killed after
the test, whatever happened), and a check that no asyncio task outlives its test."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agent_helpers import Proc, Spawn, World, start_world
from task_leaks import no_task_left_running


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves an asyncio task running (set up first, torn down last)."""
    async with no_task_left_running():
        yield


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    world = await start_world(tmp_path)
    yield world
    await world.sims.stop()


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """Start `python -m reconciler ARGS...`; every process is killed at teardown."""
    started: list[Proc] = []

    async def start(*args: str, env: dict[str, str], cwd: Path) -> Proc:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reconciler", *args, env=env, cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        proc = Proc(process)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        await proc.kill()
