"""The Kubernetes API answering errors, as a real one does under load: a status patch
refused with 500 or 503 (`kube_emulator.Emulator.fail`). The operator keeps each object's
status and finalizer, and applies each change once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import operator
from objects import HOME, ZAP, declare


@pytest.mark.parametrize("status", [500, 503])
async def test_a_refused_status_patch_is_written_again_and_nothing_applied_twice(
    tmp_path: Path, monkeypatch: Any, status: int
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        assert cluster.emulator is not None
        fault = cluster.emulator.fail("PATCH", "/devices/home-battery/status", status, 3)
        await declare(cluster)
        await cluster.wait_condition("Device", "home-battery", "Ready", timeout=60)
        assert fault.count == 0, "the patches were refused"
        await cluster.wait_planned("Device", "home-battery", 2)
        battery = await cluster.get("Device", "home-battery")
        assert battery is not None
        assert battery["metadata"].get("finalizers") == ["energy.reconciler.dev/finalizer"]
        assert battery["status"].get("appliedSecrets"), "the fingerprint is kept"
        zap = sims.zaps[ZAP]
        assert zap.requests["POST /api/devices"] == 2, "each device added once"
        assert zap.requests["DELETE /api/devices/{sn}"] == 0
