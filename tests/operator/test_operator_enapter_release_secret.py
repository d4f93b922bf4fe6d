"""A Device with an Enapter registration whose config goes to a Secret
(`configOutput.secretName`), deleted, through the real operator (kopf against kmock's
emulator, the Enapter simulator on loopback): with `deletionPolicy: Release`, the Secret the
operator wrote for it goes with its Enapter device, whose credentials it holds; one the
operator did not write, one written for another Enapter device, and one another Device
names now stay as they are. A Secret whose delete was refused after its Enapter device was
deleted goes at a later attempt of the release, which the finalizer waits for. With
`Orphan` the Enapter device stays, and so does its Secret. One written over between the
operator's read and its delete is not deleted as read (the delete's preconditions): it is
read again, and kept when it is no longer this device's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fleet_yaml import document, enapter_site, stream
from harness import NAMESPACE, WAIT, documents, operator, secret_values

from reconciler.operator.config import OperatorConfig

HARDWARE_IDS = {"ucm-a": "A8795CBA5375484E829105E959663C8B",
                "ucm-b": "B8795CBA5375484E829105E959663C8B"}
SECRET_PATH = f"/api/v1/namespaces/{NAMESPACE}/secrets"
DEVICE_ID_ANNOTATION = "energy.reconciler.dev/enapter-device-id"
# No drift check between the test's own changes and the deletion: it would write the
# Secret again.
QUIET = OperatorConfig(interval=3600.0, retry_delay=0.5)


def _ucm(name: str, secret: str, policy: str) -> str:
    return document("Device", name, f"""
        siteRef: h2-lab
        hardwareId: {HARDWARE_IDS[name]}
        deletionPolicy: {policy}
        enapter:
          kind: ucm
          protocol: MQTT
          configOutput: {{secretName: {secret}}}
        """)


def _fleet(policy: str = "Release") -> str:
    return stream(enapter_site(), _ucm("ucm-a", "ucm-a-config", policy))


async def _holds(cluster: Any, secret: str, device: str) -> bool:
    """Whether `secret` holds the config of `device` (MQTT: its hardware id is its user)."""
    found = await cluster.secret(secret)
    return bool(found) and f"{HARDWARE_IDS[device]}_ucm" in repr(secret_values(found))


async def _written(cluster: Any, device: str, secret: str) -> None:
    await cluster.wait_condition("Device", device, "Ready")
    await cluster.wait_for(lambda: _holds(cluster, secret, device),
                           what=f"{device}'s config in Secret {secret}")


async def _deleted_event(cluster: Any, device: str) -> str:
    """The message of the Event saying `device`'s Enapter device was deleted."""
    events = await cluster.wait_events_about(device, reason="Deleted")
    [deleted] = [e for e in events if "[enapter]" in e["message"]]
    return str(deleted["message"])


