"""The clock the watch agent schedules its runs by (`watch.Agent`).

`Clock` is what the agent asks of time: the time now, and a wait that ends when one of
some events is set or after a number of seconds. `LoopClock`, the event loop's own clock,
is what `reconciler watch` uses; a test gives the agent a clock it moves itself, so the
quiet period, the cap on it and the interval are checked second by second whatever the
speed of the machine the test runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from reconciler.engine.filewatch import wait_any


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock (only differences between two readings mean anything)."""
        ...

    async def wait(self, events: Iterable[asyncio.Event], seconds: float) -> None:
        """Return when any of `events` is set, or once `seconds` have passed on this clock."""
        ...


class LoopClock:
    """Real time, as the running event loop keeps it."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def wait(self, events: Iterable[asyncio.Event], seconds: float) -> None:
        await wait_any(events, seconds)
