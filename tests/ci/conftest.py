"""Fixtures of the CI-recipe tests: simulators for a checkout of the home-solna example."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ci_helpers import World, start_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    world = await start_world(tmp_path)
    yield world
    await world.sims.stop()
