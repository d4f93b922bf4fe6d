"""What the operator finds that nothing declares, and leaves as it is (it prunes nothing):
said on the status of the object it is found under (`status.unmanaged`), and by one event
when that changes, not at every drift check, as the CLI's plan lists it as unmanaged. Not a
failure: Ready stays True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import novacore_site, stream, zap_gateway
from harness import NAMESPACE, OTHER_NAMESPACE, Cluster, documents, emulated_cluster, operator
from objects import HOME, ZAP, declare
from process import operator_env, operator_process

from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

INVERTER = ("Device", "home-inverter")
GATEWAY = ("Gateway", "home-zap")
# HOME with a second Zap at home, for the inverter to move to.
OTHER_ZAP = "zap-00000000000000a3"
WITH_OTHER = stream(HOME, zap_gateway("other-zap", "home", OTHER_ZAP, "http://192.168.1.3"))
# A device someone put on the first Zap by hand: no Device declares it.
STRANGER = "SG0099"
HOME_SITE = novacore_site()
PAUSED = "energy.reconciler.dev/paused"
# A gateway someone claimed into the Site's organisation by hand: no Gateway declares it.
SPARE = "zap-00000000000000c7"


async def _declared(cluster: Cluster) -> None:
    await declare(cluster, WITH_OTHER)
    for kind, name in (INVERTER, GATEWAY, ("Gateway", "other-zap"), ("Site", "home")):
        await cluster.wait_condition(kind, name, "Ready", timeout=60)


async def _reported(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    return dict((await cluster.status(kind, name)).get("unmanaged") or {})


async def _wait_reported(cluster: Cluster, ids: list[str]) -> dict[str, Any]:
    """home-zap's `status.unmanaged`, once it lists `ids`."""

    async def listed() -> dict[str, Any] | None:
        found = await _reported(cluster, *GATEWAY)
        shown = [o["id"] for o in found.get("objects", [])]
        return found if found and shown == ids and found["count"] == len(ids) else None

    return dict(await cluster.wait_for(listed, what=f"home-zap reporting {ids}"))


async def test_a_device_added_by_hand_to_a_zap_is_reported_on_its_gateway_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(WITH_OTHER, tmp_path, monkeypatch) as (cluster, sims):
        await _declared(cluster)
        await cluster.wait_planned(*GATEWAY, 1)
        assert await _reported(cluster, *GATEWAY) == {"count": 0, "objects": []}

        sims.zaps[ZAP].install_device(
            {"type": "modbus_tcp", "profile": "sungrow", "ip": "192.168.1.99"}, sn=STRANGER
        )
        found = await _wait_reported(cluster, [STRANGER])
        assert found["objects"] == [{
            "platform": "zap",
            "id": STRANGER,
            "description": f"inverter {STRANGER} on gateway home-zap is not declared",
        }]
        [event] = await cluster.wait_for(
            lambda: cluster.events_about("home-zap", reason="Unmanaged"),
            what="the Unmanaged event",
        )
        assert event["type"] == "Warning"
        assert event["message"] == (
            "1 object found that nothing declares, left as it is (remove by hand, or "
            f"declare): inverter {STRANGER} on gateway home-zap is not declared"
        ), event["message"]
        await cluster.wait_planned(*GATEWAY, 2)
        assert len(await cluster.events_about("home-zap", reason="Unmanaged")) == 1, \
            "said once, not at every drift check"
        assert STRANGER in sims.zaps[ZAP].devices, "left as it is"
        await cluster.wait_condition(*GATEWAY, "Ready")
        # Reported by its Gateway only: the Site and the Devices, whose plans read the Zap
        # or the Site's Novacore devices too, find every device there declared.
        await cluster.wait_planned("Site", "home", 1)
        assert await _reported(cluster, "Site", "home") == {"count": 0, "objects": []}
        assert await _reported(cluster, "Gateway", "other-zap") == {"count": 0, "objects": []}
        assert (await _reported(cluster, *INVERTER))["count"] == 0

        sims.zaps[ZAP].remove_device(STRANGER)
        await _wait_reported(cluster, [])

        async def cleared() -> list[dict[str, Any]]:
            events = await cluster.events_about("home-zap", reason="Unmanaged", type_="Normal")
            return events

        [gone] = await cluster.wait_for(cleared, what="the event of none left")
        assert gone["message"] == "no objects found that nothing declares any more"
        await cluster.wait_planned(*GATEWAY, 2)
        assert len(await cluster.events_about("home-zap", reason="Unmanaged")) == 2


