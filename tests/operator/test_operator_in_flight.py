"""What happens to an object while its apply is in flight (every write answered late, so
the drift timer fires meanwhile): deleted, it is released once the apply is over, nothing
of it left behind; edited, each spec is applied once and the last one stays; its whole
namespace deleted (every object and Secret at once, in no order), each object goes as its
`deletionPolicy` says. A drift check that planned with a spec edited before it took the
object's lock applies nothing of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from harness import LAST_HANDLED, NAMESPACE, WAIT, KopfRuns, operator
from objects import HOME, ZAP, declare

from reconciler.operator.config import OperatorConfig
from reconciler.operator.owner_locks import owner_lock
from reconciler.sim.fleet import SimFleet

CONFIG = OperatorConfig(interval=0.5, retry_delay=0.5)
# Fewer drift checks of the Site, the Gateway and the inverter (each every 0.5 s) than a
# minute holds even on a loaded machine (some 300 idle, over 30 under two CPU hogs), and
# more than kopf's next look at a deleted object a second later (`handlers.DRIFT_EXIT_POLL`)
# leaves time for (2 to 5 under two CPU hogs).
A_MINUTE_OF_CHECKS = 20
OBJECTS = (("Site", "home"), ("Gateway", "home-zap"), ("Device", "home-inverter"),
           ("Device", "home-battery"))


def _slow_answers(sims: SimFleet) -> None:
    """Every write takes effect at once and is answered 0.8 s later."""
    for server in sims.http_servers():
        server.faults.answer_delay_ms = 800


async def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _reconciled(cluster: Any, name: str, *, generation: int) -> bool:
    """Whether the Device's Ready condition is True for its spec of `generation`."""
    ready = await cluster.condition("Device", name, "Ready") or {}
    return ready.get("status") == "True" and ready.get("observedGeneration") == generation


def _drift_checks(runs: KopfRuns) -> int:
    """The drift checks of the Site, the Gateway and the inverter run so far."""
    return sum(runs.count(name, f"Timer 'drift-{plural}'") for name, plural in (
        ("home", "sites"), ("home-zap", "gateways"), ("home-inverter", "devices")))


def _inverter_in_novacore(sims: SimFleet) -> bool:
    return any(d.hardware_id == "SG0001" for d in sims.novacore.devices.values())


@pytest.mark.parametrize("point", ["on-the-zap", "in-novacore"])
async def test_an_object_deleted_while_its_apply_is_in_flight_is_released(
    tmp_path: Path, monkeypatch: Any, point: str
) -> None:
    async with operator(HOME, tmp_path, monkeypatch, config=CONFIG,
                        before_start=_slow_answers) as (cluster, sims):
        await declare(cluster)
        zap = sims.zaps[ZAP]
        reached = {"on-the-zap": lambda: "SG0001" in zap.devices,
                   "in-novacore": lambda: _inverter_in_novacore(sims)}[point]
        await _until(reached, f"the inverter {point}")
        await cluster.delete("Device", "home-inverter")  # deletionPolicy: Release
        await cluster.wait_gone("Device", "home-inverter", timeout=60)
        await cluster.wait_planned("Device", "home-battery", 2)
        assert set(zap.devices) == {"ferroamp_192.168.1.70"}
        assert not _inverter_in_novacore(sims)
        assert zap.requests["POST /api/devices"] == 2, "not added again after its release"


