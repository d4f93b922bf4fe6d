"""A watch the API server ends with 410 Gone (the version it would go on from is too old:
etcd compacted it, or the API server restarted), or a watch request it answers with 410:
kopf lists the objects again and watches from the new list. Any other error of a watch (a
request answered 404 while a CRD is created again, or 400; an ERROR event of a 500 in the
stream) is listed again too, after a backoff, instead of stopping the operator. Objects
created or edited afterwards are still reconciled, and the objects listed again are not
applied again (each remote write is made once).

A watch that keeps failing longer than RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT stops the
operator process with exit code 1 and one line saying which watch and why."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fleet_yaml import stream, sungrow_inverter
from harness import Cluster, documents, emulated_cluster, operator
from kube_emulator import Emulator
from objects import HOME, ZAP, declare
from process import operator_env, operator_process

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
    async with operator(stream(HOME, GARAGE), tmp_path, monkeypatch) as (cluster, sims):
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

    await cluster.wait_for(relisted, timeout=30, what="every kind listed again")


async def _then_edits_and_new_objects_are_reconciled(cluster: Cluster, sims: SimFleet) -> None:
    """In sync after the new list (the drift checks write nothing), then a Site renamed and
    a Device created: each written once."""
    for kind, name in OBJECTS:
        await cluster.wait_planned(kind, name, 2)
    assert sims.writes() == 0, f"applied again after the new list: {_writes(sims)}"
    await cluster.patch("Site", "home", {"spec": {"displayName": "Home Sweet Home"}})
    *_, garage = documents(stream(HOME, GARAGE))
    await cluster.create(garage)
    await cluster.wait_condition("Device", "garage-inverter", "Ready", timeout=60)

    async def renamed() -> bool:
        return [s.name for s in sims.novacore.sites.values()] == ["Home Sweet Home"]

    await cluster.wait_for(renamed, timeout=30, what="the site renamed in Novacore")
    for kind, name in (*OBJECTS, ("Device", "garage-inverter")):
        await cluster.wait_planned(kind, name, 2)
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


async def test_a_watch_failing_for_longer_than_the_limit_stops_the_operator_with_one_line(
    tmp_path: Path,
) -> None:
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", HOME)]).fleet())
    async with emulated_cluster() as cluster, sims:
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        env = operator_env(sims, cluster.url, tmp_path,
                           RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT="3")
        await declare(cluster)
        log = tmp_path / "operator.log"
        async with operator_process(env, log) as process:
            for kind, name in OBJECTS:
                await cluster.wait_condition(kind, name, "Ready", timeout=60)
            # Every watch of Devices refused from now on (the list is served): the open one
            # is ended first, as the operator's lasts minutes.
            emulator.fail("GET", "/devices", 404, count=1_000_000, watch=True)

            async def expired() -> int:
                return await emulator.expire_watches("devices")

            await cluster.wait_for(expired, what="an open watch of devices")
            assert await asyncio.wait_for(process.wait(), 60) == 1
        lines = log.read_text(errors="replace").splitlines()
        assert "Traceback" not in "\n".join(lines)
        kind = "devices.v1alpha1.energy.reconciler.dev in every namespace"
        retried = [line for line in lines if f"The watch of {kind} failed (HTTP 404: "
                   "injected by the test): listing it again in " in line]
        assert len(retried) >= 2, "\n".join(lines[-20:])
        last = lines[-1]
        assert last.startswith(f"error: the watch of {kind} has failed for "), last
        assert last.endswith("; last: HTTP 404: injected by the test; stopping the operator "
                             "so that it is restarted"), last
