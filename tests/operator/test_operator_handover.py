"""Two replicas with kopf peering (the chart's `replicas: 2`): the operator started first
runs, one started beside it stands by (kopf pauses it: the first has the higher priority),
and takes over once the first stops. Only one of them writes at a time: a drift is
corrected once while both run, and after the handover the new one corrects drifts and
applies new objects, each written once."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from fleet_yaml import stream, sungrow_inverter
from harness import Cluster, documents, emulated_cluster
from objects import HOME, ZAP, declare
from process import operator_env, operator_process

from reconciler.operator.config import load
from reconciler.sim.fleet import SimFleet
from reconciler.sim.server import READ_METHODS, Handler
from reconciler.sources.loader import load_texts

PEERING = "reconciler"
# Declared only after the handover (the simulators know it from the start).
GARAGE = sungrow_inverter("garage-inverter", "home-zap", "SG0002", "192.168.1.61")
OBJECTS = (("Site", "home"), ("Gateway", "home-zap"), ("Device", "home-inverter"),
           ("Device", "home-battery"))
PEERINGS = "/apis/kopf.dev/v1/clusterkopfpeerings"


def test_an_operator_started_later_has_a_lower_priority() -> None:
    """So that a replica started beside a running one never pauses it (not random)."""
    priorities = []
    for _ in range(5):
        priorities.append(load({}).priority)
        time.sleep(0.002)
    assert priorities == sorted(priorities, reverse=True)
    assert len(set(priorities)) == len(priorities)
    assert load({"RECONCILER_OPERATOR_PRIORITY": "7"}).priority == 7, "set: as it is set"


async def _peers(cluster: Cluster) -> set[str]:
    """The identities with a live record in the peering object."""
    response = await cluster.http.get(f"{PEERINGS}/{PEERING}")
    response.raise_for_status()
    status = response.json().get("status") or {}
    return {identity for identity, record in status.items() if record}


async def _logged(path: Path, text: str) -> bool:
    def read() -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    return text in await asyncio.to_thread(read)


class Writes:
    """The writes the simulators answered as done (2xx), by server and route, since the
    last `clear`: what was written, and how many times. A write answered with an error
    changed nothing, and the operator makes it again: on a loaded machine the Zap's probe
    of a device (1 s, in this test's event loop) can time out, answered 503, and a request
    the operator gave up on (its RECONCILER_TIMEOUT) is dropped unanswered."""

    def __init__(self) -> None:
        self.done: collections.Counter[str] = collections.Counter()

    def install(self, sims: SimFleet) -> None:
        for server in sims.http_servers():
            server.app.middlewares.insert(0, self._middleware(type(server).__name__))

    def _middleware(self, server: str) -> Any:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else request.path
            if (request.method not in READ_METHODS and not route.startswith("/_sim/")
                    and response.status < 300):
                self.done[f"{server} {request.method} {route}"] += 1
            return response

        return count

    def clear(self, sims: SimFleet) -> None:
        self.done.clear()
        sims.reset_counts()

    def said(self, sims: SimFleet) -> str:
        """Every request the simulators were sent (answered or not), for a failure."""
        return repr({type(s).__name__: dict(s.requests) for s in sims.http_servers()})


async def _renamed_back(cluster: Cluster, sims: SimFleet) -> None:
    """The Novacore site renamed by hand, and the name set back by the drift check."""
    [site_id] = sims.novacore.sites
    sims.novacore.rename_site(site_id, "renamed in the cloud UI")

    async def corrected() -> bool:
        return sims.novacore.sites[site_id].name == "Home"

    await cluster.wait_for(corrected, what="the drift corrected")
    await cluster.wait_all_planned(OBJECTS, 2)


async def test_a_second_operator_stands_by_and_takes_over_when_the_first_stops(
    tmp_path: Path,
) -> None:
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", stream(HOME, GARAGE))]).fleet())
    writes = Writes()
    writes.install(sims)
    async with emulated_cluster() as cluster, sims:
        created = await cluster.http.post(PEERINGS, json={
            "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
            "metadata": {"name": PEERING}})
        created.raise_for_status()
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_OPERATOR_PEERING=PEERING)
        await declare(cluster)
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        # Each pod has its own state directory (an emptyDir) and name (POD_ID).
        async with operator_process(env | {"POD_ID": "first",
                                           "RECONCILER_STATE_DIR": str(tmp_path / "first")},
                                    first_log) as first:
            for kind, name in OBJECTS:
                await cluster.wait_condition(kind, name, "Ready", timeout=60)
            async with operator_process(env | {"POD_ID": "second",
                                               "RECONCILER_STATE_DIR": str(tmp_path / "second")},
                                        second_log):

                async def both_peers() -> bool:
                    return await _peers(cluster) == {"first", "second"}

                await cluster.wait_for(both_peers, timeout=60, what="both in the peering")
                writes.clear(sims)
                await _renamed_back(cluster, sims)
                assert writes.done == {"NovacoreSimulator PUT /sites/{site_id}": 1}, (
                    "one operator corrects the drift, once", writes.said(sims))
                # kopf starts an operator paused until it has seen its peers: the second
                # stays so (the first has the higher priority), the first runs on.
                resumed = "Resuming operations after the pause"
                assert not await _logged(second_log, resumed), "the second stands by"
                assert not await _logged(first_log, "Pausing operations"), "the first runs on"

                first.send_signal(signal.SIGTERM)
                assert await first.wait() == 0

                async def handed_over() -> bool:
                    return await _peers(cluster) == {"second"}

                await cluster.wait_for(handed_over, what="the first's record dropped")
                await cluster.wait_for(lambda: _logged(second_log, resumed),
                                       what="the second operator resumed")

                writes.clear(sims)
                await _renamed_back(cluster, sims)
                *_, garage = documents(stream(HOME, GARAGE))
                await cluster.create(garage)
                await cluster.wait_condition("Device", "garage-inverter", "Ready", timeout=60)
                await cluster.wait_planned("Device", "garage-inverter", 2)
                assert writes.done == {
                    "NovacoreSimulator PUT /sites/{site_id}": 1,
                    "ZapSimulator POST /api/devices": 1,
                    "ZapSimulator POST /api/devices/{sn}/types": 1,
                    "NovacoreSimulator POST /devices/provision": 1,
                }, writes.said(sims)
                assert set(sims.zaps[ZAP].devices) == {"SG0001", "SG0002",
                                                       "ferroamp_192.168.1.70"}
