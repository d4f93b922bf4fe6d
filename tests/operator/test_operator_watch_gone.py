"""A watch the API server ends with 410 Gone (the version it would go on from is too old:
etcd compacted it, or the API server restarted), or a watch request it answers with 410:
kopf lists the objects again and watches from the new list. Objects created or edited
afterwards are still reconciled, and the objects listed again are not applied again (each
remote write is made once)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from fleet_yaml import stream, sungrow_inverter
from harness import Cluster, documents, operator
from kube_emulator import Emulator
from objects import HOME, ZAP, declare

from reconciler.sim.fleet import SimFleet

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


async def test_after_a_watch_ends_with_410_gone_objects_are_still_reconciled(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(stream(HOME, GARAGE), tmp_path, monkeypatch) as (cluster, sims):
        await _converged(cluster)
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        sims.reset_counts()
        before = emulator.listed.copy()
        for plural in PLURALS:
            # The harness's watches end every second: expire them until one was open.
            async def expired(plural: str = plural) -> int:
                return await emulator.expire_watches(plural)

            await cluster.wait_for(expired, what=f"an open watch of {plural}")
        await _listed_again(cluster, emulator, before)
        await _then_edits_and_new_objects_are_reconciled(cluster, sims)


async def test_after_a_watch_request_is_answered_410_gone_objects_are_still_reconciled(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(stream(HOME, GARAGE), tmp_path, monkeypatch) as (cluster, sims):
        await _converged(cluster)
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        sims.reset_counts()
        before = emulator.listed.copy()
        faults = [emulator.fail("GET", f"/{plural}", 410, watch=True) for plural in PLURALS]

        async def answered() -> bool:
            return all(fault.count == 0 for fault in faults)

        await cluster.wait_for(answered, what="a watch of each kind answered 410")
        await _listed_again(cluster, emulator, before)
        await _then_edits_and_new_objects_are_reconciled(cluster, sims)
