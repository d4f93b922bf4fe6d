"""An object deleted while a reconcile of it is mid-write: its drift check, or the reconcile
of a stand-alone DER applying its device's changes. The finalizer waits for that write to
land and then releases everything, instead of releasing what it finds meanwhile and the
write re-creating the rest after it; what the reconcile would have said of a write refused
for the release (a Warning on an object being deleted) is not said. The finalizer drops the
object's lock: the locks kept do not grow with objects created and deleted, and an object
created again under the same name is reconciled as the first was. A Gateway deleted while a
Device under it is mid-write is released once that write landed, as if the Device had been
reconciled before the deletion, also when the Device was just moved to another Gateway; a
Device under it whose reconcile begins once the Gateway is being deleted writes nothing
under it, and waits for the Gateway to be declared again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fleet_yaml import der, novacore_site, stream, sungrow_inverter, zap_gateway
from harness import LAST_HANDLED, NAMESPACE, Cluster, KopfRuns, documents, landed, operator
from objects import HOME, RELEASE, ZAP, declare

from reconciler.operator.config import OperatorConfig
from reconciler.operator.owner_locks import kept_lock, owner_lock, owners
from reconciler.sim.fleet import SimFleet

INVERTER = ("Device", "home-inverter")
KEY = (NAMESPACE, *INVERTER)


def _inverter_in_novacore(sims: SimFleet) -> bool:
    return any(d.hardware_id == "SG0001" for d in sims.novacore.devices.values())


def _drift_away(sims: SimFleet, answer_delay_ms: float = 2000) -> None:
    """The inverter removed from Novacore and its Zap behind the operator's back, and the
    Zap answering each write 2 s (`answer_delay_ms`) after it took effect: the next
    reconcile adds it to the Zap, and only once that is answered provisions it in Novacore
    (and then writes to the Zap once more)."""
    (cloud,) = (d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001")
    sims.novacore.remove_device(cloud.id)
    sims.zaps[ZAP].remove_device("SG0001")
    sims.zaps[ZAP].faults.answer_delay_ms = answer_delay_ms


async def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _body(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    body = await cluster.get(kind, name)
    assert body is not None, f"{kind}/{name} is there"
    return body


async def _handled(cluster: Cluster, kind: str, name: str) -> None:
    """Until the object is Ready and kopf's create handler of it done: what writes next is
    a drift check."""
    await cluster.wait_condition(kind, name, "Ready", timeout=60)
    await cluster.wait_handled(kind, name, timeout=60)


async def _delete_mid_write(cluster: Cluster, sims: SimFleet) -> None:
    """Delete the inverter once a reconcile's write to the Zap took effect, while its
    answer (and the Novacore write after it) is still to come."""
    await _until(lambda: "SG0001" in sims.zaps[ZAP].devices, "the inverter added to the Zap")
    assert not _inverter_in_novacore(sims)
    await cluster.delete(*INVERTER)
    await cluster.wait_gone(*INVERTER, timeout=60)


async def test_a_device_deleted_while_its_drift_check_writes_is_released_after_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    config = OperatorConfig(interval=2.0, retry_delay=0.5)
    async with operator(HOME, tmp_path, monkeypatch, config=config) as (cluster, sims):
        docs = {(d["kind"], d["metadata"]["name"]): d for d in await declare(cluster)}
        await _handled(cluster, *INVERTER)
        # Right after a drift check: the next one observes after the drift (2 s later).
        await cluster.wait_planned(*INVERTER, 1)
        assert KEY in owners()
        # The drift check writes holding it (the finalizer drops it from the table).
        lock = owner_lock(*KEY)
        inverter = await _body(cluster, *INVERTER)
        _drift_away(sims)
        await _delete_mid_write(cluster, sims)
        await landed(sims, lock)  # that check, and any write still on its way, landed
        assert set(sims.zaps[ZAP].devices) == {"ferroamp_192.168.1.70"}
        assert not _inverter_in_novacore(sims)
        await cluster.events_posted(inverter)  # what it said as its writes landed, too
        warnings = await cluster.events_about("home-inverter", type_="Warning")
        assert not warnings, "the drift check's writes landed before the release"
        assert KEY not in owners(), "its lock went with it"

        # Created again under the same name: reconciled, and its lock goes with it too.
        sims.zaps[ZAP].faults.answer_delay_ms = 0
        await cluster.create(docs[INVERTER])
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)
        assert "SG0001" in sims.zaps[ZAP].devices and _inverter_in_novacore(sims)
        await cluster.delete(*INVERTER)
        await cluster.wait_gone(*INVERTER, timeout=60)
        assert "SG0001" not in sims.zaps[ZAP].devices and not _inverter_in_novacore(sims)
        staying = {("Site", "home"), ("Gateway", "home-zap"), ("Device", "home-battery")}
        assert owners() == {(NAMESPACE, *key) for key in staying}, "a lock for each object"


# The inverter's battery declared in a DER object of its own: its reconcile applies the
# inverter's changes.
WITH_DER = stream(
    novacore_site(),
    zap_gateway(extra=RELEASE),
    sungrow_inverter("home-inverter", "home-zap", "SG0001", "192.168.1.60", extra=RELEASE),
    der("home-inverter-battery", "home-inverter", "battery", "battery"),
)


@contextlib.asynccontextmanager
async def _with_der(tmp_path: Path, monkeypatch: Any) -> AsyncIterator[tuple[Cluster, SimFleet]]:
    """The operator with `WITH_DER` applied. No drift check comes during a test: only the
    reconciles the test causes write."""
    config = OperatorConfig(interval=300, retry_delay=0.5)
    async with operator(WITH_DER, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await cluster.create_all(documents(WITH_DER))
        await _handled(cluster, *INVERTER)
        await _handled(cluster, "DER", "home-inverter-battery")
        yield cluster, sims


async def test_a_device_deleted_while_its_der_applies_its_changes_is_released_after_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with _with_der(tmp_path, monkeypatch) as (cluster, sims):
        # The DER's reconcile applies the inverter's changes holding the inverter's lock.
        lock = kept_lock(*KEY)
        assert lock is not None
        _drift_away(sims)
        # An edit of the DER: its reconcile adds the inverter again.
        await cluster.patch("DER", "home-inverter-battery",
                            {"metadata": {"annotations": {"example.com/edited": "1"}}})
        await _delete_mid_write(cluster, sims)
        await landed(sims, lock)  # that reconcile, and any write still on its way, landed
        assert "SG0001" not in sims.zaps[ZAP].devices
        assert not _inverter_in_novacore(sims), "not provisioned after its release"
        assert KEY not in owners()


async def test_a_der_edited_while_its_device_is_released_does_not_add_it_again(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with _with_der(tmp_path, monkeypatch) as (cluster, sims):
        # The release's writes answered 2 s after they took effect: the finalizer is
        # still at work when the DER is edited.
        sims.zaps[ZAP].faults.answer_delay_ms = 2000
        await cluster.delete(*INVERTER)
        await _until(lambda: "SG0001" not in sims.zaps[ZAP].devices, "the release begun")
        await cluster.patch("DER", "home-inverter-battery",
                            {"metadata": {"annotations": {"example.com/edited": "1"}}})
        await cluster.wait_gone(*INVERTER, timeout=60)
        await cluster.wait_for(lambda: _edit_reconciled(cluster),
                               what="the DER's edit reconciled")
        assert "SG0001" not in sims.zaps[ZAP].devices
        assert not _inverter_in_novacore(sims)
        cond = await cluster.condition("DER", "home-inverter-battery", "Ready")
        assert cond is not None and cond["reason"] == "WaitingForDependency", cond
        assert "home-inverter" in cond["message"]
        assert KEY not in owners()


async def _edit_reconciled(cluster: Cluster) -> bool:
    """Whether kopf ran the DER's update handler: done (the essence it last handled has the
    edit), or to be retried (its progress is recorded)."""
    body = await cluster.get("DER", "home-inverter-battery") or {}
    notes = (body.get("metadata") or {}).get("annotations") or {}
    handled = notes.get(LAST_HANDLED, "")
    return "example.com/edited" in handled or "kopf.zalando.org/update-ders" in notes


async def test_a_gateway_deleted_while_a_device_under_it_writes_is_released_after_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The Gateway (deletionPolicy Release) is deleted while the inverter's drift check is
    mid-write under it: added to the Zap, its provisioning in Novacore still to come. The
    Gateway's finalizer waits for that write to land, then releases the gateway. Before,
    the gateway was released first and Novacore refused the provisioning (the gateway not
    claimed by the organisation): a Warning that the write failed for good, and the
    inverter's writes held back even once the Gateway was declared again and claimed."""
    config = OperatorConfig(interval=2.0, retry_delay=0.5)
    async with operator(HOME, tmp_path, monkeypatch, config=config) as (cluster, sims):
        docs = {(d["kind"], d["metadata"]["name"]): d for d in await declare(cluster)}
        await _handled(cluster, *INVERTER)
        await _handled(cluster, "Gateway", "home-zap")
        await cluster.wait_planned(*INVERTER, 1)
        _drift_away(sims)
        await _until(lambda: "SG0001" in sims.zaps[ZAP].devices, "the inverter added to the Zap")
        assert not _inverter_in_novacore(sims)
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)
        # The inverter's drift check, and any write still on its way, landed.
        await landed(sims, owner_lock(*KEY))
        assert all(g.org_id is None for g in sims.novacore.gateways.values()), "released"
        states = [d.state for d in sims.novacore.devices.values() if d.hardware_id == "SG0001"]
        assert states == ["orphaned"], "provisioned before the release, which orphaned it"
        await cluster.events_posted(await _body(cluster, *INVERTER))
        warnings = await cluster.events_about("home-inverter", type_="Warning")
        assert not warnings, [w.get("message") for w in warnings]

        # Declared again: claimed, and the inverter reconciled under it, not held back.
        sims.zaps[ZAP].faults.answer_delay_ms = 0
        await cluster.create(docs[("Gateway", "home-zap")])
        await cluster.wait_condition("Gateway", "home-zap", "Ready", timeout=60)
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)


