"""Two Devices of one namespace on one Zap at one connection endpoint (here the same Modbus
TCP address and unit): the Zap would refuse (409) the second one's add on every reconcile.
The one created later is refused as invalid, naming the other, with one Warning; it writes
nothing to the Zap, and the first is reconciled as usual. Unless the later one holds the
endpoint (its status records it applied there) and the first is edited onto it: the
edited one is refused, the one working there keeps it. A Device being deleted keeps its
endpoint until its release is done: another Device declaring it meanwhile waits, writing
nothing to the Zap, and takes the endpoint once the first is gone; one declared before
the first was deleted, refused, is told as the first goes (`takeovers`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from fleet_yaml import HOME_ZAP_SERIAL, novacore_site, stream, sungrow_inverter, zap_gateway
from harness import documents, operator
from refused_calls import RefusedCalls
from takeover_marks import takeover_cleared

from reconciler.operator.config import OperatorConfig
from reconciler.operator.owner_locks import owner_lock
from reconciler.sim.fleet import SimFleet

FIRST = sungrow_inverter("inv-a", "home-zap", "SG-A", "192.168.1.60")
SECOND = sungrow_inverter("inv-b", "home-zap", "SG-B", "192.168.1.60")
FLEET = stream(novacore_site(), zap_gateway(), FIRST)


async def test_the_newer_of_two_devices_at_one_endpoint_is_refused_naming_the_other(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        created = {"home": "2026-01-01T00:00:00Z", "home-zap": "2026-01-01T00:00:00Z",
                   "inv-a": "2026-01-01T00:00:00Z", "inv-b": "2026-01-02T00:00:00Z"}
        # inv-b sorts after inv-a by name too: created first, it would still be the newer.
        second = [d for d in documents(stream(novacore_site(), zap_gateway(), SECOND))
                  if d["metadata"]["name"] == "inv-b"]
        for doc in [*documents(FLEET), *second][::-1]:
            doc["metadata"]["creationTimestamp"] = created[doc["metadata"]["name"]]
            await cluster.create(doc)

        ready = await cluster.wait_reason("Device", "inv-b", "InvalidSpec", timeout=30,
                                          what="Device/inv-b refused")
        assert ready["message"] == (
            "spec.connection.modbusTcp: Modbus TCP 192.168.1.60:502 unit id 1 on Gateway "
            "'home-zap' is already taken by Device 'inv-a'; the Zap refuses (409) to add a "
            "second device there: give each device on the Zap its own host, port or unitId"
        ), ready
        await cluster.wait_condition("Device", "inv-a", "Ready", timeout=30)
        await cluster.wait_planned("Device", "inv-b", 2)
        warnings = [str(e.get("message")) for e in
                    await cluster.events_about("inv-b", reason="Failed", type_="Warning")]
        assert warnings == [ready["message"]]
        assert set(sims.zaps[HOME_ZAP_SERIAL].devices) == {"SG-A"}


async def test_an_older_device_edited_onto_a_newer_ones_endpoint_is_refused_not_the_holder(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """inv-a, created first, is edited onto the endpoint inv-b was applied at: inv-a, which
    asks for it second, is refused naming inv-b, and inv-b, working there, keeps it. The Zap
    is not written to: inv-a stays where it was."""
    newer = sungrow_inverter("inv-b", "home-zap", "SG-B", "192.168.1.61")
    fleet = stream(novacore_site(), zap_gateway(), FIRST, newer)
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        created = {"home": "2026-01-01T00:00:00Z", "home-zap": "2026-01-01T00:00:00Z",
                   "inv-a": "2026-01-01T00:00:00Z", "inv-b": "2026-01-02T00:00:00Z"}
        for doc in documents(fleet):
            doc["metadata"]["creationTimestamp"] = created[doc["metadata"]["name"]]
            await cluster.create(doc)
        for name in ("inv-a", "inv-b"):
            await cluster.wait_condition("Device", name, "Ready", timeout=30)
        held = (await cluster.status("Device", "inv-b"))["gateway"]
        assert held["endpoint"] == "Modbus TCP 192.168.1.61:502 unit id 1", held

        # The generation as the API server counts it (the emulator leaves it to clients).
        taken = {"spec": {"connection": {"modbusTcp": {"host": "192.168.1.61"}}},
                 "metadata": {"generation": 2}}
        await cluster.patch("Device", "inv-a", taken)
        ready = await cluster.wait_reason("Device", "inv-a", "InvalidSpec", timeout=30,
                                          what="Device/inv-a refused")
        assert ready["message"] == (
            "spec.connection.modbusTcp: Modbus TCP 192.168.1.61:502 unit id 1 on Gateway "
            "'home-zap' is already taken by Device 'inv-b'; the Zap refuses (409) to add a "
            "second device there: give each device on the Zap its own host, port or unitId"
        ), ready
        failed = await cluster.wait_events_about("inv-a", reason="Failed")
        said = [(e.get("type"), e.get("message")) for e in failed]
        # Said once. Its first reconcile may plan before kopf's index has inv-b's status
        # (the holder): then the Zap's refusal (409) is said first, and the rule's refusal
        # once the holder is known; a problem is never said twice in a row.
        assert said[-1] == ("Warning", ready["message"]), said
        assert said.count(said[-1]) == 1 and len(said) <= 2, said
        await cluster.wait_planned("Device", "inv-b", 2)
        kept = await cluster.condition("Device", "inv-b", "Ready") or {}
        assert kept.get("status") == "True", kept
        zap = sims.zaps[HOME_ZAP_SERIAL]
        hosts = {sn: device.connection["ip"] for sn, device in zap.devices.items()}
        assert hosts == {"SG-A": "192.168.1.60", "SG-B": "192.168.1.61"}


# No drift check comes: the new Device is reconciled by the retries of its wait alone.
QUIET = OperatorConfig(interval=3600.0, retry_delay=0.5)
RELEASED_FIRST = sungrow_inverter("inv-a", "home-zap", "SG-A", "192.168.1.60",
                                  extra="deletionPolicy: Release")


async def test_a_device_at_the_endpoint_of_one_whose_release_waits_is_added_once_it_is_gone(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """inv-a, deleted with deletionPolicy Release, keeps its device on the Zap while its
    release waits (its Novacore delete fails: clouds first, then the Zap). inv-b, the
    inverter that replaced it at the same endpoint, created meanwhile, waits, saying for
    what, retried; nothing is added to the Zap for it, where the Zap would refuse it (409),
    though everything else it needs answers. Once inv-a's release is done and it is gone,
    inv-b is added there."""
    fleet = stream(novacore_site(), zap_gateway(), RELEASED_FIRST)
    # Novacore answering 503 to every device delete: a release that fails there alone.
    deletes = RefusedCalls("DELETE", "/devices/", 503, {"message": "unavailable"})
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET,
                        before_start=lambda sims: deletes.install(sims.novacore.app)) as (
        cluster, sims
    ):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "inv-a", "Ready", timeout=30)
        zap = sims.zaps[HOME_ZAP_SERIAL]
        assert set(zap.devices) == {"SG-A"}
        sims.reset_counts()

        deletes.refusing = True
        await cluster.delete("Device", "inv-a")
        await cluster.wait_reason("Device", "inv-a", "ReleaseFailed",
                                  what="inv-a's release waiting")
        await cluster.create(_replacing(sims))
        waiting = await cluster.wait_reason("Device", "inv-b", "WaitingForDependency",
                                            timeout=30, what="inv-b waiting")
        assert waiting["message"] == (
            "waiting: spec.connection.modbusTcp: Modbus TCP 192.168.1.60:502 unit id 1 on "
            "Gateway 'home-zap' is already taken by Device 'inv-a'; the Zap refuses (409) to "
            "add a second device there: give each device on the Zap its own host, port or "
            "unitId (Device 'inv-a' is being deleted: this one is reconciled once it is gone)"
        ), waiting
        # inv-a's release writes nothing to the Zap before Novacore's delete, nor does inv-b.
        assert zap.writes() == 0, zap.requests
        assert set(zap.devices) == {"SG-A"}
        assert [d.hardware_id for d in sims.novacore.devices.values()] == ["SG-A"]

        deletes.refusing = False
        await cluster.wait_gone("Device", "inv-a")
        await cluster.wait_condition("Device", "inv-b", "Ready", timeout=30)
        hosts = {sn: device.connection["ip"] for sn, device in zap.devices.items()}
        assert hosts == {"SG-B": "192.168.1.60"}
        assert [d.hardware_id for d in sims.novacore.devices.values()] == ["SG-B"]


def _replacing(sims: SimFleet) -> dict[str, Any]:
    """inv-b's document, the inverter at inv-a's address swapped on site for SG-B."""
    [inverter] = sims.modbus
    inverter.device(1).serial = "SG-B"
    [second] = [d for d in documents(stream(novacore_site(), zap_gateway(), sungrow_inverter(
        "inv-b", "home-zap", "SG-B", "192.168.1.60"))) if d["metadata"]["name"] == "inv-b"]
    return second


async def test_a_device_refused_at_the_endpoint_of_one_deleted_then_is_added_as_it_goes(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The new Device applied before the old one is pruned (as Argo CD and Flux do): it is
    refused, which kopf runs no handler again for, and the old one's deletion is no change
    of it. The old one's finalizer annotates it as it goes, so it is added at once, with
    no drift check to wait for."""
    fleet = stream(novacore_site(), zap_gateway(), RELEASED_FIRST)
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "inv-a", "Ready", timeout=30)
        await cluster.create(_replacing(sims))
        await cluster.wait_reason("Device", "inv-b", "InvalidSpec", timeout=30,
                                  what="inv-b refused")

        await cluster.delete("Device", "inv-a")
        await cluster.wait_gone("Device", "inv-a")
        await cluster.wait_condition("Device", "inv-b", "Ready", timeout=30)
        # Told, and its annotation removed once it was added.
        await takeover_cleared(cluster, "Device", "inv-b")
        hosts = {sn: device.connection["ip"]
                 for sn, device in sims.zaps[HOME_ZAP_SERIAL].devices.items()}
        assert hosts == {"SG-B": "192.168.1.60"}
        assert not await cluster.events_about("inv-a", reason="DeviceKept"), "not a rename"


