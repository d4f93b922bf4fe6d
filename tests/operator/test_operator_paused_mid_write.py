"""An object paused while a drift check of it is writing: kopf runs the check beside the
handler of the pause, which writes `Synced: Paused` at once. The check still lands its
writes, and its status keeps saying paused, instead of `Synced: True` until the next
check."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from harness import operator
from objects import HOME, ZAP, declare

from reconciler.operator.config import OperatorConfig

INVERTER = ("Device", "home-inverter")
PAUSED = "energy.reconciler.dev/paused"


async def test_an_object_paused_while_its_drift_check_writes_stays_paused(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # Long enough between checks for the test to look before the next one.
    config = OperatorConfig(interval=6.0, retry_delay=0.5)
    async with operator(HOME, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)
        await cluster.wait_planned(*INVERTER, 1)  # right after a drift check
        # Drift the next check corrects, its Zap write answered 2 s after it took effect.
        (cloud,) = (d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001")
        sims.novacore.remove_device(cloud.id)
        sims.zaps[ZAP].remove_device("SG0001")
        sims.zaps[ZAP].faults.answer_delay_ms = 2000
        deadline = time.monotonic() + 30
        while "SG0001" not in sims.zaps[ZAP].devices:
            assert time.monotonic() < deadline, "no drift check added the inverter back"
            await asyncio.sleep(0.01)

        await cluster.patch(*INVERTER, {"metadata": {"annotations": {PAUSED: "true"}}})
        await cluster.wait_reason(*INVERTER, "Paused", type_="Synced")

        async def provisioned() -> bool:
            return any(d.hardware_id == "SG0001" for d in sims.novacore.devices.values())

        # The check begun before the pause lands its writes, then its status.
        await cluster.wait_for(provisioned, what="the inverter provisioned again")
        sims.zaps[ZAP].faults.answer_delay_ms = 0
        (again,) = (d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001")

        async def recorded() -> bool:
            status = await cluster.status(*INVERTER)
            return status.get("externalIds", {}).get("novacore") == again.id

        await cluster.wait_for(recorded, what="the check's status written")
        synced = await cluster.condition(*INVERTER, "Synced")
        assert synced is not None and synced["reason"] == "Paused", synced
