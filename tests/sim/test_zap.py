"""The Zap simulator over real HTTP on loopback (platform-apis §1.2, §1.3): crypto and
signing, adding devices by really reading their Modbus serial, DER toggles, errors, drift
endpoints and persistence."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from zap_fixtures import (
    INVERTER_IP,
    SOLIS_SERIAL,
    SUNGROW_SERIAL,
    ZAP_SERIAL,
    public_key_from_hex,
    verify,
)

from reconciler.model import profiles
from reconciler.sim.lan import Lan, MqttDevice
from reconciler.sim.modbus_device import ModbusDeviceSimulator
from reconciler.sim.zap import ZapSimulator

SUNGROW = {"type": "modbus_tcp", "ip": INVERTER_IP, "port": 502, "unit_id": 1,
           "profile": "sungrow"}
SOLIS = {**SUNGROW, "unit_id": 2, "profile": "solis"}
FERROAMP = {"type": "mqtt", "profile": "ferroamp", "broker_host": "192.168.1.70",
            "broker_port": 1883, "username": "extapi", "password": "s3cret-pw"}
AMBIBOX = {"type": "mqtt", "profile": "ambibox", "broker_host": "192.168.1.50"}
P1 = {"type": "p1_uart", "baud_rate": 115200, "data_bits": 8, "parity": "none"}
RTU = {"type": "modbus_rtu", "baud_rate": 9600, "unit_id": 3, "profile": "sungrow", "parity": 0}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


async def add(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/devices", json=body)


def der_flags(ders: list[dict[str, Any]]) -> dict[str, bool]:
    return {d["type"]: d["enabled"] for d in ders}


# -- identity and signing -----------------------------------------------------------------------


async def test_crypto_reports_serial_and_raw_public_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/crypto")
    assert response.status_code == 200
    body = response.json()
    assert body["deviceName"] == "software_zap"
    assert body["serialNumber"] == ZAP_SERIAL
    assert re.fullmatch(r"[0-9a-f]{128}", body["publicKey"]), "X‖Y hex without 04 prefix"


async def test_signature_verifies_with_the_public_key_from_api_crypto(
        client: httpx.AsyncClient) -> None:
    key = public_key_from_hex((await client.get("/api/crypto")).json()["publicKey"])
    response = await client.post("/api/crypto/sign", json={"message": "idt-claimer"})
    assert response.status_code == 200
    assert list(response.json()) == ["sign", "message"], "sign comes first"
    body = response.json()
    claimer, nonce, timestamp, serial = body["message"].split("|")
    assert (claimer, serial) == ("idt-claimer", ZAP_SERIAL)
    assert 100000 <= int(nonce) <= 999999
    assert TIMESTAMP.match(timestamp)
    verify(key, body["sign"], body["message"])
    with pytest.raises(InvalidSignature):
        verify(key, body["sign"], body["message"] + "x")


async def test_sign_without_message_has_three_parts_and_keeps_given_timestamp(
        client: httpx.AsyncClient) -> None:
    response = await client.post("/api/crypto/sign", json={"timestamp": "2026-01-02T03:04:05Z"})
    parts = response.json()["message"].split("|")
    assert len(parts) == 3
    assert parts[1:] == ["2026-01-02T03:04:05Z", ZAP_SERIAL]


async def test_sign_with_empty_body_still_signs(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/crypto/sign")
    assert response.status_code == 200
    assert response.json()["message"].endswith("|" + ZAP_SERIAL)


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param({"message": "a|b|c|d"}, "Message cannot contain | characters", id="message"),
    pytest.param({"message": "ok", "timestamp": "2026|01"},
                 "Timestamp cannot contain | characters", id="timestamp"),
])
async def test_pipe_is_rejected_with_exact_body(client: httpx.AsyncClient, body: dict[str, str],
                                                expected: str) -> None:
    response = await client.post("/api/crypto/sign", json=body)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": expected}


async def test_sec1_public_key_format_is_configurable(lan: Lan, no_leaked_tasks: None) -> None:
    zap = ZapSimulator(lan=lan, public_key_format="sec1")
    await zap.start()
    try:
        async with httpx.AsyncClient(base_url=zap.url) as client:
            key = (await client.get("/api/crypto")).json()["publicKey"]
            system = (await client.get("/api/system")).json()
    finally:
        await zap.stop()
    assert key.startswith("04") and len(key) == 130
    assert system["zap"]["publicKey"] == key


async def test_system_and_name(client: httpx.AsyncClient) -> None:
    system = (await client.get("/api/system")).json()
    assert system["zap"]["deviceId"] == ZAP_SERIAL
    assert system["zap"]["firmwareVersion"] == "1.8.50"
    assert {"time_utc_sec", "uptime_seconds", "temperature_celsius", "memory_kb"} <= set(system)
    assert (await client.get("/api/name")).json() == {"name": ZAP_SERIAL}


# -- adding devices -----------------------------------------------------------------------------


async def test_adding_a_modbus_device_reads_its_serial(client: httpx.AsyncClient,
                                                       modbus_sim: ModbusDeviceSimulator) -> None:
    response = await add(client, SUNGROW)
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Device added and connected"
    assert body["sn"] == SUNGROW_SERIAL
    assert modbus_sim.reads[(1, 4)] >= 1, "the serial was read from input registers"


async def test_adding_a_sunspec_device_reads_the_common_model_serial(
        client: httpx.AsyncClient, modbus_sim: ModbusDeviceSimulator) -> None:
    response = await add(client, SOLIS)
    assert response.status_code == 201
    assert response.json()["sn"] == SOLIS_SERIAL
    assert modbus_sim.reads[(2, 3)] >= 1, "the serial was read from holding registers"


async def test_a_swapped_device_is_added_with_its_new_serial(
        client: httpx.AsyncClient, modbus_sim: ModbusDeviceSimulator) -> None:
    assert (await add(client, SUNGROW)).json()["sn"] == SUNGROW_SERIAL
    modbus_sim.set_serial("A2399999999", unit_id=1)
    assert (await client.delete(f"/api/devices/{SUNGROW_SERIAL}")).status_code == 200
    response = await add(client, SUNGROW)
    assert response.status_code == 201
    assert response.json()["sn"] == "A2399999999"


async def test_offline_modbus_device_gives_503(client: httpx.AsyncClient,
                                               modbus_sim: ModbusDeviceSimulator) -> None:
    await modbus_sim.set_offline(True)
    response = await add(client, SUNGROW)
    assert response.status_code == 503
    assert "message" in response.json()
    assert (await client.get("/api/devices")).json()["count"] == 0, "nothing saved on failure"


async def test_address_with_no_device_gives_503(client: httpx.AsyncClient) -> None:
    response = await add(client, {**SUNGROW, "ip": "192.168.1.99"})
    assert response.status_code == 503


async def test_wrong_unit_id_gives_503(client: httpx.AsyncClient) -> None:
    assert (await add(client, {**SUNGROW, "unit_id": 9})).status_code == 503


async def test_profile_that_does_not_match_the_device_gives_503(
        client: httpx.AsyncClient) -> None:
    # A SunSpec device has no Sungrow serial registers.
    assert (await add(client, {**SOLIS, "profile": "sungrow"})).status_code == 503


async def test_same_address_and_unit_twice_is_a_conflict(client: httpx.AsyncClient) -> None:
    assert (await add(client, SUNGROW)).status_code == 201
    response = await add(client, SUNGROW)
    assert response.status_code == 409
    assert "message" in response.json()


async def test_same_serial_at_another_address_is_a_conflict(
        client: httpx.AsyncClient, lan: Lan, modbus_sim: ModbusDeviceSimulator) -> None:
    modbus_sim.attach(lan, "192.168.1.61", 502)  # the same inverter reachable twice
    assert (await add(client, SUNGROW)).status_code == 201
    response = await add(client, {**SUNGROW, "ip": "192.168.1.61"})
    assert response.status_code == 409


@pytest.mark.parametrize(("config", "expected"), [
    pytest.param(SUNGROW, {"pv": False, "battery": False, "meter": False}, id="inverter"),
    pytest.param(FERROAMP, {"battery": False, "meter": False}, id="battery"),
    pytest.param(P1, {"meter": False}, id="p1-meter"),
    pytest.param(AMBIBOX, {"v2x_charger": False}, id="v2x-charger"),
    pytest.param(RTU, {"pv": False, "battery": False, "meter": False}, id="rtu-inverter"),
])
async def test_every_der_starts_disabled(client: httpx.AsyncClient, config: dict[str, Any],
                                         expected: dict[str, bool]) -> None:
    response = await add(client, config)
    assert response.status_code == 201, response.text
    assert der_flags(response.json()["ders"]) == expected
    listed = (await client.get("/api/devices")).json()["devices"][0]
    assert der_flags(listed["ders"]) == expected


async def test_non_modbus_devices_get_serials_from_the_lan(client: httpx.AsyncClient,
                                                           lan: Lan) -> None:
    lan.mqtt_devices[("192.168.1.70", 1883, "ferroamp")] = MqttDevice("FA-0042", "ferroamp")
    lan.p1_meters[ZAP_SERIAL] = "LGF5E360"
    assert (await add(client, FERROAMP)).json()["sn"] == "FA-0042"
    assert (await add(client, P1)).json()["sn"] == "LGF5E360"
    assert (await add(client, AMBIBOX)).json()["sn"] == "ambibox_192.168.1.50"
    assert (await add(client, RTU)).json()["sn"] == "rtu_sungrow_3"


async def test_offline_mqtt_device_gives_503(client: httpx.AsyncClient, lan: Lan) -> None:
    lan.mqtt_devices[("192.168.1.70", 1883, "ferroamp")] = MqttDevice("FA-1", "ferroamp",
                                                                      online=False)
    assert (await add(client, FERROAMP)).status_code == 503


async def test_second_p1_meter_conflicts_on_the_uart(client: httpx.AsyncClient) -> None:
    assert (await add(client, P1)).status_code == 201
    assert (await add(client, P1)).status_code == 409


@pytest.mark.parametrize("body", [
    pytest.param({"ip": INVERTER_IP, "profile": "sungrow"}, id="missing-type"),
    pytest.param({**SUNGROW, "type": "zigbee"}, id="unknown-type"),
    pytest.param({k: v for k, v in SUNGROW.items() if k != "ip"}, id="missing-ip"),
    pytest.param({**SUNGROW, "port": 70000}, id="port-out-of-range"),
    pytest.param({**SUNGROW, "unit_id": "1"}, id="unit-id-not-integer"),
    pytest.param({**SUNGROW, "profile": "tesla"}, id="unknown-profile"),
    pytest.param({**SUNGROW, "profile": "ambibox"}, id="profile-not-for-connection-type"),
    pytest.param({**RTU, "parity": "none"}, id="rtu-parity-is-0-1-2"),
    pytest.param({**P1, "parity": 0}, id="p1-parity-is-a-name"),
    pytest.param({"type": "mqtt", "profile": "ferroamp"}, id="mqtt-missing-broker"),
    pytest.param(["not", "an", "object"], id="not-an-object"),
])
async def test_invalid_config_is_rejected(client: httpx.AsyncClient, body: Any) -> None:
    response = await client.post("/api/devices", json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"message"}


async def test_device_list_has_the_documented_shape(client: httpx.AsyncClient) -> None:
    await add(client, SUNGROW)
    body = (await client.get("/api/devices")).json()
    assert body["count"] == 1
    device = body["devices"][0]
    assert {k: device[k] for k in ("type", "profile", "device_type", "sn", "ip", "port",
                                   "unit_id", "connected")} == {
        "type": "modbus_tcp", "profile": "sungrow", "device_type": "inverter",
        "sn": SUNGROW_SERIAL, "ip": INVERTER_IP, "port": 502, "unit_id": 1, "connected": True}
    assert isinstance(device["last_harvest"], int)
    assert device["path"].startswith("spiffs/devices/")
    assert device["ders"][0] == {"type": "pv", "enabled": False, "rated_power": 10000}


async def test_mqtt_password_is_never_shown(client: httpx.AsyncClient, zap: ZapSimulator) -> None:
    await add(client, FERROAMP)
    listed = (await client.get("/api/devices")).text
    state = (await client.get("/_sim/state")).text
    assert "s3cret-pw" not in listed
    assert "s3cret-pw" not in state
    assert "s3cret-pw" not in json.dumps(zap.snapshot())
    device = (await client.get("/api/devices")).json()["devices"][0]
    assert device["username"] == "extapi"
    assert "password" not in device
    assert zap.devices["ferroamp_192.168.1.70"].password_set


# -- per-device endpoints -----------------------------------------------------------------------


async def test_get_single_device_is_not_implemented(client: httpx.AsyncClient) -> None:
    await add(client, SUNGROW)
    response = await client.get(f"/api/devices/{SUNGROW_SERIAL}")
    assert response.status_code == 501
    assert response.json() == {"message": "Not implemented"}


async def test_delete_device(client: httpx.AsyncClient) -> None:
    await add(client, SUNGROW)
    response = await client.delete(f"/api/devices/{SUNGROW_SERIAL}")
    assert (response.status_code, response.json()) == (200, {"message": "Device removed"})
    assert (await client.delete(f"/api/devices/{SUNGROW_SERIAL}")).status_code == 404


async def test_delete_all_devices(client: httpx.AsyncClient) -> None:
    await add(client, SUNGROW)
    await add(client, P1)
    response = await client.delete("/api/devices")
    assert response.json() == {"message": "All devices removed"}
    assert (await client.get("/api/devices")).json() == {"count": 0, "devices": []}


async def test_types_changes_only_the_listed_ders(client: httpx.AsyncClient) -> None:
    await add(client, SUNGROW)
    response = await client.post(f"/api/devices/{SUNGROW_SERIAL}/types",
                                 json={"ders": [{"type": "pv", "enabled": True}]})
    assert response.json() == {"message": "Types updated", "sn": SUNGROW_SERIAL}
    ders = (await client.get(f"/api/devices/{SUNGROW_SERIAL}/ders")).json()["ders"]
    assert der_flags(ders) == {"pv": True, "battery": False, "meter": False}
    await client.post(f"/api/devices/{SUNGROW_SERIAL}/types",
                      json={"ders": [{"type": "meter", "enabled": True},
                                     {"type": "pv", "enabled": False}]})
    ders = (await client.get(f"/api/devices/{SUNGROW_SERIAL}/ders")).json()["ders"]
    assert der_flags(ders) == {"pv": False, "battery": False, "meter": True}


@pytest.mark.parametrize(("body", "status"), [
    pytest.param({}, 400, id="missing-ders"),
    pytest.param({"ders": [{"type": "pv"}]}, 400, id="missing-enabled"),
    pytest.param({"ders": [{"type": "solar", "enabled": True}]}, 400, id="cloud-der-name"),
])
async def test_types_rejects_bad_bodies(client: httpx.AsyncClient, body: dict[str, Any],
                                        status: int) -> None:
    await add(client, SUNGROW)
    response = await client.post(f"/api/devices/{SUNGROW_SERIAL}/types", json=body)
    assert response.status_code == status
    ders = (await client.get(f"/api/devices/{SUNGROW_SERIAL}/ders")).json()["ders"]
    assert not any(der_flags(ders).values()), "a rejected update changes nothing"


async def test_types_on_unknown_device_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/devices/nope/types",
                                 json={"ders": [{"type": "pv", "enabled": True}]})
    assert response.status_code == 404


async def test_ders_sets_metadata_and_optional_flags(client: httpx.AsyncClient) -> None:
    await add(client, SUNGROW)
    response = await client.post(f"/api/devices/{SUNGROW_SERIAL}/ders", json={"ders": [
        {"type": "pv", "rated_power": 10200},
        {"type": "battery", "enabled": True, "rated_power": 5000, "capacity": 12800}]})
    assert response.json() == {"message": "DERs updated", "sn": SUNGROW_SERIAL}
    body = (await client.get(f"/api/devices/{SUNGROW_SERIAL}/ders")).json()
    assert body["sn"] == SUNGROW_SERIAL
    assert body["ders"] == [
        {"type": "pv", "enabled": False, "rated_power": 10200},
        {"type": "battery", "enabled": True, "rated_power": 5000, "capacity": 12800},
        {"type": "meter", "enabled": False}]


async def test_data_json_reads_the_modbus_device(client: httpx.AsyncClient,
                                                 modbus_sim: ModbusDeviceSimulator) -> None:
    await add(client, SUNGROW)
    response = await client.get(f"/api/devices/{SUNGROW_SERIAL}/data/json")
    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["format"]) == ("v1", "json")
    assert set(body) == {"pv", "battery", "meter", "version", "format"}
    live = modbus_sim.device(1).live()
    assert body["pv"]["W"] < 0, "PV production is negative"
    assert abs(-body["pv"]["W"] - live.pv_w) < 0.1 * live.pv_w
    assert body["battery"]["W"] > 0, "the simulated battery is charging"
    assert 0 < body["battery"]["SoC_nom_fract"] < 1
    assert body["meter"]["W"] < 0, "the simulated site exports"


@pytest.mark.parametrize(("config", "sn", "ders"), [
    pytest.param(SOLIS, SOLIS_SERIAL, {"pv", "battery", "meter"}, id="sunspec-over-modbus"),
    pytest.param(P1, "p1_0123456789abcdef", {"meter"}, id="p1-synthetic"),
    pytest.param(AMBIBOX, "ambibox_192.168.1.50", {"v2x_charger"}, id="charger-synthetic"),
])
async def test_data_json_has_one_object_per_der(client: httpx.AsyncClient,
                                                config: dict[str, Any], sn: str,
                                                ders: set[str]) -> None:
    assert (await add(client, config)).json()["sn"] == sn
    body = (await client.get(f"/api/devices/{sn}/data/json")).json()
    assert set(body) == ders | {"version", "format"}
    assert all(body[d]["type"] == d and "W" in body[d] for d in ders)


async def test_data_json_for_offline_device_is_503(client: httpx.AsyncClient,
                                                   modbus_sim: ModbusDeviceSimulator) -> None:
    await add(client, SUNGROW)
    await modbus_sim.set_offline(True)
    assert (await client.get(f"/api/devices/{SUNGROW_SERIAL}/data/json")).status_code == 503


@pytest.mark.parametrize(("query", "address", "expected"), [
    pytest.param("type=str&size=10", 4989, SUNGROW_SERIAL, id="serial-string-default-fc4"),
    pytest.param("type=u16&function_code=4", 4999, 0x0E03, id="device-type-code"),
])
async def test_registers_reads_the_device(client: httpx.AsyncClient, query: str, address: int,
                                          expected: Any) -> None:
    await add(client, SUNGROW)
    response = await client.get(f"/api/devices/{SUNGROW_SERIAL}/registers/{address}?{query}")
    assert response.status_code == 200
    body = response.json()
    assert body["address"] == address
    assert body["value"] == expected


async def test_registers_holding_reads_sunspec_marker(client: httpx.AsyncClient) -> None:
    await add(client, SOLIS)
    response = await client.get(f"/api/devices/{SOLIS_SERIAL}/registers/40000"
                                "?type=u32&function_code=3")
    assert response.json() == {"address": 40000, "value": 0x53756E53, "type": "u32",
                               "registers": 2}


async def test_registers_errors(client: httpx.AsyncClient,
                                modbus_sim: ModbusDeviceSimulator) -> None:
    await add(client, SUNGROW)
    base = f"/api/devices/{SUNGROW_SERIAL}/registers"
    assert (await client.get(f"{base}/4989?type=bogus")).status_code == 400
    assert (await client.get("/api/devices/nope/registers/4989")).status_code == 404
    await modbus_sim.set_offline(True)
    assert (await client.get(f"{base}/4989")).status_code == 503


async def test_modbus_read_returns_values(client: httpx.AsyncClient) -> None:
    request = {"ip": INVERTER_IP, "port": 502, "unit_id": 2, "register": 40000, "count": 4,
               "register_type": "holding"}
    response = await client.post("/api/modbus/read", json=request)
    assert response.status_code == 200
    assert response.json() == {**request, "values": [0x5375, 0x6E53, 1, 66]}


@pytest.mark.parametrize("body", [
    pytest.param({"port": 502, "register": 0, "count": 1}, id="missing-ip"),
    pytest.param({"ip": INVERTER_IP, "register": 0, "count": 500}, id="count-too-large"),
    pytest.param({"ip": INVERTER_IP, "register": 0, "count": 1, "register_type": "coil"},
                 id="bad-register-type"),
])
async def test_modbus_read_rejects_bad_bodies(client: httpx.AsyncClient,
                                              body: dict[str, Any]) -> None:
    assert (await client.post("/api/modbus/read", json=body)).status_code == 400


async def test_modbus_read_of_silent_device_is_502(client: httpx.AsyncClient,
                                                   modbus_sim: ModbusDeviceSimulator) -> None:
    await modbus_sim.set_offline(True)
    response = await client.post("/api/modbus/read", json={
        "ip": INVERTER_IP, "port": 502, "unit_id": 1, "register": 4989, "count": 10,
        "register_type": "input"})
    assert response.status_code == 502


async def test_supported_is_served_from_the_profile_table(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/devices/supported")).json()
    assert body["count"] == len(profiles.PROFILES)
    assert {"display_name": "Sungrow", "profile": "sungrow", "device_type": "inverter",
            "connection_types": ["modbus_tcp", "modbus_rtu"]} in body["inverters"]
    assert [p["profile"] for p in body["v2x_chargers"]] == ["ambibox"]
    listed = [p["profile"] for key in ("batteries", "ev_chargers", "energy_meters", "inverters",
                                       "v2x_chargers") for p in body[key]]
    assert sorted(listed) == sorted(profiles.PROFILES)


async def test_types_lists_connection_types(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/devices/types")).json()
    assert [t["type"] for t in body["types"]] == ["modbus_tcp", "modbus_rtu", "p1_uart", "mqtt"]


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/api/devices"), ("POST", "/api/crypto/sign/x"), ("GET", "/api/crypto/sign"),
    ("PATCH", "/api/devices/x/types"),
])
async def test_wrong_method_is_405(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    if path.endswith("/x"):
        assert response.status_code == 404
    else:
        assert response.status_code == 405
        assert set(response.json()) == {"message"}


# -- drift (admin) ------------------------------------------------------------------------------


async def test_admin_preinstalls_a_device_without_connecting(
        client: httpx.AsyncClient, modbus_sim: ModbusDeviceSimulator) -> None:
    response = await client.post("/_sim/devices", json={
        **SUNGROW, "ip": "192.168.1.200", "sn": "PRE-1", "ders": [{"type": "pv", "enabled": True}]})
    assert response.status_code == 201
    device = (await client.get("/api/devices")).json()["devices"][0]
    assert device["sn"] == "PRE-1"
    assert der_flags(device["ders"]) == {"pv": True, "battery": False, "meter": False}
    assert sum(modbus_sim.reads.values()) == 0


async def test_admin_flips_der_behind_the_reconcilers_back(client: httpx.AsyncClient,
                                                           zap: ZapSimulator) -> None:
    await add(client, SUNGROW)
    requests_before = zap.count()
    response = await client.post(f"/_sim/devices/{SUNGROW_SERIAL}/ders",
                                 json={"ders": [{"type": "battery", "enabled": True}]})
    assert response.status_code == 200
    assert zap.count() == requests_before, "admin requests are not counted"
    device = (await client.get("/api/devices")).json()["devices"][0]
    assert der_flags(device["ders"]) == {"pv": False, "battery": True, "meter": False}


async def test_admin_removes_device_and_sets_connected(client: httpx.AsyncClient) -> None:
    await add(client, SUNGROW)
    await add(client, P1)
    response = await client.post(f"/_sim/devices/{SUNGROW_SERIAL}/connected",
                                 json={"connected": False})
    assert response.status_code == 200
    devices = (await client.get("/api/devices")).json()["devices"]
    assert devices[0]["connected"] is False
    assert (await client.delete(f"/_sim/devices/{SUNGROW_SERIAL}")).status_code == 200
    assert (await client.delete(f"/_sim/devices/{SUNGROW_SERIAL}")).status_code == 404
    assert (await client.get("/api/devices")).json()["count"] == 1


async def test_python_drift_methods(zap: ZapSimulator, client: httpx.AsyncClient) -> None:
    zap.install_device(P1, sn="METER-1")
    zap.set_der("METER-1", "meter", enabled=True)
    device = (await client.get("/api/devices")).json()["devices"][0]
    assert der_flags(device["ders"]) == {"meter": True}
    assert zap.remove_device("METER-1")
    assert (await client.get("/api/devices")).json()["count"] == 0


async def test_writes_and_admin_changes_notify_on_change(zap: ZapSimulator,
                                                         client: httpx.AsyncClient) -> None:
    calls: list[int] = []
    zap.on_change(lambda: calls.append(1))
    await add(client, SUNGROW)
    await client.post(f"/_sim/devices/{SUNGROW_SERIAL}/ders",
                      json={"ders": [{"type": "pv", "enabled": True}]})
    assert len(calls) == 2


# -- persistence --------------------------------------------------------------------------------


async def test_snapshot_restore_round_trip(zap: ZapSimulator, client: httpx.AsyncClient,
                                           lan: Lan) -> None:
    await add(client, SUNGROW)
    await add(client, FERROAMP)
    await client.post(f"/api/devices/{SUNGROW_SERIAL}/types",
                      json={"ders": [{"type": "pv", "enabled": True}]})
    before_key = (await client.get("/api/crypto")).json()["publicKey"]
    before_devices = (await client.get("/api/devices")).json()
    saved = json.loads(json.dumps(zap.snapshot()))  # through JSON, as persisted to a file

    restored = ZapSimulator(lan=lan)
    restored.restore(saved)
    await restored.start()
    try:
        async with httpx.AsyncClient(base_url=restored.url) as other:
            crypto = (await other.get("/api/crypto")).json()
            assert crypto["publicKey"] == before_key
            assert crypto["serialNumber"] == ZAP_SERIAL
            assert (await other.get("/api/devices")).json() == before_devices
            signed = (await other.post("/api/crypto/sign", json={"message": "m"})).json()
            verify(public_key_from_hex(before_key), signed["sign"], signed["message"])
    finally:
        await restored.stop()


async def test_public_state_has_no_private_key(client: httpx.AsyncClient,
                                               zap: ZapSimulator) -> None:
    state = (await client.get("/_sim/state")).json()
    assert "private_key_pem" not in state
    assert "PRIVATE KEY" not in json.dumps(state)
    assert "PRIVATE KEY" in zap.snapshot()["private_key_pem"]
    assert state["public_key"] == zap.public_key_hex
