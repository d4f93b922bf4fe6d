"""Requests to a simulated platform held in flight for as long as a test needs: a
middleware of the simulator's app that, once `armed`, holds the requests `picks` chooses
(only the first, with `once`) until `release`d. A write or read held so puts another
object's reconcile between two steps of one: the tests of races use it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from harness import WAIT


class HeldRequests:
    """Holds the requests to `sims.<platform>` (or to the Zap of that serial) that `picks`,
    while `armed`; `arrived` counts those held, and `first` is set as the first is."""

    def __init__(self, platform: str, picks: Callable[[web.Request], bool], *,
                 once: bool = False) -> None:
        self.platform = platform
        self.picks = picks
        self.once = once
        self.armed = False
        self.arrived = 0
        self.first = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        """Answer the requests held, and hold no more."""
        self.armed = False
        self._released.set()

    def install(self, sims: Any) -> None:
        """Add the middleware (as `before_start`: before the simulator serves)."""

        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.armed and self.picks(request):
                self.armed = not self.once
                self.arrived += 1
                self.first.set()
                await asyncio.wait_for(self._released.wait(), WAIT)  # a bound, not a time
            return await handler(request)

        zaps = getattr(sims, "zaps", {})
        server = zaps[self.platform] if self.platform in zaps else getattr(sims, self.platform)
        server.app.middlewares.append(hold)
