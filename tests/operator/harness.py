"""Runs the operator end to end for tests: kmock's KubernetesEmulator as the API server
(with our CRDs' resources, namespaces, events, Secrets and CRDs registered, as kopf needs),
the platform simulators seeded from site YAML, and kopf in the test's event loop, started by
the operator's own entry point (`stopping.run`, as `reconciler operator` starts it: its
handlers see the stop as in a pod)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import copy
import gc
import io
import json
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import kmock
import kopf
import kube_emulator
from aiohttp import web
from kmock._internal import apps
from kube_emulator import Emulator

from reconciler.engine.config import load_settings
from reconciler.model.base import API_GROUP, API_VERSION, API_VERSION_NAME
from reconciler.model.schema import CRD_NAMES
from reconciler.operator import stopping, wait_lines
from reconciler.operator.config import OperatorConfig
from reconciler.operator.handlers import Runtime, configure, register
from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts
from reconciler.sources.yaml_documents import parse_yaml

NAMESPACE = "fleet"
# A second namespace, for tests of an operator that serves only some namespaces.
OTHER_NAMESPACE = "fleet-elsewhere"
# How long a wait for what the operator does next (an object deleted, a condition set) may
# take before the test fails: a bound, not an expected time. Each such step is several
# requests through the emulator and the simulators, all in the test's one event loop,
# which a 2-core machine running four test workers (and more) keeps waiting for seconds
# at a time: 20 s was seen to run out for a Device's release there.
WAIT = 60.0
# Where kopf records the essence (spec, labels, annotations) it handled last.
LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"
# The reason of the Events a test queues through kopf (`Cluster.events_posted`).
MARKER = "TestMarker"


# For a test that counts a device's writes, or its problems: the operator's requests, and
# the simulated Zaps' reads of a device (1 s by default, in the test's event loop), given
# minutes (bounds, not expected times). Timed out on a loaded machine, a Zap's probe of a
# device answers 503 and the operator makes the write again, or Ready says the read failed:
# another write, another problem, than the test follows.
PATIENT_SETTINGS = {"RECONCILER_TIMEOUT": str(3 * WAIT)}


def patient_zaps(sims: SimFleet) -> None:
    """As `operator`'s `before_start`: the simulated Zaps wait minutes for a device."""
    for zap in sims.zaps.values():
        zap.modbus_timeout_s = 2 * WAIT


def register_resources(emulator: kmock.KubernetesEmulator) -> None:
    """The shared resources, and the namespaces the tests use."""
    kube_emulator.register_resources(emulator)
    for namespace in (NAMESPACE, OTHER_NAMESPACE):
        emulator.objects["v1/namespaces", None, namespace] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace},
        }


def write_kubeconfig(path: Path, server: str) -> None:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": server}}],
                "users": [{"name": "test", "user": {"token": "test-token"}}],
                "contexts": [
                    {
                        "name": "test",
                        "context": {"cluster": "test", "user": "test", "namespace": NAMESPACE},
                    }
                ],
            }
        )
    )


