"""A drift check cancelled (by kopf, or by the event loop at its shutdown) while the task
relaying kopf's stop to it ends is cancelled: it does not take that cancellation for the
relay's and go on."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.operator import handlers


class _NeverStopped:
    """kopf's stop flag of a drift check that is not stopped."""

    reason: Any = None

    async def wait(self) -> None:
        await asyncio.Event().wait()


async def test_a_drift_check_cancelled_as_its_stop_relay_ends_stays_cancelled() -> None:
    went_on: list[str] = []

    async def check() -> None:
        async with handlers._stop_when_leaving(_NeverStopped()):  # type: ignore[arg-type]
            pass
        went_on.append("after the check's reconcile")

    task = asyncio.create_task(check())
    # The check's reconcile is done; its relay is being cancelled and waited for.
    for _ in range(1000):  # loop turns, each a step of the check
        if any(t.get_name() == handlers.RELAY_NAME and t.cancelling()
               for t in asyncio.all_tasks()):
            break
        await asyncio.sleep(0)
    else:
        raise AssertionError("the check never waited for its relay to end")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert went_on == []
