"""A watch the API server ends with 410 Gone (the version it would go on from is too old:
etcd compacted it, or the API server restarted), or a watch request it answers with 410:
kopf lists the objects again and watches from the new list. Any other error of a watch (a
request answered 404 while a CRD is created again, or 400; an ERROR event of a 500 in the
stream) is listed again too, after a backoff, instead of stopping the operator. Objects
created or edited afterwards are still reconciled, and the objects listed again are not
applied again (each remote write is made once).

A list the API server answers with 410 is listed again after a backoff, not at once; a
watch request answered a 5xx for a moment is retried without listing the kind again.

A watch that keeps failing longer than RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT stops the
operator process with exit code 1 and one line saying which watch and why (for a 403, that
the ServiceAccount may not list or watch the kind): about the limit after the first failed
request, though kopf alone retries a 5xx or a 403 for most of a minute. A watch that worked
between its failures (it delivered events after its list) is not one that keeps failing:
each failure then waits the first backoff, and the operator goes on past the limit; so
does a watch that stayed open `watch_errors.WATCHED` seconds after its list before it
failed, though it delivered nothing, while one failing sooner after each list stops the
operator at the limit. An API server that cannot be reached at all counts towards the
limit as well (kopf alone retries its watches at once, for ever)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fleet_yaml import stream, sungrow_inverter
from harness import PATIENT_SETTINGS, Cluster, documents, emulated_cluster, operator, patient_zaps
from kube_emulator import Emulator
from objects import HOME, ZAP, declare
from process import operator_env, operator_process

from reconciler.operator import watch_errors
from reconciler.operator.config import OperatorConfig
from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

# An inverter declared only once the watches were expired (the simulators know it from the
# start: it is on the LAN, behind the home Zap).
GARAGE = sungrow_inverter("garage-inverter", "home-zap", "SG0002", "192.168.1.61")
OBJECTS = (("Site", "home"), ("Gateway", "home-zap"), ("Device", "home-inverter"),
           ("Device", "home-battery"))
PLURALS = ("sites", "gateways", "devices", "ders")


async def _converged(cluster: Cluster) -> None:
    await declare(cluster)
    for kind, name in OBJECTS:
        await cluster.wait_condition(kind, name, "Ready", timeout=60)


@contextlib.asynccontextmanager
async def _converged_operator(
    tmp_path: Path, monkeypatch: Any
) -> AsyncIterator[tuple[Cluster, Emulator]]:
    """The operator, its objects reconciled and the simulators' counts reset, for the test
    to fail its watches; then every kind listed again, and edits and new objects
    reconciled once."""
    # Each write counted once: not made again after a device read timed out (load).
    async with operator(stream(HOME, GARAGE), tmp_path, monkeypatch, before_start=patient_zaps,
                        settings=PATIENT_SETTINGS) as (cluster, sims):
        await _converged(cluster)
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        sims.reset_counts()
        before = emulator.listed.copy()
        yield cluster, emulator
        await _listed_again(cluster, emulator, before)
        await _then_edits_and_new_objects_are_reconciled(cluster, sims)


async def _listed_again(cluster: Cluster, emulator: Emulator, before: Counter[str]) -> None:
    async def relisted() -> bool:
        return all(emulator.listed[p] > before[p] for p in PLURALS)

    await cluster.wait_for(relisted, what="every kind listed again")


async def _garage_reconciled(cluster: Cluster) -> None:
    """A Device created now (the garage's inverter) is reconciled: its kind is watched."""
    *_, garage = documents(stream(HOME, GARAGE))
    await cluster.create(garage)
    await cluster.wait_condition("Device", "garage-inverter", "Ready", timeout=60)


async def _devices_watch_ended(cluster: Cluster, emulator: Emulator) -> None:
    """End an open watch of Devices (waiting until there is one), so that the operator
    requests them again."""

    async def expired() -> int:
        return await emulator.expire_watches("devices")

    await cluster.wait_for(expired, what="an open watch of devices")


async def _then_edits_and_new_objects_are_reconciled(cluster: Cluster, sims: SimFleet) -> None:
    """In sync after the new list (the drift checks write nothing), then a Site renamed and
    a Device created: each written once."""
    await cluster.wait_all_planned(OBJECTS, 2)
    assert sims.writes() == 0, f"applied again after the new list: {_writes(sims)}"
    await cluster.patch("Site", "home", {"spec": {"displayName": "Home Sweet Home"}})
    await _garage_reconciled(cluster)

    async def renamed() -> bool:
        return [s.name for s in sims.novacore.sites.values()] == ["Home Sweet Home"]

    await cluster.wait_for(renamed, what="the site renamed in Novacore")
    await cluster.wait_all_planned((*OBJECTS, ("Device", "garage-inverter")), 2)
    # The rename; the new inverter added to the Zap with its DER, and provisioned: once each.
    assert _writes(sims) == {
        "NovacoreSimulator PUT /sites/{site_id}": 1,
        "ZapSimulator POST /api/devices": 1,
        "ZapSimulator POST /api/devices/{sn}/types": 1,
        "NovacoreSimulator POST /devices/provision": 1,
    }
    assert set(sims.zaps[ZAP].devices) == {"SG0001", "SG0002", "ferroamp_192.168.1.70"}


def _writes(sims: SimFleet) -> dict[str, int]:
    """Every write request the simulators were sent, by server and route."""
    return {f"{type(s).__name__} {route}": n for s in sims.http_servers()
            for route, n in s.requests.items() if not route.startswith("GET") and n}


def _server_error(code: int) -> dict[str, Any]:
    """An ERROR event other than 410, as an API server ends a watch with when its storage
    fails under it."""
    return {"type": "ERROR", "object": {
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "code": code, "reason": "InternalError",
        "message": "an error on the server has prevented the request from succeeding"}}


@pytest.mark.parametrize("event", [
    pytest.param(410, id="410-gone"),
    pytest.param(500, id="500-server-error"),
])
async def test_after_a_watch_ends_with_an_error_event_objects_are_still_reconciled(
    tmp_path: Path, monkeypatch: Any, event: int
) -> None:
    async with _converged_operator(tmp_path, monkeypatch) as (cluster, emulator):
        for plural in PLURALS:
            # The harness's watches end every second: end them until one was open.
            async def ended(plural: str = plural) -> int:
                if event == 410:
                    return await emulator.expire_watches(plural)
                return await emulator.end_watches(plural, _server_error(event))

            await cluster.wait_for(ended, what=f"an open watch of {plural}")


@pytest.mark.parametrize("status", [
    pytest.param(410, id="410-gone"),
    pytest.param(404, id="404-crd-created-again"),
    pytest.param(400, id="400"),
])
async def test_after_a_watch_request_is_answered_an_error_objects_are_still_reconciled(
    tmp_path: Path, monkeypatch: Any, status: int
) -> None:
    async with _converged_operator(tmp_path, monkeypatch) as (cluster, emulator):
        faults = [emulator.fail("GET", f"/{plural}", status, watch=True) for plural in PLURALS]

        async def answered() -> bool:
            return all(fault.count == 0 for fault in faults)

        await cluster.wait_for(answered, what=f"a watch of each kind answered {status}")


# kopf's own retries of a request answered 5xx or 403 (`networking.error_backoffs`), which
# the operator cuts short: an operator that waited for them is still waited for, so that
# its last line says how long the kind had failed.
KOPF_RETRIES_S = 54.0


async def _stopped_operator(
    tmp_path: Path, status: int, *, watch: bool | None, limit: float
) -> tuple[list[str], float]:
    """The operator's lines, and how many seconds it ran on once every request of the given
    kind (`watch`) for Devices was answered `status`: every watch of Devices is ended then
    (the operator's lasts minutes), so that it lists them again."""
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", HOME)]).fleet())
    async with emulated_cluster() as cluster, sims:
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        env = operator_env(sims, cluster.url, tmp_path,
                           RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT=f"{limit:g}")
        await declare(cluster)
        log = tmp_path / "operator.log"
        async with operator_process(env, log) as process:
            for kind, name in OBJECTS:
                await cluster.wait_condition(kind, name, "Ready", timeout=60)
            emulator.fail("GET", "/devices", status, count=1_000_000, watch=watch)

            await _devices_watch_ended(cluster, emulator)
            began = time.monotonic()
            # Waited for past the minute kopf alone retries a 5xx or a 403 before it gives up:
            # an operator that waited for those retries fails on its last line's figure.
            assert await asyncio.wait_for(process.wait(), limit + KOPF_RETRIES_S + 30) == 1
            ran = time.monotonic() - began
        lines = log.read_text(errors="replace").splitlines()
        # No traceback of ours or kopf's (kopf's lines of its retries quote the emulator's
        # answer, whose details carry the traceback of the error the test injected).
        assert not [line for line in lines if line.startswith("Traceback")], lines[-20:]
        return lines, ran


DEVICES = "devices.v1alpha1.energy.reconciler.dev in every namespace"


def _failed_for(last: str, error: str) -> float:
    """The seconds the operator's last line says the watch of Devices failed for, the line
    checked to name the kind and end with `error` and the stop."""
    prefix = f"error: the watch of {DEVICES} has failed for "
    assert last.startswith(prefix), last
    assert last.endswith(f"; last: {error}; stopping the operator so that it is restarted"), last
    return float(last.removeprefix(prefix).split(" ", 1)[0])


async def test_a_watch_failing_for_longer_than_the_limit_stops_the_operator_with_one_line(
    tmp_path: Path,
) -> None:
    # Every watch of Devices refused from now on (the list is served).
    lines, _ = await _stopped_operator(tmp_path, 404, watch=True, limit=3)
    retried = [line for line in lines if f"The watch of {DEVICES} failed (HTTP 404: "
               "injected by the test): listing it again in " in line]
    assert len(retried) >= 2, "\n".join(lines[-20:])
    assert _failed_for(lines[-1], "HTTP 404: injected by the test") >= 3


async def test_a_kind_answered_5xx_stops_the_operator_about_the_limit_after_it_began_failing(
    tmp_path: Path,
) -> None:
    """kopf retries a 5xx inside the request (54 s by default) before the watch fails: the
    limit counts from the first failed request, and the operator stops about then, not a
    minute or more later."""
    limit = 6.0
    lines, ran = await _stopped_operator(tmp_path, 503, watch=None, limit=limit)
    failed_for = _failed_for(lines[-1], "HTTP 503: injected by the test")
    # The operator's own figure, taken as the limit is reached (its last wait cut short),
    # not how long its stop and exit took after: 8 s is kept over a moment's lag, a backoff
    # not cut short or kopf's retries waited for would say 8 s or more past the limit.
    assert limit <= failed_for <= limit + 8, lines[-1]
    assert limit <= ran, f"stopped {ran:.1f} s after the kind began failing"


async def test_a_kind_the_service_account_may_not_list_stops_the_operator_saying_so(
    tmp_path: Path,
) -> None:
    """A 403 (the ServiceAccount's RBAC lacks the kind) is retried as kopf does while an
    upgrade replaces the RBAC, then stops the operator with a line saying what is
    missing. (The limit is longer than kopf's 7 s of retries: it warns once first.)"""
    limit = 10.0
    lines, _ = await _stopped_operator(tmp_path, 403, watch=None, limit=limit)
    error = (f"HTTP 403: injected by the test (the operator's ServiceAccount may not list "
             f"or watch {DEVICES}: its Role or ClusterRole lacks the rule)")
    assert limit <= _failed_for(lines[-1], error) <= limit + 8, lines[-1]
    warned = [line for line in lines if f"The watch of {DEVICES} failed ({error}): "
              "listing it again in " in line]
    assert warned, "\n".join(lines[-20:])


async def test_a_list_answered_410_is_listed_again_after_a_backoff(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A list asks for no version, so a 410 answering it (an API server whose storage is
    being restored) would come again at once: it is listed again after a backoff that
    doubles, not over and over; then the kind is watched again."""
    logs: list[str] = []
    async with operator(stream(HOME, GARAGE), tmp_path, monkeypatch, logs=logs) as (cluster, _):
        await _converged(cluster)
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        before = emulator.listed["devices"]
        fault = emulator.fail("GET", "/devices", 410, count=3, watch=False)

        await _devices_watch_ended(cluster, emulator)
        began = time.monotonic()

        async def listed() -> bool:
            return emulator.listed["devices"] > before

        await cluster.wait_for(listed, what="devices listed again")
        # Three lists refused, the second and third after 1 s and 2 s; the fourth served
        # after 4 s more.
        assert fault.count == 0
        assert time.monotonic() - began >= 1 + 2 + 4 - 0.5
        waits = [line.rsplit(" in ", 1)[1] for line in logs
                 if line.startswith(f"The watch of {DEVICES} failed (HTTP 410: ")]
        assert waits == ["1 s", "2 s", "4 s"], waits
        # Watched again: a Device created now is reconciled.
        await _garage_reconciled(cluster)


async def test_a_watch_request_answered_a_5xx_for_a_moment_is_retried_without_listing_again(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A 5xx for a moment (an API server restarting) is retried inside the request, as
    kopf does: the kind is neither listed again nor said to have failed."""
    logs: list[str] = []
    async with operator(stream(HOME, GARAGE), tmp_path, monkeypatch, logs=logs) as (cluster, _):
        await _converged(cluster)
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        before = emulator.listed["devices"]
        # The harness's watches end every second: the next two requests are refused.
        fault = emulator.fail("GET", "/devices", 500, count=2, watch=True)

        async def answered() -> bool:
            return fault.count == 0

        await cluster.wait_for(answered, what="two watches of devices answered 500")
        await _garage_reconciled(cluster)
        assert emulator.listed["devices"] == before
        assert not [line for line in logs if line.startswith("The watch of ")], logs[-20:]


async def test_a_watch_cut_now_and_then_while_it_works_does_not_stop_the_operator(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Each watch of Devices delivers an event after its list, then the API server ends it
    with an error: for longer than the limit, listed again after the first backoff each
    time, as a kind that works, and never said to have failed for the limit."""
    limit = 3.0
    logs: list[str] = []
    config = OperatorConfig(interval=1.0, retry_delay=0.5, watch_failure_limit=limit)
    async with operator(stream(HOME, GARAGE), tmp_path, monkeypatch, logs=logs,
                        config=config) as (cluster, _):
        await _converged(cluster)
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        began = time.monotonic()
        cuts = 0
        while cuts < 4 or time.monotonic() - began < 2 * limit:
            listed = emulator.listed["devices"]
            # An event for the watch (written before the error, so told before it).
            await cluster.patch("Device", "home-battery",
                                {"metadata": {"annotations": {"test/cut": str(cuts)}}})

            async def ended() -> int:
                return await emulator.end_watches("devices", _server_error(500))

            await cluster.wait_for(ended, what="an open watch of devices")
            cuts += 1

            async def listed_again(before: int = listed) -> bool:
                return emulator.listed["devices"] > before

            await cluster.wait_for(listed_again, what="devices listed again")
        failed = [line for line in logs if line.startswith(f"The watch of {DEVICES} failed")]
        assert len(failed) >= cuts, logs[-20:]
        assert all(line.endswith("listing it again in 1 s") for line in failed), failed
        assert not [line for line in logs if "has failed for" in line], logs[-20:]
        await _garage_reconciled(cluster)


# The kind whose watch fails in the tests of a watch open long enough: no object of it is
# declared (HOME's DERs are in its Devices' specs), so its watch delivers no event, and
# only the time it stayed open tells whether it worked.
DERS = "ders.v1alpha1.energy.reconciler.dev in every namespace"
# `watch_errors.WATCHED` in those tests (60 s in the operator): longer than the moment
# between a list and the error the test ends the watch opened after it with at once (a
# poll of 0.1 s, and the event loop's lag on a loaded machine, which the operator, the
# emulator and the simulators share here), shorter than the time the test holds a watch
# open before that error otherwise.
SHORT_WATCHED = 4.0


async def _ders_cut(
    cluster: Cluster, emulator: Emulator, logs: list[str], *, held: float, limit: float
) -> None:
    """Each time DERs were listed and a watch of them opened after the list: keep it open
    `held` seconds more (the watches the harness asks for end every second, and are asked
    for again from the list's version: the kind stays watched, with no event), then end it
    with a 500, so that the operator lists DERs again. Until the operator said the kind
    failed for the limit, or the kind was cut 3 times over twice the limit."""
    began = time.monotonic()
    cuts = 0
    while cuts < 3 or time.monotonic() - began < 2 * limit:
        if _stopped(logs):
            return

        async def watched() -> bool:
            return emulator.watching_since_listed("ders") or bool(_stopped(logs))

        await cluster.wait_for(watched, what="DERs listed and watched again")
        # Counted from when the watch was open, after the operator took in the list: the
        # operator's own count, from the list's end, is then longer still.
        await asyncio.sleep(held)

        said = len(_ders_failed(logs))

        async def ended() -> bool:
            # Only while a watch is open: an error put when none is would end the next one
            # the moment it opens.
            return (emulator.watching_since_listed("ders")
                    and await emulator.end_watches("ders", _server_error(500)) > 0)

        await cluster.wait_for(ended, what="an open watch of DERs")
        cuts += 1

        async def told(said: int = said) -> bool:
            return len(_ders_failed(logs)) > said or bool(_stopped(logs))

        await cluster.wait_for(told, what="the operator saying the watch of DERs failed")


# The watch failure limit of those tests, in seconds.
LIMIT = 3.0


@contextlib.asynccontextmanager
async def _short_watched(
    tmp_path: Path, monkeypatch: Any, logs: list[str], limit: float = LIMIT
) -> AsyncIterator[tuple[Cluster, Emulator]]:
    """The operator, converged on HOME, its watch failure limit `limit` and `WATCHED`
    `SHORT_WATCHED`, its log lines in `logs`."""
    # Safe: read at each failure of a watch (not kept at import), in this process only
    # (the operator runs in the test's event loop), and restored when the test ends. What
    # the 60 s guards against, a refused watch request that kopf retried for 7 s passing
    # for a watch that stayed open, does not happen here: each failure is an ERROR event
    # in a stream that was open.
    monkeypatch.setattr(watch_errors, "WATCHED", SHORT_WATCHED)
    config = OperatorConfig(interval=1.0, retry_delay=0.5, watch_failure_limit=limit)
    async with operator(stream(HOME), tmp_path, monkeypatch, logs=logs,
                        config=config) as (cluster, _):
        await _converged(cluster)
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        yield cluster, emulator


def _stopped(logs: list[str]) -> list[str]:
    """The operator's lines saying a kind failed for the limit: it stops then."""
    return [line for line in logs if "has failed for" in line]


def _ders_failed(logs: list[str]) -> list[str]:
    return [line for line in logs if line.startswith(f"The watch of {DERS} failed (")]


async def test_a_watch_open_long_enough_after_its_list_worked_though_it_delivered_nothing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The watch of DERs stays open longer than `WATCHED` after each list, delivering
    nothing, then fails: each failure starts a new streak (listed again after the first
    backoff), and the operator goes on past the limit, never saying the kind failed for
    it."""
    logs: list[str] = []
    async with _short_watched(tmp_path, monkeypatch, logs) as (cluster, emulator):
        await _ders_cut(cluster, emulator, logs, held=SHORT_WATCHED + 0.5, limit=LIMIT)
        assert not _stopped(logs), logs[-20:]
        failed = _ders_failed(logs)
        assert len(failed) >= 3, logs[-20:]
        assert all(line.endswith("listing it again in 1 s") for line in failed), failed

        async def watched_again() -> bool:
            return emulator.watching_since_listed("ders")

        await cluster.wait_for(watched_again, what="DERs listed and watched again")


async def test_a_watch_failing_soon_after_each_list_stops_the_operator_at_the_limit(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The same as a watch open long enough (`WATCHED` as short), but each watch of DERs
    fails as soon as it is open after its list: the failures are one streak, each waiting
    a longer backoff, and the operator says the kind failed for the limit."""
    logs: list[str] = []
    async with _short_watched(tmp_path, monkeypatch, logs) as (cluster, emulator):
        await _ders_cut(cluster, emulator, logs, held=0.0, limit=LIMIT)

        async def stopped() -> list[str]:
            return _stopped(logs)

        [said] = await cluster.wait_for(stopped, what="the limit's line")
        prefix = f"the watch of {DERS} has failed for "
        assert said.startswith(prefix), said
        failed_for, times = said.removeprefix(prefix).split(" s, ", 1)
        assert float(failed_for) >= LIMIT, said
        # One streak of every failure since the first, none of them starting a new one.
        assert times.startswith(f"{len(_ders_failed(logs)) + 1} times; "), said
        assert "; last: Error in the watch-stream: " in said, said


# The wait of each attempt of a watch request of DERs for its error, in the test of a slow
# error: kopf's four attempts and its waits between them (`REQUEST_RETRIES`) make each
# failure last `SLOW_FAILURE` seconds, longer than `SHORT_WATCHED`.
SLOW_ANSWER = 1.0
SLOW_FAILURE = 4 * SLOW_ANSWER + sum(watch_errors.REQUEST_RETRIES)
# Longer than one such failure, shorter than two.
SLOW_LIMIT = 1.4 * SLOW_FAILURE


async def test_a_watch_request_answered_an_error_only_after_a_wait_fails_all_that_while(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Every watch request of DERs is answered a 500, each attempt only after a wait (a
    proxy's 504 once its own timeout passed): each failure counts from when its request
    began, the waits included, and is neither a watch that was open (`WATCHED` as short
    is shorter than one failure) nor a gap between two failures, so the two failures are
    one streak, and the operator says the kind failed for the limit at the second."""
    logs: list[str] = []
    async with _short_watched(tmp_path, monkeypatch, logs, limit=SLOW_LIMIT) as (
            cluster, emulator):
        # The harness's watches end every second: the next watch request of DERs is slow.
        emulator.fail("GET", "/ders", 500, count=1000, watch=True, delay=SLOW_ANSWER)

        async def stopped() -> list[str]:
            return _stopped(logs)

        [said] = await cluster.wait_for(stopped, timeout=6 * SLOW_FAILURE,
                                        what="the limit's line")
    prefix = f"the watch of {DERS} has failed for "
    assert said.startswith(prefix), said
    failed_for, times = said.removeprefix(prefix).split(" s, ", 1)
    assert float(failed_for) >= 2 * SLOW_FAILURE, said
    assert times.startswith("2 times; last: HTTP 500"), said
    [first] = _ders_failed(logs)
    assert first.startswith(f"The watch of {DERS} failed (HTTP 500"), first
    assert first.endswith("listing it again in 1 s"), first


class _Door:
    """A loopback port passing every connection on to the emulator: shut, the API server
    cannot be reached (a connection is refused, and those open are cut); opened again on
    the same port."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").rstrip("/").rsplit(":", 1)
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._passing: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._pass, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def shut(self) -> None:
        """Refuse new connections and cut those open, once they are all closed."""
        assert self._server is not None
        self._server.close()
        for task in list(self._passing):
            task.cancel()
        await asyncio.gather(*self._passing, return_exceptions=True)
        await self._server.wait_closed()

    async def _pass(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._passing.add(task)
        try:
            target_reader, target_writer = await asyncio.open_connection(*self._target)
            try:
                await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))
            finally:
                target_writer.close()
                with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                    await target_writer.wait_closed()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()
            self._passing.discard(task)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    if sink.can_write_eof():
        sink.write_eof()


async def test_an_api_server_that_cannot_be_reached_counts_towards_the_limit(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """kopf retries a watch that cannot connect, and lists again when its list cannot, at
    once and for ever: both now count towards the limit, waiting the backoff between, and
    the limit's line says why; once the API server is back, the kinds are watched again."""
    limit = 10.0
    logs: list[str] = []
    config = OperatorConfig(interval=1.0, retry_delay=0.5, watch_failure_limit=limit)
    async with emulated_cluster() as outside:
        door = _Door(outside.url)
        await door.open()
        async with operator(stream(HOME, GARAGE), tmp_path, monkeypatch, logs=logs,
                            config=config, emulator_url=door.url) as (cluster, _):
            await _converged(cluster)
            before = len(logs)
            await door.shut()

            async def stopped() -> list[str]:
                return [line for line in logs[before:] if "has failed for" in line]

            said = await outside.wait_for(stopped, timeout=90, what="the limit's line")
            failed = list(logs[before:])
            await door.open()
            await _garage_reconciled(cluster)
        await door.shut()
    assert said[0].startswith("the watch of "), said
    assert "; last: the API server could not be reached to " in said[0], said
    tried = [line for line in failed if line.startswith("The watch of ")
             and " failed (the API server could not be reached to " in line]
    assert tried, failed[-20:]
    assert any("could not be reached to watch it: Cannot connect to host" in line
               for line in tried), tried
