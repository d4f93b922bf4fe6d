"""`status.observedGeneration` says which spec a status is of: a drift check that was
applying an object's spec when the object was edited writes the generation it planned
with, not the new one, so `kubectl wait --for=jsonpath='{.status.observedGeneration}'=N`
(and Argo CD or Flux health checks) does not take the new spec for applied before the
reconcile of it has applied it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from harness import WAIT, KopfRuns, operator
from objects import HOME, declare

from reconciler.sim.fleet import SimFleet

INVERTER = ("Device", "home-inverter")
INVERTER_SERIAL = "SG0001"
RENAMED = "Inverter 2"
# Longest a write is held: the test lets it go as soon as it has seen what it waits for,
# however long a loaded machine takes. The client waits longer (RECONCILER_TIMEOUT): one
# that gave up would ask again, and the write held would not be the one the test follows.
HOLD = 2 * WAIT
SETTINGS = {"RECONCILER_TIMEOUT": str(3 * WAIT)}


class HeldWrites:
    """Holds Novacore's provisioning of the inverter (the drift check's write) until
    `provisioned` is set, and a rename of a device to `RENAMED` (the write of the edited
    spec) until `renamed` is set, each at most `HOLD` seconds; records when the rename was
    answered (installed before the simulator serves)."""

    def __init__(self) -> None:
        self.armed = False
        self.provisioning = asyncio.Event()
        self.provisioned = asyncio.Event()
        self.renamed = asyncio.Event()
        self.rename_answered: float | None = None
        self.gave_up = False

    async def _held(self, release: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(release.wait(), HOLD)
        except TimeoutError:
            self.gave_up = True

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            if not self.armed:
                return await handler(request)
            # The inverter's only: the battery may still be provisioned by its own create.
            if request.method == "POST" and request.path == "/devices/provision" and json.loads(
                await request.read() or b"{}"
            ).get("hardware_id") == INVERTER_SERIAL:
                self.provisioning.set()
                await self._held(self.provisioned)
            rename = False
            if request.method == "PUT" and request.path.startswith("/devices/"):
                rename = json.loads(await request.read() or b"{}").get("name") == RENAMED
                if rename:
                    await self._held(self.renamed)
            response = await handler(request)
            if rename and self.rename_answered is None:
                self.rename_answered = time.monotonic()
            return response

        sims.novacore.app.middlewares.append(hold)


def _generations(status: dict[str, Any]) -> set[Any]:
    """Every generation the status says it is of: its own and its conditions'."""
    said = {status.get("observedGeneration")}
    return said | {c.get("observedGeneration") for c in status.get("conditions") or []}


def _inverter_id(sims: SimFleet) -> str | None:
    return next((d.id for d in sims.novacore.devices.values()
                 if d.hardware_id == INVERTER_SERIAL),
                None)


