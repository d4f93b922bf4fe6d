"""Faults end to end: storms of 5xx and 429 answers are retried (honouring Retry-After)
until the fleet converges; a change that keeps failing is reported as failed with its
reason, skips only what depends on it, and the rest of the fleet applies."""

from __future__ import annotations

import email.utils
import re
import time

import pytest
from simworld import (
    ORG_A,
    MakeWorld,
    World,
    cloud_device,
    cloud_devices,
    converged_exactly_once,
    mqtt_battery,
    serial_of,
    standard_site,
)

from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.server import SimServer


def storm(server: SimServer, *, fail: int = 0, throttle: int = 0, error_rate: float = 0.0,
          throttle_rate: float = 0.0, seed: int = 0) -> None:
    server.faults.fail_next, server.faults.throttle_next = fail, throttle
    server.faults.error_rate, server.faults.throttle_rate = error_rate, throttle_rate
    server.faults.retry_after_s = 0.05
    server.injector.reseed(seed)


def calm(world: World) -> None:
    for server in world.sims.http_servers():
        storm(server)


async def test_storm_of_5xx_and_429_during_apply_converges(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1) + standard_site(2) + standard_site(3))
    result = await world.plan()
    world.sims.reset_counts()
    storm(world.sims.novacore, fail=2, throttle=3)
    for zap in world.sims.zaps.values():
        storm(zap, fail=1, throttle=2)

    async with world.engine() as engine:
        report = await engine.apply(result)
    assert report.ok, [(o.address, o.message) for o in report.outcomes if o.status != "done"]
    servers = world.sims.http_servers()
    assert all(s.faults.fail_next == s.faults.throttle_next == 0 for s in servers), \
        "every injected fault was answered"
    # Clean, a Zap serves 6 calls here (crypto, sign, 2 adds, 2 DER switches); each of the
    # 3 refused calls was retried (a retried claim reads the crypto again).
    assert all(zap.count() >= 6 + 3 for zap in world.sims.zaps.values())

    noop, _, writes = await world.noop_writes()
    assert not noop.plan.has_changes and writes == 0
    converged_exactly_once(world.sims, world.fleet)


async def test_seeded_random_storm_converges_over_repeated_runs(make_world: MakeWorld) -> None:
    """As a watch loop would: observe and apply again until nothing is left to do. Reads
    that keep failing defer their site to the next run; nothing is duplicated."""
    world = await make_world(standard_site(1) + standard_site(2) + standard_site(3))
    for index, server in enumerate(world.sims.http_servers()):
        storm(server, error_rate=0.15, throttle_rate=0.15, seed=index)
    runs = 0
    while True:
        runs += 1
        result, report = await world.apply()
        assert not report.by_status("failed"), [o.message for o in report.by_status("failed")]
        if not result.plan.has_changes or runs == 5:
            break
    assert not result.plan.has_changes, f"not converged after {runs} runs"
    calm(world)
    noop, _, writes = await world.noop_writes()
    assert not noop.plan.has_changes and writes == 0
    converged_exactly_once(world.sims, world.fleet)


async def test_retry_after_is_honoured(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1))
    await world.apply()
    zap = world.sims.zaps[serial_of(1)]
    zap.set_der("SG0001", "pv", enabled=False)
    result = await world.plan()
    assert [c.address for c in result.plan.pending] == ["device/s1-inv[publish]"]
    zap.faults.throttle_next, zap.faults.retry_after_s = 1, 0.4
    zap.requests.clear()

    started = time.monotonic()
    async with world.engine() as engine:
        report = await engine.apply(result)
    elapsed = time.monotonic() - started
    assert report.ok
    # The first request, the check of the Zap's serial that a write goes after, gets the
    # 429; the retry reads it again, then writes.
    assert dict(zap.requests) == {"GET /api/crypto": 2, "POST /api/devices/{sn}/types": 1}
    # The first backoff is drawn from [0, 0.2 s): only Retry-After makes it wait 0.4 s.
    assert elapsed >= 0.4, f"retried after {elapsed:.3f}s, before Retry-After"


