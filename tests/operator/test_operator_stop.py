"""`reconciler operator` stopped by SIGTERM (a rolling update, a node drained), as a separate
process: idle, it exits 0 without waiting for a timer or a retry (an hour away); while a
drift check or a handler writes, that write is answered and lands, once, nothing new
starts, and it exits 0; a drift check still reading (planning) is abandoned, its read
never answered. None leaves kopf's line of a timer left orphaned, nor any other line at
WARNING: kopf says so when a wait of its stop runs out (20 s for a drift check or a
handler, within the pod's grace period of 30 s, Kubernetes' default: the chart sets none),
far beyond what the writes in flight take. An operator started again finishes what the
stopped one did not start, writing nothing twice. How long a stop takes is not measured:
a loaded machine would decide it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware
from harness import Cluster, documents, emulated_cluster
from objects import HOME, SECRET, ZAP, declare
from process import operator_env, operator_process

from reconciler.sim.fleet import SimFleet
from reconciler.sim.server import Handler
from reconciler.sources.loader import load_texts

OBJECTS = (("Site", "home"), ("Gateway", "home-zap"), ("Device", "home-inverter"),
           ("Device", "home-battery"))
ORPHANED = "did not exit in time"
SIGNALLED = "Signal SIGTERM is received"
# Longer than any stop takes (kopf's own waits at the stop are 20 s at most, and say so
# when they run out), and far shorter than the timers and retries the idle operators have.
STOP_WAIT = 60
AN_HOUR = "3600"


class Answers:
    """What became of each request to the Zap and to Novacore since `clear`: answered, or
    abandoned by its client before the answer was sent (a simulator cancels its handler
    when the client goes away). Each is said as "zap GET /api/devices"."""

    def __init__(self) -> None:
        self.answered: list[str] = []
        self.abandoned: list[str] = []
        self._since = 0  # requests that arrived before the last `clear` are not recorded

    def clear(self) -> None:
        self._since += 1
        self.answered.clear()
        self.abandoned.clear()

    def install(self, sims: SimFleet) -> None:
        for name, server in (("zap", sims.zaps[ZAP]), ("novacore", sims.novacore)):
            server.app.middlewares.insert(0, self._middleware(name))

    def _middleware(self, name: str) -> Middleware:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/_sim/"):
                return await handler(request)
            said, since = f"{name} {request.method} {request.path}", self._since
            try:
                response = await handler(request)
            except asyncio.CancelledError:
                if since == self._since:
                    self.abandoned.append(said)
                raise
            if since == self._since:
                self.answered.append(said)
            return response

        return record


@contextlib.asynccontextmanager
async def _home(answers: Answers | None = None) -> AsyncIterator[tuple[Cluster, SimFleet]]:
    """The emulated cluster and the simulators seeded with HOME, both serving; `answers`
    records what the Zap and Novacore answer."""
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", HOME)]).fleet())
    if answers is not None:
        answers.install(sims)
    async with emulated_cluster() as cluster, sims:
        yield cluster, sims


async def _until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _ready(cluster: Cluster) -> None:
    """Every object Ready and its create handler done: what writes next is a drift check."""
    for kind, name in OBJECTS:
        await cluster.wait_condition(kind, name, "Ready", timeout=60)
        await cluster.wait_handled(kind, name, timeout=60)


async def _stopped(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, then the exit code."""
    process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), STOP_WAIT)
    except TimeoutError:
        raise AssertionError(f"the operator did not stop within {STOP_WAIT} s of SIGTERM: it "
                             "waited for a timer, a retry or a read") from None


def _said_after_signal(text: str) -> list[str]:
    """The lines logged after the signal at WARNING or above."""
    after = text[text.index(SIGNALLED):].splitlines()
    return [line for line in after if " WARNING " in line or " ERROR " in line]


async def _said_of_writes(cluster: Cluster) -> dict[str, tuple[str, str, str]]:
    """The inverter's events of its writes (type, reason, message), by event name."""
    return {
        e["metadata"]["name"]: (e.get("type", ""), e.get("reason", ""), e.get("message", ""))
        for e in await cluster.events_about("home-inverter")
        if e.get("reason") in ("Created", "ApplyFailed")
        and "device/home-inverter[" in e.get("message", "")
    }


