"""`deletionPolicy: Release` on a Device whose Gateway (or Site) object was deleted first:
the device is released from where its status says it was; when that is not recorded, the
finalizer stays, with a Warning and a condition saying why and what to do. A Device whose
spec was made invalid changes nothing outside, and its deletion honours the last valid
spec; when none was recorded, it goes touching nothing, and a Warning says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import ferroamp_battery, novacore_site, stream, zap_gateway
from harness import KopfRuns, operator
from objects import HOME, HOME_INVERTER, ZAP, declare

# The gateway is left alone when its object is deleted (Orphan); the inverter is released.
ORPHAN_GATEWAY = stream(novacore_site(), zap_gateway(), HOME_INVERTER, ferroamp_battery())


async def _declare(cluster: Any) -> dict[tuple[str, str], dict[str, Any]]:
    docs = await declare(cluster, ORPHAN_GATEWAY)
    await cluster.wait_condition("Device", "home-inverter", "Ready")
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


async def _delete(cluster: Any, kind: str, name: str) -> None:
    await cluster.delete(kind, name)
    await cluster.wait_gone(kind, name)


def _placed(sims: Any) -> tuple[bool, bool]:
    """Whether the inverter is on its Zap, and in Novacore."""
    cloud = any(d.hardware_id == "SG0001" for d in sims.novacore.devices.values())
    return "SG0001" in sims.zaps[ZAP].devices, cloud


async def test_a_device_is_released_after_its_gateway_object_is_gone(
    tmp_path: Path, monkeypatch: Any
) -> None:
    assert ORPHAN_GATEWAY.count("deletionPolicy: Release") == 1
    async with operator(ORPHAN_GATEWAY, tmp_path, monkeypatch) as (cluster, sims):
        await _declare(cluster)
        await _delete(cluster, "Gateway", "home-zap")
        assert _placed(sims) == (True, True), "the gateway object's deletion touched nothing"
        await _delete(cluster, "Device", "home-inverter")
        assert _placed(sims) == (False, False)
        assert sims.novacore.gateways[ZAP].org_id == "org-home", "the gateway stays claimed"


async def test_a_device_is_released_after_its_site_and_gateway_objects_are_gone(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(ORPHAN_GATEWAY, tmp_path, monkeypatch) as (cluster, sims):
        await _declare(cluster)
        await _delete(cluster, "Site", "home")
        await _delete(cluster, "Gateway", "home-zap")
        await _delete(cluster, "Device", "home-inverter")
        assert _placed(sims) == (False, False)


async def test_a_device_whose_gateway_is_unknown_keeps_its_finalizer_until_it_is_found(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    async with operator(ORPHAN_GATEWAY, tmp_path, monkeypatch) as (cluster, sims):
        docs = await _declare(cluster)
        # A status as an earlier operator wrote it, without the device's gateway; paused, so
        # no reconcile records it meanwhile.
        await cluster.patch(
            "Device",
            "home-inverter",
            {"metadata": {"annotations": {"energy.reconciler.dev/paused": "true"}}},
        )
        await cluster.wait_condition("Device", "home-inverter", "Synced", status="False")
        # A drift check begun before the pause writes its status (the gateway with it) when
        # it ends, over the one set below if that came first: two more checks, the second
        # begun paused, and none is left to.
        await runs.wait("home-inverter", "Timer 'drift-devices'", 2)
        await cluster.patch("Device", "home-inverter", {"status": {"gateway": None}})
        await _delete(cluster, "Gateway", "home-zap")
        await cluster.delete("Device", "home-inverter")

        cond = await cluster.wait_reason("Device", "home-inverter", "ReleaseBlocked",
                                         what="the release blocked")
        assert "Re-create Gateway home-zap" in cond["message"]
        assert "remove the finalizer energy.reconciler.dev/finalizer" in cond["message"]
        # kopf posts the Warning from its queue, maybe after it patched the condition.
        assert await cluster.wait_events_about("home-inverter", reason="ReleaseBlocked")
        device = await cluster.get("Device", "home-inverter")
        assert device is not None and device["metadata"].get("finalizers")
        assert _placed(sims) == (True, True)

        # The Gateway object back, the device is released and goes.
        await cluster.create(docs[("Gateway", "home-zap")])
        await cluster.wait_gone("Device", "home-inverter")
        assert _placed(sims) == (False, False)


async def test_a_device_behind_an_unreachable_gateway_is_released_once_it_answers(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(ORPHAN_GATEWAY, tmp_path, monkeypatch) as (cluster, sims):
        await _declare(cluster)
        await sims.zaps[ZAP].set_offline("refuse")
        await cluster.delete("Device", "home-inverter")

        cond = await cluster.wait_reason("Device", "home-inverter", "ReleaseFailed",
                                         what="the release deferred")
        assert "device/home-inverter[zap]" in cond["message"], cond
        # kopf posts the Warning from its queue, maybe after it patched the condition.
        assert await cluster.wait_events_about("home-inverter", reason="ReleaseFailed")
        assert "SG0001" in sims.zaps[ZAP].devices

        await sims.zaps[ZAP].set_offline("online")
        await cluster.wait_gone("Device", "home-inverter")
        assert _placed(sims) == (False, False)


async def test_a_gateway_is_released_once_novacore_answers(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        await sims.novacore.set_offline("refuse")
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_reason("Gateway", "home-zap", "ReleaseFailed",
                                  what="the release deferred")
        assert sims.novacore.gateways[ZAP].org_id == "org-home"

        await sims.novacore.set_offline("online")
        await cluster.wait_gone("Gateway", "home-zap")
        assert sims.novacore.gateways[ZAP].org_id is None


# Admitted by the CRD (minLength 1), refused by the model.
BLANK_NAME = {"spec": {"displayName": "   "}}


async def _declare_all(cluster: Any) -> None:
    """HOME, every object of it reconciled."""
    for doc in await declare(cluster):
        await cluster.wait_condition(doc["kind"], doc["metadata"]["name"], "Ready")


async def _made_invalid(cluster: Any, sims: Any) -> None:
    """home-inverter's spec made invalid: its status says which field and what is valid,
    and nothing outside is written while the drift checks find it so."""
    writes = sims.writes()
    await cluster.patch("Device", "home-inverter", BLANK_NAME)

    cond = await cluster.wait_reason("Device", "home-inverter", "InvalidSpec",
                                     what="the spec refused")
    assert cond["message"] == "spec.displayName: must not be blank: write the name to show"
    await cluster.wait_all_planned((("Device", "home-inverter"), ("Gateway", "home-zap")), 2)
    assert sims.writes() == writes
    assert _placed(sims) == (True, True)


async def test_a_device_deleted_with_an_invalid_spec_is_released_as_its_last_valid_spec_says(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await _declare_all(cluster)
        await _made_invalid(cluster, sims)
        await _delete(cluster, "Device", "home-inverter")
        assert _placed(sims) == (False, False)
        # Posted from kopf's queue: maybe after the Device went.
        [event] = await cluster.wait_events_about("home-inverter", reason="LastValidSpec")
        assert "deletionPolicy of its last valid spec (Release) is honoured" in event["message"]
        assert "spec.displayName: must not be blank" in event["message"]


async def test_a_device_deleted_with_an_invalid_spec_and_none_recorded_touches_nothing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await _declare_all(cluster)
        await _made_invalid(cluster, sims)
        # A status as an operator that recorded no valid spec wrote it.
        await cluster.patch("Device", "home-inverter", {"status": {"lastValidSpec": None}})
        writes = sims.writes()
        await _delete(cluster, "Device", "home-inverter")
        assert sims.writes() == writes
        assert _placed(sims) == (True, True)
        # Posted from kopf's queue: maybe after the Device went.
        [event] = await cluster.wait_events_about(
            "home-inverter", reason="DeletionPolicyUnknown")
        assert event["type"] == "Warning"
        assert "its deletionPolicy is not known, so nothing outside was touched" in (
            event["message"]
        )
