"""The engine's concurrent work (every site, gateway and organisation at once) run as one
unit: `all_of` awaits all of it, and when one part raises, cancels the others and waits
for them to end before the error goes on.

`asyncio.gather` alone leaves the others running, detached, when one raises: reads on a
session about to be closed, writes made after the run reported its failure, journal
entries left half-done, tasks the closing event loop destroys ("Task was destroyed but it
is pending"). A platform's error, or an answer of a shape it does not document, is caught
where it happens and stays that site's (`gather.Gather.read`, `apply.apply_plan`):
what reaches here is a bug, the output gone, or the run itself cancelled. `unless_stopped`
runs a read that a stop request abandons, ending it the same way; `ended` waits for a task
just cancelled without taking a cancellation of the caller for the task's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")


def unexpected(error: BaseException) -> str:
    """How an error nobody maps is reported as the failure of the one read or change it
    stopped: its type and message (no traceback; the rest of the fleet goes on)."""
    return f"unexpected answer ({type(error).__name__}: {error})"


async def all_of(*awaitables: Awaitable[T]) -> list[T]:
    """The results of `awaitables`, run concurrently, in order. When one raises (or this is
    cancelled), the others are cancelled and waited for, then the first error is raised
    as it is: callers keep catching the types they know."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        # Waited for, so that none outlives this call; their errors are retrieved here
        # (one raised already says what went wrong), not reported as never retrieved.
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """`all_of` for two awaitables of different types, each result with its own."""
    results: list[Any] = await all_of(first, second)
    return results[0], results[1]


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """What `work` gives, or None once `stop` is set first (or was already): `work` is then
    cancelled and waited for. Only for work safe to abandon, as a plan is (it only reads):
    the watch agent's, and an operator's drift check, stopped."""
    if stop.is_set():
        if asyncio.iscoroutine(work):
            work.close()
        return None
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopping):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, stopping, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


async def ended(task: asyncio.Future[Any]) -> None:
    """Wait for `task`, just cancelled, to end, raising what it raised but its
    cancellation. Not `await` under `suppress(CancelledError)`: a cancellation of the
    caller landing meanwhile would be taken for the task's, and lost (the caller would go
    on as if never cancelled)."""
    outcomes = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcomes[0], Exception):
        raise outcomes[0]
