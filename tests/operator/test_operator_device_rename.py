"""A Device or Gateway renamed: another object created with the same device or gateway under
a new name and the old one deleted, as a rename in git does under Argo CD or Flux. Both
have `deletionPolicy: Release`: the old one's release leaves it to the new one, which
takes it over as it is (a device's Zap device, Novacore and Enapter devices, with their
ids; a gateway claimed, with the devices on its Zap), as `apply` would find it by its
natural key; nothing is released and made again. Deleted together, it is released."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fleet_yaml import (
    RELEASED_UCM_ID,
    enapter_site,
    ferroamp_battery,
    novacore_site,
    released_ucm,
    stream,
    sungrow_inverter,
    zap_gateway,
)
from harness import WAIT, KopfRuns, documents, operator, secret_values
from held_requests import HeldRequests
from objects import HOME, RELEASE, ZAP, declare
from other_finalizers import deleted_and_held, let_go
from takeover_marks import takeover_cleared

from reconciler.operator import removal
from reconciler.operator.config import OperatorConfig

# No drift check comes in these tests: what they wait for is made to happen otherwise.
QUIET = OperatorConfig(interval=3600.0, retry_delay=0.5)
# A drift check every second, in those about what drift checks do.
CHECKED = OperatorConfig(interval=1.0, retry_delay=0.5)

# A UCM whose config is written to a file; renamed, its new name names another.
UCM_A_FILE = stream(enapter_site(), released_ucm("ucm-a", "configOutput: {file: ucm-a.json}"))

RENAMED = sungrow_inverter(
    "home-inverter-2", "home-zap", "SG0001", "192.168.1.60",
    ders=(("pv", "solar"), ("battery", "battery")),
    extra="displayName: Inverter\nverification: {checkSerial: true}\ndeletionPolicy: Release",
)


def _renamed_document() -> dict[str, Any]:
    [doc] = [d for d in documents(stream(novacore_site(), zap_gateway(extra=RELEASE), RENAMED))
             if d["kind"] == "Device"]
    return doc


def _ucm_b_file() -> dict[str, Any]:
    """The new name of the UCM of `UCM_A_FILE`, its config written to another file."""
    [renamed] = documents(stream(
        enapter_site(), released_ucm("ucm-b", "configOutput: {file: ucm-b.json}")))[1:]
    return renamed


async def _ucm_a_ready(cluster: Any) -> str:
    """The UCM of `UCM_A_FILE` declared, and Ready: its Enapter id."""
    await cluster.create_all(documents(UCM_A_FILE))
    await cluster.wait_condition("Device", "ucm-a", "Ready")
    return str((await cluster.status("Device", "ucm-a"))["externalIds"]["enapter"])


def _novacore_ids(sims: Any, hardware_id: str) -> list[str]:
    return [d.id for d in sims.novacore.devices.values() if d.hardware_id == hardware_id]


def _deletes(sims: Any) -> int:
    return sum(server.count("DELETE") for server in sims.http_servers())


async def test_a_renamed_device_is_taken_over_not_deleted_and_created_again(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The new name first (refused: the old one declares the device), then the old one
    deleted: the new one is told (annotated), and takes over with no drift check to wait
    for. Its annotation is removed then, which is no change to plan for again."""
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        ids = _novacore_ids(sims, "SG0001")
        assert len(ids) == 1, ids

        # The new name first, then the old one pruned.
        await cluster.create(_renamed_document())
        await cluster.wait_reason("Device", "home-inverter-2", "InvalidSpec",
                                  what="the new name refused")
        await cluster.delete("Device", "home-inverter")
        await cluster.wait_gone("Device", "home-inverter")
        kept = await cluster.wait_events_about("home-inverter", reason="DeviceKept")
        assert [e.get("message") for e in kept] == [
            "deletionPolicy Release: its device (hardwareId 'SG0001' on Gateway 'home-zap') "
            "is not released: Device 'home-inverter-2' declares it too and takes it over, as "
            "it is, with its ids"
        ]

        await cluster.wait_condition("Device", "home-inverter-2", "Ready")
        # Told by the annotation: its spec unchanged, only that runs its update handler.
        assert runs.said("home-inverter-2", "Handler 'update-devices' is invoked")
        renamed = await takeover_cleared(cluster, "Device", "home-inverter-2")
        # Planned once, as it took over: not again for the annotation's removal.
        assert runs.said("home-inverter-2", "Device/home-inverter-2: ",
                         level=logging.INFO) == 1, [
            line for about, _, line in runs.lines if about == "home-inverter-2"]
        status = renamed["status"]
        assert status["externalIds"]["novacore"] == ids[0], status
        assert _novacore_ids(sims, "SG0001") == ids
        assert "SG0001" in sims.zaps[ZAP].devices
        assert _deletes(sims) == 0


