"""What the operator finds that nothing declares beyond the Zaps and Novacore sites (those are
in test_operator_unmanaged.py): a device added by hand to a Site's Enapter site or to its
Flatpeak location, said on the Site's `status.unmanaged` as `reconciler plan` lists it, and
a gateway claimed in an organisation that only a Gateway's `zap.orgId` names, said on that
Gateway's. Left as they are, by one event when the set changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fleet_yaml import document, enapter_site, novacore_site, stream
from harness import Cluster, documents, operator
from objects import HOME, ZAP, declare

from reconciler.sim.enapter import AUTH_HEADER
from reconciler.sim.fleet import SimFleet

UCM = "C8795CBA5375484E829105E959663C8B"
ENAPTER_FLEET = stream(enapter_site(), document("Device", "h2-ucm", f"""
    siteRef: h2-lab
    hardwareId: {UCM}
    displayName: Gas sensor UCM
    enapter:
      kind: ucm
      protocol: MQTTS
      configOutput: {{secretName: h2-ucm-config}}
    """))

ADDRESS = '{line1: Storgatan 1, city: Malmö, postCode: "211 19", countryCode: SE}'
FLATPEAK_FLEET = stream(
    document("Site", "home", f"""
        displayName: Home
        timezone: Europe/Stockholm
        location: {{latitude: 55.61, longitude: 12.97, address: {ADDRESS}}}
        flatpeak: {{customerId: cus_1}}
        """),
    document("Device", "home-battery", """
        siteRef: home
        flatpeak: {referenceId: home-battery, type: BATTERY_SYSTEM, manufacturer: Tesla}
        """),
)

# The Zap of a Site on no cloud, claimed into an organisation no Site names.
LAB_ZAP = "zap-00000000000000a3"
LAB_FLEET = stream(
    HOME,
    document("Site", "lab", "displayName: Lab\ntimezone: Europe/Stockholm"),
    document("Gateway", "lab-zap", f"""
        siteRef: lab
        zap: {{serial: {LAB_ZAP}, url: "http://192.168.1.3", orgId: org-lab}}
        """),
)
# A gateway someone claimed into org-lab by hand: no Gateway declares it.
SPARE = "zap-00000000000000c7"


async def _reported(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    return dict((await cluster.status(kind, name)).get("unmanaged") or {})


async def _wait_listed(cluster: Cluster, kind: str, name: str, count: int) -> dict[str, Any]:
    async def listed() -> dict[str, Any] | None:
        found = await _reported(cluster, kind, name)
        return found if found and found.get("count") == count else None

    return dict(await cluster.wait_for(listed, what=f"{name} reporting {count}"))


async def _said_once(cluster: Cluster, name: str, kind: str, description: str) -> None:
    """The Unmanaged event of the set found, once, not at every drift check."""
    [event] = await cluster.wait_for(
        lambda: cluster.events_about(name, reason="Unmanaged"), what="the Unmanaged event",
    )
    assert event["type"] == "Warning"
    assert event["message"] == (
        "1 object found that nothing declares, left as it is (remove by hand, or declare): "
        f"{description}"
    ), event["message"]
    await cluster.wait_planned(kind, name, 2)
    assert len(await cluster.events_about(name, reason="Unmanaged")) == 1


async def _cleared(cluster: Cluster, name: str) -> None:
    [gone] = await cluster.wait_for(
        lambda: cluster.events_about(name, reason="Unmanaged", type_="Normal"),
        what="the event of none left",
    )
    assert gone["message"] == "no objects found that nothing declares any more"


async def _provision_standalone(sims: SimFleet, site_id: str, name: str, slug: str) -> str:
    """A standalone device someone provisioned by hand in the Enapter site."""
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{sims.enapter.url}/v3/provisioning/standalone",
            headers={AUTH_HEADER: sims.enapter_token},
            json={"site_id": site_id, "name": name, "slug": slug},
        )
    answer.raise_for_status()
    return str(answer.json()["device_id"])


async def test_a_device_added_by_hand_to_a_sites_enapter_site_is_reported_on_the_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(ENAPTER_FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(ENAPTER_FLEET))
        await cluster.wait_condition("Device", "h2-ucm", "Ready")
        await cluster.wait_condition("Site", "h2-lab", "Ready")
        # The UCM is declared by a Device the Site's closure does not hold: not unmanaged.
        await cluster.wait_planned("Site", "h2-lab", 1)
        assert await _reported(cluster, "Site", "h2-lab") == {"count": 0, "objects": []}

        [site_id] = sims.enapter.sites
        stray = await _provision_standalone(sims, site_id, "Pump", "pump")
        found = await _wait_listed(cluster, "Site", "h2-lab", 1)
        description = f"Enapter STANDALONE device {stray} ('Pump', slug pump) in site h2-lab " \
            "is not declared"
        assert found["objects"] == [
            {"platform": "enapter", "id": stray, "description": description}
        ], found
        await _said_once(cluster, "h2-lab", "Site", description)
        await cluster.wait_condition("Site", "h2-lab", "Ready")
        assert stray in sims.enapter.devices, "left as it is"
        # Reported by the Site only: the Device's plan reads the Enapter site too.
        await cluster.wait_planned("Device", "h2-ucm", 2)
        assert (await _reported(cluster, "Device", "h2-ucm")).get("count", 0) == 0

        sims.enapter.remove_device(stray)
        await _wait_listed(cluster, "Site", "h2-lab", 0)
        await _cleared(cluster, "h2-lab")


async def test_a_device_added_by_hand_to_a_sites_flatpeak_location_is_reported_on_the_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLATPEAK_FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(FLATPEAK_FLEET))
        await cluster.wait_condition("Device", "home-battery", "Ready")
        await cluster.wait_condition("Site", "home", "Ready")
        await cluster.wait_planned("Site", "home", 1)
        assert await _reported(cluster, "Site", "home") == {"count": 0, "objects": []}

        [location] = [i for i, loc in sims.flatpeak.locations.items()
                      if loc["reference_id"] == "home"]
        stray = _add_flatpeak_device(sims, "left-over", [location])
        _add_flatpeak_device(sims, "other-system-device", ["loc_other_system"])
        found = await _wait_listed(cluster, "Site", "home", 1)
        description = (f"Flatpeak device {stray} ('left-over') on the location of site home "
                       "is not declared")
        assert found["objects"] == [
            {"platform": "flatpeak", "id": stray, "description": description}
        ], found
        await _said_once(cluster, "home", "Site", description)
        assert stray in sims.flatpeak.devices, "left as it is"
        await cluster.wait_planned("Device", "home-battery", 2)
        assert (await _reported(cluster, "Device", "home-battery")).get("count", 0) == 0

        del sims.flatpeak.devices[stray]  # removed by hand
        await _wait_listed(cluster, "Site", "home", 0)
        await _cleared(cluster, "home")


def _add_flatpeak_device(sims: SimFleet, reference_id: str, locations: list[str]) -> str:
    """A device some other system (or someone by hand) registered in the account."""
    device_id = f"dev_other_{len(sims.flatpeak.devices)}"
    sims.flatpeak.devices[device_id] = {
        "id": device_id, "object": "device", "live_mode": False, "reference_id": reference_id,
        "type": "OTHER", "locations": locations, "manufacturer": None, "model_code": None,
        "model_name": None, "properties": {}, "time_created": "2024-01-01T00:00:00Z",
        "account_id": sims.flatpeak_account, "last_seen": None}
    return device_id


async def test_a_gateway_claimed_in_an_organisation_only_a_gateway_names_is_reported_on_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(LAB_FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster, LAB_FLEET)
        for kind, name in (("Gateway", "lab-zap"), ("Gateway", "home-zap"), ("Site", "home")):
            await cluster.wait_condition(kind, name, "Ready", timeout=60)
        assert sims.novacore.gateways[LAB_ZAP].org_id == "org-lab"
        await cluster.wait_planned("Gateway", "lab-zap", 1)
        assert await _reported(cluster, "Gateway", "lab-zap") == {"count": 0, "objects": []}

        sims.novacore.register_gateway(SPARE, sims.zaps[ZAP].public_key_hex)
        sims.novacore.claim_gateway_into(SPARE, "org-lab")
        found = await _wait_listed(cluster, "Gateway", "lab-zap", 1)
        description = (f"gateway {SPARE} is claimed by org-lab but not declared; left claimed "
                       "(deletionPolicy Orphan)")
        assert found["objects"] == [
            {"platform": "novacore", "id": SPARE, "description": description}
        ], found
        await _said_once(cluster, "lab-zap", "Gateway", description)
        # Once only: the Site reports org-home's gateways, home-zap is claimed in org-home.
        await cluster.wait_planned("Site", "home", 2)
        assert (await _reported(cluster, "Site", "home"))["count"] == 0
        assert (await _reported(cluster, "Gateway", "home-zap"))["count"] == 0

        # A Site naming org-lab reports it from then on, as it does its organisation's.
        await cluster.create_all(documents(novacore_site("lab-2", "Lab 2", org="org-lab")))
        await _wait_listed(cluster, "Site", "lab-2", 1)
        await _wait_listed(cluster, "Gateway", "lab-zap", 0)
