"""The check of leaked tasks (tests/task_leaks.py) itself: it fails a test that leaves a
task running, or one that keeps running after it was cancelled, and lets a cancelled task
take the time its cleanup needs on a loaded machine."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from task_leaks import no_task_left_running


async def _wait_for_ever(started: asyncio.Event) -> None:
    started.set()
    await asyncio.Event().wait()


async def test_a_task_left_running_fails_the_test_and_is_cancelled() -> None:
    started = asyncio.Event()
    with pytest.raises(AssertionError, match="nobody cancelled it") as failed:
        async with no_task_left_running(cancelled_wait=0.1):
            leaked = asyncio.create_task(_wait_for_ever(started), name="leaked-on-purpose")
            await started.wait()
    assert "leaked-on-purpose" in str(failed.value)
    assert "_wait_for_ever" in str(failed.value), "its stack says where it waits"
    # Cancelled by the check: it does not run on into the next test.
    with contextlib.suppress(asyncio.CancelledError):
        await leaked
    assert leaked.cancelled()


async def test_a_task_that_swallows_its_cancellation_fails_the_test() -> None:
    started = asyncio.Event()

    async def swallows_one_cancel() -> None:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        # Runs on as if it had not been cancelled, until the check cancels it again.
        await asyncio.Event().wait()

    with pytest.raises(AssertionError, match="after it was cancelled") as failed:
        async with no_task_left_running(cancelled_wait=0.1):
            stubborn = asyncio.create_task(swallows_one_cancel(), name="swallows-a-cancel")
            await started.wait()
            stubborn.cancel()
    assert "swallows-a-cancel" in str(failed.value)
    with contextlib.suppress(asyncio.CancelledError):
        await stubborn
    assert stubborn.cancelled()


async def test_a_cancelled_task_may_take_its_time_to_clean_up() -> None:
    """A teardown that cancels a task without awaiting it (as aiohttp's shutdown does its
    handlers): the task's cleanup of more than a second, as a loaded machine makes of a
    short one, is waited for, not called a leak."""
    started, cleaned_up = asyncio.Event(), asyncio.Event()

    async def slow_cleanup() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(1.5)
            cleaned_up.set()

    async with no_task_left_running():
        task = asyncio.create_task(slow_cleanup())
        await started.wait()
        task.cancel()
    assert cleaned_up.is_set() and task.cancelled()


async def test_a_task_ending_on_its_own_after_the_test_is_not_a_leak() -> None:
    """A task the test started that ends by itself a moment later (a subprocess's exit
    heard, a loaded machine's late answer) is waited for, not called a leak."""
    ended = asyncio.Event()

    async def ends_soon() -> None:
        await asyncio.sleep(0.5)
        ended.set()

    async with no_task_left_running():
        task = asyncio.create_task(ends_soon())
    assert ended.is_set() and task.done() and not task.cancelled()


async def test_a_task_ending_on_its_own_within_a_few_loop_turns_is_not_a_leak() -> None:
    async def a_few_turns() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async with no_task_left_running():
        task = asyncio.create_task(a_few_turns())
    assert task.done() and not task.cancelled()
