"""Two Devices of one namespace writing their Enapter config to one place (a
`configOutput.file` or a `configOutput.secretName`): the one holding it (else the one
created first) keeps it and is reconciled as usual; the other is refused, naming both,
writes nothing, and recovers once it names a place of its own or the first is deleted."""

from __future__ import annotations

import asyncio
import collections
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fleet_yaml import der, document, enapter_site, stream
from harness import NAMESPACE, WAIT, documents, operator, secret_values

from reconciler.operator.owner_locks import owner_lock

# The MQTT protocol's config carries the device's hardware id (its MQTT user name).
FLEET = stream(
    enapter_site(),
    document("Device", "ucm-a", """
        siteRef: h2-lab
        hardwareId: A8795CBA5375484E829105E959663C8B
        displayName: UCM A
        deviceType: battery
        enapter:
          kind: ucm
          protocol: MQTT
          configOutput: {secretName: ucm-a-config}
        """),
    document("Device", "ucm-b", """
        siteRef: h2-lab
        hardwareId: B8795CBA5375484E829105E959663C8B
        displayName: UCM B
        enapter:
          kind: ucm
          protocol: MQTT
          configOutput: {secretName: ucm-b-config}
        """),
    der("ucm-a-battery", "ucm-a", "battery", "battery"),
)
HARDWARE_IDS = {"ucm-a": "A8795CBA5375484E829105E959663C8B",
                "ucm-b": "B8795CBA5375484E829105E959663C8B"}


async def _declare(
    cluster: Any, output: dict[str, str], outputs: dict[str, dict[str, str]] | None = None
) -> dict[str, dict[str, Any]]:
    """Both Devices with `output` as their configOutput (or each its own in `outputs`), and
    ucm-a's stand-alone DER (whose reconcile applies ucm-a's changes); ucm-b is created a
    day earlier, so it is the first although its name sorts after ucm-a's."""
    outputs = outputs or {"ucm-a": output, "ucm-b": output}
    docs = {d["metadata"]["name"]: d for d in documents(FLEET)}
    created = {"h2-lab": "2026-01-01T00:00:00Z", "ucm-b": "2026-01-01T00:00:00Z",
               "ucm-a": "2026-01-02T00:00:00Z", "ucm-a-battery": "2026-01-02T00:00:00Z"}
    for name in ("h2-lab", "ucm-a", "ucm-b", "ucm-a-battery"):
        doc = docs[name]
        doc["metadata"]["creationTimestamp"] = created[name]
        if doc["kind"] == "Device":
            doc["spec"]["enapter"]["configOutput"] = dict(outputs[name])
        await cluster.create(doc)
    return docs


def _provisioned(sims: Any) -> set[str]:
    return {d.hardware_id for d in sims.enapter.devices.values() if d.hardware_id}


async def _refused(cluster: Any, name: str) -> str:
    """The message of `name`'s Ready condition, once it is refused as invalid."""

    ready = await cluster.wait_reason("Device", name, "InvalidSpec",
                                      what=f"Device/{name} refused")
    return str(ready["message"])


async def _der_waits(cluster: Any) -> None:
    """ucm-a's stand-alone DER, whose reconcile would apply ucm-a's changes, waits."""
    ready = await cluster.condition("DER", "ucm-a-battery", "Ready") or {}
    assert ready.get("reason") == "WaitingForDependency", ready
    assert "Device 'ucm-a' is refused: " in ready["message"]


async def _secret(cluster: Any, name: str) -> str:
    """The config a Secret holds ("" while it does not exist)."""
    secret = await cluster.secret(name)
    return repr(secret_values(secret)) if secret else ""


async def _warnings(cluster: Any, name: str) -> list[str]:
    """The operator's Warnings about `name` (not kopf's own of each failed handler run)."""
    return [
        str(e.get("message"))
        for e in await cluster.events_about(name, reason="Failed", type_="Warning")
    ]