# HOME with a second inverter behind its Zap, declared only once a test says so.
NEW = ("Device", "new-inverter")
WITH_NEW = stream(HOME, sungrow_inverter(NEW[1], "home-zap", "SG0002", "192.168.1.61"))


def _held(lock: asyncio.Lock | None) -> bool:
    """Whether `lock` is kept and taken (None: dropped, its owner's finalizer done)."""
    return lock is not None and lock.locked()


def _in_novacore(sims: SimFleet, hardware_id: str) -> list[str]:
    """The states of the Novacore devices of `hardware_id`."""
    return [d.state for d in sims.novacore.devices.values() if d.hardware_id == hardware_id]


async def test_a_device_created_while_its_gateway_is_released_writes_nothing_under_it(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The Gateway is deleted while the inverter's drift check writes under it: its
    finalizer waits for that write. A Device created under the Gateway meanwhile, once the
    finalizer looked for the Devices under it, waits for the Gateway to be declared again,
    writing nothing. Before, it was added to the Zap and its provisioning in Novacore
    landed after the release: refused (the gateway not claimed by the organisation), a
    Warning that the write failed for good, and its writes held back even once the Gateway
    was declared again and claimed."""
    config = OperatorConfig(interval=2.0, retry_delay=0.5)
    async with operator(WITH_NEW, tmp_path, monkeypatch, config=config) as (cluster, sims):
        gateway_doc, new_doc = (
            next(d for d in documents(WITH_NEW) if (d["kind"], d["metadata"]["name"]) == key)
            for key in (("Gateway", "home-zap"), NEW)
        )
        await declare(cluster)
        await _handled(cluster, *INVERTER)
        await _handled(cluster, "Gateway", "home-zap")
        await cluster.wait_planned(*INVERTER, 1)
        _drift_away(sims, answer_delay_ms=6000)
        await _until(lambda: "SG0001" in sims.zaps[ZAP].devices, "the inverter added to the Zap")
        await cluster.delete("Gateway", "home-zap")
        # Half-way through the drift check's writes: provisioned in Novacore, its last
        # write to the Zap answered 6 s after.
        await _until(lambda: bool(_in_novacore(sims, "SG0001")), "the inverter provisioned")
        # The finalizer looked for the Devices under the Gateway: it runs (kopf saw the
        # deletion, which the new Device's reconcile sees too), holding the Gateway's lock
        # while it waits for the inverter's drift check.
        await runs.wait_said("home-zap", "Handler 'finalize-gateways' is invoked")
        await _until(lambda: _held(kept_lock(NAMESPACE, "Gateway", "home-zap")),
                     "the Gateway's finalizer holding its lock")
        assert await cluster.get("Gateway", "home-zap"), "still being deleted"
        await cluster.create(new_doc)

        async def waits_for_the_gateway() -> bool:
            ready = await cluster.condition(*NEW, "Ready") or {}
            return "Gateway 'home-zap' is being deleted" in ready.get("message", "")

        await cluster.wait_for(waits_for_the_gateway, what="the new Device waiting")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)
        # The inverter's drift check, the new Device's reconcile if it took its lock, and
        # any write still on its way, landed.
        await landed(sims, *(lock for lock in (owner_lock(*KEY), kept_lock(NAMESPACE, *NEW))
                             if lock is not None))
        assert all(g.org_id is None for g in sims.novacore.gateways.values()), "released"
        assert "SG0002" not in sims.zaps[ZAP].devices
        assert not _in_novacore(sims, "SG0002")
        await cluster.events_posted(await _body(cluster, *NEW))
        warnings = await cluster.events_about(NEW[1], type_="Warning")
        assert not warnings, [w.get("message") for w in warnings]

        # Declared again: claimed, and the new Device reconciled under it, not held back.
        sims.zaps[ZAP].faults.answer_delay_ms = 0
        await cluster.create(gateway_doc)
        await cluster.wait_condition("Gateway", "home-zap", "Ready", timeout=60)
        await cluster.wait_condition(*NEW, "Ready", timeout=60)
        assert "SG0002" in sims.zaps[ZAP].devices
        assert _in_novacore(sims, "SG0002") == ["active"]


# HOME with a second Zap at home, for the inverter to move to.
OTHER_ZAP = "zap-00000000000000a3"
WITH_OTHER = stream(HOME, zap_gateway("other-zap", "home", OTHER_ZAP, "http://192.168.1.3"))


async def test_a_gateway_deleted_while_a_device_moved_away_still_writes_under_it_waits(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The inverter's drift check is mid-write under its Gateway (added to the Zap, its
    provisioning in Novacore still to come) when the inverter is moved to another Gateway
    and the first is deleted. The finalizer waits for that write, though the inverter's
    spec names the other Gateway now, then releases the gateway; the inverter is moved to
    the other. Before, the gateway was released at once, Novacore refused the drift check's
    provisioning (the gateway not claimed by the organisation), and the inverter was said
    to have failed for good."""
    config = OperatorConfig(interval=2.0, retry_delay=0.5)
    async with operator(WITH_OTHER, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await declare(cluster, WITH_OTHER)
        await _handled(cluster, *INVERTER)
        await _handled(cluster, "Gateway", "home-zap")
        await _handled(cluster, "Gateway", "other-zap")
        await cluster.wait_planned(*INVERTER, 1)
        _drift_away(sims)
        await _until(lambda: "SG0001" in sims.zaps[ZAP].devices, "the inverter added to the Zap")
        assert not _inverter_in_novacore(sims)
        await cluster.patch(*INVERTER, {"spec": {"gatewayRef": "other-zap"}})
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)
        released = next(g for g in sims.novacore.gateways.values() if g.serial == ZAP)
        assert released.org_id is None
        assert "SG0001" not in sims.zaps[ZAP].devices, "the copy left by the move went too"

        async def moved() -> bool:
            status = await cluster.status(*INVERTER)
            return (status.get("gateway") or {}).get("name") == "other-zap"

        await cluster.wait_for(moved, what="the inverter on the other Gateway")
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)
        [device] = [d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001"]
        assert (device.state, device.gateway_serial) == ("active", OTHER_ZAP)
        warnings = await cluster.events_about("home-inverter", type_="Warning")
        assert not warnings, [w.get("message") for w in warnings]
