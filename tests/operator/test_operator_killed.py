"""The operator killed (SIGKILL, as a lost node or an OOM kill) in the middle of its writes
and started again converges with nothing duplicated or lost. It keeps no journal of its
own: every remote object is found again by its natural key (a Zap device by its serial, a
Novacore device by its hardware id, an Enapter device by its hardware id, a gateway's claim
by its serial), so a write that took effect before the kill is observed as done."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fleet_yaml import document, enapter_site, stream
from harness import emulated_cluster, secret_values
from objects import HOME, ZAP, declare
from process import operator_env, operator_process

from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

UCM = "A8795CBA5375484E829105E959663C8B"
FLEET = stream(HOME, enapter_site(), document("Device", "ucm", f"""
    siteRef: h2-lab
    hardwareId: {UCM}
    displayName: UCM
    deviceType: battery
    enapter:
      kind: ucm
      protocol: MQTT
      configOutput: {{secretName: ucm-config}}
    """))
OBJECTS = [("Site", "home"), ("Gateway", "home-zap"), ("Device", "home-inverter"),
           ("Device", "home-battery"), ("Site", "h2-lab"), ("Device", "ucm")]


def _slow(sims: SimFleet) -> None:
    """Every write takes effect at once and is answered a while later, so a kill lands
    between a write made and its answer (the operator never learns of it)."""
    for server in sims.http_servers():
        server.faults.latency_ms = 30
        server.faults.answer_delay_ms = 300


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# When to kill: once a write has taken effect, its answer still on its way.
KILL_POINTS: dict[str, Callable[[SimFleet], bool]] = {
    "first-write": lambda sims: sims.writes() >= 1,
    "site-created": lambda sims: bool(sims.novacore.sites) and bool(sims.enapter.sites),
    "gateway-claimed": lambda sims: any(g.org_id for g in sims.novacore.gateways.values()),
    "device-on-zap": lambda sims: bool(sims.zaps[ZAP].devices),
    "novacore-device": lambda sims: bool(sims.novacore.devices),
    "enapter-device": lambda sims: any(d.hardware_id for d in sims.enapter.devices.values()),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
async def test_an_operator_killed_mid_apply_converges_when_started_again(
    tmp_path: Path, point: str
) -> None:
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", FLEET)]).fleet())
    async with emulated_cluster() as cluster, sims:
        _slow(sims)
        env = operator_env(sims, cluster.url, tmp_path)
        await declare(cluster, FLEET)
        log = tmp_path / "operator.log"
        async with operator_process(env, log):
            await _until(lambda: KILL_POINTS[point](sims), 60, point)
        # SIGKILLed: some writes were made, some of them never answered.
        async with operator_process(env, log):
            for kind, name in OBJECTS:
                await cluster.wait_condition(kind, name, "Ready", timeout=60)
            before = sims.writes()
            await cluster.wait_all_planned(OBJECTS, 2)
            assert sims.writes() == before, "in sync: the drift checks write nothing"
        sites = Counter((s.org_id, s.name) for s in sims.novacore.sites.values())
        assert sites == {("org-home", "Home"): 1}
        assert Counter(s.name for s in sims.enapter.sites.values()) == {"H2 Lab": 1}
        zap = sims.zaps[ZAP]
        assert set(zap.devices) == {"SG0001", "ferroamp_192.168.1.70"}
        novacore = Counter(d.hardware_id for d in sims.novacore.devices.values())
        assert novacore == {"SG0001": 1, "ferroamp_192.168.1.70": 1}
        assert sims.novacore.requests["POST /gateways/claim"] == 1, "claimed once"
        enapter = Counter(d.hardware_id for d in sims.enapter.devices.values() if d.hardware_id)
        assert enapter == {UCM: 1}
        (device,) = (d for d in sims.enapter.devices.values() if d.hardware_id == UCM)
        secret = await cluster.secret("ucm-config")
        annotations = secret["metadata"].get("annotations") or {}
        assert annotations.get("energy.reconciler.dev/enapter-device-id") == device.id
        assert UCM in "".join(secret_values(secret).values()), "the device's own config"
