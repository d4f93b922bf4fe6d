"""The garbage collector around a plan: paused while it runs, and for a process that exits
after one run (`reconciler plan`, `apply`), what the plan leaves alive is moved out of its
sight instead of being scanned; a long-lived process (watch agent, operator) keeps
collecting it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from simworld import MakeWorld, standard_site

from reconciler.engine.reconcile import Reconciler
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # what a test froze goes back under the collector


@pytest.mark.parametrize(("short_lived", "frozen"), [(True, True), (False, False)])
async def test_a_short_lived_run_freezes_what_its_plan_leaves_alive(
        make_world: MakeWorld, unfrozen: None, short_lived: bool, frozen: bool) -> None:
    world = await make_world(standard_site(1) + standard_site(2))
    async with Reconciler(world.fleet, world.settings, short_lived=short_lived) as engine:
        assert gc.get_freeze_count() == 0
        result = await engine.plan(PlanOptions(audience=Audience.CLI))
    changes = result.plan.changes
    assert len(changes) > 10 and gc.isenabled(), "the collector runs again after the plan"
    if frozen:
        assert gc.get_freeze_count() >= len(changes), "the changes, at least, are frozen"
    else:
        assert gc.get_freeze_count() == 0, "a long-lived process keeps collecting them"
