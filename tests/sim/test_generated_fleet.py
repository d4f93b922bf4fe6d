"""A generated fleet (`reconciler sim up --sites N`, the benchmarks) is one a fresh apply
converges: its next plan is a no-op. Its sites declare no hardware id twice in their
organisation (an MQTT device is named by its broker's address, so each site has a subnet
of its own), or the sites provisioned later would take over the devices of earlier ones."""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sim.generate import write_fleet
from reconciler.sources import loader


async def test_a_generated_fleet_converges_in_one_apply(tmp_path: Path) -> None:
    write_fleet(tmp_path / "sites", 3, 10)
    fleet = loader.load_fleet([tmp_path / "sites"])
    hardware_ids = [d.spec.hardware_id for d in fleet.devices.values()]
    assert len(hardware_ids) == 30 and len(set(hardware_ids)) == 30
    sims = SimFleet()
    sims.seed_fleet(fleet, shared_modbus=True)
    await sims.start()
    try:
        settings = load_settings(sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state")})
        async with Reconciler(fleet, settings) as engine:
            report = await engine.apply(await engine.plan(PlanOptions(audience=Audience.CLI)))
            assert report.ok and report.counts()["done"] > 0, report.counts()
        async with Reconciler(fleet, settings) as engine:
            again = await engine.plan(PlanOptions(audience=Audience.CLI))
        pending = [c.address for c in again.plan.changes if c.is_change]
        assert pending == [], pending[:5]
        devices = {d.hardware_id for d in sims.novacore.devices.values()}
        assert devices == set(hardware_ids)
    finally:
        await sims.stop()
