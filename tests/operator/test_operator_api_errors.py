"""The Kubernetes API answering errors, as a real one does under load or when another writer
got there first: a status patch refused with 409, 500 or 503 (`kube_emulator.Emulator.fail`).
The operator keeps each object's status and finalizer, and applies each change once: a
status a handler could not write is written by the next drift check, whose timer goes on
after a refused write of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import Cluster, operator
from objects import HOME, ZAP, declare

from reconciler.operator.status_writes import CONFLICT_ATTEMPTS
from reconciler.sim.fleet import SimFleet

STATUS = "/devices/home-battery/status"


def _versioned(body: Any) -> bool:
    """A patch made on a version of the object (`metadata.resourceVersion`)."""
    return isinstance(body, dict) and "resourceVersion" in (body.get("metadata") or {})


async def _converged_once(cluster: Cluster, sims: SimFleet) -> None:
    """The battery Ready with its status and finalizer whole, drift checks going on, and
    each device added to the Zap once."""
    await cluster.wait_condition("Device", "home-battery", "Ready", timeout=60)
    await cluster.wait_planned("Device", "home-battery", 2)
    battery = await cluster.get("Device", "home-battery")
    assert battery is not None
    assert battery["metadata"].get("finalizers") == ["energy.reconciler.dev/finalizer"]
    assert battery["status"].get("appliedSecrets"), "the fingerprint is kept"
    zap = sims.zaps[ZAP]
    assert zap.requests["POST /api/devices"] == 2, "each device added once"
    assert zap.requests["DELETE /api/devices/{sn}"] == 0


@pytest.mark.parametrize("status", [500, 503])
async def test_a_status_patch_refused_with_a_server_error_is_written_again(
    tmp_path: Path, monkeypatch: Any, status: int
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        assert cluster.emulator is not None
        fault = cluster.emulator.fail("PATCH", STATUS, status, 3)
        await declare(cluster)
        await _converged_once(cluster, sims)
        assert fault.count == 0, "the patches were refused"


async def test_a_drift_check_goes_on_after_its_status_patch_conflicts(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """kopf retries no 409: the create handler's status patch is lost, and so is the next
    drift check's, read again and refused at each attempt. Written by kopf, the first would
    have ended the drift timer for good and the Device would never have said Ready."""
    logs: list[str] = []
    async with operator(HOME, tmp_path, monkeypatch, logs=logs) as (cluster, sims):
        assert cluster.emulator is not None
        # kopf's patch (the handler's) carries no resourceVersion; a drift check's own
        # write does (`status_writes`): each is refused, whichever comes first.
        handler = cluster.emulator.fail("PATCH", STATUS, 409, 1, body=lambda b: not _versioned(b))
        drift = cluster.emulator.fail("PATCH", STATUS, 409, CONFLICT_ATTEMPTS, body=_versioned)
        await declare(cluster)
        await _converged_once(cluster, sims)
        assert (handler.count, drift.count) == (0, 0), "the patches were refused"
        assert any("Device/home-battery: status not written (HTTP 409" in line
                   for line in logs), "a drift check's own write was refused, and said so"

