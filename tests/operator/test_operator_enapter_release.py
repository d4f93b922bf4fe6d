"""A Device with `deletionPolicy: Release` and an Enapter registration, deleted, through the
real operator (kopf against kmock's emulator, the Enapter simulator on loopback): its
Enapter device is found by its natural key (the hardware id in its Site's Enapter site)
and deleted once, with the config file written for it, also when the apply that
provisioned it failed before its id reached the object's status. A LINK master whose slave
still runs on it is not deleted (Enapter would refuse it): its release waits, blocked,
naming the slave, until the slave is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from fleet_yaml import (
    ENAPTER_GATEWAY_ID,
    document,
    enapter_gateway,
    enapter_site,
    link_master,
    stream,
)
from harness import documents, operator

from reconciler.operator.config import OperatorConfig
from reconciler.sim.fleet import SimFleet

MASTER = "LA0000000000000000000000000000001"
SLAVE = "LS0000000000000000000000000000001"
DELETE = "DELETE /v3/devices/{device_id}"


def _fleet(config_file: Path) -> str:
    return stream(
        enapter_site(),
        enapter_gateway(),
        link_master("link-a", MASTER, config_file=config_file, extra="deletionPolicy: Release"),
    )


def _answer_lost(sims: SimFleet) -> None:
    """The first provisioning of the LINK master takes effect, and its answer is a refusal
    (as an answer lost and another taken for it): the apply fails after the device was
    made, held as a refusal, and the Device's status never gets its id."""
    lost: list[str] = []

    @web.middleware
    async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if not lost and request.method == "POST" and request.path.endswith(
            "/provisioning/link_master"
        ):
            lost.append(request.path)
            body = {"errors": [{"code": "INVALID_REQUEST", "message": "lost", "details": {}}]}
            return web.json_response(body, status=400)
        return response

    sims.enapter.app.middlewares.append(refuse)


async def test_a_device_provisioned_before_its_id_was_recorded_is_deleted_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = _fleet(tmp_path / "keys" / "link-a.json")
    # No drift check before the deletion: its plan would find the device and record its id.
    config = OperatorConfig(interval=3600.0, retry_delay=0.5)
    async with operator(
        text, tmp_path, monkeypatch, before_start=_answer_lost, config=config
    ) as (cluster, sims):
        await cluster.create_all(documents(text))
        failed = await cluster.wait_reason("Device", "link-a", "ApplyFailed")
        assert "HTTP 400" in failed["message"], failed
        assert sims.enapter.by_hardware_id(MASTER) is not None, "provisioned all the same"
        status = await cluster.status("Device", "link-a")
        assert "enapter" not in (status.get("externalIds") or {}), status

        await cluster.delete("Device", "link-a")
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.by_hardware_id(MASTER) is None, "deleted in Enapter Cloud"
        assert sims.enapter.requests[DELETE] == 1
        assert sims.enapter.by_hardware_id(ENAPTER_GATEWAY_ID) is not None, "the Gateway's own"


