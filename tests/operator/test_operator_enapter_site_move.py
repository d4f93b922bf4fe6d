"""An Enapter Device keyed by its slug (a standalone device) whose Site is pointed at another
Enapter site (`siteId` set in its spec), through the real operator (kopf against kmock's
emulator, the Enapter simulator on loopback): Enapter cannot move a device between sites,
so its device is deleted in the site it was in and provisioned again in the new one (a
replace), its config Secret written anew for the new device, and no device is left behind
in the old site, which no plan would see again. The status records the old Enapter site
until the replace is done, so that a replace that failed is tried again there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import document, enapter_site, stream
from harness import documents, operator, secret_values
from refused_calls import RefusedCalls, enapter_error

from reconciler.operator.config import OperatorConfig
from reconciler.operator.secrets import ENAPTER_DEVICE_ANNOTATION
from reconciler.sim.fleet import SimFleet

DELETE = "DELETE /v3/devices/{device_id}"
WEATHER = document("Device", "weather", """
    siteRef: h2-lab
    displayName: Weather station
    enapter: {kind: standalone, configOutput: {secretName: weather-config}}
    """)
TEXT = stream(enapter_site(), WEATHER)
# No drift check between the test's own changes.
QUIET = OperatorConfig(interval=3600.0, retry_delay=0.5)


def _slugged(sims: SimFleet, site_id: str) -> list[str]:
    """The ids of the devices with slug `weather` in Enapter site `site_id`."""
    return [d.id for d in sims.enapter.devices.values()
            if d.site_id == site_id and d.slug == "weather"]


async def _moved(cluster: Any, sims: SimFleet, *, applied: bool = False) -> tuple[str, str, str]:
    """The fleet applied (unless `applied` already), then its Site pointed at a new
    Enapter site: (old site, old device, new site)."""
    if not applied:
        await cluster.create_all(documents(TEXT))
        await cluster.wait_condition("Device", "weather", "Ready")
    ids = (await cluster.status("Device", "weather"))["externalIds"]
    old_site, old_device = ids["enapterSite"], ids["enapter"]
    assert _slugged(sims, old_site) == [old_device]
    new_site = sims.enapter.add_site("H2 Lab annex", "Europe/Rome").id
    await cluster.patch("Site", "h2-lab", {"spec": {"enapter": {"siteId": new_site}}})
    await cluster.wait_for(
        lambda: _site_is(cluster, new_site), what="the Site's status to name its new site"
    )
    return old_site, old_device, new_site


async def _site_is(cluster: Any, site_id: str) -> bool:
    ids = (await cluster.status("Site", "h2-lab")).get("externalIds") or {}
    return bool(ids.get("enapter") == site_id)


async def test_a_device_whose_site_moved_is_deleted_there_and_provisioned_anew(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(TEXT, tmp_path, monkeypatch, config=QUIET) as (cluster, sims):
        old_site, old_device, new_site = await _moved(cluster, sims)
        # An edit reconciles the Device at once (no drift check runs meanwhile).
        await cluster.patch("Device", "weather", {"spec": {"displayName": "Weather mast"}})

        async def moved() -> bool:
            ids = (await cluster.status("Device", "weather")).get("externalIds") or {}
            return bool(ids.get("enapterSite") == new_site and ids.get("enapter") != old_device)

        await cluster.wait_for(moved, what="the device's replace in its new site")
        await cluster.wait_condition("Device", "weather", "Ready")
        assert _slugged(sims, old_site) == [], "nothing left behind in the old site"
        ids = (await cluster.status("Device", "weather"))["externalIds"]
        assert _slugged(sims, new_site) == [ids["enapter"]]
        assert sims.enapter.requests[DELETE] == 1
        secret = await cluster.secret("weather-config")
        annotations = secret["metadata"].get("annotations") or {}
        assert annotations[ENAPTER_DEVICE_ANNOTATION] == ids["enapter"], "written anew"
        assert "config.json" in secret_values(secret)


async def test_a_replace_that_failed_keeps_the_old_site_and_is_tried_again(
    tmp_path: Path, monkeypatch: Any
) -> None:
    deletes = RefusedCalls("DELETE", "/v3/devices/", 403,
                           enapter_error("FORBIDDEN", "not allowed"))
    async with operator(
        TEXT, tmp_path, monkeypatch, config=QUIET,
        before_start=lambda sims: deletes.install(sims.enapter.app),
    ) as (cluster, sims):
        deletes.refusing = False
        await cluster.create_all(documents(TEXT))
        await cluster.wait_condition("Device", "weather", "Ready")
        deletes.refusing = True
        old_site, old_device, new_site = await _moved(cluster, sims, applied=True)
        await cluster.patch("Device", "weather", {"spec": {"displayName": "Weather mast"}})

        failed = await cluster.wait_reason("Device", "weather", "ApplyFailed")
        assert "device/weather[enapter]" in failed["message"], failed
        ids = (await cluster.status("Device", "weather"))["externalIds"]
        assert (ids["enapterSite"], ids["enapter"]) == (old_site, old_device), (
            "where its device still is"
        )
        assert _slugged(sims, new_site) == [], "not provisioned beside the old one"

        deletes.refusing = False
        # Tried again (a refusal holds the Device until its spec changes: an edit).
        await cluster.patch("Device", "weather", {"spec": {"displayName": "Weather mast 2"}})

        async def moved() -> bool:
            ids = (await cluster.status("Device", "weather")).get("externalIds") or {}
            return bool(ids.get("enapterSite") == new_site)

        await cluster.wait_for(moved, what="the device's replace in its new site")
        assert _slugged(sims, old_site) == []
        ids = (await cluster.status("Device", "weather"))["externalIds"]
        assert _slugged(sims, new_site) == [ids["enapter"]]

