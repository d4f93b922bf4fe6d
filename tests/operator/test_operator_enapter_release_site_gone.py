"""A Device with `deletionPolicy: Release` and an Enapter registration whose Site object went
first (a namespace's deletion removes its objects in no order), deleted, through the real
operator (kopf against kmock's emulator, the Enapter simulator on loopback): its Enapter
device is read by the id its status recorded before anything is deleted. Gone meanwhile,
no DELETE is sent; with a device running on it, the release waits, blocked, naming it, as
where the Site is there; unreadable, nothing is deleted until it is read. A config Secret
whose delete was refused goes at a later attempt without the device's delete being sent
again. A config Secret written for an Enapter device left in the Site the Device was moved
off stays, said: that device is not gone. (A device whose id never reached the status:
`test_operator_enapter_release_unrecorded`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import document, enapter_gateway, enapter_site, enapter_ucm, link_master, stream
from harness import documents, operator, secret_values
from refused_calls import RefusedCalls, enapter_error
from test_operator_enapter_release import DELETE, MASTER, SLAVE

from reconciler.operator.config import OperatorConfig

GET = "GET /v3/devices/{device_id}"
UCM = "A8795CBA5375484E829105E959663C8B"
# No drift check between the test's own changes and the deletion.
QUIET = OperatorConfig(interval=3600.0, retry_delay=0.5)


def _master_and_slave() -> str:
    return stream(
        enapter_site(),
        enapter_gateway(),
        link_master("link-a", MASTER, extra="deletionPolicy: Release"),
        document("Device", "link-s", f"""
            gatewayRef: h2-gw
            hardwareId: {SLAVE}
            deletionPolicy: Release
            enapter: {{kind: link_slave, masterRef: link-a}}
            """),
    )


UCM_A = enapter_ucm("ucm-a", UCM, secret_name="ucm-a-config", extra="deletionPolicy: Release")


async def _site_gone(cluster: Any) -> None:
    await cluster.delete("Site", "h2-lab")
    await cluster.wait_gone("Site", "h2-lab")


async def _ready(cluster: Any, *names: str) -> None:
    for name in names:
        await cluster.wait_condition("Device", name, "Ready")


async def test_a_device_gone_meanwhile_is_not_deleted_again(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = _master_and_slave()
    async with operator(text, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _ready(cluster, "link-a", "link-s")
        master = sims.enapter.by_hardware_id(MASTER)
        assert master is not None
        await _site_gone(cluster)
        sims.enapter.remove_device(master.id)  # with its slave, in Enapter Cloud

        await cluster.delete("Device", "link-a")
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.requests[GET] >= 1, "read by the id its status recorded"
        assert sims.enapter.requests[DELETE] == 0, "nothing left to delete"
        assert not await cluster.events_about("link-a", reason="Deleted")


async def test_a_device_others_run_on_waits_for_them_by_name(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = _master_and_slave()
    config = OperatorConfig(retry_delay=0.5)
    async with operator(text, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _ready(cluster, "link-a", "link-s")
        master, slave = sims.enapter.by_hardware_id(MASTER), sims.enapter.by_hardware_id(SLAVE)
        assert master is not None and slave is not None
        await _site_gone(cluster)

        await cluster.delete("Device", "link-a")
        blocked = await cluster.wait_reason("Device", "link-a", "ReleaseBlocked")
        message = blocked["message"]
        assert message.startswith(
            f"deletionPolicy Release: device/link-a[enapter]: not deleted in Enapter Cloud: "
            f"devices run on Enapter device {master.id} ({slave.type} {slave.id} ("), message
        assert sims.enapter.requests[DELETE] == 0, "not sent for Enapter to refuse"
        assert not await cluster.events_about("link-a", reason="ReleaseFailed")

        await cluster.delete("Device", "link-s")
        await cluster.wait_gone("Device", "link-s")
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.by_hardware_id(SLAVE) is None
        assert sims.enapter.by_hardware_id(MASTER) is None, "deleted once its slave was"
        assert sims.enapter.requests[DELETE] == 2


async def test_a_device_that_cannot_be_read_is_not_deleted_until_it_is(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = stream(enapter_site(), enapter_gateway(),
                  link_master("link-a", MASTER, extra="deletionPolicy: Release"))
    reads = RefusedCalls("GET", "/v3/devices/", 503, enapter_error("UNAVAILABLE", "down"),
                         refusing=True)

    async with operator(
        text, tmp_path, monkeypatch, config=QUIET,
        before_start=lambda sims: reads.install(sims.enapter.app),
    ) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _ready(cluster, "link-a")
        await _site_gone(cluster)

        await cluster.delete("Device", "link-a")
        failed = await cluster.wait_reason("Device", "link-a", "ReleaseFailed")
        assert "not deleted in Enapter Cloud, which could not be read" in failed["message"]
        assert sims.enapter.requests[DELETE] == 0, "never taken for gone, nor deleted unread"
        assert sims.enapter.by_hardware_id(MASTER) is not None

        reads.refusing = False
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.by_hardware_id(MASTER) is None
        assert sims.enapter.requests[DELETE] == 1


async def test_a_secret_whose_delete_was_refused_goes_without_a_second_device_delete(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The Secret's delete refused once after the device was deleted by its recorded id:
    the next attempt reads that id, finds the device gone, sends no DELETE for it, and
    deletes the Secret; the refusal says what is true: a later attempt deletes it."""
    text = stream(enapter_site(), UCM_A)
    async with operator(text, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _ready(cluster, "ucm-a")
        await cluster.wait_for(lambda: cluster.secret("ucm-a-config"), what="its Secret")
        device_id = (await cluster.status("Device", "ucm-a"))["externalIds"]["enapter"]
        await _site_gone(cluster)
        fault = cluster.emulator.fail("DELETE", "/secrets/ucm-a-config", 403, 1)

        await cluster.delete("Device", "ucm-a")
        await cluster.wait_gone("Device", "ucm-a")
        assert fault.count == 0, "the refusal was met"
        assert sims.enapter.requests[DELETE] == 1, "the device's delete is not sent again"
        assert await cluster.secret("ucm-a-config") == {}, "its credentials go with it"
        failed = [e["message"] for e in await cluster.events_about(
            "ucm-a", reason="ReleaseFailed")]
        assert any("HTTP 403" in m and "the release's next attempt after that deletes it" in m
                   for m in failed), failed
        assert not any("delete it by hand" in m for m in failed), failed
        deleted = [e["message"] for e in await cluster.wait_events_about(
            "ucm-a", reason="Deleted")]
        assert (f"device/ucm-a[enapter]: Enapter device {device_id} was deleted by an "
                "earlier attempt; deleted Secret ucm-a-config") in deleted, deleted


async def test_a_secret_of_a_device_left_in_the_former_site_stays(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """ucm-a moved to Site h2-b (its `siteRef`), its Enapter device left in h2-lab's site:
    released, nothing of it is in h2-b's site, and its Secret, written for the device in
    h2-lab, is not taken for a deleted device's: that device is there, and so are its
    credentials."""
    other = enapter_site("h2-b", "H2 B")
    text = stream(enapter_site(), other, UCM_A)
    async with operator(text, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(text))
        await _ready(cluster, "ucm-a")
        await cluster.wait_for(lambda: cluster.secret("ucm-a-config"), what="its Secret")
        device = sims.enapter.by_hardware_id(UCM)
        assert device is not None
        before = await cluster.secret("ucm-a-config")

        await cluster.patch("Device", "ucm-a", {"spec": {"siteRef": "h2-b"}})
        # Enapter keeps a hardware id in one site: its provisioning in h2-b's is refused.
        failed = await cluster.wait_reason("Device", "ucm-a", "ApplyFailed")
        assert "DEVICE_ALREADY_EXISTS" in failed["message"], failed
        await cluster.delete("Device", "ucm-a")
        await cluster.wait_gone("Device", "ucm-a")
        assert sims.enapter.by_hardware_id(UCM) is not None, "left in h2-lab's site"
        kept = await cluster.secret("ucm-a-config")
        assert kept != {}, "its credentials stay with the device"
        assert secret_values(kept) == secret_values(before)
        assert not [e for e in await cluster.events_about("ucm-a", reason="Deleted")
                    if "Secret" in e["message"]]
        [kept_event] = await cluster.wait_events_about("ucm-a", reason="ConfigSecretKept")
        assert kept_event["type"] == "Normal", kept_event
        assert kept_event["message"] == (
            f"config Secret ucm-a-config, written for Enapter device {device.id}, is left as "
            f"it is: that device is still in Enapter Cloud, in Enapter site {device.site_id}, "
            "where this Device no longer declares it (a siteRef change does not move a "
            "device), and may still run with it; delete that device in Enapter Cloud, then "
            "the Secret, once nothing uses them"), kept_event