@contextlib.asynccontextmanager
async def loopback_api_server(
    handler: Any, tmp_path: Path, monkeypatch: Any
) -> AsyncIterator[None]:
    """`handler` (aiohttp) answering every request on loopback, as the API server KUBECONFIG
    names (set with pytest's `monkeypatch`): for the operator's own Kubernetes clients."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
        yield
    finally:
        await runner.cleanup()


class Cluster:
    """The emulated API server plus a small client to create, patch, delete and read."""

    def __init__(self, emulator: Emulator | None, url: str) -> None:
        self.emulator = emulator
        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.url, timeout=60)
        # kopf's context once it started (its queue of Events): `events_posted`.
        self.kopf_context: contextvars.Context | None = None
        # kopf's stop flag of the operator `operator` runs: a test sets it to stop the
        # operator midway, as SIGTERM does (the harness sets it at the end in any case).
        self.operator_stop: asyncio.Event | None = None

    def _path(self, kind: str, name: str | None = None, namespace: str = NAMESPACE) -> str:
        plural = CRD_NAMES[kind]["plural"]
        path = f"/apis/{API_VERSION}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    async def create(self, document: dict[str, Any], namespace: str = NAMESPACE) -> None:
        document = json.loads(json.dumps(document))
        document.setdefault("metadata", {})["namespace"] = namespace
        # The emulator does not assign these as a real API server does; kopf keys its
        # per-object memory (timers) by uid, so each object needs its own.
        document["metadata"].setdefault("generation", 1)
        document["metadata"].setdefault("uid", str(uuid.uuid4()))
        document["metadata"].setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        response = await self.http.post(
            self._path(document["kind"], namespace=namespace), json=document
        )
        response.raise_for_status()

    async def create_all(
        self, documents: Iterable[dict[str, Any]], namespace: str = NAMESPACE
    ) -> None:
        """Each of `documents` in turn, as `kubectl apply` sends a file's."""
        for document in documents:
            await self.create(document, namespace)

    async def patch(self, kind: str, name: str, body: dict[str, Any]) -> None:
        response = await self.http.patch(
            self._path(kind, name),
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        response.raise_for_status()

    async def delete(self, kind: str, name: str) -> None:
        response = await self.http.delete(self._path(kind, name))
        response.raise_for_status()

    async def get(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        response = await self.http.get(self._path(kind, name, namespace))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    async def status(self, kind: str, name: str) -> dict[str, Any]:
        """The object's status ({} while it has none, or the object is not there)."""
        return ((await self.get(kind, name)) or {}).get("status") or {}  # type: ignore[no-any-return]

    async def create_secret(self, name: str, data: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        response = await self.http.post(f"/api/v1/namespaces/{NAMESPACE}/secrets", json=body)
        response.raise_for_status()

    async def update_secret(self, name: str, data: dict[str, str]) -> None:
        response = await self.http.patch(
            f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}",
            json={"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        response.raise_for_status()

    async def secret(self, name: str) -> dict[str, Any]:
        """The Secret as the API server holds it ({} while it does not exist)."""
        response = await self.http.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}")
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    async def delete_secret(self, name: str) -> None:
        response = await self.http.delete(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}")
        response.raise_for_status()

    async def events(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"/api/v1/namespaces/{NAMESPACE}/events")
        response.raise_for_status()
        return list(response.json().get("items", []))

    async def events_about(
        self, name: str, *, reason: str | None = None, type_: str | None = None
    ) -> list[dict[str, Any]]:
        """The events whose involved object is `name` (of `reason`, of `type_`: all if None)."""
        return [
            e
            for e in await self.events()
            if (e.get("involvedObject") or {}).get("name") == name
            and reason in (None, e.get("reason"))
            and type_ in (None, e.get("type"))
        ]

    async def wait_events_about(
        self, name: str, *, reason: str | None = None, timeout: float = WAIT
    ) -> list[dict[str, Any]]:
        """`events_about`, once there is one: kopf posts events from a queue, so one a
        handler posted just before its object went may land just after."""

        async def posted() -> list[dict[str, Any]]:
            return await self.events_about(name, reason=reason)

        found: list[dict[str, Any]] = await self.wait_for(
            posted, timeout=timeout, what=f"an event about {name} ({reason})")
        return found

    async def events_posted(self, body: dict[str, Any]) -> None:
        """Until kopf posted every Event it queued so far about the object of `body` (its
        body as read before it went: kopf keys one object's Events by uid): kopf posts
        them in order, and a marker queued now, after them, is posted."""
        assert self.kopf_context is not None, "kopf has not started"
        name, marker = body["metadata"]["name"], f"posted: {uuid.uuid4()}"
        self.kopf_context.run(kopf.event, body, type="Normal", reason=MARKER, message=marker)

        async def posted() -> bool:
            return any(e.get("message") == marker
                       for e in await self.events_about(name, reason=MARKER))

        await self.wait_for(posted, what=f"kopf's Events about {name} posted")

    async def condition(self, kind: str, name: str, type_: str) -> dict[str, Any] | None:
        obj = await self.get(kind, name)
        for cond in ((obj or {}).get("status") or {}).get("conditions", []):
            if cond.get("type") == type_:
                return cond  # type: ignore[no-any-return]
        return None

    async def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = WAIT, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = await predicate()
            if last:
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")

    async def wait_planned(
        self, kind: str, name: str, times: int, *, timeout: float = 60
    ) -> None:
        """Wait until the object was reconciled `times` more times (each writes the time
        of its `lastPlan`, to the second: with the tests' 1 s drift interval, it moves)."""
        seen: set[str] = set()

        async def planned() -> bool:
            status = await self.status(kind, name)
            seen.add((status.get("lastPlan") or {}).get("time", ""))
            return len(seen) > times

        await self.wait_for(planned, timeout=timeout,
                            what=f"{times} more plans of {kind}/{name}")

    async def wait_all_planned(
        self, objects: Iterable[tuple[str, str]], times: int, *, timeout: float = 60
    ) -> None:
        """`wait_planned` for each of `objects` (kind, name), counted from now for all of
        them and waited for together: each object's drift check runs on a timer of its
        own, so waiting for one after the other would add their waits up (some 2 s an
        object) for nothing. The first that times out fails the wait."""
        waits = [asyncio.ensure_future(self.wait_planned(kind, name, times, timeout=timeout))
                 for kind, name in objects]
        try:
            await asyncio.gather(*waits)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def handled(self, kind: str, name: str) -> bool:
        """Whether kopf handled the object's current spec: its create or update handlers
        are done (succeeded or failed for good), as kopf records the essence it handled last
        once they are. Not whether their progress annotations are gone: kopf purges only
        those of the body it handled, and handles an event older than its own patch of the
        progress once `consistency_timeout` passed without that patch's event (under load),
        so a handler retried can leave its annotation behind."""
        body = await self.get(kind, name) or {}
        notes = (body.get("metadata") or {}).get("annotations") or {}
        last = notes.get(LAST_HANDLED)
        return last is not None and json.loads(last).get("spec") == body.get("spec")

    async def wait_handled(self, kind: str, name: str, *, timeout: float = WAIT) -> None:
        await self.wait_for(lambda: self.handled(kind, name), timeout=timeout,
                            what=f"{kind}/{name}'s current spec handled by kopf")

    async def wait_condition(
        self,
        kind: str,
        name: str,
        type_: str = "Ready",
        status: str = "True",
        timeout: float = WAIT,
    ) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            cond = await self.condition(kind, name, type_)
            return cond if cond and cond.get("status") == status else None

        return await self.wait_for(
            check,
            timeout=timeout,  # type: ignore[no-any-return]
            what=f"{kind}/{name} {type_}={status}",
        )

    async def wait_reason(
        self,
        kind: str,
        name: str,
        reason: str,
        *,
        type_: str = "Ready",
        timeout: float = WAIT,
        what: str | None = None,
    ) -> dict[str, Any]:
        """The object's `type_` condition, once its reason is `reason` (whatever its status)."""

        async def check() -> dict[str, Any] | None:
            cond = await self.condition(kind, name, type_)
            return cond if cond and cond.get("reason") == reason else None

        return await self.wait_for(  # type: ignore[no-any-return]
            check, timeout=timeout, what=what or f"{kind}/{name} {type_} reason {reason}"
        )

    async def wait_gone(
        self, kind: str, name: str, *, timeout: float = WAIT, what: str | None = None
    ) -> None:
        """Wait until the object is deleted (its finalizer done)."""

        async def gone() -> bool:
            return await self.get(kind, name) is None

        await self.wait_for(gone, timeout=timeout, what=what or f"{kind}/{name} deleted")


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    """What a Secret holds: its `data` decoded, and its `stringData`."""
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return data | (secret.get("stringData") or {})


def kopf_handled(body: Any) -> bool:
    """kopf's patch of an object once its handlers are done: it records the spec handled
    (held in the emulator, it keeps the object's worker busy and its status as it was)."""
    if not isinstance(body, dict):
        return False  # a JSON patch (kopf's of the finalizer)
    return LAST_HANDLED in ((body.get("metadata") or {}).get("annotations") or {})


def documents(yaml_text: str) -> list[dict[str, Any]]:
    """The documents of a YAML stream, validated, as plain dicts for the API server: what
    they say and nothing more, as `kubectl apply` sends them. A model's dump would add
    every default (`deletionPolicy`, `unitId`), which the operator would then take as
    declared (`status.declaredFields`)."""
    result = load_texts([("test.yaml", yaml_text)])
    assert result.ok, [str(d) for d in result.diagnostics]
    parsed, problems = parse_yaml(yaml_text, "test.yaml")
    assert not problems, [str(d) for d in problems]
    return [copy.deepcopy(document.value) for document in parsed if document.value is not None]


@contextlib.asynccontextmanager
async def operator(
    yaml_text: str,
    tmp_path: Path,
    monkeypatch: Any,
    **kwargs: Any,
) -> AsyncIterator[tuple[Cluster, SimFleet]]:
    """`_operator` (see there), and at its end no task it started left running: those
    still running once it stopped are cancelled, and one that does not end within
    `LEFT_WAIT` fails the test with its stack (`tasks_ended`), instead of the event loop's
    shutdown waiting for it for ever."""
    before = asyncio.all_tasks()
    try:
        async with _operator(yaml_text, tmp_path, monkeypatch, **kwargs) as running:
            yield running
    finally:
        await tasks_ended(before)


@contextlib.asynccontextmanager
async def _operator(
    yaml_text: str,
    tmp_path: Path,
    monkeypatch: Any,
    *,
    config: OperatorConfig | None = None,
    logs: list[str] | None = None,
    watch_timeout: int = 1,
    emulator_url: str | None = None,
    namespaces: list[str] | None = None,
    token_file: Path | None = None,
    before_start: Callable[[SimFleet], None] | None = None,
    settings: dict[str, str] | None = None,
    exit_timeout: float = 0.5,
) -> AsyncIterator[tuple[Cluster, SimFleet]]:
    """The emulated cluster, the simulators for the fleet in `yaml_text`, and the operator
    (serving every namespace, or only `namespaces` as `reconciler operator -n` does). With
    `token_file`, the Novacore token is written there and read from it, as the chart's
    `credentials.mountAsFiles` has it, instead of from RECONCILER_NOVACORE_TOKEN.
    `before_start` is called with the simulators before they serve (a middleware is
    added then). `settings` are RECONCILER_* variables of the operator's beyond those the
    simulators need (RECONCILER_TIMEOUT, for instance). `exit_timeout` is kopf's wait at
    the stop for each object's worker to handle the events queued before it."""
    fleet = load_texts([("fleet.yaml", yaml_text)]).fleet()
    sims = SimFleet()
    sims.seed_fleet(fleet)
    if before_start is not None:
        before_start(sims)
    async with contextlib.AsyncExitStack() as stack:
        if emulator_url is None:
            emulator: Emulator | None = await stack.enter_async_context(_served_emulator())
            emulator_url = str(emulator.url)
        else:
            emulator = None
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, emulator_url)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        _in_flight[sims] = _InFlight(sims)
        await sims.start()
        env = sims.env() | {
            "RECONCILER_STATE_DIR": str(tmp_path / "state"),
            "RECONCILER_RETRIES": "2",
        } | (settings or {})
        if token_file is not None:
            await asyncio.to_thread(
                token_file.write_text, env.pop("RECONCILER_NOVACORE_TOKEN") + "\n"
            )
            env["RECONCILER_NOVACORE_TOKEN_FILE"] = str(token_file)
        config = config or OperatorConfig(interval=1.0, retry_delay=0.5)
        registry = kopf.OperatorRegistry()
        runtime = Runtime(config, load_settings(env))
        register(registry, runtime)

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=emulator_url, insecure=True, token="test-token")

        kopf_settings = kopf.OperatorSettings()
        configure(kopf_settings, config)
        # Short server-side watch timeouts let the operator stop quickly at the end of a test.
        kopf_settings.watching.server_timeout = watch_timeout
        # The client's is for an emulator that does not answer: on a loaded machine it answers
        # seconds late (it serves in the test's event loop), and kopf, its watch requests timed
        # out four times, stopped watching that kind, and the test waited for nothing.
        kopf_settings.watching.client_timeout = watch_timeout + WAIT
        # How long kopf waits for the event of the version its patch made (the emulator
        # sends it at once): not long, should a test's object be deleted meanwhile.
        kopf_settings.persistence.consistency_timeout = 0.3
        kopf_settings.queueing.exit_timeout = exit_timeout
        # kopf waits for a drift check it stops as `configure` has it, as in a pod: one
        # that winds down at the stop (and a deletion waiting for one) is tested as it runs.
        cluster = Cluster(emulator, emulator_url)

        async def keep_context(**_: Any) -> None:
            cluster.kopf_context = contextvars.copy_context()

        def not_kept(**_: Any) -> bool:
            return cluster.kopf_context is None

        # kopf sets its queue of Events in the context of an object's handling: kept from
        # the first event of any of ours, and that handler not run again (nor logged).
        for kind in CRD_NAMES:
            kopf.on.event(API_GROUP, API_VERSION_NAME, CRD_NAMES[kind]["plural"],
                          id="test-context", when=not_kept, registry=registry)(keep_context)

        stop = cluster.operator_stop = asyncio.Event()
        ready = asyncio.Event()
        handler = _CollectingHandler(logs) if logs is not None else None
        if handler is not None:
            logging.getLogger().addHandler(handler)
        task = asyncio.create_task(
            stopping.run(
                runtime.stop,
                kopf_settings,
                registry=registry,
                clusterwide=not namespaces,
                namespaces=namespaces or [],
                stop_flag=stop,
                ready_flag=ready,
                standalone=True,
            )
        )
        try:
            await asyncio.wait_for(ready.wait(), WAIT)
            yield cluster, sims
        finally:
            stop.set()
            started = time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, WAIT)
            assert task.done(), (
                f"the operator did not stop within {time.monotonic() - started:.1f}s"
            )
            await _close_leftover_sessions()
            if handler is not None:
                logging.getLogger().removeHandler(handler)
            await cluster.http.aclose()
            await sims.stop()


