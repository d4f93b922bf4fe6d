"""A Device with `deletionPolicy: Release` and an Enapter registration whose id never reached
its status (the apply that provisioned it failed after the device was made), its Site
object deleted first, deleted, through the real operator (kopf against kmock's emulator,
the Enapter simulator on loopback), its status written by an operator that recorded no
Enapter site (`status.externalIds.enapterSite`, which is looked in first:
test_operator_enapter_release_own_site.py): its Enapter Gateway's recorded gateway device
says the Enapter site, where it is found by its natural key and deleted, with the config
Secret written for it. A Device never provisioned is not found there, and its release says
nothing is wrong. A gateway device that cannot be read (Enapter down, or a 404 that is not
Enapter's for a device not found) defers the release: nothing is guessed.
Its Gateway object gone too, so that its Site is not known, the devices the other Devices
behind that Gateway recorded say the Enapter site. Only when no such object recorded an
Enapter id is there no way to know where to look: then, and only then, the release warns
that it may be left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fleet_yaml import document, enapter_gateway, enapter_site, enapter_ucm, link_master, stream
from harness import documents, operator
from refused_calls import RefusedCalls, enapter_error
from test_operator_enapter_release import DELETE, MASTER

from reconciler.operator.config import OperatorConfig
from reconciler.sim.fleet import SimFleet

# No drift check between the test's own changes and the deletion: its plan would find the
# device and record its id.
QUIET = OperatorConfig(interval=3600.0, retry_delay=0.5)
UCM = "A8795CBA5375484E829105E959663C8B"
OTHER_MASTER = "LA0000000000000000000000000000002"


def _lost(kind: str, *, made: bool = True) -> Any:
    """The provisioning of a `kind` device is answered with a refusal: taking effect first
    when `made` (an answer lost and another taken for it: the device is made, its id never
    reaches the status), at every attempt without taking effect otherwise (never made)."""

    def install(sims: SimFleet) -> None:
        lost: list[str] = []

        @web.middleware
        async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method != "POST" or not request.path.endswith(f"/provisioning/{kind}"):
                return await handler(request)  # type: ignore[no-any-return]
            if made and lost:
                return await handler(request)  # type: ignore[no-any-return]
            if made:
                await handler(request)
            lost.append(request.path)
            body = {"errors": [{"code": "INVALID_REQUEST", "message": "lost", "details": {}}]}
            return web.json_response(body, status=400)

        sims.enapter.app.middlewares.append(refuse)

    return install


UCM_A = enapter_ucm("ucm-a", UCM, extra="deletionPolicy: Release")


# A LINK master behind the Site's Enapter Gateway, released with its config Secret.
LINK_A = stream(
    enapter_site(),
    enapter_gateway(),
    document("Device", "link-a", f"""
        gatewayRef: h2-gw
        hardwareId: {MASTER}
        deletionPolicy: Release
        enapter: {{kind: link_master, configOutput: {{secretName: link-a-config}}}}
        """),
)


async def _unrecorded(cluster: Any, name: str, *, site_recorded: bool = True) -> None:
    """`name`'s apply failed, and its status holds no Enapter id (nor, unless
    `site_recorded`, the Enapter site of its device: `_no_site_recorded`); then its Site
    goes."""
    await cluster.wait_reason("Device", name, "ApplyFailed")
    assert "enapter" not in ((await cluster.status("Device", name)).get("externalIds") or {})
    if not site_recorded:
        await _no_site_recorded(cluster, name)
    await cluster.delete("Site", "h2-lab")
    await cluster.wait_gone("Site", "h2-lab")


async def _no_site_recorded(cluster: Any, name: str) -> None:
    """`name`'s status as an operator that recorded no Enapter site wrote it: only what the
    other objects recorded says where its device is."""
    await cluster.patch("Device", name, {"status": {"externalIds": {"enapterSite": None}}})
    assert "enapterSite" not in (
        (await cluster.status("Device", name)).get("externalIds") or {}
    )


async def released_unwarned(
    cluster: Any, sims: SimFleet, name: str, hardware_id: str, found_in: str
) -> None:
    """Delete `name`: its Enapter device, of `hardware_id`, is found and deleted once, with
    no `EnapterDeviceUnknown` Warning, and its Deleted event says it was found `found_in`."""
    await cluster.delete("Device", name)
    await cluster.wait_gone("Device", name)
    assert sims.enapter.by_hardware_id(hardware_id) is None, "deleted in Enapter Cloud"
    assert sims.enapter.requests[DELETE] == 1
    assert not await cluster.events_about(name, reason="EnapterDeviceUnknown")
    deleted = [e["message"] for e in await cluster.wait_events_about(name, reason="Deleted")]
    assert any(f"found by its hardware id {hardware_id} in {found_in}" in m
               for m in deleted), deleted


async def deferred_until_read(
    cluster: Any, sims: SimFleet, reads: RefusedCalls, name: str, hardware_id: str
) -> None:
    """Delete `name` while `reads` refuses what its release must read: it fails, deleting
    nothing and warning of nothing, until the reads are answered; then it goes, and so
    does its Enapter device, of `hardware_id`."""
    reads.refusing = True
    await cluster.delete("Device", name)
    failed = await cluster.wait_reason("Device", name, "ReleaseFailed")
    assert "not deleted in Enapter Cloud, which could not be read" in failed["message"]
    assert sims.enapter.requests[DELETE] == 0, "nothing deleted unread"
    assert not await cluster.events_about(name, reason="EnapterDeviceUnknown")

    reads.refusing = False
    await cluster.wait_gone("Device", name)
    assert sims.enapter.by_hardware_id(hardware_id) is None
    assert sims.enapter.requests[DELETE] == 1


async def test_a_device_whose_id_was_never_recorded_is_found_by_its_gateways_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = LINK_A
    async with operator(
        text, tmp_path, monkeypatch, before_start=_lost("link_master"), config=QUIET
    ) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Gateway", "h2-gw", "Ready")
        gateway_id = (await cluster.status("Gateway", "h2-gw"))["externalIds"]["enapter"]
        await _unrecorded(cluster, "link-a", site_recorded=False)
        made = sims.enapter.by_hardware_id(MASTER)
        assert made is not None, "provisioned all the same"
        assert sims.enapter.devices[gateway_id].site_id == made.site_id

        await released_unwarned(cluster, sims, "link-a", MASTER,
                                "the Enapter site of its Site's other objects")


async def test_the_config_secret_of_a_device_found_by_its_gateways_site_goes_with_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = LINK_A
    async with operator(text, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Device", "link-a", "Ready")
        await cluster.wait_for(lambda: cluster.secret("link-a-config"), what="its Secret")
        made = sims.enapter.by_hardware_id(MASTER)
        assert made is not None
        # Its id lost from its status (as when the answer that said it was lost, after the
        # Secret was written), and no site recorded: only its Gateway's gateway device says
        # where to look.
        await cluster.patch("Device", "link-a", {"status": {"externalIds": {"enapter": None}}})
        assert "enapter" not in (await cluster.status("Device", "link-a"))["externalIds"]
        await _no_site_recorded(cluster, "link-a")
        await cluster.delete("Site", "h2-lab")
        await cluster.wait_gone("Site", "h2-lab")

        await released_unwarned(cluster, sims, "link-a", MASTER,
                                "the Enapter site of its Site's other objects")
        assert await cluster.secret("link-a-config") == {}, "deleted with its device"


async def test_a_device_never_provisioned_goes_without_a_warning(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = stream(enapter_site(), enapter_gateway(),
                  link_master("link-a", MASTER, extra="deletionPolicy: Release"))
    async with operator(
        text, tmp_path, monkeypatch, before_start=_lost("link_master", made=False),
        config=QUIET,
    ) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Gateway", "h2-gw", "Ready")
        await _unrecorded(cluster, "link-a")
        assert sims.enapter.by_hardware_id(MASTER) is None, "never made"

        await cluster.delete("Device", "link-a")
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.requests[DELETE] == 0
        assert not await cluster.events_about("link-a", reason="EnapterDeviceUnknown")
        assert sims.enapter.devices, "the gateway device stays"


async def test_a_device_whose_site_no_other_object_recorded_is_said_to_be_maybe_left(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = stream(enapter_site(), UCM_A)
    async with operator(
        text, tmp_path, monkeypatch, before_start=_lost("ucm"), config=QUIET
    ) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _unrecorded(cluster, "ucm-a", site_recorded=False)
        assert sims.enapter.by_hardware_id(UCM) is not None, "provisioned all the same"

        await cluster.delete("Device", "ucm-a")
        await cluster.wait_gone("Device", "ucm-a")
        [warning] = await cluster.wait_events_about("ucm-a", reason="EnapterDeviceUnknown")
        assert warning["type"] == "Warning", warning
        assert warning["message"] == (
            "its Site is deleted, its status recorded neither an Enapter device id nor the "
            "Enapter site of its device (an apply that provisioned it may have failed before "
            "its id was recorded, by an operator that recorded no site), and no other object "
            "of its Site recorded an Enapter device id to find its site by, so nothing was "
            f"looked for or deleted in Enapter Cloud: an Enapter device of hardware id {UCM} "
            "may be left there; delete it in Enapter Cloud if it is"), warning
        assert sims.enapter.requests[DELETE] == 0


# A gateway device unreadable: Enapter down, or a 404 that is not Enapter's for a device not
# found (a proxy that does not route the read), which says nothing of the device either.
@pytest.mark.parametrize("status,code", [(503, "UNAVAILABLE"), (404, "NOT_FOUND")])
async def test_a_gateway_that_cannot_be_read_defers_the_release_until_it_is(
    tmp_path: Path, monkeypatch: Any, status: int, code: str
) -> None:
    text = stream(enapter_site(), enapter_gateway(),
                  link_master("link-a", MASTER, extra="deletionPolicy: Release"))
    reads = RefusedCalls("GET", "/v3/devices/", status, enapter_error(code, "down"))
    lost = _lost("link_master")

    def faults(sims: SimFleet) -> None:
        lost(sims)
        reads.install(sims.enapter.app)

    async with operator(
        text, tmp_path, monkeypatch, before_start=faults, config=QUIET
    ) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Gateway", "h2-gw", "Ready")
        await _unrecorded(cluster, "link-a", site_recorded=False)
        await deferred_until_read(cluster, sims, reads, "link-a", MASTER)


async def test_a_device_whose_gateway_is_gone_too_is_found_by_the_devices_behind_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    site_and_gateway = stream(enapter_site(), enapter_gateway())
    lost = link_master("link-a", MASTER, extra="deletionPolicy: Release")
    beside = link_master("link-b", OTHER_MASTER)
    async with operator(
        stream(site_and_gateway, lost, beside), tmp_path, monkeypatch,
        before_start=_lost("link_master"), config=QUIET,
    ) as (cluster, sims):
        # link-a's provisioning is the lost one (the first); link-b's, after it, is answered.
        *first, last = documents(stream(site_and_gateway, lost, beside))
        await cluster.create_all(first)
        await cluster.wait_reason("Device", "link-a", "ApplyFailed")
        await cluster.create(last)
        await cluster.wait_condition("Device", "link-b", "Ready")
        assert "enapter" not in ((await cluster.status("Device", "link-a")).get("externalIds")
                                 or {})
        await _no_site_recorded(cluster, "link-a")
        made = sims.enapter.by_hardware_id(MASTER)
        assert made is not None, "provisioned all the same"
        # Its Gateway goes (deletionPolicy Orphan: its gateway device stays), then its Site:
        # no object says which Site link-a was in.
        await cluster.delete("Gateway", "h2-gw")
        await cluster.wait_gone("Gateway", "h2-gw")
        await cluster.delete("Site", "h2-lab")
        await cluster.wait_gone("Site", "h2-lab")

        await released_unwarned(
            cluster, sims, "link-a", MASTER, "the Enapter site of the other Devices behind "
            "its Gateway 'h2-gw', that Gateway being deleted")
        assert sims.enapter.by_hardware_id(OTHER_MASTER) is not None, "link-b's stays"


async def test_a_device_whose_gateway_is_gone_with_no_device_behind_it_is_said_maybe_left(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = stream(enapter_site(), enapter_gateway(),
                  link_master("link-a", MASTER, extra="deletionPolicy: Release"))
    async with operator(
        text, tmp_path, monkeypatch, before_start=_lost("link_master"), config=QUIET,
    ) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_reason("Device", "link-a", "ApplyFailed")
        await _no_site_recorded(cluster, "link-a")
        await cluster.delete("Gateway", "h2-gw")
        await cluster.wait_gone("Gateway", "h2-gw")

        await cluster.delete("Device", "link-a")
        await cluster.wait_gone("Device", "link-a")
        [warning] = await cluster.wait_events_about("link-a", reason="EnapterDeviceUnknown")
        assert warning["type"] == "Warning", warning
        assert warning["message"] == (
            "its Gateway 'h2-gw' is deleted, so its Site is not known, its status recorded "
            "neither an Enapter device id nor the Enapter site of its device (an apply that "
            "provisioned it may have failed before its id was recorded, by an operator that "
            "recorded no site), and no other Device behind that Gateway recorded an Enapter "
            "device id to find its site by, so nothing was looked for or deleted in Enapter "
            f"Cloud: an Enapter device of hardware id {MASTER} may be left there; delete it "
            "in Enapter Cloud if it is"), warning
        assert sims.enapter.requests[DELETE] == 0
        assert sims.enapter.by_hardware_id(MASTER) is not None
