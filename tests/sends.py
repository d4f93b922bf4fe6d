"""What the engine let through its limits, sent and heard, seen from its side of the wire,
for tests of limits and waits that run the engine (or the operator) in the test's event
loop.

A server's arrival times say when its event loop got round to a request: one a loaded
machine stalled takes requests sent a second apart together, and one sent before a 429 was
heard late. Here each request is noted as a host's limits admit it (`Limits.acquire`), as
it leaves for the connection pool (`AiohttpTransport`, every session's), and each
Retry-After as the engine keeps it (`HostWaits.heard`), all in the engine's own clock and
order: what the limits let through, as they decided it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from reconciler.engine.host_waits import HostWaits, origin
from reconciler.engine.limits import Limits, host_key
from reconciler.providers.aiohttp_transport import AiohttpTransport


@dataclass(frozen=True)
class Event:
    """A request admitted by its host's limits (`kind` "admitted", `key` a `host_key`),
    sent ("sent", `key` an origin), or an answer asking to wait kept ("heard", `key` an
    origin), at `at` (time.monotonic(), the clock of the limits and the waits)."""

    kind: str
    key: str
    at: float


@dataclass
class Sends:
    """Every request admitted and sent and every wait heard, in the order they happened."""

    events: list[Event] = field(default_factory=list)

    def sent(self, url: str) -> list[float]:
        """When each request to the server at `url` was sent."""
        return self._times("sent", origin(httpx.URL(url)))

    def heard(self, url: str) -> list[float]:
        """When each answer of the server at `url` asking to wait was kept."""
        return self._times("heard", origin(httpx.URL(url)))

    def sent_after_heard(self, url: str) -> list[float]:
        """When each request to `url` was sent after the first wait it asked for was kept
        (empty if it asked for none)."""
        key, after, sent = origin(httpx.URL(url)), False, []
        for event in self.events:
            if event.key == key:
                after = after or event.kind == "heard"
                if after and event.kind == "sent":
                    sent.append(event.at)
        return sent

    def others_sent_while_held(self, url: str) -> int:
        """How many requests to other servers were sent after the first wait `url` asked
        for was kept and before `url` was called again: the work that went on meanwhile,
        in the order it happened (0 if `url` asked for no wait)."""
        key, held, count = origin(httpx.URL(url)), False, 0
        for event in self.events:
            if event.key == key:
                if held and event.kind == "sent":
                    break
                held = held or event.kind == "heard"
            elif held and event.kind == "sent":
                count += 1
        return count

    def admitted(self, url: str) -> list[float]:
        """When the limits of the host of `url` admitted each request to it."""
        return self._times("admitted", host_key(httpx.URL(url)))

    def most_admitted_within(self, url: str, seconds: float) -> int:
        """The most requests to `url` its host's limits admitted within any `seconds`."""
        times, most, first = self.admitted(url), 0, 0
        for last, at in enumerate(times):
            while at - times[first] > seconds:
                first += 1
            most = max(most, last - first + 1)
        return most

    def _times(self, kind: str, key: str) -> list[float]:
        return [e.at for e in self.events if e.kind == kind and e.key == key]


def record_sends(monkeypatch: pytest.MonkeyPatch) -> Sends:
    """Record, for the rest of the test, every request the engine's limits admit and it
    sends and every wait it keeps (the engine's own code runs: each is only noted on its
    way through)."""
    sends = Sends()
    acquire: Callable[..., Any] = Limits.acquire
    send: Callable[..., Any] = AiohttpTransport.handle_async_request
    heard: Callable[..., Any] = HostWaits.heard

    async def noting_acquire(self: Limits, host: str) -> asyncio.Semaphore | None:
        bound: asyncio.Semaphore | None = await acquire(self, host)
        # Noted in the same step of the loop as the rate window read the clock and let the
        # request go (nothing can run in between): the time it decided by.
        sends.events.append(Event("admitted", host, time.monotonic()))
        return bound

    async def noting_send(self: AiohttpTransport, request: httpx.Request) -> httpx.Response:
        # Noted in the same step of the loop as the last check of the waits let it go
        # (`LimitedTransport`): nothing can run in between, so no wait can be kept between.
        sends.events.append(Event("sent", origin(request.url), time.monotonic()))
        response: httpx.Response = await send(self, request)
        return response

    def noting_heard(self: HostWaits, url: httpx.URL, response: httpx.Response) -> None:
        # The time before the wait is kept: the wait runs from its own reading of the
        # clock, no earlier than this one.
        at, key = time.monotonic(), origin(url)
        before = self._until.get(key)
        heard(self, url, response)
        # Noted only when the engine kept a wait: not for a Retry-After it reads as none
        # (0, unreadable) or one ending before a wait it keeps already, so that a test
        # cannot pass on a wait the engine never kept.
        if self._until.get(key) is not before:
            sends.events.append(Event("heard", key, at))

    monkeypatch.setattr(Limits, "acquire", noting_acquire)
    monkeypatch.setattr(AiohttpTransport, "handle_async_request", noting_send)
    monkeypatch.setattr(HostWaits, "heard", noting_heard)
    return sends
