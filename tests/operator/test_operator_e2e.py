"""The operator end to end: kopf against kmock's Kubernetes emulator and the simulators."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fleet_yaml import (
    document,
    enapter_site,
    novacore_site,
    stream,
    sungrow_inverter,
    zap_gateway,
)
from harness import NAMESPACE, OTHER_NAMESPACE, documents, operator, secret_values
from objects import HOME, SECRET, ZAP, declare


async def test_objects_converge_and_become_ready(tmp_path: Path, monkeypatch: Any) -> None:
    logs: list[str] = []
    async with operator(HOME, tmp_path, monkeypatch, logs=logs) as (cluster, sims):
        await declare(cluster)
        for kind, name in (
            ("Site", "home"),
            ("Gateway", "home-zap"),
            ("Device", "home-inverter"),
            ("Device", "home-battery"),
        ):
            await cluster.wait_condition(kind, name, "Ready")
        zap = sims.zaps[ZAP]
        assert set(zap.devices) == {"SG0001", "ferroamp_192.168.1.70"}
        assert zap.devices["ferroamp_192.168.1.70"].password_set
        assert "org-home" in {g.org_id for g in sims.novacore.gateways.values()}
        claimed = await cluster.condition("Gateway", "home-zap", "Claimed")
        assert claimed and claimed["status"] == "True"
        verified = await cluster.condition("Device", "home-inverter", "Verified")
        assert verified and verified["status"] == "True"
        inverter = await cluster.get("Device", "home-inverter")
        assert inverter and inverter["status"]["externalIds"].get("zap") == "SG0001"
        events = await cluster.events()
        assert any(e.get("reason") == "Claimed" for e in events)
        everything = (
            repr(await cluster.get("Device", "home-battery")) + repr(events) + "\n".join(logs)
        )
        assert SECRET not in everything
        assert sims.novacore_token not in everything


async def test_a_password_changed_in_its_secret_is_sent_again_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The Zap never reports a password: the Device's status keeps a keyed fingerprint of
    the one sent, so the drift timer sees the Secret change and replaces the device, once."""
    rotated = "r0tated-mqtt-passw0rd"  # a test value
    delete = "DELETE /api/devices/{sn}"
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-battery", "Ready")
        zap = sims.zaps[ZAP]

        async def applied() -> dict[str, Any] | None:
            return (await cluster.status("Device", "home-battery")).get("appliedSecrets")

        first = await cluster.wait_for(applied, what="the password's fingerprint in status")
        assert zap.requests[delete] == 0
        await cluster.update_secret("ferroamp-mqtt", {"password": rotated})

        async def sent_again() -> dict[str, Any] | None:
            now = await applied()
            old = first["mqttPasswordFingerprint"]
            return now if now and now["mqttPasswordFingerprint"] != old else None

        second = await cluster.wait_for(sent_again, what="the new password sent")
        assert second["keyId"] == first["keyId"]
        assert zap.requests[delete] == 1, "removed and added again with the new password"
        assert zap.devices["ferroamp_192.168.1.70"].password_set
        # Three more drift checks of the battery, each of which would send it again.
        await cluster.wait_planned("Device", "home-battery", 3)
        assert zap.requests[delete] == 1, "sent once"
        events = await cluster.events()
        assert any(e.get("reason") == "Replaced" for e in events)
        everything = repr(await cluster.get("Device", "home-battery")) + repr(events)
        assert SECRET not in everything and rotated not in everything


async def test_a_secret_emptied_is_no_password_to_send(tmp_path: Path, monkeypatch: Any) -> None:
    """A Secret key whose value is empty (a failed `sops -d`, a key created with no value)
    would replace the device's password with none: the device says so and is left as it
    is, as with a Secret that is missing."""
    delete = "DELETE /api/devices/{sn}"
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-battery", "Ready")
        await cluster.update_secret("ferroamp-mqtt", {"password": ""})
        refused = await cluster.wait_condition("Device", "home-battery", "Ready", "False")
        assert "secret ferroamp-mqtt key 'password' is empty" in refused["message"], refused
        assert sims.zaps[ZAP].requests[delete] == 0, "not replaced with no password"
        assert sims.zaps[ZAP].devices["ferroamp_192.168.1.70"].password_set