async def test_a_device_moved_to_another_gateway_leaves_its_copy_reported_on_the_old_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(WITH_OTHER, tmp_path, monkeypatch) as (cluster, sims):
        await _declared(cluster)
        await cluster.patch(*INVERTER, {"spec": {"gatewayRef": "other-zap"}})

        async def moved() -> bool:
            status = await cluster.status(*INVERTER)
            return (status.get("gateway") or {}).get("name") == "other-zap"

        await cluster.wait_for(moved, timeout=60, what="the inverter on the other Gateway")
        found = await _wait_reported(cluster, ["SG0001"])
        # The operator has no --prune to advise.
        assert found["objects"][0]["description"] == (
            "inverter SG0001 on gateway home-zap is declared on gateway other-zap (Device "
            "home-inverter), not here"
        ), found
        assert "SG0001" in sims.zaps[ZAP].devices, "the operator prunes nothing"
        await cluster.wait_condition(*GATEWAY, "Ready")
        assert (await _reported(cluster, "Gateway", "other-zap"))["count"] == 0

        sims.zaps[ZAP].remove_device("SG0001")  # removed by hand
        await _wait_reported(cluster, [])
        events = await cluster.events_about("home-zap", reason="Unmanaged")
        assert [e["type"] for e in events] == ["Warning", "Normal"], events


