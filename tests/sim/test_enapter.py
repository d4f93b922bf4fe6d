"""The Enapter v3 simulator over real HTTP on loopback: auth and the error envelope, offset
pagination, every provisioning kind, reprovisioning, the upstream/downstream delete rule,
communication configs with real keys and certificates, drift endpoints and persistence."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.sim.enapter import EnapterSimulator

TOKEN = "test-token"
UCM_HW = "C8795CBA5375484E829105E959663C8B"
GW_HW = "B27925CBA5375484E829105E959663C8B"
VUCM_HW = "V8795CBA5375484E829105E959663C8B"
EL_HW = "BCC415CBA5375484E829105E959663C8B"
MASTER_HW = "02618484AAAA4159998AEF4ACC16666C"
SLAVE_HW = "435840FFE5CD4E9DA93545DDF7E6D5FB"
START = 1_780_000_000.0


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[EnapterSimulator]:
    server = EnapterSimulator(tokens=[TOKEN], clock=FakeClock(), seed=7)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def api(sim: EnapterSimulator) -> AsyncIterator[httpx.AsyncClient]:
    # The SDK's base URL is the host; paths are `v3/...`.
    async with httpx.AsyncClient(base_url=sim.url,
                                 headers={"X-Enapter-Auth-Token": TOKEN}) as client:
        yield client


async def ok(response: httpx.Response | Any, status: int = 200) -> Any:
    response = await response if not isinstance(response, httpx.Response) else response
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error_codes(response: httpx.Response) -> list[str]:
    body = response.json()
    assert set(body) == {"errors"}
    for error in body["errors"]:
        assert set(error) == {"code", "message", "details"}
        assert isinstance(error["details"], dict)
    return [error["code"] for error in body["errors"]]


async def create_site(api: httpx.AsyncClient, name: str = "H2 Lab") -> str:
    body = await ok(api.post("/v3/sites", json={"name": name, "timezone": "Europe/Rome",
                                                "location": None}))
    return str(body["site"]["id"])


async def gateway_site(api: httpx.AsyncClient, version: str = "3.0.0") -> tuple[str, str]:
    site_id = await create_site(api)
    body = await ok(api.post("/v3/provisioning/gateway", json={
        "site_id": site_id, "hardware_id": GW_HW, "gateway_version": version,
        "site_name": "My Site", "site_timezone": "Europe/Berlin",
        "site_location": {"latitude": 52.520008, "longitude": 13.404954}}))
    return site_id, str(body["gateway_device_id"])


async def provision_ucm(api: httpx.AsyncClient, site_id: str, protocol: str = "MQTTS",
                        hardware_id: str = UCM_HW, name: str = "My UCM") -> dict[str, Any]:
    return dict(await ok(api.post("/v3/provisioning/ucm", json={
        "site_id": site_id, "hardware_id": hardware_id, "name": name, "protocol": protocol})))


async def get_device(api: httpx.AsyncClient, device_id: str,
                     expand: str = "communication,connectivity,properties") -> dict[str, Any]:
    body = await ok(api.get(f"/v3/devices/{device_id}", params={"expand": expand}))
    return dict(body["device"])


# -- auth and errors --------------------------------------------------------------------------


async def test_missing_token_is_401_and_invalid_token_403(sim: EnapterSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        missing = await client.get("/v3/sites")
        invalid = await client.get("/v3/sites", headers={"X-Enapter-Auth-Token": "nope"})
    assert missing.status_code == 401
    assert error_codes(missing) == ["missing_header"]
    assert invalid.status_code == 403
    assert invalid.json()["errors"][0] == {
        "code": "invalid_header", "message": "Authentication token is invalid.",
        "details": {"header": "X-Enapter-Auth-Token"}}


async def test_token_added_at_runtime_is_accepted(sim: EnapterSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url,
                                 headers={"X-Enapter-Auth-Token": "later"}) as client:
        assert (await client.get("/v3/sites")).status_code == 403
        sim.add_token("later")
        assert (await client.get("/v3/sites")).status_code == 200
        await ok(client.post(f"{sim.url}/_sim/tokens", json={"token": "via-admin"}))
        assert "via-admin" in sim.tokens


async def test_unknown_route_and_faults_use_the_envelope(sim: EnapterSimulator,
                                                          api: httpx.AsyncClient) -> None:
    missing = await api.get("/v3/nothing")
    assert missing.status_code == 404
    assert error_codes(missing) == ["NOT_FOUND"]
    sim.faults.fail_next = 1
    failed = await api.get("/v3/sites")
    assert failed.status_code == 503
    assert error_codes(failed) == ["UNAVAILABLE"]


async def test_unknown_device_is_404_device_not_found(api: httpx.AsyncClient) -> None:
    response = await api.get("/v3/devices/nope")
    assert response.status_code == 404
    assert response.json()["errors"][0]["details"] == {"device_id": "nope"}
    assert error_codes(response) == ["DEVICE_NOT_FOUND"]


async def test_validation_reports_every_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/v3/provisioning/ucm", json={
        "hardware_id": "has spaces", "name": "x", "protocol": "HTTP", "colour": "red"})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert sorted((e["code"], e["details"]["field"]) for e in errors) == [
        ("INVALID_FIELD", "hardware_id"), ("INVALID_FIELD", "protocol"),
        ("MISSING_FIELD", "site_id"), ("UNKNOWN_FIELD", "colour")]
    not_json = await api.post("/v3/provisioning/ucm", content=b"[1, 2]")
    assert not_json.status_code == 400
    assert error_codes(not_json) == ["INVALID_REQUEST_BODY"]


# -- sites and pagination ---------------------------------------------------------------------


async def test_site_crud(api: httpx.AsyncClient) -> None:
    created = await ok(api.post("/v3/sites", json={
        "name": "Lab", "timezone": "Europe/Rome",
        "location": {"name": "Pisa", "latitude": 43.7, "longitude": 10.4}}))
    site = created["site"]
    assert site == {"id": site["id"], "name": "Lab", "timezone": "Europe/Rome", "version": "V3",
                    "authorized_role": "OWNER",
                    "location": {"name": "Pisa", "latitude": 43.7, "longitude": 10.4}}
    assert (await ok(api.get(f"/v3/sites/{site['id']}")))["site"] == site
    # The SDK sends null for what it does not change.
    patched = await ok(api.patch(f"/v3/sites/{site['id']}",
                                 json={"name": "Lab 2", "timezone": None, "location": None}))
    assert patched["site"]["name"] == "Lab 2"
    assert patched["site"]["timezone"] == "Europe/Rome"
    assert await ok(api.delete(f"/v3/sites/{site['id']}"), 204) is None
    assert (await api.get(f"/v3/sites/{site['id']}")).status_code == 404


async def test_site_without_location_omits_it_and_bad_timezone_is_422(
        api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    assert "location" not in (await ok(api.get(f"/v3/sites/{site_id}")))["site"]
    bad = await api.post("/v3/sites", json={"name": "x", "timezone": "Mars/Olympus"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["details"]["field"] == "timezone"


async def test_pagination_ends_on_an_empty_page() -> None:
    sim = EnapterSimulator(tokens=[TOKEN], page_size=2)
    await sim.start()
    try:
        async with httpx.AsyncClient(base_url=sim.url,
                                     headers={"X-Enapter-Auth-Token": TOKEN}) as api:
            for n in range(5):
                await create_site(api, f"site {n}")
            names, offset, pages = [], 0, 0
            while True:  # the SDK's loop: offset only, until an empty page
                page = await ok(api.get("/v3/sites", params={"offset": offset}))
                pages += 1
                assert page["total_count"] == 5
                if not page["sites"]:
                    break
                names += [site["name"] for site in page["sites"]]
                offset += len(page["sites"])
            assert names == [f"site {n}" for n in range(5)]
            assert pages == 4  # 2 + 2 + 1 + the empty one
            limited = await ok(api.get("/v3/sites", params={"limit": 4, "offset": 1}))
            assert [s["name"] for s in limited["sites"]] == ["site 1", "site 2", "site 3",
                                                            "site 4"]
            bad = await api.get("/v3/sites", params={"offset": "-1"})
            assert bad.status_code == 400
            assert error_codes(bad) == ["INVALID_QUERY_PARAMETER"]
    finally:
        await sim.stop()


async def test_device_lists_per_site_and_overall_with_expand(api: httpx.AsyncClient) -> None:
    site_a, gateway = await gateway_site(api)
    site_b = await create_site(api, "Other")
    await provision_ucm(api, site_a)
    await ok(api.post("/v3/provisioning/standalone", json={"site_id": site_b, "name": "Meter"}))
    in_a = await ok(api.get(f"/v3/sites/{site_a}/devices",
                            params={"expand": "communication,connectivity", "offset": 0}))
    assert [d["type"] for d in in_a["devices"]] == ["GATEWAY", "HARDWARE_UCM"]
    assert in_a["total_count"] == 2
    ucm = in_a["devices"][1]
    assert ucm["communication"] == {"type": "MQTT_V1_TLS", "upstream_id": gateway,
                                    "hardware_id": UCM_HW, "channel_id": "ucm"}
    assert ucm["connectivity"] == {"status": "ONLINE"}
    assert "properties" not in ucm
    everything = await ok(api.get("/v3/devices", params={"expand": ""}))
    assert len(everything["devices"]) == 3
    assert "communication" not in everything["devices"][0]
    past_end = await ok(api.get("/v3/devices", params={"offset": 3}))
    assert past_end["devices"] == []
    unknown = await api.get("/v3/devices", params={"expand": "communication,colour"})
    assert unknown.status_code == 400
    assert (await api.get("/v3/sites/nope/devices")).status_code == 404


# -- provisioning -----------------------------------------------------------------------------


async def test_provision_gateway(sim: EnapterSimulator, api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    body = await ok(api.post("/v3/provisioning/gateway", json={
        "site_id": site_id, "hardware_id": GW_HW, "gateway_version": "3.0.0",
        "site_name": "My Site", "site_timezone": "Europe/Berlin",
        "site_location": {"latitude": 52.520008, "longitude": 13.404954}}))
    assert set(body) == {"config", "gateway_device_id"}
    assert body["config"]["hardware_id"] == GW_HW
    assert body["config"]["channel_id"] == "gw"
    assert body["config"]["mqtt_protocol"] == "MQTTS"
    device = await get_device(api, body["gateway_device_id"])
    assert device["type"] == "GATEWAY"
    assert device["communication"]["type"] == "MQTT_V1_TLS"
    assert device["properties"] == {"gateway_version": "3.0.0"}
    site = (await ok(api.get(f"/v3/sites/{site_id}")))["site"]
    assert (site["name"], site["timezone"]) == ("My Site", "Europe/Berlin")
    assert site["location"] == {"name": "My Site", "latitude": 52.520008,
                                "longitude": 13.404954}
    second = await api.post("/v3/provisioning/gateway", json={
        "site_id": site_id, "hardware_id": "OTHERGW", "gateway_version": "3.0.0",
        "site_name": "My Site", "site_timezone": "Europe/Berlin"})
    assert second.status_code == 409
    assert error_codes(second) == ["SITE_ALREADY_HAS_GATEWAY"]


async def test_provision_ucm_returns_config_device_and_slug(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    body = await provision_ucm(api, site_id)
    assert set(body) == {"config", "device_id", "slug"}
    assert body["slug"] == "my-ucm"
    config = body["config"]
    assert config["mqtt_host"] == "mqtt.enapter.com"
    assert config["mqtt_port"] == 8883
    assert config["mqtt_credentials"]["protocol"] == "MQTTS"
    assert config["time_sync_protocol"] == "HTTP"
    assert (config["hardware_id"], config["channel_id"]) == (UCM_HW, "ucm")
    device = await get_device(api, body["device_id"])
    assert device["type"] == "HARDWARE_UCM"
    assert device["name"] == "My UCM"
    assert device["site_id"] == site_id
    # No gateway on the site: the UCM talks to the cloud directly.
    assert device["communication"]["upstream_id"] is None
    assert dt.datetime.fromisoformat(device["updated_at"]).tzinfo is not None
    assert device["updated_at"].endswith("Z")


async def test_provision_vucm_on_gateway_3(api: httpx.AsyncClient) -> None:
    site_id, gateway = await gateway_site(api)
    body = await ok(api.post("/v3/provisioning/vucm", json={
        "site_id": site_id, "hardware_id": VUCM_HW, "name": "My VUCM"}))
    assert set(body) == {"device_id"}
    device = await get_device(api, body["device_id"])
    assert device["type"] == "VIRTUAL_UCM"
    assert device["communication"]["upstream_id"] == gateway
    assert device["communication"]["hardware_id"] == VUCM_HW


@pytest.mark.parametrize("version", [None, "2.9.1"], ids=["no-gateway", "gateway-2.x"])
@pytest.mark.parametrize("kind", ["vucm", "link_master"])
async def test_vucm_and_link_need_gateway_3(api: httpx.AsyncClient, version: str | None,
                                            kind: str) -> None:
    if version is None:
        site_id = await create_site(api)
    else:
        site_id, _ = await gateway_site(api, version)
    response = await api.post(f"/v3/provisioning/{kind}", json={
        "site_id": site_id, "hardware_id": VUCM_HW, "name": "x"})
    assert response.status_code == 422
    assert error_codes(response) == ["GATEWAY_VERSION_NOT_SUPPORTED"]
    details = response.json()["errors"][0]["details"]
    assert details["gateway_version"] == version
    assert details["required_version"] == "3.x.x"


async def test_provision_embedded_adds_ucm_and_native_device(api: httpx.AsyncClient) -> None:
    site_id, gateway = await gateway_site(api)
    body = await ok(api.post("/v3/provisioning/embedded", json={
        "device_type": "ELECTROLYSER", "site_id": site_id, "hardware_id": EL_HW,
        "name": "My Electrolyser", "protocol": "MQTT"}))
    assert set(body) == {"config", "device_id", "slug"}
    assert body["slug"] == "my-electrolyser"
    assert body["config"]["mqtt_protocol"] == "MQTT"
    assert body["config"]["mqtt_port"] == 1883
    ucm = await get_device(api, body["device_id"])
    assert ucm["type"] == "EMBEDDED_UCM"
    assert ucm["communication"]["type"] == "MQTT_V1_PLAINTEXT"
    assert ucm["communication"]["upstream_id"] == gateway
    assert ucm["properties"] == {"device_type": "ELECTROLYSER"}
    devices = (await ok(api.get(f"/v3/sites/{site_id}/devices",
                                params={"expand": "communication"})))["devices"]
    native = next(d for d in devices if d["type"] == "NATIVE")
    assert native["name"] == "My Electrolyser"
    assert native["slug"] == "my-electrolyser-electrolyser"
    assert native["communication"] == {"type": "UCM_EMBEDDED", "upstream_id": ucm["id"],
                                       "hardware_id": EL_HW, "channel_id": "electrolyser"}


async def test_provision_link_master_and_slave(api: httpx.AsyncClient) -> None:
    site_id, gateway = await gateway_site(api)
    master = await ok(api.post("/v3/provisioning/link_master", json={
        "site_id": site_id, "hardware_id": MASTER_HW, "name": "Enapter Link 1"}))
    assert set(master) == {"device_id"}
    slave = await ok(api.post("/v3/provisioning/link_slave", json={
        "site_id": site_id, "hardware_id": SLAVE_HW, "name": "ENP-AO6 BCC4",
        "master_device_id": master["device_id"]}))
    assert set(slave) == {"device_id"}
    master_device = await get_device(api, master["device_id"])
    assert master_device["type"] == "LINK_MASTER_UCM"
    assert master_device["communication"]["upstream_id"] == gateway
    slave_device = await get_device(api, slave["device_id"])
    assert slave_device["type"] == "LINK_SLAVE_UCM"
    assert slave_device["communication"]["type"] == "LINK"
    assert slave_device["communication"]["upstream_id"] == master["device_id"]
    not_a_master = await api.post("/v3/provisioning/link_slave", json={
        "site_id": site_id, "hardware_id": "ANOTHER", "name": "x",
        "master_device_id": gateway})
    assert not_a_master.status_code == 422
    assert error_codes(not_a_master) == ["INVALID_MASTER_DEVICE"]


async def test_provision_standalone(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    body = await ok(api.post("/v3/provisioning/standalone",
                             json={"site_id": site_id, "name": "My Device", "slug": None}))
    assert set(body) == {"device_id", "slug"}
    assert body["slug"] == "my-device"
    with_slug = await ok(api.post("/v3/provisioning/standalone", json={
        "site_id": site_id, "name": "Meter", "slug": "meter-1"}))
    assert with_slug["slug"] == "meter-1"
    device = await get_device(api, with_slug["device_id"])
    assert device["type"] == "STANDALONE"


async def test_provision_lua_device(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id)
    body = await ok(api.post("/v3/provisioning/lua_device", json={
        "runtime_id": ucm["device_id"], "blueprint_id": "bluepri1-50n3-4t9d-e6v0-69i310cb110e",
        "name": "Gas sensor", "slug": "gas-sensor-1"}))
    assert body == {"device_id": body["device_id"], "slug": "gas-sensor-1"}
    device = await get_device(api, body["device_id"])
    assert device["type"] == "LUA"
    assert device["blueprint_id"] == "bluepri1-50n3-4t9d-e6v0-69i310cb110e"
    assert device["site_id"] == site_id
    assert device["communication"]["type"] == "UCM_LUA"
    assert device["communication"]["upstream_id"] == ucm["device_id"]


async def test_lua_runtime_must_be_a_ucm(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    standalone = await ok(api.post("/v3/provisioning/standalone",
                                   json={"site_id": site_id, "name": "x"}))
    response = await api.post("/v3/provisioning/lua_device", json={
        "runtime_id": standalone["device_id"], "blueprint_id": "b", "name": "Lua"})
    assert response.status_code == 422
    assert error_codes(response) == ["INVALID_RUNTIME"]


async def test_reprovisioning_returns_the_same_device(sim: EnapterSimulator,
                                                      api: httpx.AsyncClient) -> None:
    site_id, gateway = await gateway_site(api)
    first = await provision_ucm(api, site_id)
    again = await provision_ucm(api, site_id)
    assert again["device_id"] == first["device_id"]
    assert again["slug"] == first["slug"]
    assert again["config"]["mqtt_credentials"]["private_key"] != \
        first["config"]["mqtt_credentials"]["private_key"]  # a fresh config
    vucm_body = {"site_id": site_id, "hardware_id": VUCM_HW, "name": "V"}
    vucm = await ok(api.post("/v3/provisioning/vucm", json=vucm_body))
    assert await ok(api.post("/v3/provisioning/vucm", json=vucm_body)) == vucm
    embedded = {"device_type": "DRYER", "site_id": site_id, "hardware_id": EL_HW,
                "name": "Dryer", "protocol": "MQTTS"}
    one = await ok(api.post("/v3/provisioning/embedded", json=embedded))
    two = await ok(api.post("/v3/provisioning/embedded", json=embedded))
    assert one["device_id"] == two["device_id"]
    standalone = {"site_id": site_id, "name": "Meter"}
    s1 = await ok(api.post("/v3/provisioning/standalone", json=standalone))
    assert await ok(api.post("/v3/provisioning/standalone", json=standalone)) == s1
    gateway_again = await ok(api.post("/v3/provisioning/gateway", json={
        "site_id": site_id, "hardware_id": GW_HW, "gateway_version": "3.1.0",
        "site_name": "My Site", "site_timezone": "Europe/Berlin"}))
    assert gateway_again["gateway_device_id"] == gateway
    assert sim.devices[gateway].properties["gateway_version"] == "3.1.0"
    # gateway, ucm, vucm, embedded ucm + native dryer, standalone: nothing duplicated
    assert len(sim.devices) == 6


async def test_reprovisioning_with_other_protocol_switches_communication(
        api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    first = await provision_ucm(api, site_id, "MQTTS")
    again = await provision_ucm(api, site_id, "MQTT")
    assert again["device_id"] == first["device_id"]
    assert set(again["config"]["mqtt_credentials"]) == {"protocol", "username", "password"}
    device = await get_device(api, first["device_id"])
    assert device["communication"]["type"] == "MQTT_V1_PLAINTEXT"


async def test_conflicting_reprovisioning_is_409(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    other_site = await create_site(api, "Other")
    ucm = await provision_ucm(api, site_id)
    response = await api.post("/v3/provisioning/ucm", json={
        "site_id": other_site, "hardware_id": UCM_HW, "name": "Renamed", "protocol": "MQTTS"})
    assert response.status_code == 409
    assert error_codes(response) == ["DEVICE_ALREADY_EXISTS"]
    details = response.json()["errors"][0]["details"]
    assert details["device_id"] == ucm["device_id"]
    assert details["hardware_id"] == UCM_HW
    assert set(details["conflicting_fields"]) == {"site_id", "name"}
    as_standalone = await ok(api.post("/v3/provisioning/standalone",
                                      json={"site_id": site_id, "name": "Box"}))
    clash = await api.post("/v3/provisioning/standalone",
                           json={"site_id": site_id, "name": "Other box", "slug": "box"})
    assert clash.status_code == 409
    assert clash.json()["errors"][0]["details"]["device_id"] == as_standalone["device_id"]


async def test_lua_device_cannot_be_reprovisioned(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id)
    body = {"runtime_id": ucm["device_id"], "blueprint_id": "b1", "name": "Gas sensor",
            "slug": "gas-sensor-1"}
    first = await ok(api.post("/v3/provisioning/lua_device", json=body))
    again = await api.post("/v3/provisioning/lua_device", json=body)
    assert again.status_code == 422
    assert error_codes(again) == ["REPROVISIONING_NOT_SUPPORTED"]
    assert again.json()["errors"][0]["details"]["device_id"] == first["device_id"]


# -- delete rules -----------------------------------------------------------------------------


async def test_upstream_device_with_running_devices_cannot_be_deleted(
        api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id)
    lua = await ok(api.post("/v3/provisioning/lua_device", json={
        "runtime_id": ucm["device_id"], "blueprint_id": "b1", "name": "Gas sensor"}))
    refused = await api.delete(f"/v3/devices/{ucm['device_id']}")
    assert refused.status_code == 422
    assert error_codes(refused) == ["DEVICE_HAS_DOWNSTREAM_DEVICES"]
    assert refused.json()["errors"][0]["details"] == {
        "device_id": ucm["device_id"], "downstream_device_ids": [lua["device_id"]]}
    site_refused = await api.delete(f"/v3/sites/{site_id}")
    assert error_codes(site_refused) == ["SITE_HAS_DEVICES"]
    await ok(api.delete(f"/v3/devices/{lua['device_id']}"), 204)
    await ok(api.delete(f"/v3/devices/{ucm['device_id']}"), 204)
    assert (await api.get(f"/v3/devices/{ucm['device_id']}")).status_code == 404
    await ok(api.delete(f"/v3/sites/{site_id}"), 204)


async def test_gateway_and_link_master_keep_their_downstream(api: httpx.AsyncClient) -> None:
    site_id, gateway = await gateway_site(api)
    master = await ok(api.post("/v3/provisioning/link_master", json={
        "site_id": site_id, "hardware_id": MASTER_HW, "name": "Link"}))
    slave = await ok(api.post("/v3/provisioning/link_slave", json={
        "site_id": site_id, "hardware_id": SLAVE_HW, "name": "Slave",
        "master_device_id": master["device_id"]}))
    gateway_refused = await api.delete(f"/v3/devices/{gateway}")
    assert gateway_refused.json()["errors"][0]["details"]["downstream_device_ids"] == [
        master["device_id"]]
    master_refused = await api.delete(f"/v3/devices/{master['device_id']}")
    assert master_refused.json()["errors"][0]["details"]["downstream_device_ids"] == [
        slave["device_id"]]
    for device_id in (slave["device_id"], master["device_id"], gateway):
        await ok(api.delete(f"/v3/devices/{device_id}"), 204)


async def test_embedded_pair_is_deleted_through_its_ucm(sim: EnapterSimulator,
                                                        api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    body = await ok(api.post("/v3/provisioning/embedded", json={
        "device_type": "WATER_TANK", "site_id": site_id, "hardware_id": EL_HW,
        "name": "Tank", "protocol": "MQTTS"}))
    native = next(d for d in sim.devices.values() if d.type == "NATIVE")
    refused = await api.delete(f"/v3/devices/{native.id}")
    assert refused.status_code == 422
    assert error_codes(refused) == ["EMBEDDED_DEVICE_NOT_DELETABLE"]
    await ok(api.delete(f"/v3/devices/{body['device_id']}"), 204)
    assert sim.devices == {}


# -- configs, blueprints, updates -------------------------------------------------------------


async def test_mqtts_config_holds_a_real_key_and_certificate(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id, "MQTT")
    body = await ok(api.post(f"/v3/devices/{ucm['device_id']}/generate_config",
                             json={"protocol": "MQTTS"}))
    config = body["config"]
    assert config["mqtt_protocol"] == "MQTTS"
    credentials = config["mqtt_credentials"]
    key = serialization.load_pem_private_key(credentials["private_key"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    certificate = x509.load_pem_x509_certificate(credentials["certificate"].encode())
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == UCM_HW
    assert certificate.public_key() == key.public_key()
    ca = x509.load_pem_x509_certificates(credentials["ca_chain"].encode())[0]
    certificate.verify_directly_issued_by(ca)
    assert certificate.signature_hash_algorithm is not None
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    device = await get_device(api, ucm["device_id"])
    assert device["communication"]["type"] == "MQTT_V1_TLS"


async def test_mqtt_config_has_username_and_password(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id)
    config = (await ok(api.post(f"/v3/devices/{ucm['device_id']}/generate_config",
                                json={"protocol": "MQTT"})))["config"]
    assert config["mqtt_port"] == 1883
    credentials = config["mqtt_credentials"]
    assert credentials["username"] and len(credentials["password"]) >= 16
    again = (await ok(api.post(f"/v3/devices/{ucm['device_id']}/generate_config",
                               json={"protocol": "MQTT"})))["config"]
    assert again["mqtt_credentials"]["password"] != credentials["password"]


async def test_generate_config_refused_for_lua_and_embedded_devices(
        sim: EnapterSimulator, api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id)
    lua = await ok(api.post("/v3/provisioning/lua_device", json={
        "runtime_id": ucm["device_id"], "blueprint_id": "b1", "name": "Lua"}))
    await ok(api.post("/v3/provisioning/embedded", json={
        "device_type": "ELECTROLYSER", "site_id": site_id, "hardware_id": EL_HW,
        "name": "EL", "protocol": "MQTTS"}))
    native = next(d for d in sim.devices.values() if d.type == "NATIVE")
    for device_id, communication in ((lua["device_id"], "UCM_LUA"), (native.id, "UCM_EMBEDDED")):
        response = await api.post(f"/v3/devices/{device_id}/generate_config",
                                  json={"protocol": "MQTTS"})
        assert response.status_code == 422
        assert error_codes(response) == ["CONFIG_GENERATION_NOT_SUPPORTED"]
        assert response.json()["errors"][0]["details"]["communication_type"] == communication
    bad_protocol = await api.post(f"/v3/devices/{ucm['device_id']}/generate_config",
                                  json={"protocol": "HTTP"})
    assert bad_protocol.status_code == 422


async def test_assign_blueprint(sim: EnapterSimulator, api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id)
    lua = await ok(api.post("/v3/provisioning/lua_device", json={
        "runtime_id": ucm["device_id"], "blueprint_id": "bluepri1", "name": "Lua"}))
    before = sim.devices[lua["device_id"]].updated_at
    assert isinstance(sim.clock, FakeClock)
    sim.clock.now += 60
    body = await ok(api.post(f"/v3/devices/{lua['device_id']}/assign_blueprint",
                             json={"blueprint_id": "bluepri2"}))
    assert body["device"]["blueprint_id"] == "bluepri2"
    assert body["device"]["updated_at"] > before
    assert (await get_device(api, lua["device_id"]))["blueprint_id"] == "bluepri2"


async def test_patch_name_and_slug(api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id)
    other = await provision_ucm(api, site_id, hardware_id="OTHERUCM", name="Other")
    url = f"/v3/devices/{ucm['device_id']}"
    renamed = await ok(api.patch(url, json={"name": "Hydrogen detector", "slug": None}))
    assert renamed["device"]["name"] == "Hydrogen detector"
    assert renamed["device"]["slug"] == "my-ucm"
    both = await ok(api.patch(url, json={"name": "H2", "slug": "h2-detector"}))
    assert (both["device"]["name"], both["device"]["slug"]) == ("H2", "h2-detector")
    clash = await api.patch(url, json={"slug": other["slug"]})
    assert clash.status_code == 409
    assert error_codes(clash) == ["SLUG_ALREADY_EXISTS"]
    bad_slug = await api.patch(url, json={"slug": "Not A Slug"})
    assert bad_slug.status_code == 422
    assert (await api.patch(url, json={})).status_code == 422


# -- drift, counting and persistence ----------------------------------------------------------


async def test_drift_endpoints(sim: EnapterSimulator, api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    ucm = await provision_ucm(api, site_id)
    lua = await ok(api.post("/v3/provisioning/lua_device", json={
        "runtime_id": ucm["device_id"], "blueprint_id": "b1", "name": "Lua"}))
    sim.requests.clear()
    base = f"{sim.url}/_sim"
    async with httpx.AsyncClient() as admin:
        await ok(admin.patch(f"{base}/devices/{ucm['device_id']}", json={"name": "Drifted"}))
        await ok(admin.put(f"{base}/devices/{ucm['device_id']}/connectivity",
                           json={"status": "OFFLINE"}))
        await ok(admin.patch(f"{base}/sites/{site_id}", json={"name": "Renamed site"}))
        state = await ok(admin.get(f"{base}/state"))
        assert sim.count() == 0  # admin requests are not counted
        device = await get_device(api, ucm["device_id"])
        assert device["name"] == "Drifted"
        assert device["connectivity"] == {"status": "OFFLINE"}
        removed = await ok(admin.delete(f"{base}/devices/{ucm['device_id']}"))
        assert sorted(removed["removed"]) == sorted([ucm["device_id"], lua["device_id"]])
    assert [s["name"] for s in state["sites"]] == ["Renamed site"]
    assert (await api.get(f"/v3/devices/{lua['device_id']}")).status_code == 404


async def test_public_state_leaks_no_secrets(sim: EnapterSimulator,
                                            api: httpx.AsyncClient) -> None:
    site_id = await create_site(api)
    await provision_ucm(api, site_id, "MQTTS")
    mqtt = await provision_ucm(api, site_id, "MQTT", hardware_id="PLAIN", name="Plain")
    password = mqtt["config"]["mqtt_credentials"]["password"]
    async with httpx.AsyncClient() as admin:
        text = (await admin.get(f"{sim.url}/_sim/state")).text
    snapshot = json.dumps(sim.snapshot())
    for dump in (text, snapshot):
        assert "PRIVATE KEY" not in dump
        assert "CERTIFICATE" not in dump
        assert password not in dump
    assert TOKEN not in text


async def test_snapshot_restore_round_trip(sim: EnapterSimulator,
                                           api: httpx.AsyncClient) -> None:
    site_id, gateway = await gateway_site(api)
    ucm = await provision_ucm(api, site_id)
    await ok(api.post("/v3/provisioning/embedded", json={
        "device_type": "ELECTROLYSER", "site_id": site_id, "hardware_id": EL_HW,
        "name": "EL", "protocol": "MQTTS"}))
    before = (await ok(api.get("/v3/devices", params={"expand": "communication"})))["devices"]
    state = json.loads(json.dumps(sim.snapshot()))

    restored = EnapterSimulator(seed=7)
    restored.restore(state)
    await restored.start()
    try:
        async with httpx.AsyncClient(base_url=restored.url,
                                     headers={"X-Enapter-Auth-Token": TOKEN}) as again:
            after = (await ok(again.get("/v3/devices",
                                        params={"expand": "communication"})))["devices"]
            assert after == before
            # Reprovisioning after a restart still finds the device...
            assert (await provision_ucm(again, site_id))["device_id"] == ucm["device_id"]
            # ...and new ids never collide with restored ones, though the seed is the same.
            fresh = await create_site(again, "Fresh")
            assert fresh not in {d["id"] for d in before} | {site_id}
    finally:
        await restored.stop()
    assert restored.snapshot()["devices"][0]["id"] == gateway