async def test_a_retry_after_no_client_can_read_is_retried_after_the_backoff(
        make_world: MakeWorld) -> None:
    """A 503 or 429 whose Retry-After is neither seconds nor an HTTP date is retried as one
    without it, by a plan's reads and an apply's writes alike, instead of being taken for
    an answer of a shape the platform does not document."""
    world = await make_world(standard_site(1))
    novacore = world.sims.novacore
    novacore.faults.fail_next, novacore.faults.throttle_next = 1, 1
    novacore.faults.retry_after = "soon"
    result = await world.plan()
    assert not result.plan.deferred, [c.message for c in result.plan.deferred]
    assert novacore.faults.fail_next == novacore.faults.throttle_next == 0

    novacore.faults.fail_next, novacore.faults.retry_after = 1, "-5"
    zap = world.sims.zaps[serial_of(1)]
    zap.faults.throttle_next, zap.faults.retry_after = 1, "Wed, 99 Oct 2015 07:28:00 GMT"
    async with world.engine() as engine:
        report = await engine.apply(result)
    assert report.ok, [(o.address, o.message) for o in report.outcomes if o.status != "done"]
    assert novacore.faults.fail_next == zap.faults.throttle_next == 0
    converged_exactly_once(world.sims, world.fleet)


async def test_a_retry_after_date_on_a_503_is_honoured(make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1))
    await world.apply()
    zap = world.sims.zaps[serial_of(1)]
    zap.set_der("SG0001", "pv", enabled=False)
    result = await world.plan()
    zap.faults.fail_next = 1
    zap.faults.retry_after = email.utils.formatdate(time.time() + 3, usegmt=True)
    zap.requests.clear()
    started = time.monotonic()
    async with world.engine() as engine:
        report = await engine.apply(result)
    assert report.ok
    # The first request of the apply, the Zap's identity read before its first write,
    # gets the 503 and is made again; then the write.
    assert zap.requests == {"GET /api/crypto": 2, "POST /api/devices/{sn}/types": 1}, (
        zap.requests)
    # The date has whole seconds: it is 2 to 3 s away; the first backoff is under 0.2 s.
    assert time.monotonic() - started >= 1.5


async def test_a_retry_after_longer_than_a_run_waits_is_not_retried(
        make_world: MakeWorld) -> None:
    """A server that asks to be called again in a day (a quota spent, a planned outage) is
    not called again in this run, and the run does not wait for it: the plan defers its
    sites at once and the apply fails the change, saying what the server asked."""
    world = await make_world(standard_site(1))
    await world.apply()
    novacore = world.sims.novacore
    novacore.rename_device(cloud_device(world.sims, "SG0001").id, "renamed in the cloud UI")
    result = await world.plan()
    assert [c.address for c in result.plan.pending] == ["device/s1-inv[novacore]"]

    novacore.faults.throttle_next, novacore.faults.retry_after_s = 1000, 86400
    novacore.requests.clear()
    deferred = await world.plan()
    # Each read asked once, not again before the day is out: a run that waited (the 60 s
    # it waits at most) would call again after it.
    assert novacore.requests["GET /sites"] == 1, novacore.requests
    assert set(novacore.requests.values()) == {1}, novacore.requests
    assert deferred.plan.deferred[0].message.endswith(
        "HTTP 429: rate_limited: Too many requests (not "
        "retried: the server asks to be called again in 86400 s (Retry-After), later than "
        "the 60 s a run waits)")

    novacore.faults.throttle_next, novacore.faults.fail_next = 0, 1000
    novacore.faults.retry_after = email.utils.formatdate(time.time() + 86400, usegmt=True)
    novacore.requests.clear()
    async with world.engine() as engine:
        report = await engine.apply(result)
    # The rename sent once and not again: a run that waited would have sent it again.
    assert novacore.requests == {"PUT /devices/{device_id}": 1}, novacore.requests
    [failed] = report.by_status("failed")
    assert re.search(r"HTTP 503: .* \(not retried: the server asks to be called again in "
                     r"(86399|86400) s \(Retry-After\), later than the 60 s a run waits\)$",
                     failed.message), failed.message
    assert novacore.requests["PUT /devices/{device_id}"] == 1
    assert failed.retry_after is not None and failed.retry_after > 86000, "for watch, operator"


