"""A platform that asks, by Retry-After, to be called again later than a run waits (a quota
spent for the day) is not called again by the operator before then, end to end (kopf
against kmock's emulator and the simulators): neither kopf's retry of the object nor its
drift timer (every second here) calls it every `retry_delay`. An edit of the object still
reconciles at once, without calling that server. Nor does any other object's reconcile
call it before then."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from fleet_yaml import enapter_site, novacore_site, stream, sungrow_inverter, zap_gateway
from harness import KopfRuns, documents, operator
from sends import record_sends

# The Site whose server asks to wait, and one on another platform, whose drift checks
# (every second) show the operator at work meanwhile.
FLEET = stream(novacore_site(), enapter_site())
WITNESS = "h2-lab"
# kopf's name of a Site's drift check, in its line of each run (`KopfRuns`).
DRIFT = "Timer 'drift-sites'"


async def test_a_server_asking_to_wait_a_day_is_left_alone_until_then(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(FLEET))
        await cluster.wait_condition("Site", "home", "Ready")
        await cluster.wait_condition("Site", WITNESS, "Ready")

        novacore = sims.novacore
        armed = time.monotonic()
        novacore.faults.throttle_next, novacore.faults.retry_after_s = 1000, 86400
        novacore.requests.clear()
        deferred = await cluster.wait_reason("Site", "home", "Deferred")
        # Said by the call answered (86400 s), or by one of the same run held after it,
        # which says the time left: less by what passed since, however much a loaded
        # machine made of it.
        said = re.search(r"called again in (\d+) s \(Retry-After\)", deferred["message"])
        assert said, deferred
        assert 86400 - (time.monotonic() - armed) - 1 <= int(said[1]) <= 86400, deferred
        asked = sum(novacore.requests.values())
        assert asked > 0
        # Three drift checks of the other Site pass (each a second after the last, kopf's
        # retry_delay is 0.5 s): neither home's drift check nor kopf's retry called it.
        await runs.wait(WITNESS, DRIFT, 3)
        assert sum(novacore.requests.values()) == asked, novacore.requests

        # An edit is someone's: reconciled at once, but the server asked every call to
        # wait, the edit's too: its read is not sent, and the object says until when.
        await cluster.patch("Site", "home", {"spec": {"displayName": "Home 2"}})

        async def held() -> dict[str, Any] | None:
            cond = await cluster.condition("Site", "home", "Ready")
            return cond if cond and "not sent" in cond.get("message", "") else None

        ready = await cluster.wait_for(held, what="the edit reconciled")
        assert re.search(r"not sent: http://127\.0\.0\.1:\d+ asked \(Retry-After\) not to "
                         r"be called before \d{4}-\d\d-\d\dT[\d:]+Z", ready["message"]), ready
        await runs.wait(WITNESS, DRIFT, 2)
        assert sum(novacore.requests.values()) == asked, novacore.requests


async def test_a_retry_after_of_hundreds_of_digits_holds_the_object_for_a_day(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """A Retry-After of 308 digits (a wrong header), answered to an object's first
    reconcile, is said cut short in its condition, and kopf's retry of it is held for a
    day, not for more seconds than kopf can count: neither that retry nor the drift timer
    fails or calls the server meanwhile."""
    logs: list[str] = []
    async with operator(FLEET, tmp_path, monkeypatch, logs=logs) as (cluster, sims):
        novacore = sims.novacore
        novacore.faults.throttle_next, novacore.faults.retry_after = 1000, "3" * 308
        await cluster.create_all(documents(FLEET))
        deferred = await cluster.wait_reason("Site", "home", "Deferred")
        assert "333333333333333… (308 characters) s (Retry-After)" in deferred["message"], (
            deferred)
        asked = sum(novacore.requests.values())
        await runs.wait(WITNESS, DRIFT, 3)
        assert sum(novacore.requests.values()) == asked, novacore.requests
    # kopf's own word for the retry it was asked for is "failed temporarily"; anything
    # else that failed is the wait kopf could not keep.
    failures = [line for line in logs if "exception" in line or "Traceback" in line
                or "Overflow" in line or "unexpected" in line]
    assert not failures, failures


# Four inverters behind one Zap: each Device's reconcile reads and writes Novacore.
INVERTERS = [f"inverter-{i}" for i in range(1, 5)]
SITE_AND_GATEWAY = stream(novacore_site(), zap_gateway())
DEVICES = stream(*(
    sungrow_inverter(name, "home-zap", f"SG{i:04d}", f"192.168.1.{60 + i}")
    for i, name in enumerate(INVERTERS, start=1)
))


async def test_a_retry_after_holds_every_objects_calls_to_that_server(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Novacore answers one call with a Retry-After of 4 s while four Devices are created
    (and the Site's and the Gateway's drift timers run every second): no reconcile sends it
    a call before then, each waiting as for its own 429; then all converge."""
    sends = record_sends(monkeypatch)
    fleet = stream(SITE_AND_GATEWAY, DEVICES)
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        site_and_gateway, devices = documents(fleet)[:2], documents(fleet)[2:]
        await cluster.create_all(site_and_gateway)
        await cluster.wait_condition("Gateway", "home-zap", "Ready")

        novacore = sims.novacore
        novacore.faults.throttle_next, novacore.faults.retry_after_s = 1, 4
        await cluster.create_all(devices)
        for name in INVERTERS:
            await cluster.wait_condition("Device", name, "Ready")
        assert novacore.faults.throttle_next == 0, "the 429 was answered"
        # What the operator sent once it heard the 429, in its own order and clock: calls
        # sent before then may reach Novacore any time after, as late as a loaded machine
        # lets them. The wait runs from the operator's reading of the clock as it kept it,
        # no earlier than `heard`.
        [heard] = sends.heard(novacore.url)
        after = sends.sent_after_heard(novacore.url)
        assert after, "the Devices' calls were sent once the wait was over"
        assert min(after) >= heard + 4, [round(at - heard, 2) for at in after]
    assert {d.hardware_id for d in sims.novacore.devices.values()} >= {
        f"SG{i:04d}" for i in range(1, 5)
    }