class KopfRuns(logging.Handler):
    """kopf's lines about each object, as it logs them: among them the line of each run of
    a handler or a drift check (a timer) saying what came of it ("Timer 'drift-sites'
    succeeded.", "Handler 'create-ders' is waiting: ...", "... failed temporarily: ..."),
    and at DEBUG the line saying it is invoked. A test that asserts that something did not
    happen waits for the runs that would have done it, instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[tuple[str | None, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        ref = getattr(record, "k8s_ref", None) or {}
        self.lines.append((ref.get("name"), record.levelno, record.getMessage()))

    def said(self, name: str, start: str, *, level: int = logging.DEBUG) -> int:
        """How many lines about object `name`, at `level` or above, start with `start`."""
        return sum(1 for about, at, line in self.lines
                   if about == name and at >= level and line.startswith(start))

    def count(self, name: str, handler: str) -> int:
        """The runs of `handler` ("Timer 'drift-sites'") of object `name` logged so far."""
        return self.said(name, f"{handler} ", level=logging.INFO)

    async def wait(self, name: str, handler: str, times: int, *, timeout: float = WAIT) -> None:
        """Until `handler` of object `name` ran `times` more times, counted from now."""
        wanted = self.count(name, handler) + times
        await self.until(lambda: self.count(name, handler) >= wanted, name,
                         f"{times} more runs of {handler}", timeout)

    async def wait_said(self, name: str, start: str, *, timeout: float = WAIT) -> None:
        """Until kopf said a line about object `name` starting with `start` (at any time)."""
        await self.until(lambda: self.said(name, start) > 0, name, repr(start), timeout)

    async def until(
        self, check: Callable[[], bool], name: str, what: str, timeout: float = WAIT
    ) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, (
                f"timed out after {timeout}s waiting for {what} of {name}; kopf's lines "
                f"about it: {[line for about, _, line in self.lines if about == name]}")
            await asyncio.sleep(0.05)


@contextlib.contextmanager
def kopf_runs() -> Iterator[KopfRuns]:
    """Record kopf's lines about objects (`KopfRuns`) within the block."""
    logger = logging.getLogger(wait_lines.KOPF_OBJECT_LOGGER)
    runs, level = KopfRuns(), logger.level
    logger.addHandler(runs)
    # kopf says a run's outcome at INFO, that it invokes a handler at DEBUG: made, not
    # dropped before `runs` sees them (kopf posts as Events only those at INFO and above).
    logger.setLevel(logging.DEBUG)
    try:
        yield runs
    finally:
        logger.removeHandler(runs)
        logger.setLevel(level)


