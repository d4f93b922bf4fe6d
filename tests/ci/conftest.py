"""Fixtures of the CI-recipe tests: simulators for a checkout of the home-solna example, and
a check that no asyncio task outlives its test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ci_helpers import World, start_world
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