async def _said_at_stop(
    cluster: Cluster, before: dict[str, tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    """The inverter's events of its writes posted since `before`: at the stop."""
    return {said for name, said in (await _said_of_writes(cluster)).items() if name not in before}


def _inverter_in_novacore(sims: SimFleet) -> int:
    return sum(d.hardware_id == "SG0001" for d in sims.novacore.devices.values())


async def _inverter_added_only(
    cluster: Cluster, sims: SimFleet, before: dict[str, tuple[str, str, str]]
) -> None:
    """The inverter's addition to the Zap, in flight at the stop, landed once; its
    provisioning in Novacore, after it, did not start; its status and its Events (written
    as kopf's poster of Events had stopped) say so."""
    assert sims.zaps[ZAP].requests["POST /api/devices"] == 1, "the write in flight landed, once"
    assert _inverter_in_novacore(sims) == 0, "no change started after the signal"
    ready = await cluster.condition("Device", "home-inverter", "Ready") or {}
    assert (ready.get("status"), ready.get("reason")) == ("False", "Interrupted"), (
        "its status says what was not started")
    assert "device/home-inverter[novacore]: not started: stopping" in ready["message"]
    assert await _said_at_stop(cluster, before) == {
        ("Normal", "Created", "device/home-inverter[zap]: create done"),
        ("Warning", "ApplyFailed",
         "device/home-inverter[novacore]: create skipped: not started: stopping"),
        ("Warning", "ApplyFailed", "device/home-inverter[publish]: update skipped: not "
         "attempted: device/home-inverter[novacore] did not succeed"),
    }, "its events, posted as kopf's poster of events had stopped"


async def test_an_idle_operator_stops_at_once_on_sigterm(tmp_path: Path) -> None:
    async with _home() as (cluster, sims):
        # No drift check comes during the test: every timer sleeps when the signal comes,
        # an hour from its next check (an operator that waited for it would not stop
        # within `STOP_WAIT`).
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_OPERATOR_INTERVAL=AN_HOUR)
        await declare(cluster)
        log = tmp_path / "operator.log"
        async with operator_process(env, log) as process:
            await _ready(cluster)
            sims.reset_counts()
            code = await _stopped(process)
        text = log.read_text(errors="replace")
        assert code == 0
        assert ORPHANED not in text
        assert _said_after_signal(text) == []
        assert sims.writes() == 0 and sims.zaps[ZAP].count("GET") == 0, "no check ran at the stop"


async def test_objects_waiting_for_a_retry_at_sigterm_are_said_at_info(tmp_path: Path) -> None:
    """The Devices wait for their Gateway, not declared, their retry an hour away: kopf's
    workers sleep until then, and at the stop it says it left their streams unprocessed.
    That is all they are, no handler of ours running: said at INFO, not WARNING."""
    async with _home() as (cluster, sims):
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_OPERATOR_INTERVAL=AN_HOUR,
                           RECONCILER_OPERATOR_RETRY_DELAY=AN_HOUR)
        await cluster.create_secret("ferroamp-mqtt", {"password": SECRET})
        await cluster.create_all([d for d in documents(HOME) if d["kind"] != "Gateway"])
        log = tmp_path / "operator.log"
        async with operator_process(env, log) as process:
            for _, name in OBJECTS[2:]:
                await cluster.wait_condition("Device", name, "Ready", "False", timeout=60)
            code = await _stopped(process)
        text = log.read_text(errors="replace")
        assert code == 0
        assert _said_after_signal(text) == []
        assert (" INFO kopf._core.reactor.queueing: Objects left for the next operator at the "
            "stop (waiting for a retry, or for kopf's own writes): [") in text, (
            text[text.index(SIGNALLED):])


