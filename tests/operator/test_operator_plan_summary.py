"""`status.lastPlan` of each object: its summary counts every change per action, and
blocked ones, as the CLI's plan summary does, on every path that plans the object."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from fleet_yaml import stream, sungrow_inverter, zap_gateway
from harness import operator
from objects import HOME, declare

from reconciler.operator.config import OperatorConfig

# The inverter declared with a hardware id the device does not report: with checkSerial,
# its identity check is blocked before anything is written.
WRONG_SERIAL = HOME.replace("hardwareId: SG0001", "hardwareId: SG0099")
# A second gateway that does not answer (nothing listens on port 9), and a device behind
# it, which waits for the gateway's claim.
OFFLINE = stream(
    zap_gateway("far-zap", serial="zap-00000000000000f9", url="http://127.0.0.1:9"),
    sungrow_inverter("far-inverter", "far-zap", "SG0009", "192.168.1.61"),
)


def _counted(summary: str) -> dict[str, int]:
    """"2 to create, 1 blocked" -> {"create": 2, "blocked": 1}."""
    out: dict[str, int] = {}
    for part in summary.split(", "):
        found = re.fullmatch(r"(\d+) (?:to )?(\w+)", part)
        assert found, f"not a plan summary: {summary!r}"
        label = found.group(2)
        out["defer" if label == "deferred" else label] = int(found.group(1))
    return out


def _expected(actions: list[str]) -> dict[str, int]:
    """What the summary should say of the `lastPlan.actions` lines ("+ device/x[zap] create")."""
    counts: Counter[str] = Counter()
    for line in actions:
        words = line.split()
        counts[words[2]] += 1
        if words[-1] == "[blocked]":
            counts["blocked"] += 1
    return dict(counts)


async def _last_plan(cluster: Any, kind: str, name: str, *, least: int) -> dict[str, Any]:
    """The object's lastPlan once it holds at least `least` changes."""

    async def planned() -> dict[str, Any] | None:
        plan = (await cluster.status(kind, name)).get("lastPlan")
        return plan if plan and plan["changes"] >= least else None

    return await cluster.wait_for(  # type: ignore[no-any-return]
        planned, what=f"{kind}/{name} planned with {least}+ changes"
    )


def _assert_consistent(plan: dict[str, Any]) -> None:
    assert len(plan["actions"]) == plan["changes"], plan
    assert _counted(plan["summary"]) == _expected(plan["actions"]), plan
    blocked = _expected(plan["actions"]).get("blocked", 0)
    assert sum(_counted(plan["summary"]).values()) - blocked == plan["changes"], plan


async def test_observe_mode_counts_every_change(tmp_path: Path, monkeypatch: Any) -> None:
    config = OperatorConfig(interval=1.0, retry_delay=0.5, mode="observe")
    async with operator(HOME, tmp_path, monkeypatch, config=config) as (cluster, _):
        await declare(cluster)
        plan = await _last_plan(cluster, "Device", "home-inverter", least=2)
        _assert_consistent(plan)
        assert any(n > 1 for n in _counted(plan["summary"]).values()), plan
        ready = await cluster.wait_condition("Device", "home-inverter", "Ready", status="False")
        assert ready["message"] == f"observe mode: {plan['summary']} not applied"


async def test_blocked_changes_are_counted_as_blocked(tmp_path: Path, monkeypatch: Any) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, _):
        await declare(cluster, WRONG_SERIAL)
        await cluster.wait_condition("Device", "home-inverter", "Verified", status="False")
        plan = await _last_plan(cluster, "Device", "home-inverter", least=1)
        _assert_consistent(plan)
        assert _counted(plan["summary"]).get("blocked"), plan


async def test_a_device_waiting_for_its_gateway_reports_its_plan(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, _):
        await declare(cluster, stream(HOME, OFFLINE))
        waiting = await cluster.wait_condition(
            "Device", "far-inverter", "Ready", status="False"
        )
        plan = await _last_plan(cluster, "Device", "far-inverter", least=1)
        assert waiting["reason"] in ("WaitingForDependency", "Deferred"), waiting
        _assert_consistent(plan)
