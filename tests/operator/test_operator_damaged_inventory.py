"""A state directory whose inventory is damaged while the operator (a process, against the
kmock emulator and the Enapter simulator on loopback) applies an Enapter device: the
record of the device's config file cannot be read, and the Device's ApplyFailed Warning
says so worded for the operator's user, who has no CLI flag (`plan.advice`): the
inventory is read by the apply's own steps (`engine.enapter_files`), not only by the
plan before it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from fleet_yaml import enapter_gateway, enapter_site, link_master, stream
from harness import KopfRuns, documents, emulated_cluster, operator
from process import operator_env, operator_process

from reconciler.operator.handlers import FINALIZER
from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

MASTER = "LA0000000000000000000000000000001"


def _fleet(config_file: Path, extra: str = "") -> str:
    return stream(
        enapter_site(),
        enapter_gateway(),
        link_master("link-a", MASTER, config_file=config_file, extra=extra),
    )


def _damage(inventory: Path) -> None:
    # The state directory, made by the first write of a state file, may not be yet.
    inventory.parent.mkdir(parents=True, exist_ok=True)
    inventory.write_text("{not json", encoding="utf-8")


def _damaging(inventory: Path) -> Any:
    """A middleware of the Enapter simulator that, as the LINK master is provisioned (after
    the operator planned with the inventory, before it records the config file it then
    writes), makes the inventory something no run can read."""

    @web.middleware
    async def damage(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path.endswith("/provisioning/link_master"):
            await asyncio.to_thread(_damage, inventory)
        return await handler(request)  # type: ignore[no-any-return]

    return damage


async def test_an_inventory_damaged_during_an_apply_is_said_to_the_operators_user(
    tmp_path: Path,
) -> None:
    inventory = tmp_path / "state" / "inventory.json"
    text = _fleet(tmp_path / "keys" / "link-a.json")
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", text)]).fleet())
    sims.enapter.app.middlewares.append(_damaging(inventory))
    async with emulated_cluster() as cluster, sims:
        env = operator_env(sims, cluster.url, tmp_path)
        async with operator_process(env, tmp_path / "operator.log"):
            await cluster.create_all(documents(text))

            async def said() -> list[str]:
                return [
                    e["message"]
                    for e in await cluster.events_about("link-a", reason="ApplyFailed")
                    if f"cannot read {inventory}" in e.get("message", "")
                ]

            [message, *_] = await cluster.wait_for(
                said, what="the Device's Warning that the inventory cannot be read")
        assert sims.enapter.by_hardware_id(MASTER) is not None, "provisioned before it"
        assert message.startswith("device/link-a[enapter]: create failed: "), message
        assert "not JSON" in message, message
        # Its loss said as the operator's user acts: it deletes nothing it does not declare.
        assert "a gateway no longer declared is then released only if" in message, message
        assert "--" not in message and "apply" not in message, message


def _damaging_once(inventory: Path) -> Any:
    """`_damaging`, for the first provisioning of the LINK master only: once repaired, the
    inventory stays so."""
    damage, done = _damaging(inventory), asyncio.Event()

    @web.middleware
    async def once(request: web.Request, handler: Any) -> web.StreamResponse:
        if done.is_set():
            return await handler(request)  # type: ignore[no-any-return]
        if request.method == "POST" and request.path.endswith("/provisioning/link_master"):
            done.set()
        return await damage(request, handler)  # type: ignore[no-any-return]

    return once


async def test_an_inventory_damaged_before_the_plan_is_said_on_the_object_and_read_again(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The plan reads the inventory: damaged, the object says so (which file, why, what
    to do) with a Warning once, is retried as no spec change repairs it, kopf logs no
    traceback (nor any Event of its retries), and once the file is removed (as it says)
    the object converges."""
    inventory = tmp_path / "state" / "inventory.json"
    text = _fleet(tmp_path / "keys" / "link-a.json")
    _damage(inventory)
    logs: list[str] = []
    async with operator(text, tmp_path, monkeypatch, logs=logs) as (cluster, sims):
        await cluster.create_all(documents(text))
        ready = await cluster.wait_reason("Device", "link-a", "StateDirUnreadable")
        assert ready["status"] == "False", ready
        message = ready["message"]
        assert message.startswith(f"cannot read {inventory}: not JSON"), message
        assert "repair it, or remove it to start afresh" in message, message
        assert message.endswith(
            "nothing is planned or written until it can be read: the next reconcile reads "
            "it again"), message
        synced = await cluster.condition("Device", "link-a", "Synced")
        assert synced is not None and synced["reason"] == "StateDirUnreadable", synced
        # Retried (a drift check comes too), not held; and said once.
        await runs.wait("link-a", "Timer 'drift-devices'", 2)
        warnings = await cluster.events_about("link-a", reason="StateDirUnreadable")
        assert [w["type"] for w in warnings] == ["Warning"], warnings
        assert sims.enapter.by_hardware_id(MASTER) is None, "nothing written"
        # kopf logs its retry at ERROR each time, and posts it as no Event (kopf posts its
        # lines only with `settings.posting.loggers`, which the operator leaves off): the
        # Warning above is the one Event of the problem, however long it lasts.
        assert runs.said("link-a", "Timer 'drift-devices' failed temporarily: ") >= 2
        body = await cluster.get("Device", "link-a")
        assert body is not None
        await cluster.events_posted(body)
        kopfs = [e for e in await cluster.events_about("link-a")
                 if e["type"] == "Error" or e["reason"] == "Logging"]
        assert kopfs == [], kopfs

        inventory.unlink()
        await cluster.wait_condition("Device", "link-a", "Ready")
        assert sims.enapter.by_hardware_id(MASTER) is not None
    failures = [line for line in logs if "Traceback" in line or "exception" in line
                or "failed permanently" in line]
    assert not failures, failures


