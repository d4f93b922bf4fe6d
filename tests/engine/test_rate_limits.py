"""The limits measured where they are kept and where they matter: requests per gateway in
any second, retries included, as the limiter admitted them, and calls in flight per gateway
and overall, at the simulators."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.typedefs import Middleware
from sends import record_sends
from simworld import MakeWorld, serial_of, standard_site

from reconciler.engine import limits
from reconciler.sim.fleet import SimFleet
from reconciler.sim.server import Handler


class Meter:
    """Arrival times and calls in flight at each simulator, 429s and 5xx included."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}
        self.total, self.most_total = 0, 0

    def install(self, sims: SimFleet) -> None:
        for name, server in [("novacore", sims.novacore), *sims.zaps.items()]:
            server.app.middlewares.insert(0, self._middleware(name))

    def _middleware(self, name: str) -> Middleware:
        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/_sim/"):
                return await handler(request)
            self.arrivals.setdefault(name, []).append(time.monotonic())
            self.in_flight[name] = self.in_flight.get(name, 0) + 1
            self.total += 1
            self.most_in_flight[name] = max(self.most_in_flight.get(name, 0),
                                            self.in_flight[name])
            self.most_total = max(self.most_total, self.total)
            try:
                return await handler(request)
            finally:
                self.in_flight[name] -= 1
                self.total -= 1

        return measure


async def test_a_gateway_gets_at_most_its_rate_in_any_second_retries_included(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    meter, sends = Meter(), record_sends(monkeypatch)
    world = await make_world(standard_site(1), before_start=meter.install,
                             env={"RECONCILER_GATEWAY_RATE": "3"})
    zap = world.sims.zaps[serial_of(1)]
    zap.faults.throttle_next, zap.faults.retry_after_s = 2, 0.01
    _, report = await world.apply()
    assert report.ok, report.as_dict()
    assert zap.faults.throttle_next == 0, "the 429s were retried"
    # Counted as the limiter admitted them, by its own clock: the Zap's arrival times are
    # those its event loop got round to them, and a loaded machine that stalls it takes
    # requests sent a second apart together.
    admitted, arrived = sends.admitted(zap.url), meter.arrivals[serial_of(1)]
    assert len(sends.sent(zap.url)) == len(arrived), "each one sent arrived"
    # One admitted as the 429 came may be held by the Retry-After after all, and admitted
    # again when retried: its slot is spent all the same.
    assert len(admitted) >= len(arrived) >= 8, "enough requests to show a rate"
    # 0.8 s: the limiter read the clock a moment before it is noted (`sends`). A limit of
    # 3 a second that let through a burst of 3 and 3 more as it refilled admitted 5 or 6
    # within it.
    assert sends.most_admitted_within(zap.url, 0.8) <= 3, admitted


async def test_calls_in_flight_stay_within_the_bounds(make_world: MakeWorld) -> None:
    meter = Meter()
    docs = standard_site(1) + standard_site(2) + standard_site(3) + standard_site(4)
    world = await make_world(docs, before_start=meter.install,
                             env={"RECONCILER_CONCURRENCY": "3",
                                  "RECONCILER_GATEWAY_CONCURRENCY": "1"})
    for server in world.sims.http_servers():
        server.faults.latency_ms = 30
    _, report = await world.apply()
    assert report.ok, report.as_dict()
    assert meter.most_total == 3, "the global bound was reached, never passed"
    assert all(meter.most_in_flight[serial_of(i)] == 1 for i in range(1, 5))


@pytest.mark.parametrize(("rate", "expected"), [
    (3, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]),
    (0.5, [0, 2, 4, 6]),
])
async def test_a_gateways_rate_admits_each_request_as_soon_as_it_may(
        monkeypatch: pytest.MonkeyPatch, rate: float, expected: list[float]) -> None:
    """A rate, not a stall: requests waiting for a gateway's rate are each admitted the
    moment the last second's count allows it, by the limiter's clock (made one that moves
    only as it sleeps, so that a loaded machine adds nothing): a limiter that slept longer
    than needed, or woke one request a second, would let the fleet crawl unseen."""
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds
        await real_sleep(0)

    real_sleep = asyncio.sleep
    monkeypatch.setattr(limits, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(limits, "asyncio", SimpleNamespace(**{**vars(asyncio), "sleep": sleep}))
    bounds = limits.Limits(100, default=limits.HostLimit(rate=rate))
    admitted: list[float] = []

    async def request() -> None:
        async with bounds.slot("192.168.1.10:80"):
            admitted.append(clock[0])

    await asyncio.gather(*(request() for _ in expected))
    assert admitted == pytest.approx(expected)
