"""Harness of the Enapter tests: fleets written as YAML text, the simulated world for them
(on loopback, in the test's own event loop), and one Reconciler per plan or apply, as the
CLI does, with its state directory under the test's tmp_path."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.engine.apply import ApplyReport
from reconciler.engine.config import Settings, load_settings
from reconciler.engine.reconcile import PlanResult, Reconciler
from reconciler.model.fleet import Fleet
from reconciler.plan import markdown, render
from reconciler.plan.actions import Change
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sources import loader

API = "apiVersion: energy.reconciler.dev/v1alpha1"

GW = "GW0000000000000000000000000000001"
UCM = "UCM000000000000000000000000000001"
UCM_MQTT = "UCM000000000000000000000000000002"
VUCM = "V00000000000000000000000000000001"
EL = "EL0000000000000000000000000000001"
MASTER = "LM0000000000000000000000000000001"
SLAVE = "LS0000000000000000000000000000001"


def site_and_gateway(version: str = "3.1.0") -> str:
    return f"""{API}
kind: Site
metadata: {{name: lab}}
spec:
  displayName: H2 Lab
  timezone: Europe/Rome
  location: {{name: Crespina, latitude: 43.57, longitude: 10.56}}
  enapter: {{}}
---
{API}
kind: Gateway
metadata: {{name: lab-gw}}
spec:
  siteRef: lab
  enapter: {{hardwareId: {GW}, firmwareVersion: {version}}}
"""


def device(name: str, enapter: str, *, hardware: str | None = None, gateway: bool = False,
           display: str | None = None) -> str:
    where = "gatewayRef: lab-gw" if gateway else "siteRef: lab"
    lines = [f"---\n{API}", "kind: Device", f"metadata: {{name: {name}}}", "spec:", f"  {where}"]
    if hardware:
        lines.append(f"  hardwareId: {hardware}")
    if display:
        lines.append(f"  displayName: {display}")
    lines.append(f"  enapter: {enapter}")
    return "\n".join(lines) + "\n"


def ucm(*, display: str = "Gas sensor UCM", slug: str = "gas-ucm") -> str:
    return device("lab-ucm", f"{{kind: ucm, slug: {slug}, configOutput: {{file: cfg/ucm.json}}}}",
                  hardware=UCM, display=display)


def lua(blueprint: str = "bp-gas-1") -> str:
    return device("lab-lua", f"{{kind: lua, runtimeRef: lab-ucm, blueprintId: {blueprint}, "
                             "slug: gas-1}", display="Gas sensor")


def every_kind(**changes: Any) -> str:
    return "".join([
        site_and_gateway(), ucm(**changes.get("ucm", {})), lua(**changes.get("lua", {})),
        device("lab-ucm-mqtt", "{kind: ucm, protocol: MQTT, configOutput: {file: cfg/mqtt.json}}",
               hardware=UCM_MQTT),
        device("lab-vucm", "{kind: vucm}", hardware=VUCM, gateway=True),
        device("lab-el", "{kind: embedded, embeddedType: ELECTROLYSER, slug: electrolyser-1}",
               hardware=EL, gateway=True, display="Electrolyser"),
        device("lab-link", "{kind: link_master}", hardware=MASTER, gateway=True),
        device("lab-slave", "{kind: link_slave, masterRef: lab-link}", hardware=SLAVE,
               gateway=True),
        device("lab-standalone", "{kind: standalone, configOutput: {file: cfg/standalone.json}}",
               display="Weather station"),
    ])


def fleet_of(text: str) -> Fleet:
    return loader.load_texts([("fleet.yaml", text)]).fleet()


@dataclass
class World:
    """The simulators plus the settings a CLI run against them would use."""

    sims: SimFleet
    tmp: Path
    fleet: Fleet

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    def env(self) -> dict[str, str]:
        return self.sims.env() | {"RECONCILER_STATE_DIR": str(self.state_dir),
                                  "RECONCILER_SECRETS_DIR": str(self.tmp / "secrets"),
                                  "RECONCILER_RETRIES": "2"}

    def settings(self) -> Settings:
        return load_settings(self.env())

    async def plan(self, fleet: Fleet | None = None, *, prune: bool = False) -> PlanResult:
        async with Reconciler(fleet or self.fleet, self.settings()) as reconciler:
            return await reconciler.plan(PlanOptions(audience=Audience.CLI, prune=prune))

    async def apply(self, fleet: Fleet | None = None, *, prune: bool = False,
                    audience: Audience = Audience.CLI) -> tuple[PlanResult, ApplyReport]:
        async with Reconciler(fleet or self.fleet, self.settings()) as reconciler:
            result = await reconciler.plan(PlanOptions(prune=prune, audience=audience))
            return result, await reconciler.apply(result)

    async def converge(self, fleet: Fleet | None = None) -> ApplyReport:
        """Apply, and check the apply succeeded."""
        _, report = await self.apply(fleet)
        assert report.ok, report.as_dict()
        return report


def pending(result: PlanResult) -> dict[str, Change]:
    return {c.address: c for c in result.plan.pending}


def renderings(result: PlanResult) -> str:
    """Every rendering of a plan a user or a CI job could see."""
    doc = result.document()
    return "\n".join([json.dumps(doc), render.render_text(doc), markdown.render_markdown(doc)])


def failures(report: ApplyReport) -> list[dict[str, Any]]:
    return [o.__dict__ for o in report.outcomes if o.status != "done"]


# What the `make_world` fixture (conftest.py) gives a test.
MakeWorld = Callable[[str], Awaitable[World]]
