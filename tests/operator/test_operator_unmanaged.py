"""What the operator finds that nothing declares, and leaves as it is (it prunes nothing):
said on the status of the object it is found under (`status.unmanaged`), and by one event
when that changes, not at every drift check, as the CLI's plan lists it as unmanaged. Not a
failure: Ready stays True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import stream, zap_gateway
from harness import Cluster, operator
from objects import HOME, ZAP, declare

INVERTER = ("Device", "home-inverter")
GATEWAY = ("Gateway", "home-zap")
# HOME with a second Zap at home, for the inverter to move to.
OTHER_ZAP = "zap-00000000000000a3"
WITH_OTHER = stream(HOME, zap_gateway("other-zap", "home", OTHER_ZAP, "http://192.168.1.3"))
# A device someone put on the first Zap by hand: no Device declares it.
STRANGER = "SG0099"


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

    return dict(await cluster.wait_for(listed, timeout=30, what=f"home-zap reporting {ids}"))


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
            timeout=30, what="the Unmanaged event",
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
        await cluster.wait_condition(*GATEWAY, "Ready", timeout=5)
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

        [gone] = await cluster.wait_for(cleared, timeout=30, what="the event of none left")
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
        await cluster.wait_condition(*GATEWAY, "Ready", timeout=5)
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

        found = await cluster.wait_for(listed, timeout=30, what="the DER on its Device")
        assert [(o["platform"], o["id"]) for o in found["objects"]] == [("novacore", der_id)]
        assert "(Device home-inverter) is not declared" in found["objects"][0]["description"]
        await cluster.wait_condition(*INVERTER, "Ready", timeout=5)
        await cluster.wait_planned("Site", "home", 1)
        assert (await _reported(cluster, "Site", "home"))["count"] == 0
        assert (await _reported(cluster, *GATEWAY))["count"] == 0
