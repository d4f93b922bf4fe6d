"""Concurrency and rate limits for every HTTP call, as an httpx transport wrapper: one
global bound on calls in flight, and per host a bound on calls in flight plus a rate (at
most so many requests in any second, retries included). One slow or offline gateway then
never stalls the fleet, and no gateway (a small embedded device) is flooded. A request
that holds its slots is shown to `BEFORE_SEND`, which may still withhold it; before that,
one to a server that asked to be left alone until later (`host_waits`) is not sent, and
what each answer asks for is kept there. Calls that are not HTTP (a Modbus read) hold the
same kind of slots with `Limits.slot`."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

import httpx

from reconciler.engine.host_waits import HostWaits

# Called with each request the moment it holds its slots, just before it is sent; raising
# withholds it (`engine.admission`: nothing new starts once an apply is stopping). Set per
# task: each change's attempt has its own. A request may wait long for its slots, so what
# was decided when it was made may no longer hold when it can go.
BEFORE_SEND: ContextVar[Callable[[httpx.Request], None] | None] = ContextVar(
    "before_send", default=None
)


@dataclass(frozen=True)
class HostLimit:
    concurrency: int | None = None  # calls in flight to this host; None = only the global bound
    rate: float | None = None  # requests in any second; None = unlimited


class _RateWindow:
    """At most `rate` requests in any one second (rounded down; under 1 a second, one per
    1/rate seconds), as the gateway counts them. A token bucket holding `rate` tokens let
    a burst of `rate` requests through at once and `rate` more as it refilled within the
    same second: twice the rate a small embedded device was promised."""

    def __init__(self, rate: float) -> None:
        self.count = max(1, math.floor(rate))
        self.window = max(1.0, 1.0 / rate)
        self.sent: deque[float] = deque()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                while self.sent and now - self.sent[0] >= self.window:
                    self.sent.popleft()
                if len(self.sent) < self.count:
                    self.sent.append(now)
                    return
                await asyncio.sleep(self.window - (now - self.sent[0]))


class Limits:
    """Shared by every client of one engine run."""

    def __init__(
        self,
        concurrency: int,
        hosts: Mapping[str, HostLimit] | None = None,
        default: HostLimit | None = None,
    ) -> None:
        self.global_bound = asyncio.Semaphore(concurrency)
        self.hosts = dict(hosts or {})
        self.default = default or HostLimit()
        self._bounds: dict[str, asyncio.Semaphore] = {}
        self._windows: dict[str, _RateWindow] = {}

    def set_host(self, host: str, limit: HostLimit) -> None:
        self.hosts[host] = limit

    def _limit(self, host: str) -> HostLimit:
        return self.hosts.get(host, self.default)

    async def acquire(self, host: str) -> asyncio.Semaphore | None:
        limit = self._limit(host)
        bound = None
        if limit.concurrency:
            bound = self._bounds.get(host)
            if bound is None:
                bound = self._bounds[host] = asyncio.Semaphore(limit.concurrency)
            await bound.acquire()
        if limit.rate:
            window = self._windows.get(host)
            if window is None:
                window = self._windows[host] = _RateWindow(limit.rate)
            await window.take()
        return bound

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold `host`'s slots and one of the global bound while the block runs."""
        bound = await self.acquire(host)
        try:
            async with self.global_bound:
                yield
        finally:
            if bound is not None:
                bound.release()


class LimitedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport so each request waits for its host's and the global limits, and
    is not sent to a server that asked, by Retry-After, to be called later (`waits`)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, limits: Limits, waits: HostWaits | None = None
    ) -> None:
        self.inner = inner
        self.limits = limits
        self.waits = waits if waits is not None else HostWaits()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Before its slots too: a gateway's rate is not spent on a call that is not sent.
        self.waits.check(request.url)
        bound = await self.limits.acquire(host_key(request.url))
        try:
            async with self.limits.global_bound:
                # Again: the answer asking to wait may have come while this one waited for
                # its slots. Before `BEFORE_SEND`, which journals a write as sent.
                self.waits.check(request.url)
                before_send = BEFORE_SEND.get()
                if before_send is not None:
                    before_send(request)
                response = await self.inner.handle_async_request(request)
                # Read the body while holding the slot so the bound covers the whole call.
                await response.aread()
                # Kept before the slot is let go: the next call waiting for it is held.
                self.waits.heard(request.url, response)
                return response
        finally:
            if bound is not None:
                bound.release()

    async def aclose(self) -> None:
        await self.inner.aclose()


def host_key(url: httpx.URL) -> str:
    """The key per-host limits are kept under."""
    return f"{url.host}:{url.port or ''}"
