"""The check that no asyncio task outlives its test, for the fixtures of the suites whose
simulators and subprocesses run in the test's event loop (tests/ci, tests/engine,
tests/sim, tests/watch): each wraps its `no_leaked_tasks` fixture around it.

A task still running at the end is given the time a loaded machine may need to end it, and
is a leak only if it is still running after `CANCELLED_WAIT`: one a teardown cancelled
(aiohttp's shutdown cancels handlers without awaiting them) running its cleanup, or one
ending on its own (a subprocess's exit, a thread's answer, a closed connection heard of),
which a loaded machine can keep for seconds. A leak, one waiting for something that never
comes or that swallowed its cancellation, fails the test either way; the message says
whether anything had cancelled it."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Iterable

# Loop turns the tasks a test started get to end on their own: a handler whose connection a
# teardown closed hears of it in a turn or two (loopback I/O is ready at once, however
# loaded the machine), without any wall time passing.
SETTLE_TURNS = 100
# How long a task still running at the end may take to end: a bound for a machine that
# keeps the loop or a subprocess waiting for seconds at a time, not an expected time.
CANCELLED_WAIT = 10.0


@contextlib.asynccontextmanager
async def no_task_left_running(cancelled_wait: float = CANCELLED_WAIT) -> AsyncIterator[None]:
    """Fail if a task started inside is still running `cancelled_wait` seconds after the
    end (after `SETTLE_TURNS` loop turns, when none is). It is cancelled before the test
    fails, so it does not run into the next test."""
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
    if running or ending:
        await asyncio.wait(running | ending, timeout=cancelled_wait)
    leaked = {task for task in running | ending if not task.done()}
    for task in leaked:
        task.cancel()
    assert not leaked, _describe(running & leaked, ending & leaked, cancelled_wait)


def _describe(running: Iterable[asyncio.Task[object]],
              stuck: Iterable[asyncio.Task[object]], cancelled_wait: float) -> str:
    """Each leaked task with where it is (its stack), which says what started it."""
    parts = [f"task left running {cancelled_wait:g} s after the test (nobody cancelled it): "
             f"{_stack(task)}" for task in running]
    parts += [f"task still running {cancelled_wait:g} s after it was cancelled: {_stack(task)}"
              for task in stuck]
    return "\n".join(parts)


def _stack(task: asyncio.Task[object]) -> str:
    text = io.StringIO()
    task.print_stack(file=text)
    return f"{task!r}\n{text.getvalue()}"
