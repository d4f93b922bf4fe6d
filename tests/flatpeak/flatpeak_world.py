"""Harness of the Flatpeak tests: a fleet of one site with a postal address and two
Flatpeak devices (YAML text, so a test can vary it), and the simulated world for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.engine.apply import ApplyReport
from reconciler.engine.config import Settings, load_settings
from reconciler.engine.reconcile import PlanResult, Reconciler
from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Change
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sources import loader

API = "apiVersion: energy.reconciler.dev/v1alpha1"


def home(*, battery_model: str = "Powerwall 2", capacity: float = 13.5,
         location: str = "", with_pv: bool = True, street: str = "Storgatan 1",
         line2: str = "", city: str = "Malmö", post_code: str = "211 19") -> str:
    flatpeak = f"{{customerId: cus_1{', locationId: ' + location if location else ''}}}"
    flat = f", line2: {line2}" if line2 else ""
    text = f"""{API}
kind: Site
metadata: {{name: home}}
spec:
  displayName: Home
  timezone: Europe/Stockholm
  location:
    latitude: 55.61
    longitude: 12.97
    address: {{line1: {street}{flat}, city: {city}, postCode: "{post_code}", countryCode: SE}}
  flatpeak: {flatpeak}
---
{API}
kind: Device
metadata: {{name: home-battery}}
spec:
  siteRef: home
  flatpeak:
    referenceId: home-battery
    type: BATTERY_SYSTEM
    manufacturer: Tesla
    modelName: {battery_model}
    properties: {{capacityKwh: {capacity}, powerRatingExportKwh: 5, installDate: "2024-03-22"}}
"""
    if with_pv:
        text += f"""---
{API}
kind: Device
metadata: {{name: home-pv}}
spec:
  siteRef: home
  flatpeak: {{referenceId: home-pv, type: PV_SYSTEM, properties: {{pvTilt: 27, pvAzimuth: 180}}}}
"""
    return text


def fleet_of(text: str) -> Fleet:
    return loader.load_texts([("fleet.yaml", text)]).fleet()


@dataclass
class World:
    sims: SimFleet
    tmp: Path
    fleet: Fleet

    def settings(self, **overrides: str) -> Settings:
        return load_settings(self.sims.env() | {
            "RECONCILER_STATE_DIR": str(self.tmp / "state"), "RECONCILER_RETRIES": "2",
            **overrides})

    def reconciler(self, fleet: Fleet | None = None) -> Reconciler:
        return Reconciler(fleet or self.fleet, self.settings())

    async def plan(self, fleet: Fleet | None = None, *, prune: bool = False) -> PlanResult:
        async with self.reconciler(fleet) as reconciler:
            return await reconciler.plan(PlanOptions(audience=Audience.CLI, prune=prune))

    async def apply(self, fleet: Fleet | None = None, *, prune: bool = False) -> ApplyReport:
        async with self.reconciler(fleet) as reconciler:
            options = PlanOptions(audience=Audience.CLI, prune=prune)
            report = await reconciler.apply(await reconciler.plan(options))
        assert report.ok, report.as_dict()
        return report

    def device(self, reference_id: str) -> dict[str, Any]:
        return next(d for d in self.sims.flatpeak.devices.values()
                    if d["reference_id"] == reference_id)

    def location(self, reference_id: str = "home") -> dict[str, Any]:
        return next(loc for loc in self.sims.flatpeak.locations.values()
                    if loc["reference_id"] == reference_id)

    def add_device(self, reference_id: str, locations: list[str]) -> str:
        """A device some other system registered in the same account."""
        sim = self.sims.flatpeak
        device_id = f"dev_other_{len(sim.devices)}"
        sim.devices[device_id] = {
            "id": device_id, "object": "device", "live_mode": False, "reference_id": reference_id,
            "type": "OTHER", "locations": locations, "manufacturer": None, "model_code": None,
            "model_name": None, "properties": {}, "time_created": "2024-01-01T00:00:00Z",
            "account_id": self.sims.flatpeak_account, "last_seen": None}
        return device_id

    def add_location(self, reference_id: str) -> str:
        sim = self.sims.flatpeak
        location_id = f"loc_other_{len(sim.locations)}"
        sim.locations[location_id] = {
            "id": location_id, "object": "location", "reference_id": reference_id,
            "customer_id": None, "postal_address": {"address_line1": "Elsewhere 1"},
            "account_id": self.sims.flatpeak_account}
        return location_id


def pending(result: PlanResult) -> dict[str, Change]:
    return {c.address: c for c in result.plan.pending}