async def test_the_new_name_of_an_orphaned_device_is_told_and_left_unannotated(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """`deletionPolicy: Orphan` (the battery's): nothing is released, and the new name,
    refused while the old one declared the device, is told all the same as it goes; once
    it has taken over, the annotation that told it is removed."""
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-battery", "Ready")
        ids = _novacore_ids(sims, "ferroamp_192.168.1.70")

        [renamed] = [d for d in documents(stream(
            novacore_site(), zap_gateway(extra=RELEASE), ferroamp_battery("home-battery-2")))
            if d["kind"] == "Device"]
        await cluster.create(renamed)
        await cluster.wait_reason("Device", "home-battery-2", "InvalidSpec",
                                  what="the new name refused")
        await cluster.delete("Device", "home-battery")
        await cluster.wait_gone("Device", "home-battery")

        await cluster.wait_condition("Device", "home-battery-2", "Ready")
        await takeover_cleared(cluster, "Device", "home-battery-2")
        assert _novacore_ids(sims, "ferroamp_192.168.1.70") == ids
        assert _deletes(sims) == 0


async def test_a_device_whose_release_waits_is_taken_over_by_one_created_meanwhile(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The old name deleted first, its release waiting (Novacore refuses connections): the
    new one, created meanwhile, waits until the old one is gone, saying so, retried (no
    drift check comes in the test); the old one's next attempt leaves the device to it."""
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        ids = _novacore_ids(sims, "SG0001")
        await sims.novacore.set_offline("refuse")
        await cluster.delete("Device", "home-inverter")
        await cluster.wait_reason("Device", "home-inverter", "ReleaseFailed",
                                  what="the release waiting")

        await cluster.create(_renamed_document())
        refused = await cluster.wait_reason("Device", "home-inverter-2",
                                            "WaitingForDependency", what="the new name waiting")
        assert refused["message"] == (
            "waiting: spec.hardwareId: hardwareId 'SG0001' is already used by Device "
            "'home-inverter' "
            "on Gateway 'home-zap'; it must be unique per gateway (Device 'home-inverter' is "
            "being deleted: this one is reconciled once it is gone)"
        ), refused

        await sims.novacore.set_offline("online")
        await cluster.wait_gone("Device", "home-inverter")
        assert await cluster.wait_events_about("home-inverter", reason="DeviceKept")
        await cluster.wait_condition("Device", "home-inverter-2", "Ready")
        assert _novacore_ids(sims, "SG0001") == ids
        assert "SG0001" in sims.zaps[ZAP].devices
        assert _deletes(sims) == 0


async def test_a_device_created_while_the_old_ones_release_reads_takes_it_over(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The old name deleted, its release reading Novacore (the read held, as a server slow
    to answer, or one its retries wait for, holds it): the new name, created meanwhile,
    takes the device over once the read is answered, with its ids: the release looks for
    an heir again before it writes. (It went on with the view it began with, and deleted
    the device the new name declares, which then made it again, with new ids.)"""
    held = HeldRequests("novacore", lambda request: request.method == "GET", once=True)
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET,
                        before_start=held.install) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        ids = _novacore_ids(sims, "SG0001")
        await _created_while_the_release_reads(
            cluster, held, "Device", "home-inverter", _renamed_document())
        await cluster.wait_condition("Device", "home-inverter-2", "Ready")
        assert _novacore_ids(sims, "SG0001") == ids
        assert "SG0001" in sims.zaps[ZAP].devices
        assert _deletes(sims) == 0


async def test_a_device_created_while_the_old_ones_release_writes_keeps_what_is_left(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The old name's release writing, its Novacore delete held in flight, when the new
    name is created: the delete lands, but the release sends no write after it (the
    device stays on its Zap), and the new name takes the device over, making again only
    its Novacore device."""
    held = HeldRequests("novacore", lambda request: request.method == "DELETE", once=True)
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET,
                        before_start=held.install) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        [old_id] = _novacore_ids(sims, "SG0001")
        await _created_while_the_release_writes(
            cluster, runs, held, "Device", "home-inverter", _renamed_document())
        await cluster.wait_condition("Device", "home-inverter-2", "Ready")
        [new_id] = _novacore_ids(sims, "SG0001")
        assert new_id != old_id, "the delete sent landed; the new name made it again"
        assert "SG0001" in sims.zaps[ZAP].devices
        assert sims.zaps[ZAP].count("DELETE") == 0, "nothing taken off the Zap"


async def _created_while_the_release_writes(
    cluster: Any, runs: KopfRuns, held: HeldRequests, kind: str, old: str,
    heir: dict[str, Any], meanwhile: Callable[[], Awaitable[None]] | None = None,
    *, found_as_it_writes: bool = True,
) -> None:
    """`old` deleted, a write of its release held in flight; `heir` created meanwhile, which
    the release finds as it writes (or, not `found_as_it_writes`, once `heir` waits for
    it; `meanwhile` then runs); the write answered: `old` goes, its `{kind}Kept` event
    saying that the write landed and `heir` makes again what it released."""
    held.armed = True
    await cluster.delete(kind, old)
    await asyncio.wait_for(held.first.wait(), WAIT)
    await cluster.create(heir)
    name = heir["metadata"]["name"]
    if found_as_it_writes:
        await runs.wait_said(old, f"{kind} '{name}' declares it too and takes it over: the "
                             "release's writes not sent yet are left to it")
    else:
        await cluster.wait_reason(kind, name, "WaitingForDependency", what="the heir waiting")
    if meanwhile is not None:
        await meanwhile()
    held.release()
    await cluster.wait_gone(kind, old)
    [kept] = await cluster.wait_events_about(old, reason=f"{kind}Kept")
    assert kept["message"] == (
        f"deletionPolicy Release: {kind} '{name}', created while the release wrote, declares "
        "it too and takes over what is left of it: the writes the release had sent land (the "
        f"events before this one), no other is sent, and {kind} '{name}' makes again what "
        "they released"
    )


async def test_a_device_created_as_the_old_ones_last_write_is_in_flight_is_found_as_it_ends(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The new name created while the release's last write (the device's removal from its
    Zap) is in flight, after the release last looked for an heir (looking no more while
    it writes): the release looks once more as its writes end, and the old one goes
    saying that the new name makes again what was released, which it does. (It went as
    released, saying nothing of the new name, which then made everything again all the
    same, but only at its next retry.)"""
    monkeypatch.setattr(removal, "HEIR_LOOK_EVERY", 3600.0)
    held = HeldRequests(ZAP, lambda request: request.method == "DELETE", once=True)
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET,
                        before_start=held.install) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        await _created_while_the_release_writes(
            cluster, runs, held, "Device", "home-inverter", _renamed_document(),
            found_as_it_writes=False)
        await cluster.wait_condition("Device", "home-inverter-2", "Ready")
        assert "SG0001" in sims.zaps[ZAP].devices
        assert len(_novacore_ids(sims, "SG0001")) == 1


async def test_a_device_created_while_the_old_ones_enapter_delete_is_in_flight_makes_it_again(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The UCM renamed while its release's Enapter delete is in flight, its config file
    named by neither: the new name waits for the old one to be gone (it took the device
    over at once, as the release deleted it), the delete lands and the file goes with it,
    as the old one's events say; its DeviceKept message says the new name makes again what
    was released, and nothing of a file left (it said it was left as it is, with no
    record of it), and the new name makes the device again, with a new id."""
    held = HeldRequests("enapter", lambda request: request.method == "DELETE", once=True)
    async with operator(UCM_A_FILE, tmp_path, monkeypatch, config=QUIET,
                        before_start=held.install) as (cluster, sims):
        old_id = await _ucm_a_ready(cluster)
        renamed = _ucm_b_file()

        async def waiting() -> None:
            ready = await cluster.wait_reason("Device", "ucm-b", "WaitingForDependency")
            assert ready["message"] == ("waiting: Device 'ucm-a' is being deleted: this one "
                                        "takes over from it once it is gone"), ready
            # The new name wrote nothing to the device being deleted (it wrote its config
            # for it, which the release then removed, and was Ready with the id of a device
            # gone).
            assert not [k for k in sims.enapter.requests if k.startswith("PATCH")]

        await _created_while_the_release_writes(
            cluster, runs, held, "Device", "ucm-a", renamed, meanwhile=waiting)
        [deleted] = await cluster.wait_events_about("ucm-a", reason="Deleted")
        state = tmp_path / "state"
        assert deleted["message"] == (
            "device/ucm-a[enapter]: deleted in Enapter Cloud (deletionPolicy Release); "
            f"removed {state / 'ucm-a.json'}"
        )
        assert not (state / "ucm-a.json").exists()
        await cluster.wait_condition("Device", "ucm-b", "Ready")
        new_id = (await cluster.status("Device", "ucm-b"))["externalIds"]["enapter"]
        assert new_id != old_id, "the delete sent landed; the new name made the device again"
        assert (state / "ucm-b.json").is_file()


async def _created_while_the_release_reads(
    cluster: Any, held: HeldRequests, kind: str, old: str, heir: dict[str, Any]
) -> None:
    """`old` deleted, its release's first read held; `heir` created meanwhile and waiting
    for it; the read answered: `old` goes, saying that `heir` keeps what it declared."""
    held.armed = True
    await cluster.delete(kind, old)
    await asyncio.wait_for(held.first.wait(), WAIT)
    await cluster.create(heir)
    await cluster.wait_reason(kind, heir["metadata"]["name"], "WaitingForDependency",
                              what="the new name waiting")
    held.release()
    await cluster.wait_gone(kind, old)
    assert await cluster.wait_events_about(old, reason=f"{kind}Kept")


async def test_a_device_deleted_with_the_one_that_declares_it_too_is_released(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Deleted together, the device is released: whichever finalizer runs first may leave
    it to the other, not yet being deleted, whose own release then releases it (its spec
    valid once the first is gone), rather than honour no spec at all."""
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        await cluster.create(_renamed_document())
        await cluster.wait_reason("Device", "home-inverter-2", "InvalidSpec",
                                  what="the second declaration refused")

        await cluster.delete("Device", "home-inverter")
        await cluster.delete("Device", "home-inverter-2")
        await cluster.wait_gone("Device", "home-inverter")
        await cluster.wait_gone("Device", "home-inverter-2")

        assert _novacore_ids(sims, "SG0001") == []
        assert "SG0001" not in sims.zaps[ZAP].devices


async def test_the_drift_checks_of_a_device_created_while_the_old_ones_release_writes_wait(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The UCM renamed while its release's Enapter delete is in flight, a drift check every
    second: the new name's checks plan nothing while the release runs, saying so (one
    PATCHed the device being deleted and wrote the new name's config for it, which the
    release then removed); once the old one is gone, the new name makes the device
    again."""
    held = HeldRequests("enapter", lambda request: request.method == "DELETE", once=True)
    async with operator(UCM_A_FILE, tmp_path, monkeypatch, config=CHECKED,
                        before_start=held.install) as (cluster, sims):
        old_id = await _ucm_a_ready(cluster)
        renamed = _ucm_b_file()
        state = tmp_path / "state"

        async def drift_checks_wait() -> None:
            await runs.wait_said("ucm-b", "Device/ucm-b: not reconciled: waiting: Device "
                                 "'ucm-a' is being deleted: this one takes over from it once "
                                 "it is gone")
            assert not [k for k in sims.enapter.requests if k.startswith("PATCH")]
            assert not (state / "ucm-b.json").exists()

        await _created_while_the_release_writes(
            cluster, runs, held, "Device", "ucm-a", renamed, meanwhile=drift_checks_wait)
        await cluster.wait_condition("Device", "ucm-b", "Ready")
        new_id = (await cluster.status("Device", "ucm-b"))["externalIds"]["enapter"]
        assert new_id != old_id, "the delete sent landed; the new name made the device again"
        assert (state / "ucm-b.json").is_file()
        assert not (state / "ucm-a.json").exists()


async def test_a_device_whose_old_one_another_finalizer_keeps_is_reconciled_by_its_checks(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The UCM released, but kept being deleted by another controller's finalizer, when
    its new name is created: the new name's handler waits for the old one to be gone (the
    hand-over is its run's to do), but its drift checks, the release over, reconcile it:
    it makes the device again and writes its config; once the old one is gone, its
    handler's run finds it so, and makes nothing more."""
    async with operator(UCM_A_FILE, tmp_path, monkeypatch, config=CHECKED) as (cluster, sims):
        await _ucm_a_ready(cluster)
        await deleted_and_held(cluster, "Device", "ucm-a")
        assert not sims.enapter.devices, "released"
        await cluster.create(_ucm_b_file())
        await cluster.wait_condition("Device", "ucm-b", "Ready")
        assert (tmp_path / "state" / "ucm-b.json").is_file()
        assert await cluster.get("Device", "ucm-a") is not None, "still held"
        made = set(sims.enapter.devices)
        assert len(made) == 1, made

        await let_go(cluster, "Device", "ucm-a")
        await runs.wait_said("ucm-b", "Handler 'create-devices' succeeded")
        assert set(sims.enapter.devices) == made


async def test_a_renamed_enapter_device_keeps_its_enapter_device_and_config_secret(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The UCM renamed, its config Secret named by both: the Enapter device stays, with its
    id, and so does the Secret, which the new Device's release deletes with the device."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        enapter_id = (await cluster.status("Device", "ucm-a"))["externalIds"]["enapter"]
        written = secret_values(await cluster.secret("ucm-config"))

        said = await _renamed_ucm(cluster, "configOutput: {secretName: ucm-config}")
        assert said == (
            "deletionPolicy Release: its Enapter device is not released: Device 'ucm-b' "
            "declares it too and takes it over, as it is, with its ids"
        )

        await cluster.wait_condition("Device", "ucm-b", "Ready")
        status = await cluster.status("Device", "ucm-b")
        assert status["externalIds"]["enapter"] == enapter_id, status
        assert sims.enapter.by_hardware_id(RELEASED_UCM_ID) is not None
        assert not [k for k in sims.enapter.requests if k.startswith("DELETE")]
        assert secret_values(await cluster.secret("ucm-config")) == written

        # Released in its turn, the device goes, and its Secret with it, though the Device
        # it was written for was the other: also by a later attempt, the first one's delete
        # of the Secret refused.
        fault = cluster.emulator.fail("DELETE", "/secrets/ucm-config", 403, 1)
        await cluster.delete("Device", "ucm-b")
        await cluster.wait_gone("Device", "ucm-b")
        assert fault.count == 0, "the refusal was met"
        assert sims.enapter.by_hardware_id(RELEASED_UCM_ID) is None
        assert not await cluster.secret("ucm-config")


async def test_a_renamed_gateway_stays_claimed_with_its_devices_on_its_zap(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The Gateway renamed and its Devices moved to the new name: the gateway is never
    released, nor its devices taken off its Zap as copies moved away."""
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await _home_ready(cluster)
        ids = {d.id for d in sims.novacore.devices.values()}

        await cluster.create(_renamed_gateway())
        await _moved_to_the_new_gateway(cluster)
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_gone("Gateway", "home-zap")
        [kept] = await cluster.wait_events_about("home-zap", reason="GatewayKept")
        assert kept["message"] == (
            "deletionPolicy Release: its gateway is not released: Gateway 'home-zap-2' "
            "declares it too and takes it over, as it is, claimed, with the devices on its Zap"
        )

        await cluster.wait_condition("Gateway", "home-zap-2", "Ready")
        await takeover_cleared(cluster, "Gateway", "home-zap-2")
        await _kept_by_the_new_gateway(cluster, sims, ids)


async def test_a_gateway_created_while_the_old_ones_release_reads_takes_it_over(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """As for a Device: the old Gateway deleted, its Devices already moved to the new
    name, its release reading Novacore (held); the new Gateway, created meanwhile, takes
    the gateway over, claimed, with the devices on its Zap."""
    held = HeldRequests("novacore", lambda request: request.method == "GET", once=True)
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET,
                        before_start=held.install) as (cluster, sims):
        await _home_ready(cluster)
        ids = {d.id for d in sims.novacore.devices.values()}
        await _moved_to_the_new_gateway(cluster)
        await _created_while_the_release_reads(
            cluster, held, "Gateway", "home-zap", _renamed_gateway())
        await cluster.wait_condition("Gateway", "home-zap-2", "Ready")
        await _kept_by_the_new_gateway(cluster, sims, ids)


async def test_a_gateway_created_while_the_old_ones_release_is_in_flight_claims_it_again(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The old Gateway deleted, its Devices moved to the new name, its release's Novacore
    DELETE in flight as the new Gateway is created: the release lands, the old one says
    so in its GatewayKept event, and the new one claims the gateway again."""
    held = HeldRequests("novacore", lambda request: request.method == "DELETE", once=True)
    async with operator(HOME, tmp_path, monkeypatch, config=QUIET,
                        before_start=held.install) as (cluster, sims):
        await _home_ready(cluster)
        await _moved_to_the_new_gateway(cluster)
        await _created_while_the_release_writes(
            cluster, runs, held, "Gateway", "home-zap", _renamed_gateway())
        await cluster.wait_condition("Gateway", "home-zap-2", "Ready")
        assert sims.novacore.gateways[ZAP].org_id == "org-home"
        assert sims.novacore.count("DELETE") == 1, "the release sent, nothing more"


async def _home_ready(cluster: Any) -> None:
    """The home fleet declared, both its Devices Ready."""
    await declare(cluster)
    for device in ("home-inverter", "home-battery"):
        await cluster.wait_condition("Device", device, "Ready")


def _renamed_gateway() -> dict[str, Any]:
    """The home Zap's Gateway under its new name, home-zap-2."""
    [doc] = [d for d in documents(stream(
        novacore_site(), zap_gateway(name="home-zap-2", extra=RELEASE))) if d["kind"] == "Gateway"]
    return doc


async def _moved_to_the_new_gateway(cluster: Any) -> None:
    """The home Devices' gatewayRef edited to home-zap-2, as the rename in git edits them."""
    for device in ("home-inverter", "home-battery"):
        await cluster.patch("Device", device, {"spec": {"gatewayRef": "home-zap-2"}})


async def _kept_by_the_new_gateway(cluster: Any, sims: Any, ids: set[str]) -> None:
    """The gateway still claimed, its devices on its Zap and in Novacore with their ids,
    their Devices Ready, and nothing deleted anywhere."""
    for device in ("home-inverter", "home-battery"):
        await cluster.wait_condition("Device", device, "Ready")
    assert sims.novacore.gateways[ZAP].org_id == "org-home"
    assert {d.id for d in sims.novacore.devices.values()} == ids
    assert sorted(sims.zaps[ZAP].devices) == ["SG0001", "ferroamp_192.168.1.70"]
    assert _deletes(sims) == 0


async def _renamed_ucm(
    cluster: Any, output: str, *, secret: bool = True, written_first: str = ""
) -> str:
    """ucm-a, Ready (`secret`: with its config in Secret ucm-config), renamed ucm-b with
    `output` (its configOutput line, or ""): the new name first, then the old one pruned;
    `written_first`: the Secret the new one has written its config to before that. The old
    one's DeviceKept message, once it is gone."""
    await cluster.wait_condition("Device", "ucm-a", "Ready")
    assert not secret or await cluster.secret("ucm-config")
    [renamed] = documents(stream(enapter_site(), released_ucm("ucm-b", output)))[1:]
    await cluster.create(renamed)
    if written_first:
        await cluster.wait_for(lambda: cluster.secret(written_first),
                               what=f"Secret {written_first} written")
    await cluster.delete("Device", "ucm-a")
    await cluster.wait_gone("Device", "ucm-a")
    [kept] = await cluster.wait_events_about("ucm-a", reason="DeviceKept")
    return str(kept["message"])


async def test_a_renamed_enapter_device_naming_another_secret_deletes_the_old_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The UCM renamed, its config Secret renamed too: the Enapter device stays, with its
    id; the new Device writes its config in its own Secret (an Enapter device's, it is
    reconciled while the old one is there), and the old Secret, written by the operator
    for the old Device and named by no other, goes as the old one does."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        enapter_id = (await cluster.status("Device", "ucm-a"))["externalIds"]["enapter"]

        said = await _renamed_ucm(cluster, "configOutput: {secretName: ucm-b-config}",
                                  written_first="ucm-b-config")
        assert said == (
            "deletionPolicy Release: its Enapter device is not released: Device 'ucm-b' "
            "declares it too and takes it over, as it is, with its ids; its config Secret "
            f"'ucm-config', which holds the credentials of Enapter device {enapter_id}, is "
            "deleted: Device 'ucm-b' keeps the device's config in its own Secret "
            "'ucm-b-config'"
        )
        assert not await cluster.secret("ucm-config")

        await cluster.wait_condition("Device", "ucm-b", "Ready")
        status = await cluster.status("Device", "ucm-b")
        assert status["externalIds"]["enapter"] == enapter_id, status
        written = await cluster.secret("ucm-b-config")
        assert written["metadata"]["annotations"]["energy.reconciler.dev/device"] == "ucm-b"
        assert sims.enapter.by_hardware_id(RELEASED_UCM_ID) is not None
        assert not [k for k in sims.enapter.requests if k.startswith("DELETE")]


async def test_a_renamed_enapter_device_naming_no_config_keeps_the_old_secret(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The new name keeps no config (no configOutput): the old Secret holds the only copy
    of the device's config, and is left as it is, said."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        written = secret_values(await cluster.secret("ucm-config"))

        said = await _renamed_ucm(cluster, "")
        assert said.endswith(
            "with its ids; the config Secret 'ucm-config' written for this Device is left "
            "as it is: Device 'ucm-b' names no configOutput, so it holds the only copy of "
            "the device's config; delete it once nothing uses it"
        ), said
        await cluster.wait_condition("Device", "ucm-b", "Ready")
        assert secret_values(await cluster.secret("ucm-config")) == written
        assert sims.enapter.by_hardware_id(RELEASED_UCM_ID) is not None


async def test_a_renamed_enapter_device_naming_someone_elses_secret_keeps_the_old_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The new name names a Secret the reconciler did not write, which it does not write
    over: the old Secret holds the only copy of the device's config, and is left, said."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        written = secret_values(await cluster.secret("ucm-config"))
        await cluster.create_secret("theirs", {"config.json": "someone else's"})

        said = await _renamed_ucm(cluster, "configOutput: {secretName: theirs}")
        assert said.endswith(
            "with its ids; the config Secret 'ucm-config' written for this Device is left "
            "as it is: the Secret 'theirs' of Device 'ucm-b' was not written by the "
            "reconciler, "
            "which does not write over it, so this one holds the only copy of the device's "
            "config; delete it once nothing uses it"
        ), said
        assert secret_values(await cluster.secret("ucm-config")) == written
        assert secret_values(await cluster.secret("theirs")) == {
            "config.json": "someone else's"}
        assert sims.enapter.by_hardware_id(RELEASED_UCM_ID) is not None


async def test_a_renamed_enapter_device_goes_though_its_old_secret_cannot_be_deleted(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The old Secret's delete refused (`rbac.writeConfigSecrets` off): the Secret stays,
    said, and the old Device goes all the same, the new one taking over at once."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        fault = cluster.emulator.fail("DELETE", "/secrets/ucm-config", 403, 1)

        said = await _renamed_ucm(cluster, "configOutput: {secretName: ucm-b-config}",
                                  written_first="ucm-b-config")
        assert fault.count == 0, "the refusal was met"
        assert said.endswith(
            "with its ids; the config Secret 'ucm-config' written for this Device is left "
            "as it is: its delete was refused (the chart grants it with "
            "rbac.writeConfigSecrets); delete it once nothing uses it"
        ), said
        assert await cluster.secret("ucm-config")
        await cluster.wait_condition("Device", "ucm-b", "Ready")
        assert await cluster.secret("ucm-b-config")
        assert not [k for k in sims.enapter.requests if k.startswith("DELETE")]


@pytest.mark.parametrize(("output", "then"), [
    pytest.param("configOutput: {file: ucm-b.json}",
                 " once that one has written the device's config to its own file 'ucm-b.json'",
                 id="another-file"),
    pytest.param("configOutput: {secretName: ucm-b-config}",
                 " once that one has written the device's config to its own Secret "
                 "'ucm-b-config'", id="a-secret"),
    pytest.param("", ", as the file of a Device whose configOutput names no file is: Device "
                 "'ucm-b' names no configOutput", id="none"),
])
async def test_a_renamed_enapter_devices_config_file_goes_once_the_new_name_has_reconciled(
    tmp_path: Path, monkeypatch: Any, output: str, then: str
) -> None:
    """The UCM renamed, its config file not named by the new name: the old one's finalizer
    leaves the file, and says that the new one's reconcile removes it, which it does after
    writing the device's config where it says (the inventory records the file as written
    for the device), as `apply` does with a renamed Device."""
    async with operator(UCM_A_FILE, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        enapter_id = await _ucm_a_ready(cluster)
        old = tmp_path / "state" / "ucm-a.json"
        assert old.is_file()

        said = await _renamed_ucm(cluster, output, secret=False)
        assert said == (
            "deletionPolicy Release: its Enapter device is not released: Device 'ucm-b' "
            "declares it too and takes it over, as it is, with its ids; its config file "
            f"'ucm-a.json', which holds the credentials of Enapter device {enapter_id}, is "
            f"removed by the reconcile of Device 'ucm-b'{then}"
        )
        await takeover_cleared(cluster, "Device", "ucm-b")
        assert not old.exists()
        status = await cluster.status("Device", "ucm-b")
        assert status["externalIds"]["enapter"] == enapter_id, status
        if "file" in output:
            assert (tmp_path / "state" / "ucm-b.json").is_file()
        if "secretName" in output:
            assert await cluster.secret("ucm-b-config")
        assert not [k for k in sims.enapter.requests if k.startswith("DELETE")]


async def test_a_renamed_enapter_devices_config_file_changed_since_it_was_written_stays(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The old config file edited since the reconciler wrote it: no longer the one written,
    it is someone's, which the new name's reconcile does not remove; said as left."""
    async with operator(UCM_A_FILE, tmp_path, monkeypatch, config=QUIET) as (cluster, _):
        await _ucm_a_ready(cluster)
        old = tmp_path / "state" / "ucm-a.json"
        old.write_text("edited by hand\n")

        said = await _renamed_ucm(cluster, "configOutput: {file: ucm-b.json}", secret=False)
        assert said.endswith(
            "with its ids; the config file 'ucm-a.json' written for this Device is left as "
            "it is: the reconciler has no record of writing it as it is now (written before "
            "records were kept, by hand, or changed since); delete it once nothing uses it"
        ), said
        await takeover_cleared(cluster, "Device", "ucm-b")
        assert old.read_text() == "edited by hand\n"
        assert (tmp_path / "state" / "ucm-b.json").is_file()


async def test_a_renamed_enapter_devices_old_secret_stays_until_the_new_one_has_written_its_own(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The new name's config Secret not written yet as the old one goes (its writes fail,
    the API server answering 503): the old Secret, the only copy of the device's config,
    stays, left to the new one, which deletes it once its own is written, and says so."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        enapter_id = (await cluster.status("Device", "ucm-a"))["externalIds"]["enapter"]
        written = secret_values(await cluster.secret("ucm-config"))
        fault, said = await _renamed_ucm_unwritten(cluster, runs)
        assert said.endswith(
            "with its ids; its config Secret 'ucm-config', which holds the credentials of "
            f"Enapter device {enapter_id}, is deleted by Device 'ucm-b' once that one has "
            "written the device's config to its own Secret 'ucm-b-config'"
        ), said
        assert secret_values(await cluster.secret("ucm-config")) == written
        assert not await cluster.secret("ucm-b-config")

        fault.count = 0
        renamed = await takeover_cleared(cluster, "Device", "ucm-b")
        assert "energy.reconciler.dev/takes-over-config-secret" not in (
            renamed["metadata"].get("annotations") or {})
        stored = await cluster.secret("ucm-b-config")
        assert stored["metadata"]["annotations"]["energy.reconciler.dev/device"] == "ucm-b"
        assert not await cluster.secret("ucm-config")
        [deleted] = await cluster.wait_events_about("ucm-b", reason="ConfigSecretDeleted")
        assert deleted["message"] == (
            "the config Secret 'ucm-config' that Device 'ucm-a' wrote, which this one took "
            f"over from, holding the credentials of Enapter device {enapter_id}, is deleted: "
            "this Device keeps the device's config in its own Secret 'ucm-b-config'"
        )
        assert sims.enapter.by_hardware_id(RELEASED_UCM_ID) is not None


async def _renamed_ucm_unwritten(cluster: Any, runs: KopfRuns) -> tuple[Any, str]:
    """ucm-a renamed ucm-b, whose config Secret ucm-b-config is not written: every create of
    a Secret answered 503 until the fault returned is lifted. Once ucm-b's write has failed
    with the old one gone: the fault, and the old one's DeviceKept message."""
    fault = cluster.emulator.fail("POST", "/secrets", 503, count=10_000)
    said = await _renamed_ucm(cluster, "configOutput: {secretName: ucm-b-config}")
    # The new one's write failing, retried, after the old one is gone.
    await cluster.wait_for(
        lambda: _said_after(runs, "ucm-b", "was not written: the API server answered "
                            "HTTP 503", "Device/ucm-a"),
        what="ucm-b's write failing once the old one is gone")
    return fault, said


async def _said_after(runs: KopfRuns, about: str, text: str, after: str) -> bool:
    """Whether a line about `about` holding `text` was logged after one about it holding
    `after` (the annotation naming the old one, which comes once that one is gone)."""
    lines = [line for name, _, line in runs.lines if name == about]
    marks = [i for i, line in enumerate(lines) if after in line and "takes-over-from" in line]
    return bool(marks) and any(text in line for line in lines[marks[0]:])


async def test_a_renamed_enapter_devices_old_secret_stays_when_the_new_one_writes_no_config(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The new name's config Secret refused for good (HTTP 403: the chart's
    rbac.writeConfigSecrets off meanwhile): the new one ends its reconcile with no config
    written, and the old Secret, the only copy of it, stays, said on the new one."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, _):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        enapter_id = (await cluster.status("Device", "ucm-a"))["externalIds"]["enapter"]
        written = secret_values(await cluster.secret("ucm-config"))
        cluster.emulator.fail("POST", "/secrets", 403, count=10_000)

        said = await _renamed_ucm(cluster, "configOutput: {secretName: ucm-b-config}")
        assert said.endswith("is deleted by Device 'ucm-b' once that one has written the "
                             "device's config to its own Secret 'ucm-b-config'"), said
        [kept] = await cluster.wait_events_about("ucm-b", reason="ConfigSecretKept")
        assert kept["message"] == (
            "the config Secret 'ucm-config' that Device 'ucm-a' wrote, which this one took "
            "over from, is left as it is: this Device's config of Enapter device "
            f"{enapter_id} is not written to its own Secret 'ucm-b-config', so it holds the "
            "only copy of it; delete it once nothing uses it"
        )
        assert secret_values(await cluster.secret("ucm-config")) == written
        assert not await cluster.secret("ucm-b-config")


async def test_a_renamed_enapter_devices_old_secret_goes_with_the_device_if_the_new_one_goes_first(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The new name deleted in its turn (Release) before it has written its own config
    (its writes fail, the API server answering 503): the old Secret it was to delete holds
    the credentials of the Enapter device its release deletes, and goes with it, said."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        enapter_id = (await cluster.status("Device", "ucm-a"))["externalIds"]["enapter"]
        await _renamed_ucm_unwritten(cluster, runs)

        await cluster.delete("Device", "ucm-b")
        await cluster.wait_gone("Device", "ucm-b")
        assert sims.enapter.by_hardware_id(RELEASED_UCM_ID) is None, "released"
        assert not await cluster.secret("ucm-config"), "left with a deleted device's credentials"
        [deleted] = await cluster.wait_events_about("ucm-b", reason="ConfigSecretDeleted")
        assert deleted["message"] == (
            "the config Secret 'ucm-config' that Device 'ucm-a' wrote, which this one took "
            f"over from, holding the credentials of Enapter device {enapter_id}, is deleted "
            "with that device")


async def test_a_renamed_enapter_devices_old_secret_is_said_kept_if_the_new_one_is_renamed_first(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The new name renamed in its turn before it has written its own config: the device
    goes on to the third name, and the old Secret, perhaps the only copy of its config,
    stays, said on the second."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        written = secret_values(await cluster.secret("ucm-config"))
        await _renamed_ucm_unwritten(cluster, runs)

        [third] = documents(stream(
            enapter_site(), released_ucm("ucm-c", "configOutput: {secretName: ucm-c-config}")))[1:]
        await cluster.create(third)
        await cluster.delete("Device", "ucm-b")
        await cluster.wait_gone("Device", "ucm-b")
        [kept] = await cluster.wait_events_about("ucm-b", reason="ConfigSecretKept")
        assert kept["message"] == (
            "the config Secret 'ucm-config' that Device 'ucm-a' wrote, which this one took "
            "over from, is left as it is: this Device goes before it has written its own "
            "config, and Device 'ucm-c' takes its device over; delete it once nothing uses it")
        assert secret_values(await cluster.secret("ucm-config")) == written
        assert sims.enapter.by_hardware_id(RELEASED_UCM_ID) is not None


async def test_a_renamed_enapter_devices_old_secret_the_new_one_cannot_be_told_of_is_said_kept(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The new name's config not written yet, and its annotation naming the old Secret
    refused (HTTP 403): nobody is to delete the Secret, and the old one's DeviceKept event
    says it is left, not that the new one deletes it."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, _):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        written = secret_values(await cluster.secret("ucm-config"))
        cluster.emulator.fail("POST", "/secrets", 503, count=10_000)
        refused = cluster.emulator.fail(
            "PATCH", "/devices/ucm-b", 403,
            body=lambda body: "energy.reconciler.dev/takes-over-from" in str(body))

        said = await _renamed_ucm(cluster, "configOutput: {secretName: ucm-b-config}")
        assert refused.count == 0, "the refusal was met"
        assert said.endswith(
            "with its ids; the config Secret 'ucm-config' written for this Device is left as "
            "it is: Device 'ucm-b' could not be told to delete it once its own config is "
            "written; delete it once nothing uses it"), said
        assert not await cluster.events_about("ucm-a", reason="ConfigSecretKept")
        assert secret_values(await cluster.secret("ucm-config")) == written


async def test_a_renamed_enapter_devices_old_secret_the_new_one_names_meanwhile_is_not_deleted(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """The new name edited, while its config is being written to its own Secret, to name
    the old one's Secret instead: that Secret, which holds the device's config and is the
    one the new name declares now, is not deleted (nowhere until the edit's reconcile wrote
    it again), nor said to be; the edit's reconcile finds it in sync."""
    fleet = stream(enapter_site(), released_ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET) as (cluster, _):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        before = await cluster.secret("ucm-config")
        fault, _ = await _renamed_ucm_unwritten(cluster, runs)
        held = cluster.emulator.hold(
            "POST", "/secrets", lambda body: body["metadata"]["name"] == "ucm-b-config")
        fault.count = 0

        await asyncio.wait_for(held.arrived.wait(), WAIT)
        await cluster.patch("Device", "ucm-b", {"spec": {"enapter": {
            "configOutput": {"secretName": "ucm-config"}}}})
        held.release.set()
        await takeover_cleared(cluster, "Device", "ucm-b")
        await cluster.wait_for(lambda: _reconciled_naming(cluster, "ucm-config"),
                               what="ucm-b's edit reconciled")
        kept = await cluster.secret("ucm-config")
        assert kept["metadata"]["uid"] == before["metadata"]["uid"], "deleted, written again"
        assert secret_values(kept) == secret_values(before)
        assert not await cluster.events_about("ucm-b", reason="ConfigSecretDeleted")
        assert not await cluster.events_about("ucm-b", reason="ConfigSecretKept")


async def _reconciled_naming(cluster: Any, secret: str) -> bool:
    """Whether ucm-b is Ready, reconciled last with a spec naming config Secret `secret`."""
    status = await cluster.status("Device", "ucm-b")
    ready = [c for c in status.get("conditions", [])
             if c["type"] == "Ready" and c["status"] == "True"]
    return bool(ready) and f'"secretName":"{secret}"' in status.get("lastValidSpec", "")
