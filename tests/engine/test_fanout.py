"""Failures nobody maps stay with their site: a gateway answering in a shape no
documentation gives defers its own site while the others apply, with no traceback and
nothing left running; and the engine's fan-out cancels and waits for the rest of its work
when one part raises, instead of leaving it running detached."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from simworld import (
    ThreadedSims,
    converged_exactly_once,
    load,
    serial_of,
    set_latency,
    standard_site,
    write,
)

from reconciler.engine.fanout import all_of, ended
from reconciler.engine.state import unfinished_intents
from reconciler.sim.fleet import SimFleet

# What asyncio and aiohttp print of work left behind: detached tasks, errors nobody
# retrieved, clients never closed.
LEFT_BEHIND = (
    "Traceback", "Task was destroyed", "never retrieved", "Unclosed", "was never awaited")


def _reconciler(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # -X dev: asyncio's debug mode and every ResourceWarning shown.
    return subprocess.run(
        [sys.executable, "-X", "dev", "-m", "reconciler", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_gateway_answering_an_undocumented_shape_defers_its_site_alone(
        tmp_path: Path) -> None:
    docs = [*standard_site(1), *standard_site(2), *standard_site(3)]
    fleet = load(docs)
    fleet_dir = write(tmp_path / "sites", docs)
    state_dir = tmp_path / "state"

    def garble(sims: SimFleet) -> None:
        # Valid JSON, a device whose DERs are null: the conversion of the answer raises.
        zap = sims.zaps[serial_of(2)]
        zap.faults.garble_next = 1
        zap.faults.garble_body = {"devices": [{"sn": "SG9", "ders": None}]}

    with ThreadedSims(fleet) as sims:
        # Slow enough that the other sites' reads and writes are in flight when it answers.
        sims.call(set_latency, sims.sims, 50)
        sims.call(garble, sims.sims)
        env = os.environ | sims.env() | {"RECONCILER_STATE_DIR": str(state_dir)}
        first = _reconciler(["apply", str(fleet_dir), "--auto-approve"], env)
        output = first.stdout + first.stderr
        assert first.returncode == 0, output  # deferred, as an unreachable gateway's site
        for sign in LEFT_BEHIND:
            assert sign not in first.stderr, first.stderr
        assert "unexpected answer (TypeError" in first.stdout, output
        assert "(7 more of site s2)" in first.stdout, output

        def others_applied() -> None:
            assert sims.sims.zaps[serial_of(2)].devices == {}
            for index in (1, 3):
                assert len(sims.sims.zaps[serial_of(index)].devices) == 2
            assert len(sims.sims.novacore.sites) == 2

        sims.call(others_applied)
        assert unfinished_intents(state_dir / "journal.jsonl") == [], "every write ended"

        # With the gateway answering as documented again, the next run converges.
        again = _reconciler(["apply", str(fleet_dir), "--auto-approve"], env)
        assert again.returncode == 0, again.stdout + again.stderr
        sims.call(sims.sims.reset_counts)
        noop = _reconciler(["plan", str(fleet_dir), "--detailed-exitcode"], env)
        assert noop.returncode == 0, noop.stdout + noop.stderr
        assert sims.call(sims.sims.writes) == 0
        sims.call(converged_exactly_once, sims.sims, fleet)


async def test_all_of_cancels_and_awaits_the_rest_when_one_part_raises() -> None:
    ended: list[str] = []

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise TypeError("no such shape")

    async def slow(name: str) -> None:
        try:
            await asyncio.sleep(5)
        finally:
            ended.append(name)

    before = asyncio.all_tasks()
    with pytest.raises(TypeError, match="no such shape"):
        await all_of(slow("a"), fails(), slow("b"))
    # Ended before all_of raised: none runs on detached.
    assert sorted(ended) == ["a", "b"]
    assert asyncio.all_tasks() - before == set()



# -- ended: a cancelled task waited for ----------------------------------------------------


async def test_ended_waits_for_a_cancelled_task_and_says_nothing_of_its_cancel() -> None:
    task = asyncio.create_task(asyncio.sleep(30))
    await asyncio.sleep(0)
    task.cancel()
    await ended(task)
    assert task.cancelled()


async def test_ended_raises_what_the_task_raised() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    task = asyncio.create_task(fails())
    with pytest.raises(ValueError, match="broken"):
        await ended(task)


async def test_a_cancel_of_the_caller_while_it_waits_is_not_lost() -> None:
    """The caller cancelled while the task it cancelled still winds down (a task that
    takes a moment to end): the caller is cancelled, where `suppress(CancelledError)`
    would have taken the cancel for the task's and gone on."""
    winding_down = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            winding_down.set()
            await asyncio.sleep(30)

    went_on: list[bool] = []

    async def caller() -> None:
        task = asyncio.create_task(slow_to_end())
        await asyncio.sleep(0)
        task.cancel()
        await ended(task)
        went_on.append(True)

    waiting = asyncio.create_task(caller())
    await winding_down.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert went_on == []