async def test_a_der_added_by_hand_in_novacore_is_reported_on_its_device(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(WITH_OTHER, tmp_path, monkeypatch) as (cluster, sims):
        await _declared(cluster)
        [device] = [d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001"]
        der_id = sims.novacore.add_der(device.id, "meter", "meter")

        async def listed() -> dict[str, Any] | None:
            found = await _reported(cluster, *INVERTER)
            return found if found.get("count") == 1 else None

        found = await cluster.wait_for(listed, what="the DER on its Device")
        assert [(o["platform"], o["id"]) for o in found["objects"]] == [("novacore", der_id)]
        assert "(Device home-inverter) is not declared" in found["objects"][0]["description"]
        await cluster.wait_condition(*INVERTER, "Ready")
        await cluster.wait_planned("Site", "home", 1)
        assert (await _reported(cluster, "Site", "home"))["count"] == 0
        assert (await _reported(cluster, *GATEWAY))["count"] == 0


async def test_a_gateway_claimed_in_the_org_that_no_gateway_declares_is_reported_on_its_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(WITH_OTHER, tmp_path, monkeypatch) as (cluster, sims):
        await _declared(cluster)
        # Its plan lists both Zaps claimed in org-home, which its closure does not hold:
        # both are Gateways of the namespace, so neither is reported.
        await cluster.wait_planned("Site", "home", 1)
        assert await _reported(cluster, "Site", "home") == {"count": 0, "objects": []}

        sims.novacore.register_gateway(SPARE, sims.zaps[ZAP].public_key_hex)
        sims.novacore.claim_gateway_into(SPARE, "org-home")

        async def listed(count: int) -> dict[str, Any] | None:
            found = await _reported(cluster, "Site", "home")
            return found if found.get("count") == count else None

        found = await cluster.wait_for(lambda: listed(1), what="the spare gateway")
        description = (
            f"gateway {SPARE} is claimed by org-home but not declared; left claimed "
            "(deletionPolicy Orphan)"
        )
        assert found["objects"] == [
            {"platform": "novacore", "id": SPARE, "description": description}
        ], found
        [event] = await cluster.wait_for(
            lambda: cluster.events_about("home", reason="Unmanaged"), what="the Unmanaged event",
        )
        assert event["type"] == "Warning"
        assert event["message"].endswith(f"(remove by hand, or declare): {description}"), event
        await cluster.wait_planned("Site", "home", 2)
        assert len(await cluster.events_about("home", reason="Unmanaged")) == 1, \
            "said once, not at every drift check"
        await cluster.wait_condition("Site", "home", "Ready")
        # Reported by the Site only: the Gateways' plans list the organisation's gateways too.
        for gateway in ("home-zap", "other-zap"):
            await cluster.wait_planned("Gateway", gateway, 1)
            assert (await _reported(cluster, "Gateway", gateway))["count"] == 0
        assert sims.novacore.gateways[SPARE].org_id == "org-home", "left claimed"

        # A Gateway of another namespace the operator serves declares it (its Site not
        # declared there, it waits): not unmanaged.
        [_, spare] = documents(
            stream(HOME_SITE, zap_gateway("spare-zap", "home", SPARE, "http://192.168.1.7"))
        )
        await cluster.create(spare, OTHER_NAMESPACE)
        await cluster.wait_for(lambda: listed(0), what="the spare gateway declared")

        async def cleared() -> list[dict[str, Any]]:
            return await cluster.events_about("home", reason="Unmanaged", type_="Normal")

        [gone] = await cluster.wait_for(cleared, what="the event of none left")
        assert gone["message"] == "no objects found that nothing declares any more"


async def test_a_gateway_claimed_that_no_gateway_of_the_namespaces_served_declares_says_so(
    tmp_path: Path
) -> None:
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", WITH_OTHER)]).fleet())
    async with emulated_cluster() as cluster, sims:
        env = operator_env(sims, cluster.url, tmp_path)
        async with operator_process(env, tmp_path / "operator.log", ("-n", NAMESPACE)):
            await _declared(cluster)
            sims.novacore.register_gateway(SPARE, sims.zaps[ZAP].public_key_hex)
            sims.novacore.claim_gateway_into(SPARE, "org-home")

            async def listed() -> dict[str, Any] | None:
                found = await _reported(cluster, "Site", "home")
                return found if found.get("count") == 1 else None

            found = await cluster.wait_for(listed, what="the spare gateway")
            # A Gateway of a namespace this operator does not serve may declare it.
            assert found["objects"][0]["description"] == (
                f"gateway {SPARE} is claimed by org-home but not declared by a Gateway this "
                f"operator serves (namespaces {NAMESPACE}); left claimed (deletionPolicy "
                "Orphan)"
            ), found

            # Declared in the namespace: not unmanaged.
            [_, spare] = documents(
                stream(HOME_SITE, zap_gateway("spare-zap", "home", SPARE, "http://192.168.1.7"))
            )
            await cluster.create(spare)

            async def none() -> bool:
                return (await _reported(cluster, "Site", "home")).get("count") == 0

            await cluster.wait_for(none, what="the spare gateway declared")


async def test_of_two_sites_in_one_organisation_the_first_by_name_reports_its_gateways(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = stream(WITH_OTHER, novacore_site("cabin", "Cabin"))  # org-home too
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await declare(cluster, fleet)
        for site in ("cabin", "home"):
            await cluster.wait_condition("Site", site, "Ready", timeout=60)
        sims.novacore.register_gateway(SPARE, sims.zaps[ZAP].public_key_hex)
        sims.novacore.claim_gateway_into(SPARE, "org-home")

        async def listed(site: str) -> dict[str, Any] | None:
            found = await _reported(cluster, "Site", site)
            return found if found.get("count") == 1 else None

        found = await cluster.wait_for(lambda: listed("cabin"), what="on cabin")
        assert [o["id"] for o in found["objects"]] == [SPARE]
        await cluster.wait_planned("Site", "home", 2)
        assert await _reported(cluster, "Site", "home") == {"count": 0, "objects": []}

        # Paused, cabin is not reconciled: home, the next by name, reports it.
        await cluster.patch("Site", "cabin", {"metadata": {"annotations": {PAUSED: "true"}}})
        found = await cluster.wait_for(lambda: listed("home"), what="on home")
        assert [o["id"] for o in found["objects"]] == [SPARE]


async def test_a_second_novacore_site_of_a_sites_name_is_reported_on_that_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(WITH_OTHER, tmp_path, monkeypatch) as (cluster, sims):
        await _declared(cluster)
        [used] = [s.id for s in sims.novacore.sites.values() if s.name == "Home"]
        other = sims.novacore.add_site("org-home", "Home")

        async def listed() -> dict[str, Any] | None:
            found = await _reported(cluster, "Site", "home")
            return found if found.get("count") == 1 else None

        found = await cluster.wait_for(listed, what="the second site of the name")
        assert found["objects"] == [{
            "platform": "novacore",
            "id": other,
            "description": f"site {other} ('Home' in org-home) has the same name as site "
            f"{used}, which Site home uses (a Site without `siteId` is found by name, and "
            "the first site of the name is used); set `spec.novacore.siteId` of Site home "
            "to the site to use, and delete the other in Novacore (or move its devices to "
            "the one used)",
        }], found
        await cluster.wait_condition("Site", "home", "Ready")
        assert (await _reported(cluster, *GATEWAY))["count"] == 0
        assert other in sims.novacore.sites, "left as it is"
