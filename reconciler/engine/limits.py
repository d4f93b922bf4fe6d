"""Concurrency and rate limits for every HTTP call, as an httpx transport wrapper: one
global bound on calls in flight, and per host a bound on calls in flight plus a token
bucket. One slow or offline gateway then never stalls the fleet, and no gateway (a small
embedded device) is flooded. A request that holds its slots is shown to `BEFORE_SEND`,
which may still withhold it. Calls that are not HTTP (a Modbus read) hold the same kind of
slots with `Limits.slot`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

import httpx

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
    rate: float | None = None  # requests per second; None = unlimited


class _TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = max(1.0, rate)
        self.capacity = max(1.0, rate)
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


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
        self._buckets: dict[str, _TokenBucket] = {}

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
            bucket = self._buckets.get(host)
            if bucket is None:
                bucket = self._buckets[host] = _TokenBucket(limit.rate)
            await bucket.take()
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
    """Wraps a transport so each request waits for its host's and the global limits."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limits: Limits) -> None:
        self.inner = inner
        self.limits = limits

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        bound = await self.limits.acquire(host_key(request.url))
        try:
            async with self.limits.global_bound:
                before_send = BEFORE_SEND.get()
                if before_send is not None:
                    before_send(request)
                response = await self.inner.handle_async_request(request)
                # Read the body while holding the slot so the bound covers the whole call.
                await response.aread()
                return response
        finally:
            if bound is not None:
                bound.release()

    async def aclose(self) -> None:
        await self.inner.aclose()


def host_key(url: httpx.URL) -> str:
    """The key per-host limits are kept under."""
    return f"{url.host}:{url.port or ''}"
