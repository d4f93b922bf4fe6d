"""No drift check starts once the operator stops, nor does a drift timer.

kopf stops each object's drift timer as it begins to stop, but an object's worker still
handles the events queued before the stop, and an event of an object whose timer was
stopped started the timer again, with a stop flag of its own that nothing sets. Its
checks planned (read, and could write) after the stop, as long as kopf's other tasks kept
running; then they looked at the operator's own stop (`runtime.stop`) and started
nothing, but the timer ticked until kopf cancelled it, after waiting 5 s for it at the
end of the stop. Now the timer is not started again once the operator stops.

The case is set up through the interfaces kopf and the operator use: kopf's patch of the
Site after its update handler is held in the API server, so that the Site's worker is busy
when the Site is written again (its event queued behind); another Site's drift check is
held in its status write, so that kopf's stop, which waits for that check, lasts until the
Site's new timer has run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from fleet_yaml import novacore_site, stream
from harness import WAIT, Cluster, KopfRuns, documents, kopf_handled, operator
from kube_emulator import Emulator

from reconciler.sim.fleet import SimFleet

FLEET = stream(novacore_site(), novacore_site("cabin", "Cabin", "org-cabin"))
TIMER = "Timer 'drift-sites'"
# What kopf says of each event of a Site its worker handles, first.
_EVENT_HANDLED = "Indexer 'index_sites' succeeded"


class Requests:
    """Every request the simulators took, as "METHOD path", in the order they took them."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    def install(self, sims: SimFleet) -> None:
        for server in sims.http_servers():
            server.app.middlewares.insert(0, self._record)

    @web.middleware
    async def _record(
        self, request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.taken.append(f"{request.method} {request.path}")
        return await handler(request)


def _drift_status(body: Any) -> bool:
    """A drift check's status write: a merge patch with the version read as precondition
    (`status_writes`), where kopf's own patch of the status says the status alone."""
    return (isinstance(body, dict) and "resourceVersion" in (body.get("metadata") or {})
            and "lastPlan" in (body.get("status") or {}))


async def _site_renamed(cluster: Cluster, name: str, display_name: str) -> None:
    await cluster.patch("Site", name, {"metadata": {"generation": 2},
                                       "spec": {"displayName": display_name}})


async def test_a_drift_timer_started_anew_at_the_stop_checks_nothing(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    requests = Requests()
    # kopf waits at the stop for the Site's worker to handle its queued event, however long
    # the loaded machine makes that: the event is what starts the timer anew.
    async with operator(FLEET, tmp_path, monkeypatch, before_start=requests.install,
                        exit_timeout=WAIT) as (cluster, _sims):
        emulator, stop = cluster.emulator, cluster.operator_stop
        assert isinstance(emulator, Emulator) and stop is not None
        await cluster.create_all(documents(FLEET))
        for name in ("home", "cabin"):
            await cluster.wait_condition("Site", name, "Ready")
            await cluster.wait_handled("Site", name)

        # The Site's worker busy in kopf's patch after its update handler ...
        busy = emulator.hold("PATCH", "/sites/home", kopf_handled)
        await _site_renamed(cluster, "home", "Home again")
        await asyncio.wait_for(busy.arrived.wait(), WAIT)
        # ... while the Site is written again (its status alone: nothing for a handler to
        # do): its event waits in the worker's queue.
        await cluster.patch("Site", "home", {"status": {"note": "written during the stop"}})
        # The watch brings one kind's events in the order they were written: once the
        # cabin's edit, made after it, was handled, the Site's event is in its queue.
        handled = runs.count("cabin", "Handler 'update-sites'")
        await _site_renamed(cluster, "cabin", "Cabin again")
        await runs.until(lambda: runs.count("cabin", "Handler 'update-sites'") > handled,
                         "cabin", "its update handled")
        # The cabin's drift check in flight at the stop: kopf's stop waits for it.
        writing = emulator.hold("PATCH", "/sites/cabin/status", _drift_status)
        try:
            await asyncio.wait_for(writing.arrived.wait(), WAIT)

            stop.set()
            await runs.wait_said("home", f"{TIMER} has exited gracefully")
            taken, said = len(requests.taken), len(runs.lines)
            # The worker handles the queued event, which started the Site's timer again.
            busy.release.set()
            await runs.until(lambda: any(
                line.startswith(_EVENT_HANDLED)
                for about, _, line in runs.lines[said:] if about == "home"
            ), "home", "its queued event handled")
        finally:
            busy.release.set()
            writing.release.set()

    # The operator has stopped: kopf waited for every timer it had started (a timer started
    # again ticks a drift interval, 1 s, after it starts, and kopf waited 5 s for it).
    after = [line for about, _, line in runs.lines[said:] if about == "home"]
    assert [line for line in after if line.startswith(TIMER)] == [], after
    assert requests.taken[taken:] == [], "a platform read after the stop"
    assert [line for line in after if line.startswith("Site/home:")] == [], (
        "a reconcile of the Site after the stop")