class _InFlight:
    """The requests the simulators took and have not answered yet (`answered`)."""

    def __init__(self, sims: SimFleet) -> None:
        self.count = 0
        for server in sims.http_servers():
            server.app.middlewares.insert(0, self._middleware)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.count += 1
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            self.count -= 1


_in_flight: weakref.WeakKeyDictionary[SimFleet, _InFlight] = weakref.WeakKeyDictionary()


async def answered(sims: SimFleet, *, timeout: float = WAIT) -> None:
    """Until the simulators answered every request they took (or gave it up, its client
    gone): a write on its way when this is called has taken effect."""
    in_flight = _in_flight[sims]
    deadline = time.monotonic() + timeout
    while in_flight.count:
        assert time.monotonic() < deadline, (
            f"timed out after {timeout}s waiting for {in_flight.count} request(s) to the "
            "simulators to be answered")
        await asyncio.sleep(0.02)


async def landed(sims: SimFleet, *locks: asyncio.Lock) -> None:
    """Every write on its way has landed: the reconciles holding `locks` (owners' locks,
    `owner_locks`), and those already waiting for them, ended (each lock is taken and let
    go in turn: an asyncio.Lock is handed out in the order it was asked for), and then the
    simulators answered every request they took. A lock kept from before its object was
    deleted is waited for as well: the finalizer dropped it, not the reconcile holding it."""
    for lock in locks:
        async with lock:
            pass
    await answered(sims)