async def _refused_secret(cluster: Any, sims: Any) -> None:
    """ucm-a is refused for ucm-b's Secret, with a Warning said once, and has written
    nothing; nor has its DER."""
    await cluster.wait_condition("Device", "ucm-b", "Ready")
    await cluster.wait_all_planned((("Device", "ucm-a"), ("DER", "ucm-a-battery")), 2)
    message = await _refused(cluster, "ucm-a")
    clash = "Secret 'ucm-config' is already the configOutput of Device 'ucm-b'"
    assert f"spec.enapter.configOutput.secretName: {clash}" in message
    # Said once: not at every drift check, nor by a handler run again on a stale body.
    warnings = await _warnings(cluster, "ucm-a")
    assert warnings == [message]
    await cluster.wait_planned("Device", "ucm-a", 2)
    assert await _warnings(cluster, "ucm-a") == warnings
    assert _provisioned(sims) == {HARDWARE_IDS["ucm-b"]}
    assert f"{HARDWARE_IDS['ucm-b']}_ucm" in await _secret(cluster, "ucm-config")
    await _der_waits(cluster)


async def test_two_devices_writing_one_secret_refuse_the_newer_until_it_names_its_own(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await _declare(cluster, {"secretName": "ucm-config"})
        await _refused_secret(cluster, sims)
        own = {"spec": {"enapter": {"configOutput": {"secretName": "ucm-a-config"}}}}
        await cluster.patch("Device", "ucm-a", own)
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        await cluster.wait_condition("DER", "ucm-a-battery", "Ready")
        assert _provisioned(sims) == set(HARDWARE_IDS.values())
        assert f"{HARDWARE_IDS['ucm-a']}_ucm" in await _secret(cluster, "ucm-a-config")
        assert f"{HARDWARE_IDS['ucm-b']}_ucm" in await _secret(cluster, "ucm-config")


async def test_a_device_refused_for_a_secret_takes_it_over_once_the_first_is_deleted(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await _declare(cluster, {"secretName": "ucm-config"})
        await _refused_secret(cluster, sims)
        await cluster.delete("Device", "ucm-b")
        await cluster.wait_gone("Device", "ucm-b")
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        assert f"{HARDWARE_IDS['ucm-a']}_ucm" in await _secret(cluster, "ucm-config")


async def test_two_devices_writing_one_config_file_refuse_the_newer(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await _declare(cluster, {"file": "secrets/ucm.json"})
        await cluster.wait_condition("Device", "ucm-b", "Ready")
        await cluster.wait_all_planned((("Device", "ucm-a"), ("DER", "ucm-a-battery")), 2)
        message = await _refused(cluster, "ucm-a")
        assert "'secrets/ucm.json' is already the configOutput of Device 'ucm-b'" in message
        assert _provisioned(sims) == {HARDWARE_IDS["ucm-b"]}
        written = (tmp_path / "state" / "secrets" / "ucm.json").read_text()
        assert f"{HARDWARE_IDS['ucm-b']}_ucm" in written
        await _der_waits(cluster)


@pytest.mark.parametrize(("own", "taken"), [
    pytest.param({"ucm-a": {"secretName": "ucm-a-config"},
                  "ucm-b": {"secretName": "ucm-b-config"}},
                 {"secretName": "ucm-a-config"}, id="secret"),
    pytest.param({"ucm-a": {"file": "secrets/ucm-a.json"},
                  "ucm-b": {"file": "secrets/ucm-b.json"}},
                 {"file": "secrets/ucm-a.json"}, id="file"),
])
async def test_an_older_device_asking_for_a_newer_ones_output_is_refused_not_the_holder(
    tmp_path: Path, monkeypatch: Any, own: dict[str, dict[str, str]], taken: dict[str, str]
) -> None:
    """ucm-b, created first, is edited to take the Secret (or file) ucm-a holds: ucm-b, which
    asks for it second, is refused, and ucm-a keeps it and its config."""
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, _):
        await _declare(cluster, {}, own)
        for name in ("ucm-a", "ucm-b"):
            await cluster.wait_condition("Device", name, "Ready")

        async def held() -> str:
            if "secretName" in taken:
                return await _secret(cluster, taken["secretName"])
            return (tmp_path / "state" / taken["file"]).read_text()

        before = await held()
        assert f"{HARDWARE_IDS['ucm-a']}_ucm" in before
        await cluster.patch("Device", "ucm-b", {"spec": {"enapter": {"configOutput": taken}}})
        message = await _refused(cluster, "ucm-b")
        what = (f"Secret {taken['secretName']!r}" if "secretName" in taken
                else f"file {taken['file']!r}")
        assert f"{what} is already the configOutput of Device 'ucm-a'" in message
        await cluster.wait_planned("Device", "ucm-a", 2)
        ready = await cluster.condition("Device", "ucm-a", "Ready") or {}
        assert ready.get("status") == "True", ready
        assert await held() == before


async def test_a_device_taking_a_secret_written_for_another_device_writes_its_own_config(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """ucm-a, refused for ucm-b's Secret, recovers once ucm-b names another: the Secret holds
    ucm-b's config (its annotation says whose), so ucm-a's is generated and written there,
    instead of the Secret passing for ucm-a's config because it exists."""
    own = {"ucm-a": {"secretName": "ucm-a-config"}, "ucm-b": {"secretName": "ucm-b-config"}}
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, _):
        await _declare(cluster, {}, own)
        for name in ("ucm-a", "ucm-b"):
            await cluster.wait_condition("Device", name, "Ready")
        taken = {"spec": {"enapter": {"configOutput": {"secretName": "ucm-b-config"}}}}
        await cluster.patch("Device", "ucm-a", taken)
        await _refused(cluster, "ucm-a")
        moved = {"spec": {"enapter": {"configOutput": {"secretName": "ucm-b-new"}}}}
        await cluster.patch("Device", "ucm-b", moved)
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        # Ready may be said before the write lands on a loaded machine: waited for. A drift
        # check of ucm-b begun before its edit writes nothing there (tested below).
        await cluster.wait_for(lambda: _holds(cluster, "ucm-b-config", "ucm-a"),
                               what="ucm-a's config in ucm-b-config")
        annotations = (await cluster.secret("ucm-b-config"))["metadata"]["annotations"]
        assert annotations["energy.reconciler.dev/device"] == "ucm-a"
        assert f"{HARDWARE_IDS['ucm-b']}_ucm" in await _secret(cluster, "ucm-b-new")
        await cluster.wait_planned("Device", "ucm-a", 2)
        ready = await cluster.condition("Device", "ucm-a", "Ready") or {}
        assert ready.get("message") == "in sync", ready


async def test_a_drift_check_begun_before_its_device_named_another_secret_writes_none(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """ucm-b's drift check, begun while ucm-b still named ucm-b-config and waiting for its
    lock (another reconcile of ucm-b in flight: here the test holds it), writes nothing
    once ucm-b names another Secret. Before, it took ucm-a's config, written there since,
    for a foreign one and wrote ucm-b's over it; ucm-a's next check wrote its own back: a
    new config generated in Enapter at each turn."""
    generated = "POST /v3/devices/{device_id}/generate_config"
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        # Only the drift check waits for the lock: kopf indexes ucm-b's edit at once.
        await _both_naming_ucm_b_config(cluster)
        async with owner_lock(NAMESPACE, "Device", "ucm-b"):
            await cluster.wait_planned("Device", "ucm-a", 2)  # ucm-b's drift check waits
            moved = {"spec": {"enapter": {"configOutput": {"secretName": "ucm-b-new"}}}}
            await cluster.patch("Device", "ucm-b", moved)
            await cluster.wait_for(lambda: _holds(cluster, "ucm-b-config", "ucm-a"),
                                   what="ucm-a's config written")
            before = sims.enapter.requests[generated]
        await cluster.wait_for(lambda: _holds(cluster, "ucm-b-new", "ucm-b"),
                               what="ucm-b's config in its new Secret")
        await cluster.wait_all_planned((("Device", "ucm-a"), ("Device", "ucm-b")), 2)
        assert await _holds(cluster, "ucm-b-config", "ucm-a")
        assert sims.enapter.requests[generated] == before + 1, "ucm-b's, for its new Secret"


# Longest a generate_config is held: the test lets it go as soon as it has seen what it
# waits for, however long a loaded machine takes; the client waits longer.
HOLD = 2 * WAIT
SETTINGS = {"RECONCILER_TIMEOUT": str(3 * WAIT)}


class HeldConfigs:
    """Holds Enapter's generate_config for one device (`device_id`, once set) until
    `release` is set, and counts those asked of each device (installed before the simulator
    serves). Held at most `HOLD` seconds, less than the client waits (`SETTINGS`): one that
    gave up would ask again."""

    def __init__(self) -> None:
        self.device_id: str | None = None
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.generated: collections.Counter[str] = collections.Counter()
        self.gave_up = False

    def install(self, sims: Any) -> None:
        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            parts = request.path.strip("/").split("/")
            if request.method == "POST" and parts[-1] == "generate_config":
                self.generated[parts[-2]] += 1
                if parts[-2] == self.device_id and not self.release.is_set():
                    self.reached.set()
                    try:
                        await asyncio.wait_for(self.release.wait(), HOLD)
                    except TimeoutError:
                        self.gave_up = True
            return await handler(request)

        sims.enapter.app.middlewares.append(hold)


async def test_a_drift_check_writing_as_its_device_names_another_secret_leaves_the_old_one(
    tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """ucm-b's drift check is writing its config again (its Secret was deleted: Enapter is
    generating one) when ucm-b names another Secret; ucm-a, refused for ucm-b's old Secret
    until then, takes it and writes its own config there. ucm-b's check, once Enapter
    answers, does not write ucm-b's config over it, and says so; the reconcile of ucm-b's
    new spec writes its new Secret. Before, the check wrote there, and ucm-a's next check
    generated another config in Enapter to write its own back."""
    caplog.set_level(logging.INFO, logger="reconciler.operator.secrets")
    held = HeldConfigs()
    async with operator(FLEET, tmp_path, monkeypatch, before_start=held.install,
                        settings=SETTINGS) as (
        cluster, sims
    ):
        await _both_naming_ucm_b_config(cluster)
        held.device_id = _device_id(sims, "ucm-b")
        await cluster.delete_secret("ucm-b-config")
        await asyncio.wait_for(held.reached.wait(), WAIT)  # ucm-b's drift check writes
        moved = {"spec": {"enapter": {"configOutput": {"secretName": "ucm-b-new"}}}}
        await cluster.patch("Device", "ucm-b", moved)
        await cluster.wait_for(lambda: _holds(cluster, "ucm-b-config", "ucm-a"),
                               what="ucm-a's config written while ucm-b's check is held")
        assert not held.gave_up, "ucm-b's check held until now"
        ucm_a_id = _device_id(sims, "ucm-a")
        generated_for_a = held.generated[ucm_a_id]
        held.release.set()
        # Watched until both Devices are checked again: ucm-a's next check would write its
        # own config back over ucm-b's, hiding that it was there.
        seen: list[bool] = []

        async def watch() -> None:
            while True:
                seen.append(await _holds(cluster, "ucm-b-config", "ucm-b"))
                await asyncio.sleep(0.05)

        watching = asyncio.create_task(watch())
        try:
            await cluster.wait_for(lambda: _holds(cluster, "ucm-b-new", "ucm-b"),
                                   what="ucm-b's config in its new Secret")
            await cluster.wait_all_planned((("Device", "ucm-a"), ("Device", "ucm-b")), 2)
        finally:
            watching.cancel()
        assert not any(seen), "ucm-b's config written to ucm-b-config"
        assert await _holds(cluster, "ucm-b-config", "ucm-a")
        assert held.generated[ucm_a_id] == generated_for_a, "no config of ucm-a generated again"
        said = [r.getMessage() for r in caplog.records if r.name == "reconciler.operator.secrets"]
        assert said == [
            f"Device {NAMESPACE}/ucm-b: config not written to Secret ucm-b-config: the Device "
            "names it no more (edited, deleted or created again); the reconcile of its newest "
            "spec writes its config where that spec says"
        ], said


def _device_id(sims: Any, name: str) -> str:
    """The Enapter device id of Device `name`."""
    (device,) = (d for d in sims.enapter.devices.values()
                 if d.hardware_id == HARDWARE_IDS[name])
    return str(device.id)


async def test_an_edit_made_while_its_handler_waits_for_the_lock_is_seen_by_others(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """ucm-b's update handler waits for ucm-b's lock (another reconcile of ucm-b in flight:
    here the test holds it) when ucm-b names another Secret. kopf indexes an object's edit
    in the worker that runs its handlers: the handler lets that worker go after a short
    wait, so the edit is indexed and ucm-a, refused for ucm-b's Secret, takes it within
    seconds, not once the lock is free. The handler, run again, reconciles ucm-b's newest
    spec once it gets the lock."""
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await _both_naming_ucm_b_config(cluster)
        async with owner_lock(NAMESPACE, "Device", "ucm-b"):
            await cluster.patch("Device", "ucm-b", {"spec": {"displayName": "UCM B2"}})
            await cluster.wait_planned("Device", "ucm-a", 1)  # ucm-b's handler waits
            moved = {"spec": {"enapter": {"configOutput": {"secretName": "ucm-b-new"}}}}
            await cluster.patch("Device", "ucm-b", moved)
            # Seen while the test still holds ucm-b's lock: a handler that kept kopf's
            # worker until the lock is free would leave the edit unindexed all along.
            await cluster.wait_for(lambda: _holds(cluster, "ucm-b-config", "ucm-a"),
                                   what="ucm-a's config written")
        await cluster.wait_for(lambda: _holds(cluster, "ucm-b-new", "ucm-b"),
                               what="ucm-b's config in its new Secret")

        async def renamed() -> bool:
            (device,) = (d for d in sims.enapter.devices.values()
                         if d.hardware_id == HARDWARE_IDS["ucm-b"])
            return device.name == "UCM B2"

        await cluster.wait_for(renamed, what="ucm-b's newest spec reconciled")
        await cluster.wait_handled("Device", "ucm-b")  # its update handler done
        assert await _holds(cluster, "ucm-b-config", "ucm-a")


async def _both_naming_ucm_b_config(cluster: Any) -> None:
    """ucm-a and ucm-b both naming ucm-b-config: ucm-b provisioned, its config there and its
    create handler done; ucm-a refused for it."""
    own = {"ucm-a": {"secretName": "ucm-b-config"}, "ucm-b": {"secretName": "ucm-b-config"}}
    await _declare(cluster, {}, own)
    await cluster.wait_condition("Device", "ucm-b", "Ready")
    await _refused(cluster, "ucm-a")
    await cluster.wait_handled("Device", "ucm-b")


async def _holds(cluster: Any, secret: str, device: str) -> bool:
    """Whether `secret` holds the config of `device`."""
    return f"{HARDWARE_IDS[device]}_ucm" in await _secret(cluster, secret)


async def test_a_secret_the_operator_did_not_write_is_not_written_over(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A Device naming a Secret someone else created is not provisioned (its config would go
    nowhere), says why, and leaves the Secret as it is; deleted, the Secret is written."""
    await_secret = {"config.json": "someone else's credentials"}
    own = {"ucm-a": {"secretName": "ucm-a-config"}, "ucm-b": {"secretName": "theirs"}}
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_secret("theirs", await_secret)
        await _declare(cluster, {}, own)
        await cluster.wait_condition("Device", "ucm-a", "Ready")

        ready = await cluster.wait_reason("Device", "ucm-b", "Blocked",
                                          what="Device/ucm-b blocked")
        assert "Secret theirs exists and was not written by the reconciler" in ready["message"]
        assert "delete it, or name another Secret" in ready["message"]
        assert _provisioned(sims) == {HARDWARE_IDS["ucm-a"]}
        assert await _secret(cluster, "theirs") == repr(await_secret)
        await cluster.delete_secret("theirs")
        await cluster.wait_condition("Device", "ucm-b", "Ready")
        assert f"{HARDWARE_IDS['ucm-b']}_ucm" in await _secret(cluster, "theirs")
