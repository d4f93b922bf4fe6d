"""A DER declared in its own document (kind DER) reconciles its Device's changes: once the
Device moved to a gateway of another Site, the DER's reconcile plans the move as the
Device's own does (one `moved` update keeping the Novacore device's id), reading where the
Device was last placed from the Device's status, instead of a new device in the Site it
moved to. In observe mode, so both objects keep planning the move: the Device's status is
not moved on by an apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import KopfRuns, documents, operator
from objects import BATTERY, rewire_to_the_cabin, two_sites

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.operator.config import OperatorConfig
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sources.loader import load_texts

FLEET = two_sites(der_document=True)


def _novacore_lines(body: dict[str, Any] | None) -> list[str]:
    """What the object's last plan says of the battery's Novacore device."""
    actions = (((body or {}).get("status") or {}).get("lastPlan") or {}).get("actions") or []
    return [line for line in actions if " device/bat[novacore] " in line]


# The cabin in another organisation: the move is a new device there and the old one
# deleted (`plan.moves`); planned as a create alone, the old device would be left behind.
OTHER_ORG = two_sites("org-cabin", der_document=True)


@pytest.mark.parametrize(
    ("fleet", "action"),
    [(FLEET, "~ device/bat[novacore] update"), (OTHER_ORG, "-/+ device/bat[novacore] replace")],
    ids=["same-organisation", "other-organisation"],
)
async def test_a_stand_alone_der_plans_its_moved_device_as_the_device_does(
    fleet: str, action: str, tmp_path: Path, monkeypatch: Any
) -> None:
    assert "org-cabin" in fleet or fleet == FLEET
    config = OperatorConfig(interval=1.0, retry_delay=0.5, mode="observe")
    async with operator(fleet, tmp_path, monkeypatch, config=config) as (cluster, sims):
        # Provisioned at home beforehand, as `reconciler apply` does.
        settings = load_settings(sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "cli")})
        async with Reconciler(load_texts([("f.yaml", fleet)]).fleet(), settings) as cli:
            assert (await cli.apply(await cli.plan(PlanOptions(audience=Audience.CLI)))).ok
        [old] = [d for d in sims.novacore.devices.values() if d.hardware_id == BATTERY]
        writes = sims.writes()
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "bat", "Ready")
        await cluster.wait_condition("DER", "bat-battery", "Ready")

        rewire_to_the_cabin(sims)
        await cluster.patch("Device", "bat", {"spec": {"gatewayRef": "cabin-zap"}})

        async def device_planned() -> list[str]:
            return _novacore_lines(await cluster.get("Device", "bat"))

        [line] = await cluster.wait_for(device_planned, what="the move planned")
        assert line == action, line
        await cluster.wait_planned("DER", "bat-battery", 2)
        der = await cluster.get("DER", "bat-battery")
        assert _novacore_lines(der) == [line], der
        assert sims.writes() == writes, "observe mode"
        assert [d.id for d in sims.novacore.devices.values()] == [old.id]


async def test_a_stand_alone_der_writes_nothing_for_a_paused_device(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """Pausing a Device pauses what is written for it: its stand-alone DER, which applies
    the Device's changes, waits instead of adding the paused device to its Zap."""
    config = OperatorConfig(interval=1.0, retry_delay=0.5)
    async with operator(FLEET, tmp_path, monkeypatch, config=config) as (cluster, sims):
        for doc in documents(FLEET):
            if doc["kind"] == "Device":
                doc["metadata"]["annotations"] = {"energy.reconciler.dev/paused": "true"}
            await cluster.create(doc)
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        synced = await cluster.wait_condition("Device", "bat", "Synced", status="False")
        assert synced["reason"] == "Paused"
        ready = await cluster.wait_condition("DER", "bat-battery", "Ready", status="False")
        assert ready["reason"] == "WaitingForDependency"
        assert "Device 'bat' is paused" in ready["message"], ready
        # Three more retries of the DER (every 0.5 s): none wrote.
        await runs.wait("bat-battery", "Handler 'create-ders'", 3)
        assert not any(d.hardware_id == BATTERY for d in sims.novacore.devices.values())
        assert all(BATTERY not in zap.devices for zap in sims.zaps.values())