async def test_change_that_keeps_failing_is_reported_and_the_rest_applies(
        make_world: MakeWorld) -> None:
    docs = [*standard_site(1), mqtt_battery("s1-bat", "s1-zap", "FERRO1"), *standard_site(2)]
    world = await make_world(docs, env={"RECONCILER_RETRIES": "2"})
    # The battery's MQTT broker does not answer: the Zap refuses to add it with a 503.
    broker = world.sims.lans["s1"].mqtt_devices[("192.168.1.70", 1883, "ferroamp")]
    broker.online = False

    _, report = await world.apply()
    assert not report.ok
    failed = {o.address: o.message for o in report.by_status("failed")}
    assert list(failed) == ["device/s1-bat[zap]"]
    assert "503" in failed["device/s1-bat[zap]"]
    assert "MQTT device not responding" in failed["device/s1-bat[zap]"], "the reason is kept"
    assert failed["device/s1-bat[zap]"].endswith("(gave up after 2 attempts)")
    skipped = {o.address: o.message for o in report.by_status("skipped")}
    assert sorted(skipped) == ["device/s1-bat[novacore]", "device/s1-bat[publish]"]
    assert skipped["device/s1-bat[novacore]"] == \
        "not attempted: device/s1-bat[zap] did not succeed"
    assert skipped["device/s1-bat[publish]"] == \
        "not attempted: device/s1-bat[novacore] did not succeed"
    assert world.sims.zaps[serial_of(1)].requests["POST /api/devices"] == 2 + 2, \
        "the inverter and the meter once; the battery tried RECONCILER_RETRIES=2 times"

    done_sites = {o.site for o in report.by_status("done")}
    assert done_sites == {"s1", "s2"}, "the site's other devices and other sites still apply"
    assert cloud_devices(world.sims, "FERRO1") == []
    assert cloud_device(world.sims, "SG0001").state == "active"
    assert cloud_device(world.sims, "SG0002").state == "active"


async def test_writes_whose_answer_is_lost_are_not_repeated(make_world: MakeWorld) -> None:
    """Writes that take effect and then lose their answer (a 503 after the backend acted,
    as a proxy timing out would answer): the first write to each API, then a third of all
    writes at random. Retries must find what a lost attempt made instead of making it
    again: one site, one claim, one device on each Zap and one in Novacore, exactly."""
    world = await make_world(standard_site(1) + standard_site(2) + standard_site(3))
    result = await world.plan()
    servers = [world.sims.novacore, *world.sims.zaps.values()]
    for seed, server in enumerate(servers):
        server.faults.lose_next, server.faults.lose_rate = 1, 0.3
        server.injector.reseed(seed)
    world.sims.reset_counts()

    async with world.engine() as engine:
        report = await engine.apply(result)
    assert report.ok, [(o.address, o.message) for o in report.outcomes if o.status != "done"]
    assert all(s.faults.lose_next == 0 for s in servers), "every API lost an answer"
    retried = sum(s.writes() for s in servers) - sum(
        1 for c in result.plan.pending if c.action.is_write)
    assert retried >= len(servers), "lost answers were retried"
    for server in servers:
        server.faults.lose_rate = 0.0
    converged_exactly_once(world.sims, world.fleet)
    noop, _, writes_after = await world.noop_writes()
    assert not noop.plan.has_changes and writes_after == 0


async def test_a_site_made_after_the_plan_is_adopted_not_made_twice(
        make_world: MakeWorld) -> None:
    """Between plan and apply (a person reading the plan before confirming it) someone
    makes one of the planned sites: the apply adopts it instead of making a second."""
    world = await make_world(standard_site(1) + standard_site(2) + standard_site(3))
    async with world.engine() as engine:
        result = await engine.plan(PlanOptions(audience=Audience.CLI))
        made = world.sims.novacore.add_site(ORG_A, "Site s2")
        world.sims.reset_counts()
        report = await engine.apply(result)
    assert report.ok, report.as_dict()
    adopted = next(o for o in report.outcomes if o.address == "site/s2[novacore]")
    assert adopted.detail == {"id": made, "adopted": True}
    assert world.sims.novacore.requests["GET /sites"] == 1, "listed once for all three creates"
    converged_exactly_once(world.sims, world.fleet)


@pytest.mark.parametrize("retries", [2, 4])
async def test_reads_make_at_most_three_attempts_and_writes_make_retries(
        make_world: MakeWorld, retries: int) -> None:
    """As the README says of RECONCILER_RETRIES: an apply's write is tried that many times;
    a read that observes the actual state at most 3 times (a plan defers what it cannot
    read rather than wait on a cloud that is down)."""
    world = await make_world(standard_site(1), env={"RECONCILER_RETRIES": str(retries)})
    await world.apply()
    novacore = world.sims.novacore
    novacore.rename_device(cloud_device(world.sims, "SG0001").id, "renamed in the cloud UI")
    result = await world.plan()
    assert [c.address for c in result.plan.pending] == ["device/s1-inv[novacore]"]

    storm(novacore, fail=1000)
    novacore.requests.clear()
    deferred = await world.plan()
    assert novacore.requests["GET /sites"] == min(3, retries)
    assert f"(gave up after {min(3, retries)} attempts)" in deferred.plan.deferred[0].message

    novacore.requests.clear()
    async with world.engine() as engine:
        report = await engine.apply(result)
    [failed] = report.by_status("failed")
    assert failed.message.endswith(f"(gave up after {retries} attempts)")
    assert novacore.requests["PUT /devices/{device_id}"] == retries