async def test_a_drift_check_writing_at_sigterm_lands_its_write_once_and_stops(
    tmp_path: Path,
) -> None:
    answers = Answers()
    async with _home(answers) as (cluster, sims):
        env = operator_env(sims, cluster.url, tmp_path)
        await declare(cluster)
        log = tmp_path / "operator.log"
        zap = sims.zaps[ZAP]
        async with operator_process(env, log) as process:
            await _ready(cluster)
            await cluster.wait_planned("Device", "home-inverter", 1)
            # The inverter removed from its Zap and from Novacore behind the operator's
            # back, the Zap answering each write 2 s after it took effect: the next drift
            # check adds it to the Zap, and only once that is answered provisions it.
            (cloud,) = (d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001")
            sims.novacore.remove_device(cloud.id)
            zap.remove_device("SG0001")
            zap.faults.answer_delay_ms = 2000
            sims.reset_counts()
            answers.clear()
            await _until(lambda: "SG0001" in zap.devices, "the drift check's write to the Zap")
            before = await _said_of_writes(cluster)
            code = await _stopped(process)
        text = log.read_text(errors="replace")
        assert code == 0
        assert ORPHANED not in text
        assert _said_after_signal(text) == []
        # Its answer (seconds late) was waited for, not abandoned at the stop.
        assert "zap POST /api/devices" in answers.answered, answers.abandoned
        await _inverter_added_only(cluster, sims, before)

        # Started again: the rest is done, nothing twice.
        zap.faults.answer_delay_ms = 0
        async with operator_process(env, log):
            await cluster.wait_planned("Device", "home-inverter", 2)
            await _until(lambda: _inverter_in_novacore(sims) == 1, "the inverter provisioned")
        assert zap.requests["POST /api/devices"] == 1, "not added to the Zap again"
        assert _inverter_in_novacore(sims) == 1


async def test_a_drift_check_still_reading_at_sigterm_is_abandoned_unanswered(
    tmp_path: Path,
) -> None:
    answers = Answers()
    async with _home(answers) as (cluster, sims):
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_TIMEOUT="60")
        await declare(cluster)
        log = tmp_path / "operator.log"
        zap = sims.zaps[ZAP]
        async with operator_process(env, log) as process:
            await _ready(cluster)
            # The Zap answers 30 s late (within the 60 s timeout): the next drift check
            # observes it that long, when it has nothing to write anyway. Waited for, the
            # stop would take 20 s (kopf's wait for the check) and more.
            zap.faults.latency_ms = 30_000
            sims.reset_counts()
            answers.clear()
            await _until(lambda: zap.count("GET") > 0, "a drift check reading the Zap")
            code = await _stopped(process)
        text = log.read_text(errors="replace")
        assert code == 0
        assert ORPHANED not in text
        assert _said_after_signal(text) == []
        # The read in flight was never answered: the operator went away before the Zap
        # sent its answer (30 s late), which an operator waiting for the read would have had.
        await _until(lambda: "zap GET" in " ".join(answers.abandoned),
                     "the Zap to see its client gone")
        assert [said for said in answers.answered if said.startswith("zap ")] == [], (
            "no read of the Zap was answered")
        assert sims.writes() == 0


async def test_a_create_handler_writing_at_sigterm_lands_its_write_and_stops(
    tmp_path: Path,
) -> None:
    """A Device's create handler whose write to the Zap is answered 3 s after the signal,
    past kopf's 2 s for a handler at the stop: the write lands, once, the change after it
    is not started, and the next operator applies it."""
    answers = Answers()
    async with _home(answers) as (cluster, sims):
        # No drift check comes during the test: what writes is the Device's create handler.
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_OPERATOR_INTERVAL="300")
        await cluster.create_secret("ferroamp-mqtt", {"password": SECRET})
        docs = documents(HOME)
        (inverter,) = (d for d in docs if d["metadata"]["name"] == "home-inverter")
        await cluster.create_all([d for d in docs if d is not inverter])
        log = tmp_path / "operator.log"
        zap = sims.zaps[ZAP]
        async with operator_process(env, log) as process:
            for kind, name in OBJECTS:
                if name != "home-inverter":
                    await cluster.wait_condition(kind, name, "Ready", timeout=60)
                    await cluster.wait_handled(kind, name, timeout=60)
            # The Zap answers the inverter's addition 3 s after it took effect; only once
            # it is answered does the handler provision the inverter in Novacore.
            zap.faults.answer_delay_ms = 3000
            sims.reset_counts()
            answers.clear()
            await cluster.create(inverter)
            await _until(lambda: "SG0001" in zap.devices, "the create handler's write to the Zap")
            before = await _said_of_writes(cluster)
            code = await _stopped(process)
        text = log.read_text(errors="replace")
        assert code == 0
        assert ORPHANED not in text
        assert _said_after_signal(text) == []
        # Its answer (seconds late) was waited for, not abandoned at the stop.
        assert "zap POST /api/devices" in answers.answered, answers.abandoned
        await _inverter_added_only(cluster, sims, before)

        # Started again: the rest is done, nothing twice.
        zap.faults.answer_delay_ms = 0
        async with operator_process(env, log):
            await cluster.wait_condition("Device", "home-inverter", "Ready", timeout=60)
            await _until(lambda: _inverter_in_novacore(sims) == 1, "the inverter provisioned")
        assert zap.requests["POST /api/devices"] == 1, "not added to the Zap again"
        assert _inverter_in_novacore(sims) == 1