async def test_each_edit_during_an_apply_is_applied_once_and_the_last_one_stays(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch, config=CONFIG,
                        before_start=_slow_answers) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready", timeout=60)
        (inverter,) = (d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001")
        for edit in range(3):
            await cluster.patch("Device", "home-inverter", {
                "spec": {"displayName": f"Inverter {edit}"},
                "metadata": {"generation": 2 + edit}})
            # The next edit comes while this one is applied: its rename took effect, and
            # is answered 0.8 s later.
            name = f"Inverter {edit}"
            await _until(lambda name=name: sims.novacore.devices[inverter.id].name == name,
                         f"{name} applied", timeout=60)
        # Until the last edit is reconciled: a number of plans is not enough, as drift
        # checks meanwhile plan from the spec kopf last handed out (an earlier edit's,
        # while it handles that one), which a loaded machine makes many.
        await cluster.wait_for(
            lambda: _reconciled(cluster, "home-inverter", generation=4), timeout=60,
            what="the last edit reconciled")
        await cluster.wait_planned("Device", "home-inverter", 2)
        assert sims.novacore.devices[inverter.id].name == "Inverter 2"
        # An edit that a later one replaced before it was handled (kopf hands out the
        # latest spec) is not applied on its own: at most one write an edit, never more.
        assert 1 <= sims.novacore.requests["PUT /devices/{device_id}"] <= 3, "once an edit"


async def test_a_handler_run_again_for_the_spec_it_reconciled_waits_for_nothing(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """kopf runs the update handler again for the spec it has just handled when it takes
    an older event of the object (a drift check's status write made while the handler ran,
    seen after kopf's consistency timeout on a loaded machine) for the current one: made
    here by putting kopf's record back as that event has it. The run returns at once: it
    does not wait for the object's lock (held here, as a drift check holds it) nor plan
    again. Before, each such run waited for the lock and planned anew, and the object's
    next edit waited in kopf's queue behind a row of them: a minute, under load."""
    name = "home-inverter"
    async with operator(HOME, tmp_path, monkeypatch, config=CONFIG) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", name, "Ready", timeout=60)
        await cluster.wait_handled("Device", name)
        before = ((await cluster.get("Device", name)) or {})["metadata"]["annotations"]
        await cluster.patch("Device", name, {
            "spec": {"displayName": "Inverter 2"}, "metadata": {"generation": 2}})
        await cluster.wait_for(lambda: _reconciled(cluster, name, generation=2),
                               what="the edit reconciled")
        await cluster.wait_handled("Device", name)
        writes = sims.writes()
        async with owner_lock(NAMESPACE, "Device", name):
            # Counted once the lock is held: no run of the handler that needs it ends now.
            succeeded = runs.said(name, "Handler 'update-devices' succeeded")
            skipped = runs.said(name, f"Device/{name}: reconciled already by a handler")
            await cluster.patch("Device", name, {
                "metadata": {"annotations": {LAST_HANDLED: before[LAST_HANDLED]}}})
            await runs.until(
                lambda: runs.said(name, "Handler 'update-devices' succeeded") > succeeded,
                name, "the update handler run again")
        assert runs.said(name, f"Device/{name}: reconciled already by a handler") > skipped
        assert sims.writes() == writes


async def test_a_namespace_deleted_with_its_objects_releases_what_they_say(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster)
        for kind, name in OBJECTS:
            await cluster.wait_condition(kind, name, "Ready", timeout=60)
        # As a namespace's deletion does: the objects and Secrets at once, in no order.
        await cluster.delete_secret("ferroamp-mqtt")
        for kind, name in OBJECTS:
            await cluster.delete(kind, name)
        for kind, name in OBJECTS:
            await cluster.wait_gone(kind, name, timeout=60)
        # The gateway and the inverter are Release, the battery Orphan.
        assert set(sims.zaps[ZAP].devices) == {"ferroamp_192.168.1.70"}
        assert not _inverter_in_novacore(sims)
        assert all(g.org_id is None for g in sims.novacore.gateways.values())


async def test_a_gateway_deleted_after_its_site_is_gone_is_released_all_the_same(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Its Site went first (a namespace's deletion removes objects in no order): the
    organisation it was claimed into is read from its `status.claims`, and it is
    released as its deletionPolicy says, not left claimed with nothing said."""
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster)
        for kind, name in OBJECTS:
            await cluster.wait_condition(kind, name, "Ready", timeout=60)
        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home", timeout=60)
        assert sims.novacore.gateways[ZAP].org_id == "org-home", "not released with its Site"
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_gone("Gateway", "home-zap", timeout=60)
        assert sims.novacore.gateways[ZAP].org_id is None, "released (deletionPolicy Release)"


async def test_an_object_deleted_while_its_drift_check_waits_for_its_lock_goes_at_once(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """Its drift check, waiting for the object's lock (another reconcile of it in flight:
    here the test holds it), is still running when the object is deleted: kopf waits for
    the check to end before it removes the finalizer, and looks again within a second or
    so, not a minute later (the check, finding the object going, writes nothing, so no
    event of the object comes sooner)."""
    async with operator(HOME, tmp_path, monkeypatch, config=CONFIG) as (cluster, _):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-battery", "Ready", timeout=60)
        lock = owner_lock(NAMESPACE, "Device", "home-battery")
        async with lock:
            # Two drift checks of the inverter pass: the battery's has begun, and waits.
            await cluster.wait_planned("Device", "home-inverter", 2)
            await cluster.delete("Device", "home-battery")  # deletionPolicy: Orphan
            # Its finalizer waits for the lock too.
            await runs.wait_said("home-battery", "Handler 'finalize-devices' is invoked")
        # The check ends once the lock is let go, then the finalizer runs: kopf looking
        # again a minute later (should the check still wind down then) would leave the
        # battery there for a minute's worth of the other objects' drift checks.
        await _gone_soon(cluster, runs, "home-battery")


async def _gone_soon(cluster: Any, runs: KopfRuns, name: str) -> None:
    """Until the Device `name` is gone, fewer drift checks of the others than a minute holds."""
    checks = _drift_checks(runs)
    await cluster.wait_gone("Device", name, timeout=120)
    ran = _drift_checks(runs) - checks
    assert ran < A_MINUTE_OF_CHECKS, f"{ran} drift checks of the other objects before it went"


def _looked_again(runs: KopfRuns, name: str) -> bool:
    """Whether kopf found the drift check of Device `name` still running after its finalizer
    succeeded (and so keeps the finalizer until it looks again)."""
    lines = [line for about, _, line in runs.lines if about == name]
    done = [i for i, line in enumerate(lines)
            if line.startswith("Handler 'finalize-devices' succeeded")]
    return bool(done) and any(line.startswith("Timer 'drift-devices' is still exiting")
                              for line in lines[done[0]:])


async def test_an_object_deleted_while_its_drift_check_reads_goes_soon_after_it_ends(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The battery's drift check reads the namespace's Secrets (held here) when the battery
    is deleted; its finalizer releases it (Orphan) meanwhile, and kopf keeps the finalizer
    while the check runs. The check, once answered, finds the battery going and writes
    nothing, so no event of the battery comes: kopf looks again within a second or so
    (`handlers.DRIFT_EXIT_POLL`), not a minute later (kopf's own default), and the battery
    goes."""
    reads = SecretReads()
    async with operator(HOME, tmp_path, monkeypatch, config=CONFIG) as (cluster, _):
        reads.install(cluster)
        await declare(cluster)
        for kind, name in OBJECTS:
            await cluster.wait_condition(kind, name, "Ready", timeout=60)
            await cluster.wait_handled(kind, name)
        reads.armed = True
        # Each of the four objects' drift checks, one at a time each, holds at its read;
        # no handler runs now (each object's spec is handled).
        await _until(lambda: reads.held >= 4, "every drift check reading the Secret")
        reads.armed = False  # the finalizer's own read is answered
        await cluster.delete("Device", "home-battery")
        await runs.until(lambda: _looked_again(runs, "home-battery"), "home-battery",
                         "kopf to look again at its drift check after its finalizer")
        reads.release.set()
        await _gone_soon(cluster, runs, "home-battery")


async def test_an_object_deleted_while_its_drift_check_waits_says_what_stays_once(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """kopf runs the finalizer of an object whose drift check had not ended again once the
    check ends; the second run finds it finalized already, and says nothing again (here:
    that the Site's Novacore site stays)."""
    async with operator(HOME, tmp_path, monkeypatch, config=CONFIG) as (cluster, _):
        await declare(cluster)
        await cluster.wait_condition("Site", "home", "Ready", timeout=60)
        site = await cluster.get("Site", "home")
        assert site is not None
        async with owner_lock(NAMESPACE, "Site", "home"):
            await cluster.wait_planned("Device", "home-inverter", 2)  # the Site's check waits
            await cluster.delete("Site", "home")
            await runs.wait_said("home", "Handler 'finalize-sites' is invoked")  # waits too
        await cluster.wait_gone("Site", "home")
        await cluster.events_posted(site)  # a second run's, before the Site went, too
        kept = await cluster.events_about("home", reason="NovacoreSiteKept")
        assert len(kept) == 1, kept


# The Secret of the battery's MQTT password (`objects.declare`).
SECRET_NAME = "ferroamp-mqtt"


class SecretReads:
    """Holds every read of the battery's MQTT password Secret, once `armed`, until
    `release` is set: every reconcile of the namespace reads it before it plans
    (`secrets.preload`), after it took its spec from kopf."""

    def __init__(self) -> None:
        self.armed = False
        self.held = 0
        self.release = asyncio.Event()

    def install(self, cluster: Any) -> None:
        async def hold() -> None:
            if self.armed:
                self.held += 1
                await asyncio.wait_for(self.release.wait(), WAIT)  # a bound, not a time
            # The emulator answers then: a reaction that answers nothing would be disabled
            # after its first request, one that raises this is asked again each time.
            raise NotImplementedError

        cluster.emulator[f"get /api/v1/namespaces/{NAMESPACE}/secrets/{SECRET_NAME}"] >> hold


def _names_sent(sims: SimFleet, sink: list[str]) -> None:
    """Record the name of every Novacore device rename."""

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "PUT" and request.path.startswith("/devices/"):
            body = await request.json()
            if "name" in body:
                sink.append(str(body["name"]))
        return await handler(request)

    sims.novacore.app.middlewares.append(record)


async def test_a_drift_check_whose_object_is_edited_while_it_reads_secrets_applies_nothing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The inverter's drift check has its spec (generation 1) and reads the namespace's
    Secrets (held here) when the inverter is edited; its device was renamed in Novacore out
    of band. The check, once it has the inverter's lock, finds its spec changed and writes
    nothing: the device is renamed once, to the edited name. Before, the check took the
    spec it began with after the Secrets were read, found the same one in kopf's index, and
    renamed the device back to its old name, then the edit's reconcile to the new one."""
    sent: list[str] = []
    reads = SecretReads()
    async with operator(HOME, tmp_path, monkeypatch, config=CONFIG,
                        before_start=lambda sims: _names_sent(sims, sent)) as (cluster, sims):
        reads.install(cluster)
        await declare(cluster)
        # Every object's spec handled first: a handler still to run (the battery's create,
        # late on a loaded machine) would be one of the four reads held, the inverter's
        # drift check perhaps none of them, and the fifth no sign of the edit indexed.
        for kind, name in OBJECTS:
            await cluster.wait_condition(kind, name, "Ready", timeout=60)
            await cluster.wait_handled(kind, name)
        reads.armed = True
        # Each of the four objects' drift checks, one at a time each, holds at its read;
        # no handler runs now.
        await _until(lambda: reads.held >= 4, "every drift check reading the Secret")
        (inverter,) = (d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001")
        sims.novacore.rename_device(inverter.id, "Renamed elsewhere")
        await cluster.patch("Device", "home-inverter", {
            "spec": {"displayName": "Inverter 2"}, "metadata": {"generation": 2}})
        # kopf indexed the edit before it runs the update handler, which reads it too.
        await _until(lambda: reads.held >= 5, "the update handler reading the Secret")
        sent.clear()
        reads.release.set()
        await cluster.wait_for(
            lambda: _reconciled(cluster, "home-inverter", generation=2), timeout=60,
            what="the edit reconciled")
        await cluster.wait_planned("Device", "home-inverter", 2)
        assert sims.novacore.devices[inverter.id].name == "Inverter 2"
        assert sent == ["Inverter 2"], "renamed once, to the edited name"