# How long the tasks an operator's test left running (cancelled then) may take to end.
LEFT_WAIT = 10.0


async def tasks_ended(before: set[asyncio.Task[Any]]) -> None:
    """Cancel the tasks started since `before` that still run, and wait `LEFT_WAIT` for them
    to end. One that does not (it swallows its cancellation, or awaits something that
    never ends in its cleanup) fails the test with its stack; it is no longer counted as
    one of the loop's tasks, so that the loop's shutdown, which waits for every task it
    counts, does not wait for it for ever."""
    left = asyncio.all_tasks() - before - {asyncio.current_task()}
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=LEFT_WAIT)
    stuck = [task for task in left if not task.done()]
    if not stuck:
        return
    stacks = []
    for task in stuck:
        text = io.StringIO()
        task.print_stack(file=text)
        stacks.append(text.getvalue())
        # asyncio's own registry: the loop's shutdown cancels and waits for what it holds.
        asyncio.tasks._unregister_task(task)  # type: ignore[attr-defined]
    raise AssertionError(
        f"{len(stuck)} task(s) still running {LEFT_WAIT:g} s after they were cancelled "
        "at the end of the test:\n" + "\n".join(stacks)
    )


async def _close_leftover_sessions() -> None:
    """kopf 1.45 can open an API session for a timer's last status patch after it closed
    its vault on shutdown; close such leftovers so they do not leak into other tests."""
    for obj in gc.get_objects():
        if isinstance(obj, aiohttp.ClientSession) and not obj.closed:
            await obj.close()