async def test_a_drift_check_applying_a_spec_edited_meanwhile_says_the_generation_it_applied(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The inverter's drift check provisions it again in Novacore (removed there out of
    band) and is held there while the inverter is edited (generation 2). Once it is let go,
    its status says generation 1, as its Ready does; generation 2 is said only once the
    reconcile of generation 2 renamed the device. Before, the check wrote generation 2 with
    its Ready=True of generation 1 while the rename was still held."""
    held = HeldWrites()
    async with operator(HOME, tmp_path, monkeypatch, before_start=held.install,
                        settings=SETTINGS) as (
        cluster, sims
    ):
        await declare(cluster)
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)
        await cluster.wait_handled(*INVERTER)
        old_id = _inverter_id(sims)
        assert old_id is not None
        held.armed = True
        sims.novacore.remove_device(old_id)
        await asyncio.wait_for(held.provisioning.wait(), WAIT)  # the drift check writes

        # Every status the object has from now on, and when it was read back.
        seen: list[tuple[float, dict[str, Any]]] = []

        async def watch() -> None:
            while True:
                status = await cluster.status(*INVERTER)
                seen.append((time.monotonic(), status))
                await asyncio.sleep(0.03)

        watching = asyncio.create_task(watch())
        try:
            await cluster.patch(*INVERTER, {"spec": {"displayName": RENAMED},
                                            "metadata": {"generation": 2}})
            # kopf hands the edit to the drift check's body (the emulator sends its event
            # as it is made) before it invokes the update handler, which waits for the
            # object's lock.
            await runs.wait_said(INVERTER[1], "Handler 'update-devices' is invoked")
            held.provisioned.set()

            async def check_written() -> bool:
                new_id = _inverter_id(sims)
                status = await cluster.status(*INVERTER)
                # Kept too: the watch may not read it again before the rename is answered.
                seen.append((time.monotonic(), status))
                return new_id is not None and (status.get("externalIds") or {}).get(
                    "novacore") == new_id

            await cluster.wait_for(check_written,
                                   what="the drift check's status written")
            held.renamed.set()

            async def reconciled() -> bool:
                ready = await cluster.condition(*INVERTER, "Ready") or {}
                return ready.get("status") == "True" and ready.get("observedGeneration") == 2

            await cluster.wait_for(reconciled, what="generation 2 reconciled")
        finally:
            watching.cancel()
        assert not held.gave_up, "every write held until the test let it go"
        renamed_at = held.rename_answered
        assert renamed_at is not None, "generation 2 renamed the device"
        early = [status for at, status in seen if at < renamed_at and 2 in _generations(status)]
        assert not early, f"generation 2 said before it was applied: {early[0]}"
        # The drift check's status was written, and said what it applied.
        new_id = _inverter_id(sims)
        checked = [status for at, status in seen if at < renamed_at
                   and (status.get("externalIds") or {}).get("novacore") == new_id]
        assert checked and _generations(checked[0]) == {1}, checked[:1]


async def test_a_drift_checks_status_landing_late_leaves_a_newer_generations_status(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The inverter's drift check provisions it again in Novacore while the inverter is
    edited (generation 2), and its status write (of generation 1) is held at the API server
    until the reconcile of generation 2 wrote its own. Let go then, it leaves generation 2's
    status as it is: before, it put generation 1 and its lastValidSpec back over it until
    the next reconcile."""
    held = HeldWrites()
    held.renamed.set()  # the rename of generation 2 is not held
    async with operator(HOME, tmp_path, monkeypatch, before_start=held.install,
                        settings=SETTINGS) as (
        cluster, sims
    ):
        assert cluster.emulator is not None
        await declare(cluster)
        await cluster.wait_condition(*INVERTER, "Ready", timeout=60)
        await cluster.wait_handled(*INVERTER)
        old_id = _inverter_id(sims)
        assert old_id is not None
        held.armed = True
        sims.novacore.remove_device(old_id)
        await asyncio.wait_for(held.provisioning.wait(), WAIT)  # the drift check writes
        late = cluster.emulator.hold(
            "PATCH", f"/devices/{INVERTER[1]}/status",
            # kopf's JSON patches (lists) are not it.
            lambda body: isinstance(body, dict)
            and (body.get("status") or {}).get("observedGeneration") == 1,
        )
        await cluster.patch(*INVERTER, {"spec": {"displayName": RENAMED},
                                        "metadata": {"generation": 2}})
        held.provisioned.set()
        await asyncio.wait_for(late.arrived.wait(), WAIT)

        async def reconciled() -> bool:
            ready = await cluster.condition(*INVERTER, "Ready") or {}
            status = await cluster.status(*INVERTER)
            return ready.get("status") == "True" and status.get("observedGeneration") == 2

        await cluster.wait_for(reconciled, what="generation 2 reconciled")
        late.release.set()
        await asyncio.wait_for(late.answered.wait(), WAIT)
        status = await cluster.status(*INVERTER)
        assert _generations(status) == {2}, status
        assert RENAMED in status["lastValidSpec"], status["lastValidSpec"]
        assert not held.gave_up, "every write held until the test let it go"
