"""A field deleted from an object's spec, through the operator: a Zap connection setting is
set back to the Zap's default (the device added again), and one with no safe default (a
Novacore `manufacturer`) is said once, by an event, to be left as it is, writing nothing.
The CLI knows what was declared from its inventory; the operator keeps the record in each
object's status (`status.declaredFields`), written once the object's reconcile converged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fleet_yaml import novacore_site, stream, sungrow_inverter, zap_gateway
from harness import WAIT, Cluster, KopfRuns, documents, kopf_handled, operator
from kube_emulator import Emulator
from objects import ZAP

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.model.declared import declared_paths
from reconciler.operator.config import OperatorConfig
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts


def _fleet(*, port: bool = True, manufacturer: bool = True) -> str:
    """Home, its Zap, and an inverter on Modbus TCP port 1502 (or the default), with a
    manufacturer (or none)."""
    inverter = sungrow_inverter(
        "home-inverter", "home-zap", "SG0001", "192.168.1.60",
        extra="manufacturer: Sungrow" if manufacturer else "",
    )
    if port:
        inverter = inverter.replace("profile: sungrow}", "profile: sungrow, port: 1502}")
    return stream(novacore_site(), zap_gateway(), inverter)


def _port(sims: SimFleet) -> int | None:
    device = sims.zaps[ZAP].device("SG0001")
    return int(device.connection["port"]) if device is not None else None


def _declared(fleet: str) -> list[str]:
    """The fields the inverter's YAML writes (`model.declared`), as a status records them."""
    inverter = load_texts([("fleet.yaml", fleet)]).fleet().devices["home-inverter"]
    return sorted(declared_paths(inverter.spec))


async def _applied(cluster: Cluster, sims: SimFleet) -> list[str]:
    """The inverter on its Zap at port 1502; the fields its status records."""
    await cluster.wait_condition("Device", "home-inverter", "Ready")
    assert _port(sims) == 1502

    async def recorded() -> list[str] | None:
        fields = (await cluster.status("Device", "home-inverter")).get("declaredFields")
        return list(fields) if fields else None

    return list(await cluster.wait_for(recorded, what="status.declaredFields"))


