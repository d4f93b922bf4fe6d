"""The operator harness's end of a test is bounded: a task the test left running that does
not end when cancelled (it swallows its cancellation) fails the test with its stack, and is
not left for the event loop's shutdown, which would wait for it for ever."""

from __future__ import annotations

import asyncio
import contextlib

import harness
import pytest


async def _deaf() -> None:
    """Ignores every cancellation, as a retry loop catching CancelledError does."""
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)


async def test_a_task_that_ignores_its_cancellation_fails_the_test_with_its_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(harness, "LEFT_WAIT", 0.2)
    before = asyncio.all_tasks()
    deaf = asyncio.create_task(_deaf(), name="deaf")
    polite = asyncio.create_task(asyncio.sleep(3600), name="polite")
    await asyncio.sleep(0)
    with pytest.raises(AssertionError) as failed:
        await harness.tasks_ended(before)
    assert "1 task(s) still running" in str(failed.value)
    assert "_deaf" in str(failed.value), "its stack"
    assert polite.cancelled()
    # Not the loop's to wait for at its shutdown any more (the test would hang there).
    assert deaf not in asyncio.all_tasks()


async def test_tasks_that_end_when_cancelled_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    before = asyncio.all_tasks()
    task = asyncio.create_task(asyncio.sleep(3600))
    await harness.tasks_ended(before)
    assert task.cancelled()
