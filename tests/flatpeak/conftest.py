"""Fixtures of the Flatpeak tests: `world`, the simulated world for `home()`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from flatpeak_world import World, fleet_of, home

from reconciler.sim.fleet import SimFleet


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    fleet = fleet_of(home())
    sims = SimFleet(seed=5)
    sims.seed_fleet(fleet)
    await sims.start()
    try:
        yield World(sims, tmp_path, fleet)
    finally:
        await sims.stop()
