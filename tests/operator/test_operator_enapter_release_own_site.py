"""An Enapter Device's status records the Enapter site its device was found in or is
provisioned into (`status.externalIds.enapterSite`), from the plan, before anything is
applied, through the real operator (kopf against kmock's emulator, the Enapter simulator on
loopback): an apply whose create took effect and failed (an answer lost) leaves it behind,
though its device's id never reached the status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import enapter_gateway, enapter_site, link_master, stream
from harness import documents, operator
from test_operator_enapter_release import MASTER
from test_operator_enapter_release_unrecorded import QUIET, _lost

from reconciler.sim.fleet import SimFleet

LINK_A = stream(enapter_site(), enapter_gateway(),
                link_master("link-a", MASTER, extra="deletionPolicy: Release"))


async def _site_recorded(cluster: Any, sims: SimFleet, name: str, hardware_id: str) -> None:
    """`name`'s apply failed once Enapter made its device: its status holds the Enapter
    site the device is in, and not its id."""
    await cluster.wait_reason("Device", name, "ApplyFailed")
    made = sims.enapter.by_hardware_id(hardware_id)
    assert made is not None, "provisioned all the same"
    ids = (await cluster.status("Device", name)).get("externalIds") or {}
    assert "enapter" not in ids, ids
    assert ids.get("enapterSite") == made.site_id, ids


async def test_a_ready_device_records_the_enapter_site_of_its_device(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(LINK_A, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        await cluster.create_all(documents(LINK_A))
        await cluster.wait_condition("Device", "link-a", "Ready")
        made = sims.enapter.by_hardware_id(MASTER)
        assert made is not None
        ids = (await cluster.status("Device", "link-a"))["externalIds"]
        assert ids == {"enapter": made.id, "enapterSite": made.site_id}, ids


async def test_a_failed_create_leaves_the_enapter_site_in_the_status(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(
        LINK_A, tmp_path, monkeypatch, before_start=_lost("link_master"), config=QUIET
    ) as (cluster, sims):
        await cluster.create_all(documents(LINK_A))
        await _site_recorded(cluster, sims, "link-a", MASTER)