async def test_a_converged_device_is_deleted_with_its_config_file(
    tmp_path: Path, monkeypatch: Any
) -> None:
    config = tmp_path / "keys" / "link-a.json"
    text = _fleet(config)
    async with operator(text, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Device", "link-a", "Ready")
        assert config.exists()

        await cluster.delete("Device", "link-a")
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.by_hardware_id(MASTER) is None
        assert sims.enapter.requests[DELETE] == 1
        assert not config.exists(), "its credentials go with it"
        [deleted] = await cluster.wait_events_about("link-a", reason="Deleted")
        assert deleted["message"].startswith("device/link-a[enapter]: "), deleted


def _master_and_slave() -> str:
    return stream(
        _fleet(Path("keys/link-a.json")),
        document("Device", "link-s", f"""
            gatewayRef: h2-gw
            hardwareId: {SLAVE}
            deletionPolicy: Release
            enapter: {{kind: link_slave, masterRef: link-a}}
            """),
    )


async def test_a_link_master_whose_slave_runs_on_it_waits_for_the_slave_to_go(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = _master_and_slave()
    config = OperatorConfig(retry_delay=0.5)
    async with operator(text, tmp_path, monkeypatch, config=config) as (cluster, sims):
        await cluster.create_all(documents(text))
        for name in ("link-a", "link-s"):
            await cluster.wait_condition("Device", name, "Ready")
        master, slave = sims.enapter.by_hardware_id(MASTER), sims.enapter.by_hardware_id(SLAVE)
        assert master is not None and slave is not None

        await cluster.delete("Device", "link-a")
        blocked = await cluster.wait_reason("Device", "link-a", "ReleaseBlocked")
        message = blocked["message"]
        assert message.startswith(
            f"deletionPolicy Release: device/link-a[enapter]: not deleted in Enapter Cloud: "
            f"devices run on Enapter device {master.id} ({slave.type} {slave.id} ("), message
        assert "Enapter refuses to delete it while they do; delete them first" in message
        assert message.endswith(", or remove the finalizer energy.reconciler.dev/finalizer to "
                                "leave it as it is"), message
        # On an Enapter gateway, on no Zap: no removal from a Zap is said to wait.
        assert "[zap]" not in message, message
        [warning] = await cluster.wait_events_about("link-a", reason="ReleaseBlocked")
        assert warning["type"] == "Warning" and warning["message"] == message, warning
        # Nothing was sent for it, and nothing else of it was touched.
        assert sims.enapter.requests[DELETE] == 0
        assert sims.enapter.by_hardware_id(MASTER) is not None
        assert await cluster.get("Device", "link-a") is not None

        await cluster.delete("Device", "link-s")
        await cluster.wait_gone("Device", "link-s")
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.by_hardware_id(SLAVE) is None
        assert sims.enapter.by_hardware_id(MASTER) is None, "deleted once its slave was"
        assert sims.enapter.requests[DELETE] == 2


async def test_a_device_whose_site_went_first_is_deleted_by_its_recorded_id(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A namespace's deletion removes its objects in no order: the Site gone, its Enapter
    site cannot be looked up, and the device is deleted by the id its status recorded,
    with its config file."""
    config = tmp_path / "keys" / "link-a.json"
    text = _fleet(config)
    async with operator(text, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Device", "link-a", "Ready")
        master = sims.enapter.by_hardware_id(MASTER)
        assert master is not None and config.exists()
        status = await cluster.status("Device", "link-a")
        assert status["externalIds"]["enapter"] == master.id

        await cluster.delete("Site", "h2-lab")
        await cluster.wait_gone("Site", "h2-lab")
        await cluster.delete("Device", "link-a")
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.by_hardware_id(MASTER) is None, "deleted in Enapter Cloud"
        assert sims.enapter.requests[DELETE] == 1
        assert not config.exists(), "its credentials go with it"
        [deleted] = await cluster.wait_events_about("link-a", reason="Deleted")
        assert deleted["message"].startswith(
            "device/link-a[enapter]: deleted in Enapter Cloud, by the id its status "
            "recorded"), deleted


async def test_a_device_whose_enapter_gateway_went_first_is_deleted_by_its_recorded_id(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Its Gateway object gone, a LINK master is on no Zap to be removed from: its release
    is not blocked asking for the Gateway back, and its device goes by its recorded id."""
    config = tmp_path / "keys" / "link-a.json"
    text = _fleet(config)
    async with operator(text, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Device", "link-a", "Ready")
        await cluster.delete("Gateway", "h2-gw")
        await cluster.wait_gone("Gateway", "h2-gw")

        await cluster.delete("Device", "link-a")
        await cluster.wait_gone("Device", "link-a")
        assert sims.enapter.by_hardware_id(MASTER) is None, "deleted in Enapter Cloud"
        assert not config.exists(), "its credentials go with it"
