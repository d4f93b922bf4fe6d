"""An Enapter Device's status records the Enapter site its device was found in or is
provisioned into (`status.externalIds.enapterSite`), from the plan, before anything is
applied: an apply whose create took effect and failed (an answer lost) leaves it behind,
though its device's id never reached the status. Its release, its Site object gone (and
its Gateway too, so that no object says which Site it was in), looks for the device there
by its natural key, its own word taken before what any other object recorded, through the
real operator (kopf against kmock's emulator, the Enapter simulator on loopback). A site
whose devices cannot be read defers the release until they can: nothing is guessed. A site
Enapter lists no more was deleted with its devices: nothing is left to delete. A reconcile
that cannot read Enapter keeps the site recorded before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import enapter_gateway, enapter_site, link_master, stream
from harness import documents, operator
from refused_calls import RefusedCalls, enapter_error
from test_operator_enapter_release import DELETE, MASTER
from test_operator_enapter_release_unrecorded import (
    QUIET,
    UCM,
    UCM_A,
    _lost,
    _unrecorded,
    deferred_until_read,
    released_unwarned,
)

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


async def _ucm_site_gone(cluster: Any, sims: SimFleet, text: str) -> None:
    """`text` applied: ucm-a's apply fails once Enapter made its device, its status holds
    the device's Enapter site and not its id; then its Site goes."""
    await cluster.create_all(documents(text))
    await _site_recorded(cluster, sims, "ucm-a", UCM)
    await _unrecorded(cluster, "ucm-a")


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


async def test_a_device_whose_gateway_and_site_are_gone_is_found_in_its_recorded_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(
        LINK_A, tmp_path, monkeypatch, before_start=_lost("link_master"), config=QUIET
    ) as (cluster, sims):
        await cluster.create_all(documents(LINK_A))
        await _site_recorded(cluster, sims, "link-a", MASTER)
        # Its Gateway goes (deletionPolicy Orphan: its gateway device stays), then its Site:
        # no other Device behind that Gateway, no object says which Site it was in.
        await cluster.delete("Gateway", "h2-gw")
        await cluster.wait_gone("Gateway", "h2-gw")
        await cluster.delete("Site", "h2-lab")
        await cluster.wait_gone("Site", "h2-lab")

        await released_unwarned(cluster, sims, "link-a", MASTER, "the Enapter site its "
                                "status recorded, its Gateway 'h2-gw' being deleted")
        assert sims.enapter.devices, "the gateway device stays"


async def test_a_device_whose_site_is_gone_is_found_in_its_recorded_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = stream(enapter_site(), UCM_A)
    async with operator(
        text, tmp_path, monkeypatch, before_start=_lost("ucm"), config=QUIET
    ) as (cluster, sims):
        await _ucm_site_gone(cluster, sims, text)

        await released_unwarned(cluster, sims, "ucm-a", UCM,
                                "the Enapter site its status recorded, its Site being deleted")


async def test_a_recorded_site_whose_devices_cannot_be_read_defers_the_release(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # The devices of a site are read under /v3/sites/{id}/; the listing of sites answers.
    reads = RefusedCalls("GET", "/v3/sites/", 503, enapter_error("UNAVAILABLE", "down"))
    lost = _lost("ucm")

    def faults(sims: SimFleet) -> None:
        lost(sims)
        reads.install(sims.enapter.app)

    text = stream(enapter_site(), UCM_A)
    async with operator(
        text, tmp_path, monkeypatch, before_start=faults, config=QUIET
    ) as (cluster, sims):
        await _ucm_site_gone(cluster, sims, text)
        await deferred_until_read(cluster, sims, reads, "ucm-a", UCM)


async def test_a_device_whose_recorded_site_is_gone_goes_without_a_word(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = stream(enapter_site(), UCM_A)
    async with operator(
        text, tmp_path, monkeypatch, before_start=_lost("ucm"), config=QUIET
    ) as (cluster, sims):
        await _ucm_site_gone(cluster, sims, text)
        # Its device, then its site, deleted in Enapter Cloud by hand: the site holds
        # nothing to delete, and is not listed any more.
        made = sims.enapter.by_hardware_id(UCM)
        assert made is not None
        del sims.enapter.devices[made.id]
        del sims.enapter.sites[made.site_id]

        await cluster.delete("Device", "ucm-a")
        await cluster.wait_gone("Device", "ucm-a")
        assert sims.enapter.requests[DELETE] == 0
        assert not await cluster.events_about("ucm-a", reason="EnapterDeviceUnknown")


async def test_the_recorded_site_stays_while_enapter_cannot_be_read(
    tmp_path: Path, monkeypatch: Any
) -> None:
    down = RefusedCalls("GET", "/v3/sites", 503, enapter_error("UNAVAILABLE", "down"))
    async with operator(
        LINK_A, tmp_path, monkeypatch, before_start=lambda sims: down.install(sims.enapter.app)
    ) as (cluster, sims):
        await cluster.create_all(documents(LINK_A))
        await cluster.wait_condition("Device", "link-a", "Ready")
        made = sims.enapter.by_hardware_id(MASTER)
        assert made is not None
        down.refusing = True
        # Drift checks that read no Enapter site say nothing of where the device is.
        await cluster.wait_planned("Device", "link-a", 2)
        status = await cluster.status("Device", "link-a")
        assert status["lastPlan"]["actions"] == ["… device/link-a[enapter] defer"], status
        assert status["externalIds"] == {"enapter": made.id, "enapterSite": made.site_id}
