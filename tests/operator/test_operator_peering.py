"""Two replicas of one Deployment (the chart's `replicas: 2`): kopf peering through the
peering object the chart creates lets the one of higher priority reconcile while the other
stands by, writing nothing; the standby takes over once the active one is gone."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from fleet_yaml import stream
from harness import emulated_cluster
from objects import HOME, ZAP, declare
from process import operator_env, operator_process

from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

PEERING = "reconciler"


async def _logged(log: Path, text: str) -> bool:
    return text in await asyncio.to_thread(log.read_text)


async def test_a_standby_replica_writes_nothing_until_the_active_one_is_gone(
    tmp_path: Path,
) -> None:
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", stream(HOME))]).fleet())
    async with emulated_cluster() as cluster, sims:
        response = await cluster.http.post(
            "/apis/kopf.dev/v1/clusterkopfpeerings",
            json={"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
                  "metadata": {"name": PEERING}})
        response.raise_for_status()
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_OPERATOR_PEERING=PEERING)
        standby_log, active_log = tmp_path / "standby.log", tmp_path / "active.log"
        async with operator_process(env | {"RECONCILER_OPERATOR_PRIORITY": "1"}, standby_log):
            async with operator_process(
                env | {"RECONCILER_OPERATOR_PRIORITY": "100"}, active_log
            ) as active:
                # Alone, the standby is active (as a lone replica is): the objects come once
                # it has seen the other and paused.
                await cluster.wait_for(
                    lambda: _logged(standby_log, "Pausing operations in favour of"),
                    timeout=60, what="the standby paused")
                await declare(cluster)
                for kind, name in (("Gateway", "home-zap"), ("Device", "home-inverter"),
                                   ("Device", "home-battery")):
                    await cluster.wait_condition(kind, name, "Ready", timeout=60)
                await cluster.wait_planned("Device", "home-battery", 2)
                standby = await asyncio.to_thread(standby_log.read_text)
                assert "Device/home-battery" not in standby, "the standby reconciled"
                assert await _logged(active_log, "Device/home-battery: ")
                active.terminate()
                await active.wait()
            # The standby takes over: it reconciles (the drift timer writes lastPlan).
            await cluster.wait_planned("Device", "home-battery", 2)
            assert await _logged(standby_log, "Device/home-battery: in sync")
        assert sims.novacore.requests["POST /gateways/claim"] == 1
        assert Counter(d.hardware_id for d in sims.novacore.devices.values()) == {
            "SG0001": 1, "ferroamp_192.168.1.70": 1}
        assert set(sims.zaps[ZAP].devices) == {"SG0001", "ferroamp_192.168.1.70"}
