"""Fixtures of the CI-recipe tests: simulators for a checkout of the home-solna example, and
a check that no asyncio task outlives its test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ci_helpers import World, start_world


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves an asyncio task running (set up first, torn down last)."""
    before = asyncio.all_tasks()
    yield
    others = asyncio.all_tasks() - before - {asyncio.current_task()}
    # Tasks already cancelled by a teardown (aiohttp's shutdown cancels handlers without
    # awaiting them) need a few loop turns to finish.
    if others:
        await asyncio.wait(others, timeout=1.0)
    leaked = {t for t in others if not t.done()}
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks left running: {leaked}"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    world = await start_world(tmp_path)
    yield world
    await world.sims.stop()