@contextlib.asynccontextmanager
async def _served_emulator() -> AsyncIterator[Emulator]:
    """The emulator, serving on loopback, with the resources and namespaces registered."""
    async with Emulator() as emulator, apps.Server(emulator):
        register_resources(emulator)
        yield emulator


@contextlib.asynccontextmanager
async def emulated_cluster() -> AsyncIterator[Cluster]:
    """The emulated API server alone (no operator), and a client of it."""
    async with _served_emulator() as emulator:
        cluster = Cluster(emulator, str(emulator.url))
        try:
            yield cluster
        finally:
            await cluster.http.aclose()


def serve_emulator(pipe: Any) -> None:
    """Entry point of a separate process running the emulator (benchmarks): sends its URL
    through `pipe`, then serves until terminated."""

    async def main() -> None:
        async with _served_emulator() as emulator:
            pipe.send(str(emulator.url))
            await asyncio.Event().wait()

    asyncio.run(main())


class _CollectingHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


__all__ = [
    "API_GROUP",
    "NAMESPACE",
    "OTHER_NAMESPACE",
    "PATIENT_SETTINGS",
    "Cluster",
    "KopfRuns",
    "answered",
    "documents",
    "emulated_cluster",
    "kopf_runs",
    "landed",
    "operator",
    "patient_zaps",
    "secret_values",
]
