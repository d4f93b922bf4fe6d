"""A cloud that answers a call of a run with a Retry-After is not called by any other call of
that run before then, whichever site the call is for, while every other server (each
site's Zap) still is; the calls held fail as the 429 did, saying until when, and are
retried then when a run waits that long."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from aiohttp import web
from aiohttp.typedefs import Middleware
from sends import record_sends
from simworld import MakeWorld, World, converged_exactly_once, standard_site

from reconciler.engine.apply import ApplyReport
from reconciler.engine.host_waits import HostWaits
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.providers.transport import AskedToWait
from reconciler.sim.fleet import SimFleet
from reconciler.sim.server import Handler

FLEET = standard_site(1) + standard_site(2) + standard_site(3)


class Arrivals:
    """When each request reached each simulator, and when Novacore answered a 429."""

    def __init__(self) -> None:
        self.at: dict[str, list[float]] = {}
        self.throttled: list[float] = []  # when each 429 left Novacore
        self.first_throttled = asyncio.Event()

    def install(self, sims: SimFleet) -> None:
        for name, server in [("novacore", sims.novacore), *sims.zaps.items()]:
            server.app.middlewares.insert(0, self._middleware(name))

    def _middleware(self, name: str) -> Middleware:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/_sim/"):
                return await handler(request)
            self.at.setdefault(name, []).append(time.monotonic())
            response = await handler(request)
            if response.status == 429:
                self.throttled.append(time.monotonic())
                self.first_throttled.set()
            return response

        return record

    def between(self, name: str, start: float, end: float) -> int:
        return sum(start < at < end for at in self.at.get(name, []))

    def zaps_between(self, start: float, end: float) -> int:
        return sum(self.between(name, start, end) for name in self.at if name != "novacore")


async def apply_throttled(
    make_world: MakeWorld, retry_after_s: float, arrivals: Arrivals,
    stop: asyncio.Event | None = None,
) -> tuple[World, ApplyReport]:
    """FLEET planned, then applied with Novacore answering the apply's first call with a 429
    asking to wait `retry_after_s`; its requests counted from the apply on."""
    world = await make_world(FLEET, before_start=arrivals.install)
    async with world.engine() as engine:
        result = await engine.plan(PlanOptions(audience=Audience.CLI))
        novacore = world.sims.novacore
        novacore.faults.throttle_next, novacore.faults.retry_after_s = 1, retry_after_s
        novacore.requests.clear()
        report = await engine.apply(result, stop=stop)
    return world, report


async def test_a_throttled_cloud_is_not_called_until_its_retry_after_passed(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    arrivals, sends = Arrivals(), record_sends(monkeypatch)
    world, report = await apply_throttled(make_world, 2, arrivals)
    assert report.ok, [(o.address, o.message) for o in report.outcomes if o.status != "done"]
    # Every site's Novacore changes waited for the time asked, as the engine sent them and
    # by its clock (a call sent before it heard the 429 reaches Novacore whenever a loaded
    # machine lets it); the Zaps were called meanwhile.
    novacore = world.sims.novacore.url
    [heard] = sends.heard(novacore)
    after = sends.sent_after_heard(novacore)
    assert after, "Novacore was called again once the wait was over"
    assert min(after) >= heard + 2, [round(at - heard, 2) for at in after]
    assert sends.others_sent_while_held(novacore) > 0, sends.events
    converged_exactly_once(world.sims, world.fleet)


async def test_a_cloud_asking_for_longer_than_a_run_waits_is_called_once_by_the_run(
        make_world: MakeWorld) -> None:
    arrivals = Arrivals()
    world, report = await apply_throttled(make_world, 120, arrivals)
    [answered] = arrivals.throttled
    novacore = world.sims.novacore
    assert novacore.count() == 1, novacore.requests
    assert arrivals.zaps_between(answered, float("inf")) > 0, arrivals.at
    # Each site's first Novacore change failed: the one answered, and the others, not sent,
    # saying until when; each says when to try again, as the 429's does.
    failed = {o.address: o for o in report.by_status("failed")}
    assert set(failed) == {"site/s1[novacore]", "site/s2[novacore]", "site/s3[novacore]",
                           "gateway/s1-zap[novacore]", "gateway/s2-zap[novacore]",
                           "gateway/s3-zap[novacore]"}, failed
    held = [o for o in failed.values() if "HTTP 429" not in o.message]
    assert len(held) == 5
    for outcome in held:
        assert outcome.retry_after is not None and 100 < outcome.retry_after <= 120, outcome
        assert re.search(r": not sent: http://127\.0\.0\.1:\d+ asked \(Retry-After\) not to be "
                         r"called before \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, 1[0-2]\d s from now ",
                         outcome.message), outcome.message
        assert world.settings.novacore_token
        assert world.settings.novacore_token not in outcome.message


async def test_a_retry_after_beyond_any_date_is_honoured_for_a_day(
        make_world: MakeWorld) -> None:
    """More seconds than a date holds (a wrong header): said and reported as asked, and
    waited for a day, the longest the watch agent, the operator and the servers left alone
    wait."""
    world = await make_world(FLEET)
    async with world.engine() as engine:
        result = await engine.plan(PlanOptions(audience=Audience.CLI))
        novacore = world.sims.novacore
        novacore.faults.throttle_next, novacore.faults.retry_after = 1, "9" * 20
        report = await engine.apply(result)
    [answered] = [o for o in report.by_status("failed") if "HTTP 429" in o.message]
    assert answered.retry_after == 1e20, "as asked; the watch agent and the operator cap it"
    assert "asks to be called again in 100000000000000… (21 characters) s" in answered.message
    held = [o for o in report.by_status("failed") if "not sent" in o.message]
    assert held and all(o.retry_after is not None and o.retry_after <= 86400 for o in held)
    # The time a held call gives is a day after the answer: not taken for the server's.
    for outcome in held:
        assert re.search(r"not to be called before \S+Z, 8640\d s from now \(it asked for "
                         r"100000000000000… \(21 characters\) s; a day at most is waited\)",
                         outcome.message), outcome.message


async def test_a_retry_after_of_hundreds_of_digits_is_said_cut_short(
        make_world: MakeWorld) -> None:
    """A Retry-After of 308 digits (a wrong header, still a number a float holds) is said
    as any value from outside is, cut to its first digits and how many there were, not
    printed whole in the failure of every change it holds."""
    world = await make_world(FLEET)
    async with world.engine() as engine:
        result = await engine.plan(PlanOptions(audience=Audience.CLI))
        novacore = world.sims.novacore
        novacore.faults.throttle_next, novacore.faults.retry_after = 1, "3" * 308
        report = await engine.apply(result)
    [answered] = [o for o in report.by_status("failed") if "HTTP 429" in o.message]
    assert re.search(r"\(not retried: the server asks to be called again in 3{15}… "
                     r"\(308 characters\) s \(Retry-After\), later than the 60 s a run "
                     r"waits\)$", answered.message), answered.message
    assert len(answered.message) < 300, answered.message


# A Retry-After a run still waits for (it waits a minute at most), as long as it can be.
RUN_WAITS_NEARLY = 59.0


async def test_an_apply_asked_to_stop_does_not_wait_out_a_retry_after_first(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Retry-After a run waits for (59 s, just under the minute) is not waited out once the
    apply is asked to stop: the changes waiting to be tried again fail at once, saying that
    they were not retried, and nothing more reaches the throttled server."""
    arrivals, sends = Arrivals(), record_sends(monkeypatch)
    stop = asyncio.Event()

    async def stop_once_throttled() -> None:
        await arrivals.first_throttled.wait()
        await asyncio.sleep(0.2)  # the calls held by the answer have failed, and wait too
        stop.set()

    stopper = asyncio.create_task(stop_once_throttled())
    started = time.monotonic()
    world, report = await apply_throttled(make_world, RUN_WAITS_NEARLY, arrivals, stop)
    took = time.monotonic() - started
    await stopper
    assert len(arrivals.throttled) == 1
    # Kept as time: an apply that waited out the Retry-After ends with the same outcomes,
    # and the wait cannot be made longer than the minute a run waits at most. The bound is
    # the Retry-After itself, about a hundred times what the apply takes.
    assert took < RUN_WAITS_NEARLY, f"the apply waited out the server's {took:.1f} s"
    # Nothing sent to it once the engine heard the 429 (a call sent before then may reach
    # it after it answered, as late as a loaded machine lets it).
    assert len(sends.heard(world.sims.novacore.url)) == 1, sends.events
    assert sends.sent_after_heard(world.sims.novacore.url) == [], sends.events
    failed = {o.address: o.message for o in report.by_status("failed")}
    assert set(failed) >= {"site/s1[novacore]", "site/s2[novacore]", "site/s3[novacore]"}
    # The change Novacore answered was tried once, not again; the others were never sent:
    # their server had asked to wait, and the apply ends before then.
    [tried] = [message for message in failed.values() if "HTTP 429" in message]
    assert tried.endswith("(not retried: stopping)"), failed
    held = [message for message in failed.values() if "HTTP 429" not in message]
    assert held, failed
    for message in held:
        assert re.search(r": not sent: http://127\.0\.0\.1:\d+ asked \(Retry-After\) not to be "
                         r"called before \S+Z, \d+ s from now \(not tried: stopping before "
                         r"then\)$", message), message
        assert "retried" not in message, message


async def test_the_waits_of_servers_never_called_again_are_forgotten_once_passed() -> None:
    """An agent or an operator running for months keeps no wait that has passed, whichever
    server it was of (a gateway removed, or moved to another address, is never called
    again), while one still running holds its server."""
    waits = HostWaits()
    for port in range(1000):
        url = httpx.URL(f"http://10.0.{port // 250}.{port % 250}:8080/api/devices")
        waits.heard(url, httpx.Response(429, headers={"Retry-After": "0.05"}))
    slow = httpx.URL("https://api.example.net/sites")
    waits.heard(slow, httpx.Response(503, headers={"Retry-After": "60"}))
    assert waits.held() == 1001
    await asyncio.sleep(0.1)
    waits.check(httpx.URL("http://192.0.2.7/api/devices"))  # another server: called
    assert waits.held() == 1
    with pytest.raises(AskedToWait, match=r"^not sent: https://api\.example\.net:443 asked"):
        waits.check(slow.copy_with(path="/devices"))
