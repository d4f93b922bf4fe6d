"""The Flatpeak simulator over real HTTP on loopback: Basic login and bearer tokens with
expiry, the error object, locations and devices (busbar body), Stripe-like pagination,
disabled accounts, drift endpoints and persistence."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from novacore_fixtures import FakeClock

from reconciler.sim.flatpeak import FlatpeakSimulator

ACCOUNT = "acc_661677911f2197045e6cf1b1"
API_KEY = "sk_test_1234"
OTHER_ACCOUNT, OTHER_KEY = "acc_000000000000000000000002", "sk_other"
TTL = 60.0
ADDRESS = {"address_line1": "Stapelbäddsgatan 12", "address_line2": "Lgh 1102",
           "city": "Malmö", "post_code": "211 19", "country_code": "SE"}
PROPERTIES = {"power_rating_import_kwh": 14.2, "capacity_kwh": 123,
              "power_rating_export_kwh": 7, "pv_azimuth": 0, "pv_tilt": 23,
              "pv_terrain_shading": False, "pv_forecasts_enabled": False,
              "install_date": "2022-03-22T11:12:21Z"}
ERROR_KEYS = {"object", "live_mode", "context", "type", "code", "message", "time_created"}


def basic(account_id: str = ACCOUNT, api_key: str = API_KEY) -> dict[str, str]:
    encoded = base64.b64encode(f"{account_id}:{api_key}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["object"] == "error"
    assert body["type"] == ("invalid_request" if status < 500 else "api_error")
    assert body["code"] == code
    return dict(body)


async def ok(pending: Any, status: int = 200) -> Any:
    response = await pending
    assert response.status_code == status, response.text
    return response.json()


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[FlatpeakSimulator]:
    server = FlatpeakSimulator(accounts={ACCOUNT: API_KEY}, token_ttl_s=TTL, clock=clock,
                               seed=3)
    server.add_account(OTHER_ACCOUNT, OTHER_KEY)
    await server.start()
    yield server
    await server.stop()


async def login(client: httpx.AsyncClient, account_id: str = ACCOUNT,
                api_key: str = API_KEY) -> None:
    """Log in and send the bearer token on every later request of `client`."""
    body = await ok(client.get("/login", headers=basic(account_id, api_key)))
    client.headers["Authorization"] = f"Bearer {body['bearer_token']}"


@pytest.fixture
async def api(sim: FlatpeakSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        await login(client)
        yield client


async def create_location(api: httpx.AsyncClient, reference_id: str = "townhouse-malmo",
                          **address: Any) -> dict[str, Any]:
    return dict(await ok(api.post("/locations", json={
        "reference_id": reference_id, "customer_id": "cus_661677911f2197045e6cf1b1",
        "postal_address": {**ADDRESS, **address}}), 201))


async def create_device(api: httpx.AsyncClient, location_id: str,
                        reference_id: str = "DEV1234567890") -> dict[str, Any]:
    return dict(await ok(api.post("/devices", json={
        "reference_id": reference_id, "type": "BATTERY_SYSTEM", "locations": [location_id],
        "manufacturer": "Nova Systems", "model_code": "PICOXN2", "model_name": "Pico Ultimate",
        "properties": PROPERTIES}), 201))


# -- auth -------------------------------------------------------------------------------------


async def test_login_returns_a_bearer_token(sim: FlatpeakSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        body = await ok(client.get("/login", headers=basic()))
        assert set(body) == {"bearer_token", "expires_in", "live_mode"}
        assert body["expires_in"] == 60
        assert body["live_mode"] is False
        busbar = await ok(client.post("/auth/tokens", headers=basic()))
        assert busbar["bearer_token"] != body["bearer_token"]
        listed = await ok(client.get("/devices", headers={
            "Authorization": f"Bearer {body['bearer_token']}"}))
        assert listed == {"object": "list", "url": "/devices", "has_more": False, "data": []}


async def test_bad_credentials_are_403_and_missing_ones_401(sim: FlatpeakSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        wrong = error(await client.get("/login", headers=basic(api_key="nope")), 403,
                      "bad_credentials")
        assert wrong["message"] == "Bad credentials"
        assert wrong["context"] == "api.login"
        error(await client.get("/login", headers=basic(account_id="acc_unknown")), 403,
              "bad_credentials")
        error(await client.get("/login"), 401, "authorization_missing")
        error(await client.get("/login", headers={"Authorization": "Basic ***"}), 401,
              "authorization_invalid")
        error(await client.get("/devices"), 401, "authorization_missing")
        error(await client.get("/devices", headers={"Authorization": "Bearer forged"}), 403,
              "token_invalid")


async def test_expired_token_is_403_then_relogin_works(sim: FlatpeakSimulator,
                                                       clock: FakeClock,
                                                       api: httpx.AsyncClient) -> None:
    """403, the one auth error of the classic spec; 401 when the simulator is told to."""
    await ok(api.get("/locations"))
    clock.advance(TTL)
    expired = error(await api.get("/locations"), 403, "token_expired")
    sim.token_refused_status = 401
    error(await api.get("/locations"), 401, "token_expired")
    assert expired["context"] == "api.location_list"
    await login(api)
    await ok(api.get("/locations"))


async def test_expire_all_tokens(sim: FlatpeakSimulator, api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient() as admin:
        assert (await ok(admin.post(f"{sim.url}/_sim/tokens/expire")))["expired"] == 1
    error(await api.get("/devices"), 403, "token_expired")


async def test_clock_can_be_advanced_through_admin(sim: FlatpeakSimulator,
                                                   api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient() as admin:
        await ok(admin.post(f"{sim.url}/_sim/clock", json={"advance_s": TTL + 1}))
    error(await api.get("/devices"), 403, "token_expired")


async def test_disabled_account_is_422(sim: FlatpeakSimulator, api: httpx.AsyncClient) -> None:
    sim.set_account_disabled(ACCOUNT)
    error(await api.get("/devices"), 422, "account_disabled")
    async with httpx.AsyncClient(base_url=sim.url) as client:
        error(await client.get("/login", headers=basic()), 422, "account_disabled")
        await ok(client.put(f"/_sim/accounts/{ACCOUNT}/disabled", json={"disabled": False}))
    await ok(api.get("/devices"))


async def test_account_added_through_admin_can_log_in(sim: FlatpeakSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        await ok(client.post("/_sim/accounts", json={"account_id": "acc_new", "api_key": "k"}))
        await ok(client.get("/login", headers=basic("acc_new", "k")))


async def test_server_faults_are_api_errors(sim: FlatpeakSimulator,
                                            api: httpx.AsyncClient) -> None:
    sim.faults.fail_next = 1
    body = error(await api.get("/devices"), 503, "unavailable")
    assert body["type"] == "api_error"


# -- locations --------------------------------------------------------------------------------


async def test_location_crud(api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    assert location["id"].startswith("loc_") and len(location["id"]) == 28
    assert location["object"] == "location"
    assert (location["timezone"], location["currency_code"]) == ("Europe/Stockholm", "SEK")
    assert location["postal_address"]["state"] is None
    assert location["account_id"] == ACCOUNT
    url = f"/locations/{location['id']}"
    assert await ok(api.get(url)) == location
    moved = await ok(api.patch(url, json={"postal_address": {
        "country_code": "DE", "city": "Berlin"}}))
    assert (moved["timezone"], moved["currency_code"]) == ("Europe/Berlin", "EUR")
    assert moved["postal_address"]["address_line1"] == ADDRESS["address_line1"]
    assert moved["reference_id"] == "townhouse-malmo"
    assert await ok(api.delete(url), 202) == {"message": "Accepted"}
    error(await api.get(url), 404, "location_not_found")


async def test_location_errors(api: httpx.AsyncClient) -> None:
    await create_location(api)
    error(await api.post("/locations", json={"reference_id": "townhouse-malmo",
                                             "postal_address": ADDRESS}), 409,
          "reference_id_conflict")
    no_country = {k: v for k, v in ADDRESS.items() if k != "country_code"}
    missing = error(await api.post("/locations", json={"postal_address": no_country}), 400,
                    "country_code_missing")
    assert missing["context"] == "api.location_create"
    error(await api.post("/locations", json={"postal_address": {**ADDRESS,
                                                                "country_code": "ZZ"}}),
          400, "country_code_unsupported")
    error(await api.post("/locations", json={"postal_address": ADDRESS, "colour": "red"}),
          400, "parameter_unknown")


async def test_location_in_use_cannot_be_deleted(api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    device = await create_device(api, location["id"])
    error(await api.delete(f"/locations/{location['id']}"), 409, "location_in_use")
    await ok(api.delete(f"/devices/{device['id']}"), 202)
    await ok(api.delete(f"/locations/{location['id']}"), 202)


# -- devices ----------------------------------------------------------------------------------


async def test_create_device_echoes_the_busbar_body(api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    device = await create_device(api, location["id"])
    assert device["id"].startswith("dev_") and len(device["id"]) == 28
    assert device == {
        "id": device["id"], "object": "device", "live_mode": False,
        "reference_id": "DEV1234567890", "type": "BATTERY_SYSTEM",
        "locations": [location["id"]], "manufacturer": "Nova Systems",
        "model_code": "PICOXN2", "model_name": "Pico Ultimate", "properties": PROPERTIES,
        "time_created": "2026-05-28T20:26:40Z", "account_id": ACCOUNT, "last_seen": None}
    assert await ok(api.get(f"/devices/{device['id']}")) == device


@pytest.mark.parametrize(("change", "code"), [
    pytest.param({"reference_id": None}, "reference_id_missing", id="no-reference"),
    pytest.param({"type": "FRIDGE"}, "type_invalid", id="bad-type"),
    pytest.param({"locations": None}, "locations_missing", id="no-locations"),
    pytest.param({"locations": []}, "locations_invalid", id="empty-locations"),
    pytest.param({"locations": ["loc_000000000000000000000000"]}, "location_not_found",
                 id="unknown-location"),
    pytest.param({"properties": {"capacityKwh": 5}}, "properties_invalid", id="camel-case"),
    pytest.param({"properties": {"pv_tilt": "steep"}}, "properties_invalid", id="bad-type"),
    pytest.param({"colour": "red"}, "parameter_unknown", id="unknown-field"),
])
async def test_create_device_validation(api: httpx.AsyncClient, change: dict[str, Any],
                                        code: str) -> None:
    location = await create_location(api)
    body = {"reference_id": "r", "type": "PV_SYSTEM", "locations": [location["id"]], **change}
    error(await api.post("/devices", json={k: v for k, v in body.items() if v is not None}),
          400, code)


async def test_patch_changes_only_sent_fields_and_merges_properties(
        api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    device = await create_device(api, location["id"])
    patched = await ok(api.patch(f"/devices/{device['id']}", json={
        "model_name": "Pico Ultra", "properties": {"capacity_kwh": 10, "pv_tilt": None}}))
    assert patched["model_name"] == "Pico Ultra"
    assert patched["manufacturer"] == "Nova Systems"
    assert patched["properties"]["capacity_kwh"] == 10
    assert "pv_tilt" not in patched["properties"]
    assert patched["properties"]["pv_azimuth"] == 0
    error(await api.patch(f"/devices/{device['id']}", json={"type": None}), 400, "type_invalid")


async def test_delete_device_is_202_then_404(api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    device = await create_device(api, location["id"])
    assert await ok(api.delete(f"/devices/{device['id']}"), 202) == {"message": "Accepted"}
    gone = error(await api.get(f"/devices/{device['id']}"), 404, "device_not_found")
    assert gone["context"] == "api.device_retrieve"
    error(await api.delete(f"/devices/{device['id']}"), 404, "device_not_found")


async def test_objects_of_another_account_are_invisible(sim: FlatpeakSimulator,
                                                        api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    device = await create_device(api, location["id"])
    async with httpx.AsyncClient(base_url=sim.url) as other:
        await login(other, OTHER_ACCOUNT, OTHER_KEY)
        error(await other.get(f"/devices/{device['id']}"), 404, "device_not_found")
        assert (await ok(other.get("/devices")))["data"] == []
        # The same reference id is free in another account.
        await create_location(other)


async def test_pagination_over_several_pages(api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    created = [await create_device(api, location["id"], f"dev-{n}") for n in range(5)]
    newest_first = [d["id"] for d in reversed(created)]

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["starting_after"] = cursor
        page = await ok(api.get("/devices", params=params))
        assert page["object"] == "list" and page["url"] == "/devices"
        pages.append(([d["id"] for d in page["data"]], page["has_more"]))
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert pages == [(newest_first[0:2], True), (newest_first[2:4], True),
                     (newest_first[4:], False)]

    back = await ok(api.get("/devices", params={"limit": 2, "ending_before": newest_first[4]}))
    assert [d["id"] for d in back["data"]] == newest_first[2:4]
    assert back["has_more"] is True
    first = await ok(api.get("/devices", params={"limit": 2,
                                                 "ending_before": newest_first[2]}))
    assert ([d["id"] for d in first["data"]], first["has_more"]) == (newest_first[:2], False)

    by_reference = await ok(api.get("/devices", params={"reference_id": "dev-3"}))
    assert [d["id"] for d in by_reference["data"]] == [created[3]["id"]]
    default = await ok(api.get("/devices"))
    assert len(default["data"]) == 5 and default["has_more"] is False

    for limit in ("0", "101", "many"):
        error(await api.get("/devices", params={"limit": limit}), 400, "limit_invalid")
    error(await api.get("/devices", params={"starting_after": "dev_nope"}), 400,
          "starting_after_invalid")
    error(await api.get("/devices", params={"starting_after": created[0]["id"],
                                            "ending_before": created[1]["id"]}),
          400, "pagination_invalid")


async def test_location_list_is_paginated_too(api: httpx.AsyncClient) -> None:
    for n in range(3):
        await create_location(api, f"site-{n}")
    page = await ok(api.get("/locations", params={"limit": 2}))
    assert page["url"] == "/locations"
    assert [loc["reference_id"] for loc in page["data"]] == ["site-2", "site-1"]
    assert page["has_more"] is True


# -- drift and persistence --------------------------------------------------------------------


async def test_drift_changes_properties_behind_the_reconcilers_back(
        sim: FlatpeakSimulator, api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    device = await create_device(api, location["id"])
    sim.requests.clear()
    async with httpx.AsyncClient() as admin:
        await ok(admin.patch(f"{sim.url}/_sim/devices/{device['id']}/properties",
                             json={"capacity_kwh": 99, "pv_tilt": None}))
        assert sim.count() == 0
        seen = await ok(api.get(f"/devices/{device['id']}"))
        assert seen["properties"]["capacity_kwh"] == 99
        assert "pv_tilt" not in seen["properties"]
        await ok(admin.delete(f"{sim.url}/_sim/devices/{device['id']}"))
    error(await api.get(f"/devices/{device['id']}"), 404, "device_not_found")


async def test_snapshot_restore_round_trip(sim: FlatpeakSimulator, clock: FakeClock,
                                           api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    devices = [await create_device(api, location["id"], f"dev-{n}") for n in range(3)]
    sim.set_account_disabled(OTHER_ACCOUNT)
    state = json.loads(json.dumps(sim.snapshot()))

    restored = FlatpeakSimulator(clock=clock, seed=3)
    restored.restore(state)
    await restored.start()
    try:
        async with httpx.AsyncClient(base_url=restored.url,
                                     headers={"Authorization": api.headers["Authorization"]}
                                     ) as again:
            # The old token still works: a restart does not log anyone out.
            listed = await ok(again.get("/devices"))
            assert listed["data"] == list(reversed(devices))
            created = await create_device(again, location["id"], "after-restart")
            assert created["id"] not in {d["id"] for d in devices}
        async with httpx.AsyncClient(base_url=restored.url) as client:
            error(await client.get("/login", headers=basic(OTHER_ACCOUNT, OTHER_KEY)), 422,
                  "account_disabled")
    finally:
        await restored.stop()


async def test_public_state_hides_keys_and_tokens(sim: FlatpeakSimulator,
                                                  api: httpx.AsyncClient) -> None:
    await create_location(api)
    async with httpx.AsyncClient() as admin:
        state = await ok(admin.get(f"{sim.url}/_sim/state"))
    text = json.dumps(state)
    assert API_KEY not in text
    assert api.headers["Authorization"].removeprefix("Bearer ") not in text
    assert state["accounts"][ACCOUNT] == {"disabled": False}
    assert len(state["locations"]) == 1


async def test_patch_cannot_unset_a_required_address_line(api: httpx.AsyncClient) -> None:
    location = await create_location(api)
    url = f"/locations/{location['id']}"
    error(await api.patch(url, json={"postal_address": {"city": None}}), 400, "city_missing")
    cleared = await ok(api.patch(url, json={"postal_address": {"address_line2": None}}))
    assert cleared["postal_address"]["address_line2"] is None
    assert cleared["postal_address"]["city"] == "Malmö"


async def test_an_api_that_takes_patched_objects_whole(sim: FlatpeakSimulator,
                                                       api: httpx.AsyncClient) -> None:
    """`merges_patched_objects=False`: a `postal_address` or `properties` sent replaces the
    one there, so a PATCH of some address lines lacks the required ones."""
    sim.merges_patched_objects = False
    location = await create_location(api)
    url = f"/locations/{location['id']}"
    error(await api.patch(url, json={"postal_address": {"city": "Lund"}}), 400,
          "address_line1_missing")
    moved = await ok(api.patch(url, json={"postal_address": {
        **ADDRESS, "address_line2": None, "city": "Lund"}}))
    assert moved["postal_address"] == {**ADDRESS, "address_line2": None, "city": "Lund",
                                       "state": None}
    device = await create_device(api, location["id"])
    patched = await ok(api.patch(f"/devices/{device['id']}", json={
        "properties": {"capacity_kwh": 10}}))
    assert patched["properties"] == {"capacity_kwh": 10}
