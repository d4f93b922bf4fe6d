"""A retry's wait ended by the run's stop (`engine.retry.retrying`, `stop`): a cancellation
that lands as the stop is set cancels the caller. Lost, the cancelled caller would go on to
its next attempt, a write its apply was told not to send."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.engine.retry import RetryPolicy, retrying
from reconciler.errors import ProviderUnavailable


async def test_a_cancel_landing_as_the_stop_is_set_is_not_lost() -> None:
    stop = asyncio.Event()
    attempts: list[int] = []
    waiting = asyncio.Event()

    async def call() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise ProviderUnavailable("busy", retry_after=30)
        return "sent again"

    task = asyncio.create_task(retrying(
        call, RetryPolicy(), on_retry=lambda *_: waiting.set(), stop=stop))
    await waiting.wait()
    await asyncio.sleep(0)  # the retry is in its wait now
    stop.set()
    assert task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == [1]
