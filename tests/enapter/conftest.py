"""Fixtures of the Enapter tests: `make_world(yaml_text)` starts the simulated world for a
fleet and stops it after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from enapter_world import MakeWorld, World, fleet_of

from reconciler.sim.fleet import SimFleet


@pytest.fixture
async def make_world(tmp_path: Path) -> AsyncIterator[MakeWorld]:
    started: list[SimFleet] = []

    async def make(text: str) -> World:
        fleet = fleet_of(text)
        sims = SimFleet(seed=11)
        sims.seed_fleet(fleet)
        await sims.start()
        started.append(sims)
        return World(sims, tmp_path, fleet)

    yield make
    for sims in started:
        await sims.stop()