async def test_a_port_deleted_from_a_devices_spec_is_set_back_to_the_zaps_default(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(
        _fleet(), tmp_path, monkeypatch,
        # The inverter answers at the Zap's default port too, where the reset adds it.
        before_start=lambda sims: sims.seed_fleet(
            load_texts([("fleet.yaml", _fleet(port=False))]).fleet()
        ),
    ) as (cluster, sims):
        await cluster.create_all(documents(_fleet()))
        fields = await _applied(cluster, sims)
        assert "connection.modbusTcp.port" in fields

        # Deleted while the Zap does not answer: the reconciles that cannot reset it keep
        # the record (kopf's own annotation takes the spec as handled all the same).
        await sims.zaps[ZAP].set_offline("refuse")
        await cluster.patch(
            "Device", "home-inverter",
            {"spec": {"connection": {"modbusTcp": {"port": None}}}},
        )
        await cluster.wait_reason("Device", "home-inverter", "Deferred")
        await cluster.wait_planned("Device", "home-inverter", 2)
        status = await cluster.status("Device", "home-inverter")
        assert "connection.modbusTcp.port" in status["declaredFields"]
        await sims.zaps[ZAP].set_offline("online")

        async def reset() -> bool:
            return _port(sims) == 502

        await cluster.wait_for(reset, what="the inverter on port 502")
        await cluster.wait_condition("Device", "home-inverter", "Ready")

        async def recorded() -> list[str] | None:
            status = await cluster.status("Device", "home-inverter")
            now = status.get("declaredFields") or []
            return now if "connection.modbusTcp.port" not in now else None

        now = await cluster.wait_for(recorded, what="the port recorded removed")
        assert "connection.modbusTcp.host" in now
        replaced = await cluster.events_about("home-inverter", reason="Replaced")
        assert len(replaced) == 1, replaced
        # Converged: the next reconciles compare with the new record, and leave it there.
        await cluster.wait_planned("Device", "home-inverter", 2)
        assert _port(sims) == 502
        assert len(await cluster.events_about("home-inverter", reason="Replaced")) == 1


async def test_a_field_with_no_default_deleted_from_a_spec_is_said_once_and_left(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(_fleet(), tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(_fleet()))
        fields = await _applied(cluster, sims)
        # What the YAML writes, as `kubectl apply` sends it: no default the model fills in.
        assert fields == _declared(_fleet()), fields
        assert "manufacturer" in fields and "connection.modbusTcp.unitId" not in fields
        await cluster.wait_planned("Device", "home-inverter", 1)
        writes = sims.writes()

        await cluster.patch("Device", "home-inverter", {"spec": {"manufacturer": None}})

        async def said() -> list[dict[str, Any]]:
            return await cluster.events_about("home-inverter", reason="NoLongerManaged")

        [event] = await cluster.wait_for(said, what="the NoLongerManaged event")
        assert event["type"] == "Normal"
        assert event["message"].startswith(
            "spec.manufacturer of Device home-inverter was declared at the last apply and is "
            "removed from the spec; its value on Novacore is left as it is"
        ), event["message"]
        await cluster.wait_planned("Device", "home-inverter", 2)
        assert len(await said()) == 1, "said once, not at every drift check"
        status = await cluster.status("Device", "home-inverter")
        assert "manufacturer" not in status["declaredFields"]
        assert status["lastPlan"]["summary"] == "in sync"
        assert sims.writes() == writes, "the value is left as it is"
        [device] = [d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001"]
        assert device.manufacturer == "Sungrow"


async def test_a_drift_check_with_the_status_from_before_the_edits_does_not_say_it_again(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The drift check runs beside the update handler, with the body kopf has: until the
    handler's status reaches it, that status still records the field as declared. kopf's
    patch after the handler is held in the API server here, so a drift check runs with
    the old record and converges too: the field's event is still said once."""
    async with operator(_fleet(), tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(_fleet()))
        await _applied(cluster, sims)
        await cluster.wait_planned("Device", "home-inverter", 1)
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)

        handled = emulator.hold("PATCH", "/devices/home-inverter", kopf_handled)
        try:
            await cluster.patch("Device", "home-inverter", {"spec": {"manufacturer": None}})
            await asyncio.wait_for(handled.arrived.wait(), WAIT)
            # A drift check with the status from before the edit's reconcile wrote it.
            await runs.wait("home-inverter", "Timer 'drift-devices'", 1)
        finally:
            handled.release.set()
        await cluster.wait_planned("Device", "home-inverter", 2)
        said = await cluster.events_about("home-inverter", reason="NoLongerManaged")
        assert len(said) == 1, [event["message"] for event in said]
        status = await cluster.status("Device", "home-inverter")
        assert "manufacturer" not in status["declaredFields"]


async def test_observe_mode_says_a_field_left_as_it_is_in_the_last_plan(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """In observe mode nothing is applied: with another change of the object pending, no
    reconcile converges to say the note by an event, so every plan says it in
    `status.lastPlan.notes`, as `reconciler plan` lists it at every plan."""
    config = OperatorConfig(interval=1.0, retry_delay=0.5, mode="observe")
    async with operator(_fleet(), tmp_path, monkeypatch, config=config) as (cluster, sims):
        # Provisioned beforehand, as `reconciler apply` does.
        settings = load_settings(sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "cli")})
        async with Reconciler(load_texts([("f.yaml", _fleet())]).fleet(), settings) as cli:
            assert (await cli.apply(await cli.plan(PlanOptions(audience=Audience.CLI)))).ok
        writes = sims.writes()
        await cluster.create_all(documents(_fleet()))
        assert "manufacturer" in await _applied(cluster, sims)

        # The manufacturer removed, and the display name changed: an update is pending.
        await cluster.patch(
            "Device", "home-inverter",
            {"spec": {"manufacturer": None, "displayName": "Roof inverter"}},
        )

        async def noted() -> list[str]:
            plan = (await cluster.status("Device", "home-inverter")).get("lastPlan") or {}
            return list(plan.get("notes") or [])

        [note] = await cluster.wait_for(noted, what="lastPlan.notes")
        assert note.startswith(
            "spec.manufacturer of Device home-inverter was declared at the last apply and is "
            "removed from the spec; its value on Novacore is left as it is"
        ), note
        ready = await cluster.wait_reason("Device", "home-inverter", "ChangesPending")
        assert ready["message"] == "observe mode: 1 to update not applied", ready
        await cluster.wait_planned("Device", "home-inverter", 2)
        assert await noted() == [note], "said by every plan while it is pending"
        status = await cluster.status("Device", "home-inverter")
        assert "manufacturer" in status["declaredFields"], "not converged: the record stays"
        assert sims.writes() == writes, "observe mode"