@pytest.mark.parametrize("policy", ["Release", "Orphan"])
async def test_deletion_honours_policy(policy: str, tmp_path: Path, monkeypatch: Any) -> None:
    fleet = HOME.replace("deletionPolicy: Release", f"deletionPolicy: {policy}")
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster, fleet)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        await cluster.delete("Device", "home-inverter")
        await cluster.wait_gone("Device", "home-inverter", what="device deleted")
        zap = sims.zaps[ZAP]
        cloud = [d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001"]
        if policy == "Release":
            assert "SG0001" not in zap.devices and not cloud
        else:
            assert "SG0001" in zap.devices and cloud


async def test_spec_update_is_applied(tmp_path: Path, monkeypatch: Any) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        await cluster.patch(
            "Device",
            "home-inverter",
            {"metadata": {"generation": 2}, "spec": {"displayName": "Renamed inverter"}},
        )

        async def renamed() -> bool:
            return any(d.name == "Renamed inverter" for d in sims.novacore.devices.values())

        await cluster.wait_for(renamed, what="rename applied in Novacore")

        async def ready_for_generation_2() -> bool:
            cond = await cluster.condition("Device", "home-inverter", "Ready")
            return bool(cond and cond["status"] == "True" and cond["observedGeneration"] == 2)

        await cluster.wait_for(ready_for_generation_2, what="Ready for generation 2")


async def test_a_renamed_site_keeps_its_novacore_site(tmp_path: Path, monkeypatch: Any) -> None:
    """The Site object is reconciled on its own, but recognised by the gateways and devices
    of its namespace: its Novacore site is renamed, not made again with the devices moved."""
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        await cluster.wait_condition("Device", "home-battery", "Ready")
        [site_id] = sims.novacore.sites
        renamed_spec = {"displayName": "Home, renamed"}
        await cluster.patch("Site", "home", {"metadata": {"generation": 2}, "spec": renamed_spec})

        async def renamed() -> bool:
            return sims.novacore.sites[site_id].name == "Home, renamed"

        await cluster.wait_for(renamed, what="the site renamed in Novacore")
        await cluster.wait_condition("Site", "home", "Ready")
        assert list(sims.novacore.sites) == [site_id], "no second site"
        assert {d.site_id for d in sims.novacore.devices.values()} == {site_id}


async def test_drift_is_corrected_by_the_timer(tmp_path: Path, monkeypatch: Any) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        zap = sims.zaps[ZAP]
        zap.set_der("SG0001", "pv", enabled=False)
        cloud = next(d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001")
        sims.novacore.rename_device(cloud.id, "someone renamed it")

        async def corrected() -> bool:
            pv = next(d for d in zap.devices["SG0001"].ders if d["type"] == "pv")
            return bool(pv["enabled"]) and sims.novacore.devices[cloud.id].name == "Inverter"

        await cluster.wait_for(corrected, what="drift corrected")


async def test_device_created_before_its_gateway_waits_then_converges(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_secret("ferroamp-mqtt", {"password": SECRET})
        docs = {(d["kind"], d["metadata"]["name"]): d for d in documents(HOME)}
        await cluster.create(docs[("Device", "home-inverter")])

        cond = await cluster.wait_reason("Device", "home-inverter", "WaitingForDependency",
                                         what="device waiting for its gateway")
        assert "home-zap" in cond["message"]
        waiting_body = await cluster.get("Device", "home-inverter")
        assert waiting_body is not None
        last_plan = waiting_body["status"]["lastPlan"]
        assert (last_plan["summary"], last_plan["changes"]) == (
            "not planned: waiting for a dependency", 0)
        assert not sims.zaps[ZAP].devices
        for key in (("Site", "home"), ("Gateway", "home-zap")):
            await cluster.create(docs[key])
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        assert "SG0001" in sims.zaps[ZAP].devices


async def test_paused_objects_are_left_alone(tmp_path: Path, monkeypatch: Any) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        for doc in documents(HOME):
            if doc["kind"] == "Gateway":
                doc["metadata"]["annotations"] = {"energy.reconciler.dev/paused": "true"}
            if doc["kind"] in ("Site", "Gateway"):
                await cluster.create(doc)
        synced = await cluster.wait_condition("Gateway", "home-zap", "Synced", status="False")
        assert synced["reason"] == "Paused"
        assert all(g.org_id is None for g in sims.novacore.gateways.values())


async def test_observe_mode_reports_the_plan_without_applying(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from reconciler.operator.config import OperatorConfig

    config = OperatorConfig(interval=1.0, retry_delay=0.5, mode="observe")
    async with operator(HOME, tmp_path, monkeypatch, config=config) as (cluster, sims):
        for doc in documents(HOME):
            if doc["kind"] in ("Site", "Gateway"):
                await cluster.create(doc)
        ready = await cluster.wait_condition("Gateway", "home-zap", "Ready", status="False")
        assert ready["reason"] == "ChangesPending"
        gateway = await cluster.get("Gateway", "home-zap")
        assert gateway is not None
        assert any("claim" in line for line in gateway["status"]["lastPlan"]["actions"])
        assert all(g.org_id is None for g in sims.novacore.gateways.values())
        assert sims.writes() == 0


ENAPTER_FLEET = stream(enapter_site(), document("Device", "h2-ucm", """
    siteRef: h2-lab
    hardwareId: C8795CBA5375484E829105E959663C8B
    displayName: Gas sensor UCM
    enapter:
      kind: ucm
      protocol: MQTTS
      configOutput: {secretName: h2-ucm-config}
    """))


async def test_enapter_config_is_written_to_a_secret(tmp_path: Path, monkeypatch: Any) -> None:
    logs: list[str] = []
    async with operator(ENAPTER_FLEET, tmp_path, monkeypatch, logs=logs) as (cluster, _):
        await cluster.create_all(documents(ENAPTER_FLEET))
        await cluster.wait_condition("Device", "h2-ucm", "Ready")

        written = await cluster.wait_for(lambda: cluster.secret("h2-ucm-config"),
                                         what="the config Secret")
        blob = next(v for v in secret_values(written).values() if "PRIVATE KEY" in v)
        # A line of the PEM body of the private key (JSON-escaped or not).
        pem = re.search(r"PRIVATE KEY-----(?:\\n|\n)([A-Za-z0-9+/=]{20,})", blob)
        assert pem is not None, "the Secret holds no PEM private key"
        device = await cluster.get("Device", "h2-ucm")
        events = await cluster.events()
        shown = repr(device) + repr(events) + "\n".join(logs)
        assert pem.group(1) not in shown


ELSEWHERE_FLEET = stream(
    novacore_site("cabin", "Cabin"),
    zap_gateway("cabin-zap", "cabin", "zap-00000000000000b2", "http://192.168.7.2"),
    sungrow_inverter("cabin-inverter", "cabin-zap", "SG0002", "192.168.7.60"),
)


async def test_an_operator_serving_one_namespace_leaves_the_others_alone(
    tmp_path: Path, monkeypatch: Any
) -> None:
    both = stream(HOME, ELSEWHERE_FLEET)
    served = [NAMESPACE]
    async with operator(both, tmp_path, monkeypatch, namespaces=served) as (cluster, sims):
        # The other namespace's objects exist first: an operator watching every namespace
        # would reconcile them before (or while) it makes the served ones Ready.
        await cluster.create_all(documents(ELSEWHERE_FLEET), namespace=OTHER_NAMESPACE)
        await declare(cluster)
        for kind, name in (("Site", "home"), ("Gateway", "home-zap"), ("Device", "home-battery")):
            await cluster.wait_condition(kind, name, "Ready")

        for doc in documents(ELSEWHERE_FLEET):
            obj = await cluster.get(doc["kind"], doc["metadata"]["name"], OTHER_NAMESPACE)
            assert obj is not None
            assert not obj.get("status"), obj
            assert not obj["metadata"].get("finalizers"), obj
        assert sims.novacore.gateways["zap-00000000000000b2"].org_id is None
        assert sims.novacore.gateways[ZAP].org_id == "org-home"
        assert not sims.zaps["zap-00000000000000b2"].devices
        assert "Cabin" not in {site.name for site in sims.novacore.sites.values()}
