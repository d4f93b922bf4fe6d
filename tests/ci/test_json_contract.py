"""The JSON a CI job reads, held to what the README says of it: every key that `plan -o
json` and `apply -o json` emit for the examples against the simulators (a fresh fleet, one
applied, drifted, with objects nothing declares and --prune, with deferred and blocked
changes) is named there, and standard output is that one document, holding no secret,
whatever is warned about on standard error."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ci_helpers import EXAMPLES, REPO, Completed, ci_env, run

from reconciler.sim.fleet import SimFleet
from reconciler.sources import loader

pytestmark = pytest.mark.slow

RECONCILER = [sys.executable, "-m", "reconciler"]
FERROAMP_PASSWORD = "ferroamp-secret-7f3a"
AMBIBOX_PASSWORD = "ambibox-secret-91c2"
OFFLINE_ZAP = "zap-a0b1c2d3e4f50617"  # villa-lund-zap, whose Ambibox reads AMBIBOX_MQTT_PASSWORD


@dataclass
class Checkout:
    sims: SimFleet
    root: Path
    state: Path
    env: dict[str, str]

    async def cli(self, *args: str, env: dict[str, str] | None = None,
                  unset: str | None = None) -> Completed:
        environ = {k: v for k, v in (self.env | (env or {})).items() if k != unset}
        return await run([*RECONCILER, *args], env=environ, cwd=self.root, within=60)

    async def json(self, *args: str, code: int, unset: str | None = None) -> Any:
        result = await self.cli(*args, "-o", "json", unset=unset)
        assert result.code == code, result.text
        return json.loads(result.stdout)


@pytest.fixture
async def checkout(tmp_path: Path) -> AsyncIterator[Checkout]:
    root = tmp_path / "checkout"
    shutil.copytree(EXAMPLES, root / "sites")
    secret = tmp_path / "secrets" / "ferroamp-mqtt" / "password"
    secret.parent.mkdir(parents=True)
    secret.write_text(FERROAMP_PASSWORD)
    sims = SimFleet()
    sims.seed_fleet(loader.load_fleet([root / "sites"]))
    await sims.start()
    env = ci_env(**sims.env(), RECONCILER_STATE_DIR=str(tmp_path / "state"),
                 RECONCILER_SECRETS_DIR=str(tmp_path / "secrets"),
                 AMBIBOX_MQTT_PASSWORD=AMBIBOX_PASSWORD)
    yield Checkout(sims, root, tmp_path / "state", env)
    await sims.stop()


def readme_part(start: str, end: str) -> str:
    """The README from `start` to `end`, its line breaks as spaces."""
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    begin = text.index(start)
    return text[begin:text.index(end, begin)]


def keys(objects: list[dict[str, Any]]) -> set[str]:
    return {key for item in objects for key in item}


def plan_keys(doc: dict[str, Any]) -> set[str]:
    """The keys of a plan document, but not those of `before`, `after` and a diff's values:
    the fields of an object as its platform has them."""
    endpoints = doc["inputs"].get("endpoints", {})
    return (set(doc) | set(doc["inputs"]) | set(endpoints) | keys(list(endpoints.values()))
            | set(doc["options"]) | set(doc["summary"]) | keys(doc["changes"])
            | keys([d for c in doc["changes"] for d in c["diff"]]) | keys(doc["unmanaged"]))


def report_keys(report: dict[str, Any]) -> set[str]:
    """The keys of an apply report, but not those of an outcome's `detail`, which are
    what each platform answered."""
    return set(report) | set(report["counts"]) | keys(report["outcomes"])


def without_p1(sites: Path) -> None:
    """home-solna-p1 deleted from git: its Zap device and Novacore device stay, unmanaged."""
    path = sites / "home-solna" / "devices.yaml"
    documents = path.read_text(encoding="utf-8").split("\n---\n")
    kept = [d for d in documents if "name: home-solna-p1\n" not in d]
    assert len(kept) == len(documents) - 1
    path.write_text("\n---\n".join(kept), encoding="utf-8")


async def test_every_key_of_the_json_plan_and_apply_report_is_documented(
        checkout: Checkout) -> None:
    plans: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    # A warning on stderr (a gateway URL for no declared serial) leaves stdout one document.
    warned = checkout.env["RECONCILER_GATEWAY_URLS"] + ",zap-ffffffffffffffff=http://127.0.0.1:9"
    result = await checkout.cli("plan", "sites", "-o", "json", "--detailed-exitcode",
                                env={"RECONCILER_GATEWAY_URLS": warned})
    assert result.code == 2 and "warning: RECONCILER_GATEWAY_URLS" in result.stderr, result.text
    plans.append(json.loads(result.stdout))
    reports.append(await checkout.json("apply", "sites", "--auto-approve", code=0))
    plans.append(await checkout.json("plan", "sites", "--detailed-exitcode", code=0))

    # Drift in the cloud, a Device deleted from git, and a password changed (a replace).
    [device] = [d for d in checkout.sims.novacore.devices.values()
                if d.name == "Sungrow SH10RT"]
    checkout.sims.novacore.rename_device(device.id, "renamed in the cloud")
    without_p1(checkout.root / "sites")
    (checkout.state.parent / "secrets" / "ferroamp-mqtt" / "password").write_text("rotated")
    plans.append(await checkout.json("plan", "sites", "--detailed-exitcode", code=2))
    plans.append(await checkout.json("plan", "sites", "--prune", code=0))
    reports.append(await checkout.json("apply", "sites", "--auto-approve", "--prune", code=0))
    reports.append(await checkout.json("apply", "sites", "--auto-approve", code=0))

    # A gateway that does not answer, and a password nobody gave.
    await checkout.sims.zaps[OFFLINE_ZAP].set_offline("refuse")
    (checkout.root / "sites" / "villa-lund-v2x.yaml").write_text(
        (checkout.root / "sites" / "villa-lund-v2x.yaml").read_text(encoding="utf-8")
        .replace("Ambibox V2X charger", "Ambibox charger"), encoding="utf-8")
    plans.append(await checkout.json("plan", "sites", "--detailed-exitcode", code=2))
    reports.append(await checkout.json("apply", "sites", "--auto-approve", code=0))
    unset = "AMBIBOX_MQTT_PASSWORD"
    plans.append(await checkout.json("plan", "sites", unset=unset, code=1))
    reports.append(await checkout.json("apply", "sites", "--auto-approve", unset=unset, code=1))

    # The situations above are those the test means to cover.
    actions = {a for p in plans for c in p["changes"] for a in c["actions"]}
    assert {"no-op", "create", "update", "delete", "claim", "verify", "defer"} <= actions
    assert any(c["blocked"] for p in plans for c in p["changes"])
    assert {"site", "gateway"} <= keys([u for p in plans for u in p["unmanaged"]])
    statuses = {o["status"] for r in reports for o in r["outcomes"]}
    assert {"done", "blocked", "deferred"} <= statuses
    assert "replace" in {o["action"] for r in reports for o in r["outcomes"]}

    plan_part = readme_part("The JSON plan (`-o json`", "`reconciler apply -o json`")
    report_part = readme_part("`reconciler apply -o json`", "**GitHub Actions.**")
    # The version emitted, and a note of what each minor version up to it added.
    major, minor = plans[0]["format_version"].split(".")
    assert f'`format_version` (`"{major}.{minor}"`' in plan_part
    assert [n for n in range(1, int(minor) + 1) if f" {major}.{n} `" not in plan_part] == []
    undocumented = sorted(k for k in set().union(*map(plan_keys, plans))
                          if f"`{k}`" not in plan_part)
    assert undocumented == [], "keys of the JSON plan the README does not name"
    assert sorted(a for a in actions if f"`{a}`" not in plan_part) == []
    undocumented = sorted(k for k in set().union(*map(report_keys, reports))
                          if f"`{k}`" not in report_part)
    assert undocumented == [], "keys of the apply report the README does not name"
    assert sorted(a for a in {o["action"] for r in reports for o in r["outcomes"]}
                  if f"`{a}`" not in plan_part + report_part) == []

    # No secret in any of it: tokens, the Flatpeak key, MQTT passwords, Enapter credentials.
    config = json.loads((checkout.state / "secrets" / "h2-lab-ucm.json").read_text())
    secrets = {checkout.env["RECONCILER_NOVACORE_TOKEN"], checkout.env["RECONCILER_ENAPTER_TOKEN"],
               checkout.env["RECONCILER_FLATPEAK_API_KEY"], FERROAMP_PASSWORD, AMBIBOX_PASSWORD,
               "rotated", config["mqtt_credentials"]["private_key"],
               config["mqtt_credentials"]["certificate"]}
    shown = json.dumps([plans, reports])
    assert [s[:12] for s in secrets if len(s) > 4 and s in shown] == []
