"""The Novacore simulator over real HTTP on loopback: auth, sites, gateway claims (with real
ES256 signatures), device provisioning rules, drift endpoints and persistence."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from novacore_fixtures import FakeClock, GatewayKey

from reconciler.sim import jwt_hs256
from reconciler.sim.novacore import NovacoreSimulator

ALICE = "idt-00000000-0000-4000-8000-0000000a11ce"
BOB = "idt-00000000-0000-4000-8000-000000000b0b"
ORG_A, ORG_B = "org-a", "org-b"
SERIAL = "zap-0123456789abcdef"
OTHER_SERIAL = "zap-fedcba9876543210"


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def nova(clock: FakeClock) -> AsyncIterator[NovacoreSimulator]:
    sim = NovacoreSimulator(clock=clock, seed=1)
    sim.add_org(ORG_A, "Org A")
    sim.add_org(ORG_B, "Org B")
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def gateway(nova: NovacoreSimulator) -> GatewayKey:
    key = GatewayKey(SERIAL)
    nova.register_gateway(SERIAL, key.public_key_hex)
    return key


@pytest.fixture
def other_gateway(nova: NovacoreSimulator) -> GatewayKey:
    key = GatewayKey(OTHER_SERIAL)
    nova.register_gateway(OTHER_SERIAL, key.public_key_hex)
    return key


async def _client(nova: NovacoreSimulator, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=nova.url, headers=headers, timeout=5)


@pytest.fixture
async def alice(nova: NovacoreSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(nova, nova.issue_token(ALICE, [ORG_A])) as client:
        yield client


@pytest.fixture
async def bob(nova: NovacoreSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(nova, nova.issue_token(BOB, [ORG_B])) as client:
        yield client


@pytest.fixture
async def anonymous(nova: NovacoreSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(nova, None) as client:
        yield client


# -- helpers ------------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The Novacore error shape `{"error": code, "message": ...}` with `status`."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"error", "message"}, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


async def claim(client: httpx.AsyncClient, key: GatewayKey, org_id: str, claimer: str,
                clock: FakeClock, **kwargs: Any) -> httpx.Response:
    return await client.post("/gateways/claim",
                             json=key.claim_body(org_id, claimer, clock(), **kwargs))


async def make_site(client: httpx.AsyncClient, org_id: str = ORG_A,
                    name: str = "Villa") -> str:
    response = await client.post("/sites", json={"org_id": org_id, "name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def provision_body(site_id: str, **overrides: Any) -> dict[str, Any]:
    body = {"gateway_serial": SERIAL, "hardware_id": "SN12345", "device_type": "inverter",
            "site_id": site_id, "name": "Sungrow Inverter", "manufacturer": "Sungrow",
            "model": "SH10RT",
            "ders": [{"name": "pv-array", "type": "solar"}, {"name": "battery_1",
                                                            "type": "battery"}]}
    body.update(overrides)
    return body


@pytest.fixture
async def site_a(alice: httpx.AsyncClient, gateway: GatewayKey, clock: FakeClock) -> str:
    """A site of org A whose gateway is claimed by org A."""
    assert (await claim(alice, gateway, ORG_A, ALICE, clock)).status_code == 201
    return await make_site(alice)


# -- auth ---------------------------------------------------------------------------------


async def test_missing_token_is_401(anonymous: httpx.AsyncClient) -> None:
    assert_error(await anonymous.get("/sites"), 401, "unauthorized")


@pytest.mark.parametrize("header", [
    pytest.param("Bearer not-a-jwt", id="malformed"),
    pytest.param("Basic dXNlcjpwdw==", id="wrong-scheme"),
    pytest.param("Bearer " + jwt_hs256.encode({"identity_id": ALICE, "exp": 2**40}, b"other"),
                 id="signed-with-another-secret"),
    pytest.param("Bearer " + ".".join([
        base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("="),
        base64.urlsafe_b64encode(json.dumps({"identity_id": ALICE, "exp": 2**40}).encode())
        .decode().rstrip("="), ""]), id="alg-none"),
])
async def test_bad_token_is_401(anonymous: httpx.AsyncClient, header: str) -> None:
    assert_error(await anonymous.get("/sites", headers={"Authorization": header}),
                 401, "unauthorized")


async def test_expired_token_is_401(alice: httpx.AsyncClient, clock: FakeClock) -> None:
    assert (await alice.get("/sites")).status_code == 200
    clock.advance(24 * 3600 + 1)
    body = assert_error(await alice.get("/sites"), 401, "unauthorized")
    assert "expired" in body["message"].lower()


async def test_a_token_made_to_expire_early_is_401_and_a_new_one_is_not(
        nova: NovacoreSimulator, alice: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    old = alice.headers["Authorization"].removeprefix("Bearer ")
    expired = await anonymous.post("/_sim/tokens/expire", json={"token": old})
    assert expired.json() == {"expired": True}
    body = assert_error(await alice.get("/sites"), 401, "unauthorized")
    assert body["message"] == "Token expired"
    new = nova.issue_token(ALICE)
    assert (await alice.get("/sites", headers={"Authorization": f"Bearer {new}"})).status_code \
        == 200
    # Kept across a restart, as the token secret is; not the token itself.
    saved = json.loads(json.dumps(nova.snapshot()))
    assert old not in json.dumps(saved)
    restarted = NovacoreSimulator(seed=1, clock=nova.clock)
    restarted.restore(saved)
    await restarted.start()
    try:
        async with httpx.AsyncClient(base_url=restarted.url) as client:
            for token, status in ((old, 401), (new, 200)):
                response = await client.get("/sites",
                                            headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == status, response.text
    finally:
        await restarted.stop()


async def test_token_carries_documented_claims(nova: NovacoreSimulator,
                                               clock: FakeClock) -> None:
    token = nova.issue_token(org_ids=[ORG_A])
    claims = jwt_hs256.decode(token, bytes.fromhex(nova.snapshot()["secret"]), now=clock())
    assert claims["identity_id"].startswith("idt-")
    assert claims["sub"] == claims["identity_id"] == nova.identity_of(token)
    assert claims["identity_type"] == "user"
    assert claims["exp"] - claims["iat"] == 24 * 3600


async def test_acting_on_another_org_is_403(alice: httpx.AsyncClient,
                                            bob: httpx.AsyncClient) -> None:
    site_b = await make_site(bob, ORG_B)
    assert_error(await alice.get("/sites", params={"org_id": ORG_B}), 403, "forbidden")
    assert_error(await alice.get(f"/sites/{site_b}"), 403, "forbidden")
    assert_error(await alice.post("/sites", json={"org_id": ORG_B, "name": "x"}),
                 403, "forbidden")


async def test_unknown_org_is_404_with_documented_body(alice: httpx.AsyncClient) -> None:
    response = await alice.get("/sites", params={"org_id": "org-nope"})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Organization not found"}


async def test_unknown_path_and_wrong_method_use_error_shape(
        alice: httpx.AsyncClient) -> None:
    assert_error(await alice.get("/nope"), 404, "not_found")
    assert_error(await alice.patch("/sites"), 405, "method_not_allowed")


# -- sites --------------------------------------------------------------------------------


async def test_site_crud(alice: httpx.AsyncClient) -> None:
    site_id = await make_site(alice, name="Home")
    assert site_id.startswith("sit-")
    listed = (await alice.get("/sites", params={"org_id": ORG_A})).json()
    assert listed == [{"id": site_id, "org_id": ORG_A, "name": "Home",
                       "created_at": "2026-05-28T20:26:40Z"}]
    assert (await alice.put(f"/sites/{site_id}", json={"name": "Cabin"})).json()["name"] == "Cabin"
    got = (await alice.get(f"/sites/{site_id}")).json()
    assert got["name"] == "Cabin" and got["devices"] == []
    assert (await alice.get(f"/sites/{site_id}/devices")).json() == []
    assert (await alice.delete(f"/sites/{site_id}")).json() == {"success": True}
    assert_error(await alice.get(f"/sites/{site_id}"), 404, "not_found")


async def test_site_body_is_validated(alice: httpx.AsyncClient) -> None:
    assert_error(await alice.post("/sites", json={"org_id": ORG_A}), 400, "invalid_request")
    assert_error(await alice.post("/sites", content=b"not json"), 400, "invalid_request")
    assert_error(await alice.post("/sites", json={"org_id": ORG_A, "name": "x", "zone": 1}),
                 400, "invalid_request")


async def test_site_with_devices_cannot_be_deleted(alice: httpx.AsyncClient,
                                                   site_a: str) -> None:
    assert (await alice.post("/devices/provision", json=provision_body(site_a))).status_code == 201
    assert_error(await alice.delete(f"/sites/{site_a}"), 409, "site_not_empty")


async def test_a_thousand_sites_list_in_one_call(nova: NovacoreSimulator,
                                                 alice: httpx.AsyncClient) -> None:
    for i in range(1000):
        nova.add_site(ORG_A, f"site-{i}")
    nova.requests.clear()
    sites = (await alice.get("/sites", params={"org_id": ORG_A})).json()
    assert len(sites) == 1000
    assert nova.count() == 1


# -- gateway claims -----------------------------------------------------------------------


async def test_claim_with_valid_signature(nova: NovacoreSimulator, alice: httpx.AsyncClient,
                                          gateway: GatewayKey, clock: FakeClock) -> None:
    response = await claim(alice, gateway, ORG_A, ALICE, clock)
    assert response.status_code == 201, response.text
    assert response.json() == {"success": True, "gateway_serial": SERIAL, "org_id": ORG_A,
                               "claimed_at": "2026-05-28T20:26:40Z", "created": True,
                               "transferred": False}
    listed = (await alice.get("/gateways", params={"org_id": ORG_A})).json()
    assert listed == [{"serial": SERIAL, "org_id": ORG_A, "claimed_at": "2026-05-28T20:26:40Z",
                       "public_key": gateway.public_key_hex}]


@pytest.mark.parametrize("variant", [
    pytest.param({"der": True}, id="der-hex-signature"),
    pytest.param({"sec1": True}, id="sec1-public-key"),
    pytest.param({"unix": True}, id="unix-seconds-timestamp"),
])
async def test_claim_accepts_every_documented_encoding(
        nova: NovacoreSimulator, alice: httpx.AsyncClient, gateway: GatewayKey,
        clock: FakeClock, variant: dict[str, bool]) -> None:
    nova.claim_encodings = "any"
    message = gateway.claim_message(ALICE, clock(), unix=variant.get("unix", False))
    public_key = "04" + gateway.public_key_hex if variant.get("sec1") else None
    response = await claim(alice, gateway, ORG_A, ALICE, clock, message=message,
                           der=variant.get("der", False), public_key=public_key)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("variant", "status", "code"), [
    pytest.param({"der": True}, 403, "invalid_signature", id="der-hex-signature"),
    pytest.param({"sec1": True}, 400, "invalid_public_key", id="sec1-public-key"),
])
async def test_claim_reads_only_what_ftw_sends_by_default(
        alice: httpx.AsyncClient, gateway: GatewayKey, clock: FakeClock,
        variant: dict[str, bool], status: int, code: str) -> None:
    """FTW says raw r||s hex is "the exact format Nova's verifyES256Signature expects", and
    sends the key as X||Y: a client forwarding the Zap's DER or `04...` as they are is
    refused, as Nova may well refuse it."""
    public_key = "04" + gateway.public_key_hex if variant.get("sec1") else None
    response = await claim(alice, gateway, ORG_A, ALICE, clock,
                           der=variant.get("der", False), public_key=public_key)
    assert_error(response, status, code)


async def test_claim_with_forged_signature_is_refused(alice: httpx.AsyncClient,
                                                      gateway: GatewayKey,
                                                      clock: FakeClock) -> None:
    forger = GatewayKey(SERIAL)  # same serial, a key the cloud has never seen
    body = forger.claim_body(ORG_A, ALICE, clock(), public_key=gateway.public_key_hex)
    assert_error(await alice.post("/gateways/claim", json=body), 403, "invalid_signature")


async def test_claim_with_another_gateways_key_is_refused(
        alice: httpx.AsyncClient, gateway: GatewayKey, other_gateway: GatewayKey,
        clock: FakeClock) -> None:
    impostor = GatewayKey(SERIAL, other_gateway.key)
    body = impostor.claim_body(ORG_A, ALICE, clock())
    assert_error(await alice.post("/gateways/claim", json=body), 403, "public_key_mismatch")


async def test_claim_with_wrong_serial_in_message_is_refused(
        alice: httpx.AsyncClient, gateway: GatewayKey, clock: FakeClock) -> None:
    message = f"{ALICE}|123456|2026-05-28T20:26:40Z|{OTHER_SERIAL}"
    response = await claim(alice, gateway, ORG_A, ALICE, clock, message=message)
    assert_error(response, 400, "serial_mismatch")


async def test_claim_with_replayed_nonce_is_refused(alice: httpx.AsyncClient,
                                                    gateway: GatewayKey,
                                                    clock: FakeClock) -> None:
    body = gateway.claim_body(ORG_A, ALICE, clock())
    assert (await alice.post("/gateways/claim", json=body)).status_code == 201
    assert_error(await alice.post("/gateways/claim", json=body), 409, "replayed_nonce")


@pytest.mark.parametrize("skew", [-301, 301])
async def test_claim_with_stale_timestamp_is_refused(alice: httpx.AsyncClient,
                                                     gateway: GatewayKey, clock: FakeClock,
                                                     skew: int) -> None:
    message = gateway.claim_message(ALICE, clock() + skew)
    response = await claim(alice, gateway, ORG_A, ALICE, clock, message=message)
    assert_error(response, 400, "stale_timestamp")


async def test_claim_window_is_configurable(clock: FakeClock, gateway: GatewayKey) -> None:
    sim = NovacoreSimulator(clock=clock, claim_window_s=3600)
    sim.register_gateway(SERIAL, gateway.public_key_hex)
    await sim.start()
    try:
        async with await _client(sim, sim.issue_token(ALICE, [ORG_A])) as client:
            message = gateway.claim_message(ALICE, clock() - 1800)
            response = await claim(client, gateway, ORG_A, ALICE, clock, message=message)
            assert response.status_code == 201, response.text
    finally:
        await sim.stop()


async def test_claim_with_three_part_message_is_refused(alice: httpx.AsyncClient,
                                                        gateway: GatewayKey,
                                                        clock: FakeClock) -> None:
    # What the Zap returns when no claimer id was sent: nonce|timestamp|serial.
    message = f"123456|2026-05-28T20:26:40Z|{SERIAL}"
    response = await claim(alice, gateway, ORG_A, ALICE, clock, message=message)
    body = assert_error(response, 400, "invalid_message_format")
    assert "invalid message format" in body["message"]


@pytest.mark.parametrize(("case", "status", "code"), [
    pytest.param("claimer", 403, "claimer_mismatch", id="claimer-is-not-the-caller"),
    pytest.param("unknown", 404, "not_found", id="unknown-serial"),
    pytest.param("bad-key", 400, "invalid_public_key", id="malformed-public-key"),
    pytest.param("garbage-sig", 403, "invalid_signature", id="signature-not-hex"),
    pytest.param("bad-time", 400, "invalid_timestamp", id="unreadable-timestamp"),
])
async def test_other_claim_failures(alice: httpx.AsyncClient, gateway: GatewayKey,
                                    clock: FakeClock, case: str, status: int,
                                    code: str) -> None:
    body = gateway.claim_body(ORG_A, ALICE, clock())
    if case == "claimer":
        body = gateway.claim_body(ORG_A, BOB, clock())
    elif case == "unknown":
        stranger = GatewayKey("zap-0000000000000000")
        body = stranger.claim_body(ORG_A, ALICE, clock())
    elif case == "bad-key":
        body["public_key"] = "gateway-es256-public-key"
    elif case == "garbage-sig":
        body["signature"] = "es256-signature-of-message"
    elif case == "bad-time":
        body = gateway.claim_body(ORG_A, ALICE, clock(),
                                  message=f"{ALICE}|1|yesterday|{SERIAL}")
    assert_error(await alice.post("/gateways/claim", json=body), status, code)


async def test_claim_needs_a_human_token(nova: NovacoreSimulator, gateway: GatewayKey,
                                         clock: FakeClock) -> None:
    token = nova.issue_token(ALICE, [ORG_A], identity_type="gateway")
    async with await _client(nova, token) as client:
        assert_error(await claim(client, gateway, ORG_A, ALICE, clock), 403, "forbidden")


async def test_claim_into_a_foreign_org_is_403(alice: httpx.AsyncClient, gateway: GatewayKey,
                                               clock: FakeClock) -> None:
    assert_error(await claim(alice, gateway, ORG_B, ALICE, clock), 403, "forbidden")


async def test_same_org_reclaim_is_a_no_op(alice: httpx.AsyncClient, gateway: GatewayKey,
                                           clock: FakeClock) -> None:
    first = await claim(alice, gateway, ORG_A, ALICE, clock)
    clock.advance(60)
    again = await claim(alice, gateway, ORG_A, ALICE, clock)
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False and again.json()["transferred"] is False
    assert again.json()["claimed_at"] == first.json()["claimed_at"]
    assert len((await alice.get("/gateways")).json()) == 1


async def test_transfer_orphans_the_old_orgs_devices(alice: httpx.AsyncClient,
                                                     bob: httpx.AsyncClient,
                                                     gateway: GatewayKey, clock: FakeClock,
                                                     site_a: str) -> None:
    device_id = (await alice.post("/devices/provision",
                                  json=provision_body(site_a))).json()["device_id"]
    response = await claim(bob, gateway, ORG_B, BOB, clock)
    assert response.status_code == 200, response.text
    assert response.json() | {"claimed_at": None} == {
        "success": True, "gateway_serial": SERIAL, "org_id": ORG_B, "claimed_at": None,
        "created": False, "transferred": True, "previous_org_id": ORG_A,
        "orphaned_devices": 1}
    assert (await alice.get(f"/devices/{device_id}")).json()["state"] == "orphaned"
    assert (await alice.get("/gateways", params={"org_id": ORG_A})).json() == []
    assert [g["serial"] for g in (await bob.get("/gateways")).json()] == [SERIAL]
    # The old org can no longer provision on it...
    assert_error(await alice.post("/devices/provision", json=provision_body(site_a)),
                 403, "gateway_not_in_org")
    # ...and the new org adopts the orphan by provisioning the same natural key.
    site_b = await make_site(bob, ORG_B)
    adopted = await bob.post("/devices/provision", json=provision_body(site_b))
    assert adopted.status_code == 200, adopted.text
    assert adopted.json()["device_id"] == device_id
    assert adopted.json()["state"] == "active" and adopted.json()["site_id"] == site_b
    assert_error(await alice.get(f"/devices/{device_id}"), 403, "forbidden")


async def test_release(nova: NovacoreSimulator, alice: httpx.AsyncClient,
                       bob: httpx.AsyncClient, site_a: str) -> None:
    device_id = (await alice.post("/devices/provision",
                                  json=provision_body(site_a))).json()["device_id"]
    assert_error(await bob.delete(f"/gateways/{SERIAL}"), 404, "not_found")
    response = await alice.delete(f"/gateways/{SERIAL}")
    assert response.status_code == 200
    assert response.json() == {"success": True, "gateway_serial": SERIAL,
                               "orphaned_devices": 1}
    assert (await alice.get("/gateways")).json() == []
    assert nova.devices[device_id].state == "orphaned"
    assert_error(await alice.delete(f"/gateways/{SERIAL}"), 404, "not_found")
    assert_error(await alice.delete("/gateways/zap-unknown"), 404, "not_found")


async def test_released_gateway_can_be_claimed_again(alice: httpx.AsyncClient,
                                                     bob: httpx.AsyncClient,
                                                     gateway: GatewayKey,
                                                     clock: FakeClock, site_a: str) -> None:
    assert (await alice.delete(f"/gateways/{SERIAL}")).status_code == 200
    assert (await claim(bob, gateway, ORG_B, BOB, clock)).status_code == 201


# -- devices ------------------------------------------------------------------------------


async def test_provision_then_rebind(alice: httpx.AsyncClient, site_a: str) -> None:
    created = await alice.post("/devices/provision", json=provision_body(site_a))
    assert created.status_code == 201, created.text
    first = created.json()
    assert set(first) == {"device_id", "hardware_id", "device_type", "site_id", "state",
                          "created", "ders"}
    assert first["device_id"].startswith("dev-") and first["created"] is True
    assert first["state"] == "active" and first["site_id"] == site_a
    pv_id = first["ders"][0]["id"]
    assert pv_id.startswith("der-") and first["ders"][0]["name"] == "pv-array"

    site_2 = await make_site(alice, name="Second")
    rebind = await alice.post("/devices/provision", json=provision_body(
        site_2, name="Renamed", ders=[{"name": "pv-array", "type": "solar"},
                                      {"name": "grid", "type": "meter"}]))
    assert rebind.status_code == 200, rebind.text
    second = rebind.json()
    assert second["created"] is False and second["device_id"] == first["device_id"]
    assert second["site_id"] == site_2
    assert [(d["id"] == pv_id, d["name"]) for d in second["ders"]] == [
        (True, "pv-array"), (False, "grid")]
    assert (await alice.get(f"/sites/{site_a}/devices")).json() == []
    [device] = (await alice.get(f"/sites/{site_2}/devices")).json()
    assert device == {"id": first["device_id"], "name": "Renamed", "type": "inverter",
                      "state": "active", "hardware_id": "SN12345", "gateway_serial": SERIAL,
                      "site_id": site_2, "manufacturer": "Sungrow", "model": "SH10RT",
                      "ders": second["ders"]}
    assert (await alice.get(f"/sites/{site_2}")).json()["devices"] == [device]


async def test_a_hardware_id_provisioned_behind_another_gateway_is_rebound_not_duplicated(
        alice: httpx.AsyncClient, other_gateway: GatewayKey,
        clock: FakeClock, site_a: str) -> None:
    """Re-wired hardware: the same hardware id provisioned behind another gateway of the
    organisation, in another site, is the device it has (200, `created: false`), moved."""
    first = (await alice.post("/devices/provision", json=provision_body(site_a))).json()
    assert (await claim(alice, other_gateway, ORG_A, ALICE, clock)).status_code == 201
    site_2 = await make_site(alice, name="Second")
    moved = await alice.post("/devices/provision",
                             json=provision_body(site_2, gateway_serial=OTHER_SERIAL))
    assert moved.status_code == 200, moved.text
    assert moved.json()["created"] is False and moved.json()["device_id"] == first["device_id"]
    assert [d["id"] for d in moved.json()["ders"]] == [d["id"] for d in first["ders"]]
    assert (await alice.get(f"/sites/{site_a}/devices")).json() == []
    [device] = (await alice.get(f"/sites/{site_2}/devices")).json()
    assert (device["id"], device["gateway_serial"]) == (first["device_id"], OTHER_SERIAL)
    # Back behind the first gateway: the index follows the device (no duplicate either way).
    back = await alice.post("/devices/provision", json=provision_body(site_a))
    assert (back.status_code, back.json()["device_id"]) == (200, first["device_id"])
    assert len((await alice.get(f"/sites/{site_a}/devices")).json()) == 1


async def test_a_hardware_id_of_another_organisation_is_not_taken(
        alice: httpx.AsyncClient, bob: httpx.AsyncClient, other_gateway: GatewayKey,
        clock: FakeClock, site_a: str) -> None:
    first = (await alice.post("/devices/provision", json=provision_body(site_a))).json()
    assert (await claim(bob, other_gateway, ORG_B, BOB, clock)).status_code == 201
    site_b = await make_site(bob, ORG_B)
    other = await bob.post("/devices/provision",
                           json=provision_body(site_b, gateway_serial=OTHER_SERIAL))
    assert other.status_code == 201 and other.json()["device_id"] != first["device_id"]
    assert len((await alice.get(f"/sites/{site_a}/devices")).json()) == 1


@pytest.mark.parametrize(("overrides", "status", "code", "needle"), [
    pytest.param({"device_type": "energy_meter", "ders": [{"name": "pv", "type": "solar"}]},
                 422, "invalid_der_type", "allowed: meter", id="der-type-not-allowed"),
    pytest.param({"ders": [{"name": "pv array!", "type": "solar"}]},
                 422, "invalid_der_name", "pv array!", id="bad-der-name"),
    pytest.param({"ders": [{"name": "x" * 65, "type": "solar"}]},
                 422, "invalid_der_name", "64", id="der-name-too-long"),
    pytest.param({"ders": [{"name": "pv", "type": "solar"}, {"name": "pv", "type": "battery"}]},
                 422, "duplicate_der_name", "pv", id="duplicate-der-name"),
    pytest.param({"device_type": "charger"}, 422, "invalid_device_type", "ev_charger",
                 id="unknown-device-type"),
    pytest.param({"site_id": "sit-missing"}, 404, "not_found", "Site", id="unknown-site"),
    pytest.param({"gateway_serial": OTHER_SERIAL}, 403, "gateway_not_in_org", OTHER_SERIAL,
                 id="gateway-not-claimed-by-sites-org"),
    pytest.param({"hardware_id": None}, 400, "invalid_request", "hardware_id",
                 id="missing-field"),
])
async def test_provision_rules(alice: httpx.AsyncClient, other_gateway: GatewayKey,
                               site_a: str, overrides: dict[str, Any], status: int, code: str,
                               needle: str) -> None:
    body = {**provision_body(site_a), **overrides}
    response = await alice.post("/devices/provision", json=body)
    assert needle in assert_error(response, status, code)["message"]


async def test_provision_with_gateway_of_another_org(alice: httpx.AsyncClient,
                                                     bob: httpx.AsyncClient,
                                                     other_gateway: GatewayKey,
                                                     clock: FakeClock, site_a: str) -> None:
    assert (await claim(bob, other_gateway, ORG_B, BOB, clock)).status_code == 201
    response = await alice.post("/devices/provision",
                                json=provision_body(site_a, gateway_serial=OTHER_SERIAL))
    assert_error(response, 403, "gateway_not_in_org")


async def test_device_update_delete_and_ders(alice: httpx.AsyncClient, site_a: str) -> None:
    device_id = (await alice.post("/devices/provision", json=provision_body(
        site_a, ders=[]))).json()["device_id"]
    updated = await alice.put(f"/devices/{device_id}", json={"name": "Roof", "model": "SH8"})
    assert updated.status_code == 200
    assert (updated.json()["name"], updated.json()["model"]) == ("Roof", "SH8")
    assert_error(await alice.put(f"/devices/{device_id}", json={"site_id": "x"}),
                 400, "invalid_request")

    der = await alice.post(f"/devices/{device_id}/ders", json={"name": "pv-mppt2",
                                                               "type": "solar"})
    assert der.status_code == 201
    assert der.json() | {"id": None} == {"id": None, "name": "pv-mppt2", "type": "solar",
                                         "device_id": device_id}
    assert (await alice.get(f"/ders/{der.json()['id']}")).json() == der.json()
    assert_error(await alice.post(f"/devices/{device_id}/ders",
                                  json={"name": "pv-mppt2", "type": "solar"}),
                 409, "duplicate_der_name")
    assert_error(await alice.post(f"/devices/{device_id}/ders",
                                  json={"name": "port", "type": "ev_charger_port"}),
                 422, "invalid_der_type")
    assert_error(await alice.post(f"/devices/{device_id}/ders",
                                  json={"name": "a/b", "type": "solar"}),
                 422, "invalid_der_name")

    assert (await alice.delete(f"/devices/{device_id}")).json() == {"success": True}
    assert_error(await alice.get(f"/devices/{device_id}"), 404, "not_found")
    assert_error(await alice.get(f"/ders/{der.json()['id']}"), 404, "not_found")


# -- drift and admin endpoints --------------------------------------------------------------


async def test_drift_through_admin_endpoints(nova: NovacoreSimulator, alice: httpx.AsyncClient,
                                             site_a: str) -> None:
    device_id = (await alice.post("/devices/provision",
                                  json=provision_body(site_a))).json()["device_id"]
    changed: list[int] = []
    nova.on_change(lambda: changed.append(1))
    nova.requests.clear()
    drift = await alice.put(f"/_sim/devices/{device_id}", json={"name": "Tampered"})
    assert drift.status_code == 200 and drift.json()["name"] == "Tampered"
    assert (await alice.get(f"/devices/{device_id}")).json()["name"] == "Tampered"
    assert nova.count() == 1  # admin calls are not counted as API traffic
    assert changed  # ...but they are persisted
    der_id = nova.devices[device_id].der_ids[0]
    assert (await alice.delete(f"/_sim/ders/{der_id}")).status_code == 200
    assert (await alice.delete(f"/_sim/devices/{device_id}")).status_code == 200
    assert_error(await alice.get(f"/devices/{device_id}"), 404, "not_found")
    assert (await alice.put(f"/_sim/sites/{site_a}", json={"name": "Other"})).status_code == 200
    assert (await alice.get(f"/sites/{site_a}")).json()["name"] == "Other"
    assert (await alice.delete(f"/_sim/sites/{site_a}")).status_code == 200
    assert_error(await alice.delete(f"/_sim/devices/{device_id}"), 404, "not_found")


async def test_admin_bootstrap_over_http(nova: NovacoreSimulator, anonymous: httpx.AsyncClient,
                                         clock: FakeClock) -> None:
    org = await anonymous.post("/_sim/orgs", json={"name": "Lab"})
    assert org.status_code == 201
    org_id = org.json()["id"]
    key = GatewayKey("zap-00000000000000aa")
    registered = await anonymous.post("/_sim/gateways/register",
                                      json={"serial": key.serial,
                                            "public_key": "04" + key.public_key_hex})
    assert registered.json() == {"serial": key.serial, "public_key": key.public_key_hex}
    issued = (await anonymous.post("/_sim/tokens", json={"org_ids": [org_id]})).json()
    assert set(issued) == {"token", "identity_id", "expires_at"}
    async with await _client(nova, issued["token"]) as client:
        response = await client.post("/gateways/claim", json=key.claim_body(
            org_id, issued["identity_id"], clock()))
        assert response.status_code == 201, response.text
    assert_error(await anonymous.post("/_sim/gateways/register",
                                      json={"serial": "zap-x", "public_key": "00" * 64}),
                 400, "invalid_public_key")
    released = await anonymous.delete(f"/_sim/gateways/{key.serial}")
    assert released.json() == {"success": True, "orphaned_devices": 0}


# -- persistence --------------------------------------------------------------------------


async def test_state_survives_restart(nova: NovacoreSimulator, alice: httpx.AsyncClient,
                                      clock: FakeClock, site_a: str) -> None:
    device = (await alice.post("/devices/provision", json=provision_body(site_a))).json()
    saved = json.loads(json.dumps(nova.snapshot()))
    public = (await alice.get("/_sim/state")).json()
    assert "secret" not in public and "secret" not in nova.public_state()
    assert nova.snapshot()["secret"] not in json.dumps(public)
    token = alice.headers["Authorization"]

    restarted = NovacoreSimulator(clock=clock, seed=1)
    restarted.restore(saved)
    await restarted.start()
    try:
        async with httpx.AsyncClient(base_url=restarted.url,
                                     headers={"Authorization": token}) as client:
            got = (await client.get(f"/devices/{device['device_id']}")).json()
            assert got["ders"] == device["ders"]
            again = await client.post("/devices/provision", json=provision_body(site_a))
            assert again.status_code == 200 and again.json()["created"] is False
            new_site = await make_site(client)
            assert new_site not in nova.sites  # ids keep counting after a restore
    finally:
        await restarted.stop()
    assert restarted.public_state()["sites"] != public["sites"]