async def test_an_inventory_damaged_during_an_apply_is_retried_once_repaired(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A damaged inventory fails the apply that reads it after its device was provisioned:
    not held until the spec changes (no spec change repairs the file) but retried, and once
    the file is repaired the Device converges with no edit, its device provisioned once."""
    inventory = tmp_path / "state" / "inventory.json"
    text = _fleet(tmp_path / "keys" / "link-a.json")
    logs: list[str] = []

    def damaging(sims: SimFleet) -> None:
        sims.enapter.app.middlewares.append(_damaging_once(inventory))

    async with operator(text, tmp_path, monkeypatch, logs=logs, before_start=damaging) as (
        cluster, sims,
    ):
        await cluster.create_all(documents(text))
        # Said by its Warning: the condition says next what the plan of the retry finds
        # (the inventory cannot be read, `StateDirUnreadable`).
        [failed, *_] = await cluster.wait_events_about("link-a", reason="ApplyFailed")
        assert f"cannot read {inventory}: not JSON" in failed["message"], failed
        assert "not tried again until" not in failed["message"], "not held"
        provisioned = sims.enapter.requests["POST /v3/provisioning/{kind}"]
        assert sims.enapter.by_hardware_id(MASTER) is not None

        inventory.unlink()
        await cluster.wait_condition("Device", "link-a", "Ready")
        assert (tmp_path / "keys" / "link-a.json").exists(), "its config written"
        assert sims.enapter.requests["POST /v3/provisioning/{kind}"] == provisioned, (
            "found again by its hardware id, not provisioned again")
    held = [line for line in logs if "failed permanently" in line or "Traceback" in line]
    assert not held, held


async def test_an_inventory_damaged_at_a_deletion_keeps_the_finalizer_and_says_so(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The finalizer of a Device with deletionPolicy Release reads the inventory (its
    Enapter observer does): damaged, the object says so as a reconcile does, the finalizer
    stays with nothing released, and once the file is removed the deletion goes through,
    its Enapter device deleted."""
    inventory = tmp_path / "state" / "inventory.json"
    text = _fleet(tmp_path / "keys" / "link-a.json", "deletionPolicy: Release")
    logs: list[str] = []
    async with operator(text, tmp_path, monkeypatch, logs=logs) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Device", "link-a", "Ready")
        _damage(inventory)
        await cluster.delete("Device", "link-a")
        said = (f"nothing released: the next attempt reads it again (removing the finalizer "
                f"{FINALIZER} leaves it as it is)")

        async def finalizer_said() -> dict[str, Any] | None:
            # A drift check begun before the deletion may write its own StateDirUnreadable
            # first (a reconcile's wording): the finalizer's comes with or after it.
            ready = await cluster.condition("Device", "link-a", "Ready") or {}
            return ready if said in str(ready.get("message")) else None

        ready = await cluster.wait_for(finalizer_said, what="the finalizer's StateDirUnreadable")
        assert ready["reason"] == "StateDirUnreadable", ready
        assert ready["message"].startswith(f"cannot read {inventory}: not JSON"), ready
        device = await cluster.get("Device", "link-a")
        assert device is not None and FINALIZER in device["metadata"]["finalizers"]
        # A drift check begun before the deletion may say its own, once too.
        warnings = [e for e in await cluster.events_about("link-a", reason="StateDirUnreadable")
                    if "nothing released" in e["message"]]
        assert [w["type"] for w in warnings] == ["Warning"], warnings

        assert sims.enapter.by_hardware_id(MASTER) is not None, "nothing released"

        inventory.unlink()
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.by_hardware_id(MASTER) is None, "found by its hardware id"
        # As the message said: with the inventory went the record of its config file.
        assert (tmp_path / "keys" / "link-a.json").exists()
    failures = [line for line in logs if "Traceback" in line or "exception" in line]
    assert not failures, failures
