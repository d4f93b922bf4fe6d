"""`ManualClock`: a `watch_clock.Clock` whose time moves only when the test moves it.

With it a test of the watch agent's scheduling says "1.5 s later" and knows what the agent
did by then, however slow the machine: `settled()` returns once the agent is waiting on the
clock again (for an event none has set, or a time not yet come) or has ended, and
`advance()` moves time on, waking what waited for it. Nothing here sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from reconciler.engine.filewatch import wait_any

# How long `settled` waits for the agent to wait or end: only a bug takes this long (the
# agent under test runs in this event loop and does nothing slow).
STUCK_AFTER_S = 60.0


class ManualClock:
    def __init__(self) -> None:
        self.time = 0.0
        # What the waiting agent waits for (its events and the next move of time), or None
        # while it is not waiting on the clock.
        self._waiting_on: list[asyncio.Event] | None = None
        self._moved = asyncio.Event()  # set, and replaced, at every advance()
        self._state = asyncio.Event()  # set, and replaced, when a wait starts or ends

    def now(self) -> float:
        return self.time

    async def wait(self, events: Iterable[asyncio.Event], seconds: float) -> None:
        events = list(events)
        deadline = self.time + seconds
        while self.time < deadline and not any(event.is_set() for event in events):
            moved = self._moved
            self._waiting([*events, moved])
            try:
                await wait_any([*events, moved], None)
            finally:
                self._waiting(None)

    def advance(self, seconds: float) -> None:
        self.time += seconds
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def settled(self, task: asyncio.Future[None]) -> None:
        """Return once the agent serving in `task` waits on this clock for something that
        has not happened yet, or `task` has ended."""
        while not task.done():
            waiting_on = self._waiting_on
            if waiting_on is not None and not any(event.is_set() for event in waiting_on):
                return
            changed = asyncio.ensure_future(self._state.wait())
            try:
                done, _ = await asyncio.wait([task, changed], timeout=STUCK_AFTER_S,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                await asyncio.gather(changed, return_exceptions=True)
            if not done:
                raise AssertionError(f"the agent neither waited nor ended in {STUCK_AFTER_S}s")

    def _waiting(self, on: list[asyncio.Event] | None) -> None:
        self._waiting_on = on
        state, self._state = self._state, asyncio.Event()
        state.set()