class ZapReads:
    """The Zap's answers to reads of its devices held while `holding`, until `go` is set:
    a drift check begun then waits there, in the middle of its reconcile. Installed before
    the simulator serves."""

    def __init__(self) -> None:
        self.holding = False
        self.go = asyncio.Event()

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.holding and request.method == "GET" and request.path == "/api/devices":
                await self.go.wait()
            return await handler(request)

        sims.zaps[HOME_ZAP_SERIAL].app.middlewares.append(hold)


async def test_a_drift_check_begun_before_an_edit_leaves_its_refusal_said_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """inv-a's drift check reads the Zap, with inv-a's spec as it was, when inv-a is edited
    onto inv-b's endpoint: the edit is refused at once (no Zap read needed), and the check
    ends after it. Its result, of the older generation, is not written over the refusal
    (Ready back to True until the next check), and the refusal is said once: the check's
    Ready is not taken for the last said, which had the next check say the refusal again
    as news."""
    newer = sungrow_inverter("inv-b", "home-zap", "SG-B", "192.168.1.61")
    fleet = stream(novacore_site(), zap_gateway(), FIRST, newer)
    reads = ZapReads()
    async with operator(fleet, tmp_path, monkeypatch, before_start=reads.install) as (
        cluster, _,
    ):
        created = {"home": "2026-01-01T00:00:00Z", "home-zap": "2026-01-01T00:00:00Z",
                   "inv-a": "2026-01-01T00:00:00Z", "inv-b": "2026-01-02T00:00:00Z"}
        for doc in documents(fleet):
            doc["metadata"]["creationTimestamp"] = created[doc["metadata"]["name"]]
            await cluster.create(doc)
        for name in ("inv-a", "inv-b"):
            await cluster.wait_condition("Device", name, "Ready", timeout=30)
        namespace = (await cluster.get("Device", "inv-a") or {})["metadata"]["namespace"]

        reads.holding = True
        # inv-a's drift check holds its lock while it plans: it is under way, at the Zap.
        await cluster.wait_for(
            lambda: _locked(owner_lock(namespace, "Device", "inv-a")),
            what="a drift check of inv-a under way")
        # As the API server counts it: the emulator leaves the generation to the client.
        await cluster.patch("Device", "inv-a",
                            {"spec": {"connection": {"modbusTcp": {"host": "192.168.1.61"}}},
                             "metadata": {"generation": 2}})
        refused = await cluster.wait_reason("Device", "inv-a", "InvalidSpec", timeout=30,
                                            what="Device/inv-a refused")
        reads.holding = False
        reads.go.set()

        seen: list[str | None] = []

        async def checked_again() -> bool:
            ready = await cluster.condition("Device", "inv-a", "Ready") or {}
            seen.append(ready.get("reason"))
            return not owner_lock(namespace, "Device", "inv-a").locked()

        await cluster.wait_for(checked_again, what="inv-a's drift check ended")
        await cluster.wait_planned("Device", "inv-a", 2)
        seen.append((await cluster.condition("Device", "inv-a", "Ready") or {}).get("reason"))
        assert set(seen) == {"InvalidSpec"}, seen
        failed = await cluster.events_about("inv-a", reason="Failed", type_="Warning")
        assert [e.get("message") for e in failed] == [refused["message"]]


async def _locked(lock: asyncio.Lock) -> bool:
    return lock.locked()
