"""A Warning says a problem once: while an object stays invalid or blocked, the drift
checks that find it so again post no more."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from harness import PATIENT_SETTINGS, Cluster, operator, patient_zaps
from objects import HOME, ZAP, declare

# The inverter's serial check finds another serial: its changes are blocked.
BLOCKED = HOME.replace("hardwareId: SG0001", "hardwareId: SG0099")


# The battery as the Zap lists it once added.
BATTERY_ON_ZAP = "ferroamp_192.168.1.70"


async def _warnings(cluster: Any, name: str) -> list[str]:
    return [
        f"{e.get('reason')}: {e.get('message')}"
        for e in await cluster.events_about(name, type_="Warning")
    ]


async def test_warnings_are_posted_once_per_problem(tmp_path: Path, monkeypatch: Any) -> None:
    # A read that fails in between is another problem (Ready says it), and the blocked
    # change found again after it is said again: the reads are given time enough not to
    # fail on a loaded machine.
    async with operator(HOME, tmp_path, monkeypatch, before_start=patient_zaps,
                        settings=PATIENT_SETTINGS) as (cluster, _):
        docs = await declare(cluster, BLOCKED)
        # An unknown device type (the emulator does not validate against the CRD's schema,
        # as an API server with an older CRD would not either).
        battery = next(d for d in docs if d["metadata"]["name"] == "home-battery")
        invalid = json.loads(json.dumps(battery))
        invalid["metadata"]["name"] = "toaster"
        invalid["spec"]["deviceType"] = "toaster"
        await cluster.create(invalid)
        await cluster.wait_condition("Device", "home-inverter", "Verified", status="False")
        await cluster.wait_condition("Device", "toaster", "Ready", status="False")
        await cluster.wait_all_planned((("Device", "home-inverter"), ("Device", "toaster")), 3)
        for name in ("home-inverter", "toaster"):
            warnings = await _warnings(cluster, name)
            failed = [w for w in warnings if w.startswith("Failed:")]
            assert len(failed) == 1, warnings


async def _apply_failures(cluster: Cluster, name: str) -> list[str]:
    """The ApplyFailed Warnings about `name`, once kopf posted all it queued so far."""
    body = await cluster.get("Device", name)
    assert body is not None
    await cluster.events_posted(body)
    return [w for w in await _warnings(cluster, name) if w.startswith("ApplyFailed:")]


async def test_a_failing_apply_is_warned_of_once_until_it_is_fixed(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A change that keeps failing posts one ApplyFailed Warning, not one per drift check
    that finds it failing again; once the Device converged, the same failure coming back
    is said again."""
    async with operator(HOME, tmp_path, monkeypatch, before_start=patient_zaps,
                        settings=PATIENT_SETTINGS) as (cluster, sims):
        [battery] = sims.lans["home"].mqtt_devices.values()
        battery.online = False  # the Zap answers 503: it cannot reach the device
        await declare(cluster)
        await cluster.wait_reason("Device", "home-battery", "ApplyFailed",
                                  what="the battery's addition failed")
        # Each drift check tries the addition again, and fails it again the same way.
        await cluster.wait_planned("Device", "home-battery", 3)
        ready = await cluster.condition("Device", "home-battery", "Ready")
        assert ready is not None and ready["reason"] == "ApplyFailed", ready
        # One Warning for each change the failure left undone (the battery's addition,
        # and what follows it), once each.
        failures = Counter(await _apply_failures(cluster, "home-battery"))
        assert failures and set(failures.values()) == {1}, failures

        battery.online = True
        await cluster.wait_condition("Device", "home-battery", "Ready")
        # The battery gone from the Zap (reset), and out of reach again: the same addition
        # fails again, a problem come back, said anew (once).
        battery.online = False
        assert sims.zaps[ZAP].remove_device(BATTERY_ON_ZAP)
        await cluster.wait_reason("Device", "home-battery", "ApplyFailed",
                                  what="the battery's addition failed again")
        await cluster.wait_planned("Device", "home-battery", 3)
        later = Counter(await _apply_failures(cluster, "home-battery")) - failures
        assert later and set(later.values()) == {1}, later
        # The addition's own failure, said before, is said again (its provisioning in
        # Novacore, done meanwhile, is not left undone this time).
        [added] = [m for m in failures if "[zap]: create failed" in m]
        assert added in later, (added, later)
