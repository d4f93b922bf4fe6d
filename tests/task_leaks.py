"""The check that no asyncio task outlives its test, for the fixtures of the suites whose
simulators and subprocesses run in the test's event loop (tests/ci, tests/engine,
tests/sim, tests/watch): each wraps its `no_leaked_tasks` fixture around it.

A task is judged by its state, not by how long it took: one left running that nobody
cancelled is a leak however soon it would have ended; one a teardown cancelled (aiohttp's
shutdown cancels handlers without awaiting them) is given time to run its cleanup, as long
as a loaded machine needs, and is a leak only if it is still at it after `CANCELLED_WAIT`
(it swallowed its cancellation, or its cleanup waits for something that never comes)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Iterable

# Loop turns the tasks a test started get to end on their own: a handler whose connection a
# teardown closed hears of it in a turn or two (loopback I/O is ready at once, however
# loaded the machine), without any wall time passing.
SETTLE_TURNS = 100
# How long a task that was cancelled may take to end: a bound for a machine that keeps the
# loop waiting for seconds at a time, not an expected time.
CANCELLED_WAIT = 10.0


@contextlib.asynccontextmanager
async def no_task_left_running(cancelled_wait: float = CANCELLED_WAIT) -> AsyncIterator[None]:
    """Fail if a task started inside is still running at the end: one nobody cancelled,
    after `SETTLE_TURNS` loop turns, or a cancelled one after `cancelled_wait` seconds.
    Either is cancelled before the test fails, so it does not run into the next test."""
    before = asyncio.all_tasks()
    yield
    others = asyncio.all_tasks() - before - {asyncio.current_task()}
    for _ in range(SETTLE_TURNS):
        if all(task.done() for task in others):
            break
        await asyncio.sleep(0)
    # `cancelling()` counts the cancellations asked of a task and not yet taken back: a
    # task a teardown cancelled is ending; one at 0 runs its body as if nothing happened.
    running = {task for task in others if not task.done() and not task.cancelling()}
    ending = {task for task in others if not task.done() and task.cancelling()}
    if ending:
        await asyncio.wait(ending, timeout=cancelled_wait)
    leaked = running | {task for task in ending if not task.done()}
    for task in leaked:
        task.cancel()
    assert not leaked, _describe(running, ending & leaked, cancelled_wait)


def _describe(running: Iterable[asyncio.Task[object]],
              stuck: Iterable[asyncio.Task[object]], cancelled_wait: float) -> str:
    """Each leaked task with where it is (its stack), which says what started it."""
    parts = [f"task left running (nobody cancelled it): {_stack(task)}" for task in running]
    parts += [f"task still running {cancelled_wait:g} s after it was cancelled: {_stack(task)}"
              for task in stuck]
    return "\n".join(parts)


def _stack(task: asyncio.Task[object]) -> str:
    text = io.StringIO()
    task.print_stack(file=text)
    return f"{task!r}\n{text.getvalue()}"
