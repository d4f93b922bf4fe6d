"""A password rotated while kopf's watch lags behind the operator's own status writes: the
reconcile that finds no fingerprint in kopf's copy of the Device compares with the one its
process wrote last (`operator.applied_secrets`), and the device is given the new password,
once. Before, it took the new password for the one on the device, which kept the old."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import operator
from objects import HOME, SECRET, ZAP, declare

DELETE = "DELETE /api/devices/{sn}"


def _has_fingerprint(obj: dict[str, Any]) -> bool:
    return "appliedSecrets" in (obj.get("status") or {})


async def test_a_password_rotated_while_the_watch_lags_is_sent_again_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    rotated = "r0tated-while-lagging"  # a test value
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        assert cluster.emulator is not None
        # From the first status with a fingerprint on, kopf's watch brings nothing of the
        # battery: its copy of the status has none, as under load.
        lag = cluster.emulator.keep_events("devices", "home-battery", _has_fingerprint)
        await declare(cluster)
        zap = sims.zaps[ZAP]

        async def applied() -> dict[str, Any] | None:
            return (await cluster.status("Device", "home-battery")).get("appliedSecrets")

        first = await cluster.wait_for(applied, timeout=30, what="the password's fingerprint")
        # Drift checks ran from kopf's copy, which has no fingerprint.
        await cluster.wait_planned("Device", "home-battery", 2)
        assert lag.started and lag.kept, "the watch lags"
        assert zap.requests[DELETE] == 0
        await cluster.update_secret("ferroamp-mqtt", {"password": rotated})

        async def sent_again() -> dict[str, Any] | None:
            now = await applied()
            old = first["mqttPasswordFingerprint"]
            return now if now and now["mqttPasswordFingerprint"] != old else None

        second = await cluster.wait_for(sent_again, timeout=30, what="the new password sent")
        assert zap.requests[DELETE] == 1, "removed and added again with the new password"
        assert zap.devices["ferroamp_192.168.1.70"].password_set
        assert second["revision"] == first["revision"] + 1
        await cluster.wait_planned("Device", "home-battery", 3)
        assert zap.requests[DELETE] == 1, "sent once, while kopf's copy still has none"
        # The watch catches up: its copy and the process's record say the same.
        await cluster.emulator.show_events(lag)
        await cluster.wait_planned("Device", "home-battery", 3)
        assert zap.requests[DELETE] == 1, "sent once"
        assert (await applied()) == second
        everything = repr(await cluster.get("Device", "home-battery")) + repr(
            await cluster.events()
        )
        assert SECRET not in everything and rotated not in everything