@pytest.mark.parametrize("policy", ["Release", "Orphan"])
async def test_a_released_devices_config_secret_goes_with_its_enapter_device(
    tmp_path: Path, monkeypatch: Any, policy: str
) -> None:
    text = _fleet(policy)
    async with operator(text, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _written(cluster, "ucm-a", "ucm-a-config")
        written = await cluster.secret("ucm-a-config")

        await cluster.delete("Device", "ucm-a")
        await cluster.wait_gone("Device", "ucm-a")
        if policy == "Release":
            assert sims.enapter.by_hardware_id(HARDWARE_IDS["ucm-a"]) is None
            assert await cluster.secret("ucm-a-config") == {}, "its credentials go with it"
            assert (await _deleted_event(cluster, "ucm-a")).endswith(
                "; deleted Secret ucm-a-config")
        else:
            # The device stays in Enapter Cloud, and may still run with its config.
            assert sims.enapter.by_hardware_id(HARDWARE_IDS["ucm-a"]) is not None
            kept = await cluster.secret("ucm-a-config")
            assert secret_values(kept) == secret_values(written)


async def _not_the_operators(cluster: Any) -> None:
    """Someone put a Secret of their own under that name (no label of the operator's)."""
    await cluster.delete_secret("ucm-a-config")
    await cluster.create_secret("ucm-a-config", {"config.json": "someone else's"})


async def _for_another_device(cluster: Any) -> None:
    """The operator's Secret, said to hold the config of another Enapter device."""
    response = await cluster.http.patch(
        f"{SECRET_PATH}/ucm-a-config",
        json={"metadata": {"annotations": {DEVICE_ID_ANNOTATION: "another-device"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()


@pytest.mark.parametrize(("change", "said"), [
    pytest.param(_not_the_operators, "it was not written by the reconciler", id="foreign"),
    pytest.param(_for_another_device, "it holds the config of another device", id="other"),
])
async def test_a_secret_the_operator_did_not_write_for_that_device_stays(
    tmp_path: Path, monkeypatch: Any, change: Any, said: str
) -> None:
    text = _fleet()
    async with operator(text, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _written(cluster, "ucm-a", "ucm-a-config")
        await change(cluster)
        before = await cluster.secret("ucm-a-config")

        await cluster.delete("Device", "ucm-a")
        await cluster.wait_gone("Device", "ucm-a")
        assert sims.enapter.by_hardware_id(HARDWARE_IDS["ucm-a"]) is None
        kept = await cluster.secret("ucm-a-config")
        assert secret_values(kept) == secret_values(before)
        assert kept["metadata"].get("annotations") == before["metadata"].get("annotations")
        assert (await _deleted_event(cluster, "ucm-a")).endswith(
            f"; kept Secret ucm-a-config: {said}")


async def test_a_secret_another_device_names_now_stays_for_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """ucm-b, created first, holds Secret ucm-config; ucm-a, naming it too, is refused.
    ucm-b released, its Enapter device goes, and the Secret stays for ucm-a, which writes
    its own config there."""
    text = stream(enapter_site(), _ucm("ucm-b", "ucm-config", "Release"),
                  _ucm("ucm-a", "ucm-a-config", "Release"))
    created = {"h2-lab": "2026-01-01T00:00:00Z", "ucm-b": "2026-01-01T00:00:00Z",
               "ucm-a": "2026-01-02T00:00:00Z"}
    async with operator(text, tmp_path, monkeypatch) as (cluster, sims):
        for doc in documents(text):
            name = doc["metadata"]["name"]
            doc["metadata"]["creationTimestamp"] = created[name]
            if name == "ucm-a":  # as a namespace holds them, not as one file may
                doc["spec"]["enapter"]["configOutput"] = {"secretName": "ucm-config"}
            await cluster.create(doc)
        await _written(cluster, "ucm-b", "ucm-config")
        await cluster.wait_reason("Device", "ucm-a", "InvalidSpec", what="ucm-a refused")

        await cluster.delete("Device", "ucm-b")
        await cluster.wait_gone("Device", "ucm-b")
        assert sims.enapter.by_hardware_id(HARDWARE_IDS["ucm-b"]) is None
        assert (await _deleted_event(cluster, "ucm-b")).endswith(
            "; kept Secret ucm-config: another Device names it now")
        await _written(cluster, "ucm-a", "ucm-config")


async def test_the_secret_of_a_device_whose_site_went_first_goes_with_its_device(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The Site deleted first (a namespace's deletion), the device is deleted by the id its
    status recorded, which is the one its Secret was written for."""
    text = _fleet()
    async with operator(text, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _written(cluster, "ucm-a", "ucm-a-config")
        await cluster.delete("Site", "h2-lab")
        await cluster.wait_gone("Site", "h2-lab")

        await cluster.delete("Device", "ucm-a")
        await cluster.wait_gone("Device", "ucm-a")
        assert sims.enapter.by_hardware_id(HARDWARE_IDS["ucm-a"]) is None
        assert await cluster.secret("ucm-a-config") == {}


@pytest.mark.parametrize("refused", [1, 2], ids=["next-attempt", "refused-again"])
async def test_a_secret_whose_delete_was_refused_goes_at_a_later_attempt(
    tmp_path: Path, monkeypatch: Any, refused: int
) -> None:
    """The Secret's delete refused (rbac.writeConfigSecrets turned off since it was
    written) after its Enapter device was deleted: the release fails, saying so; the next
    attempt, which finds no Enapter device, deletes the Secret, or, refused again, keeps
    the finalizer saying why, until an attempt may delete it. Enapter's device is deleted
    once."""
    text = _fleet()
    async with operator(text, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _written(cluster, "ucm-a", "ucm-a-config")
        device_id = (await cluster.status("Device", "ucm-a"))["externalIds"]["enapter"]
        fault = cluster.emulator.fail("DELETE", "/secrets/ucm-a-config", 403, refused)

        await cluster.delete("Device", "ucm-a")
        await cluster.wait_gone("Device", "ucm-a")
        assert fault.count == 0, "each refusal was met"
        assert sims.enapter.by_hardware_id(HARDWARE_IDS["ucm-a"]) is None
        assert sims.enapter.requests["DELETE /v3/devices/{device_id}"] == 1
        assert await cluster.secret("ucm-a-config") == {}, "its credentials go with it"
        failed = [e["message"] for e in await cluster.events_about(
            "ucm-a", reason="ReleaseFailed")]
        assert any("HTTP 403" in m and "rbac.writeConfigSecrets" in m for m in failed), failed
        earlier = f"Enapter device {device_id} was deleted by an earlier attempt"
        assert len([m for m in failed if m.startswith(f"device/ucm-a[enapter]: {earlier}, but ")
                    ]) == refused - 1, failed
        assert (await _deleted_event(cluster, "ucm-a")) == (
            f"device/ucm-a[enapter]: {earlier}; deleted Secret ucm-a-config")


async def test_a_secret_written_over_between_its_read_and_its_delete_is_read_again(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The Secret's delete, sent with the uid and resourceVersion the operator read, is
    held while the Secret is rewritten for another Enapter device: the API server refuses
    it (409, its preconditions), and read again, the Secret, no longer this device's, is
    kept."""
    text = _fleet()
    async with operator(text, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _written(cluster, "ucm-a", "ucm-a-config")
        held = cluster.emulator.hold("DELETE", "/secrets/ucm-a-config", lambda _: True)

        await cluster.delete("Device", "ucm-a")
        await asyncio.wait_for(held.arrived.wait(), WAIT)
        await _for_another_device(cluster)
        before = await cluster.secret("ucm-a-config")
        held.release.set()
        await cluster.wait_gone("Device", "ucm-a")
        assert sims.enapter.by_hardware_id(HARDWARE_IDS["ucm-a"]) is None
        kept = await cluster.secret("ucm-a-config")
        assert secret_values(kept) == secret_values(before)
        assert kept["metadata"]["annotations"][DEVICE_ID_ANNOTATION] == "another-device"
        assert (await _deleted_event(cluster, "ucm-a")).endswith(
            "; kept Secret ucm-a-config: it holds the config of another device")
