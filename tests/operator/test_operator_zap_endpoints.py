"""Two Devices of one namespace on one Zap at one connection endpoint (here the same Modbus
TCP address and unit): the Zap would refuse (409) the second one's add on every reconcile.
The one created later is refused as invalid, naming the other, with one Warning; it writes
nothing to the Zap, and the first is reconciled as usual. Unless the later one holds the
endpoint (its status records it applied there) and the first is edited onto it: the
edited one is refused, the one working there keeps it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import HOME_ZAP_SERIAL, novacore_site, stream, sungrow_inverter, zap_gateway
from harness import documents, operator

FIRST = sungrow_inverter("inv-a", "home-zap", "SG-A", "192.168.1.60")
SECOND = sungrow_inverter("inv-b", "home-zap", "SG-B", "192.168.1.60")
FLEET = stream(novacore_site(), zap_gateway(), FIRST)


async def test_the_newer_of_two_devices_at_one_endpoint_is_refused_naming_the_other(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        created = {"home": "2026-01-01T00:00:00Z", "home-zap": "2026-01-01T00:00:00Z",
                   "inv-a": "2026-01-01T00:00:00Z", "inv-b": "2026-01-02T00:00:00Z"}
        # inv-b sorts after inv-a by name too: created first, it would still be the newer.
        second = [d for d in documents(stream(novacore_site(), zap_gateway(), SECOND))
                  if d["metadata"]["name"] == "inv-b"]
        for doc in [*documents(FLEET), *second][::-1]:
            doc["metadata"]["creationTimestamp"] = created[doc["metadata"]["name"]]
            await cluster.create(doc)

        ready = await cluster.wait_reason("Device", "inv-b", "InvalidSpec", timeout=30,
                                          what="Device/inv-b refused")
        assert ready["message"] == (
            "spec.connection.modbusTcp: Modbus TCP 192.168.1.60:502 unit id 1 on Gateway "
            "'home-zap' is already taken by Device 'inv-a'; the Zap refuses (409) to add a "
            "second device there: give each device on the Zap its own host, port or unitId"
        ), ready
        await cluster.wait_condition("Device", "inv-a", "Ready", timeout=30)
        await cluster.wait_planned("Device", "inv-b", 2)
        warnings = [str(e.get("message")) for e in
                    await cluster.events_about("inv-b", reason="Failed", type_="Warning")]
        assert warnings == [ready["message"]]
        assert set(sims.zaps[HOME_ZAP_SERIAL].devices) == {"SG-A"}


async def test_an_older_device_edited_onto_a_newer_ones_endpoint_is_refused_not_the_holder(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """inv-a, created first, is edited onto the endpoint inv-b was applied at: inv-a, which
    asks for it second, is refused naming inv-b, and inv-b, working there, keeps it. The Zap
    is not written to: inv-a stays where it was."""
    newer = sungrow_inverter("inv-b", "home-zap", "SG-B", "192.168.1.61")
    fleet = stream(novacore_site(), zap_gateway(), FIRST, newer)
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        created = {"home": "2026-01-01T00:00:00Z", "home-zap": "2026-01-01T00:00:00Z",
                   "inv-a": "2026-01-01T00:00:00Z", "inv-b": "2026-01-02T00:00:00Z"}
        for doc in documents(fleet):
            doc["metadata"]["creationTimestamp"] = created[doc["metadata"]["name"]]
            await cluster.create(doc)
        for name in ("inv-a", "inv-b"):
            await cluster.wait_condition("Device", name, "Ready", timeout=30)
        held = (await cluster.status("Device", "inv-b"))["gateway"]
        assert held["endpoint"] == "Modbus TCP 192.168.1.61:502 unit id 1", held

        taken = {"spec": {"connection": {"modbusTcp": {"host": "192.168.1.61"}}}}
        await cluster.patch("Device", "inv-a", taken)
        ready = await cluster.wait_reason("Device", "inv-a", "InvalidSpec", timeout=30,
                                          what="Device/inv-a refused")
        assert ready["message"] == (
            "spec.connection.modbusTcp: Modbus TCP 192.168.1.61:502 unit id 1 on Gateway "
            "'home-zap' is already taken by Device 'inv-b'; the Zap refuses (409) to add a "
            "second device there: give each device on the Zap its own host, port or unitId"
        ), ready
        failed = await cluster.wait_events_about("inv-a", reason="Failed")
        assert [(e.get("type"), e.get("message")) for e in failed] == [
            ("Warning", ready["message"])
        ]
        await cluster.wait_planned("Device", "inv-b", 2)
        kept = await cluster.condition("Device", "inv-b", "Ready") or {}
        assert kept.get("status") == "True", kept
        zap = sims.zaps[HOME_ZAP_SERIAL]
        hosts = {sn: device.connection["ip"] for sn, device in zap.devices.items()}
        assert hosts == {"SG-A": "192.168.1.60", "SG-B": "192.168.1.61"}
