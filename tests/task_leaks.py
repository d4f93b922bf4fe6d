"""The check that no asyncio task outlives its test, for the fixtures of the suites whose
simulators and subprocesses run in the test's event loop (tests/ci, tests/sim,
tests/watch): each wraps its `no_leaked_tasks` fixture around it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def no_task_left_running() -> AsyncIterator[None]:
    """Fail if a task started inside is still running at the end (after cancelling it)."""
    before = asyncio.all_tasks()
    yield
    others = asyncio.all_tasks() - before - {asyncio.current_task()}
    # Tasks already cancelled by a teardown (aiohttp's shutdown cancels handlers without
    # awaiting them) need a few loop turns to finish; anything still running after that
    # was left behind.
    if others:
        await asyncio.wait(others, timeout=1.0)
    leaked = {t for t in others if not t.done()}
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks left running: {leaked}"
