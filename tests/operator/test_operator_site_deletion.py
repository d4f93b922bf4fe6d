"""A Site object deleted through the operator: its Novacore site is never deleted (a Site
has no deletionPolicy), and, as the CLI reports it at every plan from its inventory, the
deletion says once, by a `NovacoreSiteKept` event, that it stays, unless another Site
takes it over. The site is read as the Site goes: one deleted by hand since the last
reconcile is not said to stay, and one that cannot be read is said as that reconcile saw
it, worded so, the deletion going through all the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import document, novacore_site
from harness import Cluster, documents, operator

from reconciler.operator.config import OperatorConfig
from reconciler.sim.fleet import SimFleet

FLEET = novacore_site()
# No drift check between the tests' edits in the simulators and the deletion: what the
# deletion says comes of its own read, not of a reconcile that forgot the site first.
NO_DRIFT = OperatorConfig(interval=3600.0, retry_delay=0.5)


async def _applied(cluster: Cluster, sims: SimFleet) -> str:
    """Site home applied: its Novacore site's id."""
    await cluster.create_all(documents(FLEET))
    await cluster.wait_condition("Site", "home", "Ready")
    [site_id] = sims.novacore.sites
    assert (await cluster.status("Site", "home"))["externalIds"]["novacore"] == site_id
    return str(site_id)


async def _kept(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return await cluster.events_about(name, reason="NovacoreSiteKept")


async def test_a_deleted_site_says_once_that_its_novacore_site_stays(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        site_id = await _applied(cluster, sims)

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home")

        [event] = await _kept(cluster, "home")
        assert event["type"] == "Normal"
        assert event["message"] == (
            f"Novacore site {site_id} (in org-home), applied for Site home, stays in Novacore "
            "with its devices (sites are never deleted), and no Site the operator serves is "
            "applied to it any more: delete it in Novacore if it is not used, or declare a "
            f"Site with novacore.siteId {site_id} to manage it again"
        ), event["message"]
        assert list(sims.novacore.sites) == [site_id], "the site is not deleted"


async def test_a_deleted_site_whose_novacore_site_another_site_declares_says_nothing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Renamed: a new Site adopts the site by its siteId, then the old object goes."""
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        site_id = await _applied(cluster, sims)
        house = document("Site", "house", f"""
            displayName: Home
            timezone: Europe/Stockholm
            novacore: {{orgId: org-home, siteId: {site_id}}}
            """)
        await cluster.create_all(documents(house))

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home")
        await cluster.wait_condition("Site", "house", "Ready")

        assert await _kept(cluster, "home") == []
        assert list(sims.novacore.sites) == [site_id]
        assert (await cluster.status("Site", "house"))["externalIds"]["novacore"] == site_id


async def test_a_deleted_site_whose_novacore_site_a_reconcile_found_gone_says_nothing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The Novacore site is deleted there, and the Site, pinned to it by `siteId`, cannot
    be applied any more: the reconcile that read the organisation's sites without it
    forgets it (`status.externalIds`), so the Site's deletion does not say that a site
    gone stays."""
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        site_id = await _applied(cluster, sims)
        sims.novacore.remove_site(site_id)
        await cluster.patch("Site", "home", {"spec": {"novacore": {"siteId": site_id}}})
        ready = await cluster.wait_condition("Site", "home", "Ready", "False")
        assert f"site {site_id} does not exist" in ready["message"], ready
        assert "novacore" not in (await cluster.status("Site", "home"))["externalIds"]

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home")

        assert await _kept(cluster, "home") == []
        assert sims.novacore.sites == {}, "nothing was created for the pinned Site"


async def test_a_site_deleted_by_hand_since_the_last_reconcile_is_not_said_to_stay(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch, config=NO_DRIFT) as (cluster, sims):
        site_id = await _applied(cluster, sims)
        sims.novacore.remove_site(site_id)
        status = await cluster.status("Site", "home")
        assert status["externalIds"]["novacore"] == site_id, "no reconcile forgot it"

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home", timeout=30)

        assert await _kept(cluster, "home") == []


async def test_a_site_that_cannot_be_read_as_its_site_goes_is_said_as_last_seen(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch, config=NO_DRIFT) as (cluster, sims):
        site_id = await _applied(cluster, sims)
        sims.novacore.faults.error_rate = 1.0  # every call answered 503

        await cluster.delete("Site", "home")
        await cluster.wait_gone("Site", "home", timeout=30)

        [event] = await _kept(cluster, "home")
        message = str(event["message"])
        assert message.startswith(
            f"Novacore site {site_id} (in org-home), applied for Site home, was in Novacore "
            "when last found, and could not be read now (novacore.get_site "
            f"/sites/{site_id}: HTTP 503"), message
        assert message.endswith(
            "unless it was deleted there since, it stays with its devices (sites are never "
            "deleted), and no Site the operator serves is applied to it any more: delete it "
            "in Novacore if it is not used, or declare a Site with novacore.siteId "
            f"{site_id} to manage it again"), message