async def test_a_finalizer_releasing_at_sigterm_lands_its_write_and_lets_the_object_go(
    tmp_path: Path,
) -> None:
    """The inverter's finalizer (deletionPolicy Release) removing it from the Zap, which
    answers 3 s after the signal, past kopf's 2 s for a handler at the stop: the removal
    lands, once, the finalizer ends, and the object is gone, with nothing said above INFO."""
    answers = Answers()
    async with _home(answers) as (cluster, sims):
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_OPERATOR_INTERVAL="300")
        await declare(cluster)
        log = tmp_path / "operator.log"
        zap = sims.zaps[ZAP]
        async with operator_process(env, log) as process:
            await _ready(cluster)
            zap.faults.answer_delay_ms = 3000
            sims.reset_counts()
            answers.clear()
            await cluster.delete("Device", "home-inverter")
            await _until(lambda: "SG0001" not in zap.devices, "the finalizer's write to the Zap")
            code = await _stopped(process)
        text = log.read_text(errors="replace")
        assert code == 0
        assert ORPHANED not in text
        assert _said_after_signal(text) == []
        assert "zap DELETE /api/devices/SG0001" in answers.answered, answers.abandoned
        assert zap.requests["DELETE /api/devices/{sn}"] == 1, "the write in flight landed, once"
        assert await cluster.get("Device", "home-inverter") is None, "its finalizer ended"


async def test_a_finalizer_cut_short_at_sigterm_starts_no_other_write_and_keeps_the_object(
    tmp_path: Path,
) -> None:
    """The inverter's release removes it from Novacore, then from the Zap. Novacore answers
    3 s after the signal: that removal lands, the Zap's is not started, the object keeps
    its finalizer, and the next operator removes it from the Zap and lets it go."""
    answers = Answers()
    async with _home(answers) as (cluster, sims):
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_OPERATOR_INTERVAL="300")
        await declare(cluster)
        log = tmp_path / "operator.log"
        zap = sims.zaps[ZAP]
        async with operator_process(env, log) as process:
            await _ready(cluster)
            sims.novacore.faults.answer_delay_ms = 3000
            sims.reset_counts()
            answers.clear()
            await cluster.delete("Device", "home-inverter")
            await _until(lambda: _inverter_in_novacore(sims) == 0, "the removal from Novacore")
            code = await _stopped(process)
        text = log.read_text(errors="replace")
        assert code == 0
        assert ORPHANED not in text
        assert _said_after_signal(text) == []
        assert [said for said in answers.answered if said.startswith("novacore DELETE ")], (
            answers.abandoned)
        assert "SG0001" in zap.devices and zap.requests["DELETE /api/devices/{sn}"] == 0, (
            "no write started after the signal")
        assert await cluster.get("Device", "home-inverter") is not None, "its finalizer kept"

        sims.novacore.faults.answer_delay_ms = 0
        async with operator_process(env, log):
            async def gone() -> bool:
                return await cluster.get("Device", "home-inverter") is None

            await cluster.wait_for(gone, timeout=60, what="the inverter released and gone")
        assert "SG0001" not in zap.devices
        assert zap.requests["DELETE /api/devices/{sn}"] == 1
