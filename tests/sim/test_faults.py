"""Fault injection seen from a real HTTP client against a Zap simulator: latency, a seeded
error rate, 429 with Retry-After (any Retry-After text on 5xx too), offline (refused,
hanging), a failure storm, a write whose answer is lost or delayed, and a slow Modbus
device behind the gateway. The admin API refuses a fault out of its range."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from ports import assert_port_kept
from zap_fixtures import INVERTER_IP, SUNGROW_SERIAL

from reconciler.sim.faults import FaultConfig, Offline
from reconciler.sim.lan import Lan
from reconciler.sim.modbus_device import ModbusDeviceSimulator
from reconciler.sim.zap import ZapSimulator

SUNGROW = {"type": "modbus_tcp", "ip": INVERTER_IP, "port": 502, "unit_id": 1,
           "profile": "sungrow"}


async def statuses(client: httpx.AsyncClient, n: int) -> list[int]:
    return [(await client.get("/api/devices")).status_code for _ in range(n)]


async def test_latency_delays_answers(client: httpx.AsyncClient, zap: ZapSimulator) -> None:
    zap.faults.latency_ms = 120
    started = time.monotonic()
    assert (await client.get("/api/devices")).status_code == 200
    assert time.monotonic() - started >= 0.11


async def test_error_rate_with_a_seed_is_deterministic(no_leaked_tasks: None, lan: Lan) -> None:
    runs = []
    for _ in range(2):
        zap = ZapSimulator(lan=lan, seed=42, faults=FaultConfig(error_rate=0.5))
        await zap.start()
        try:
            async with httpx.AsyncClient(base_url=zap.url) as client:
                runs.append(await statuses(client, 30))
        finally:
            await zap.stop()
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}, "about half fail"


async def test_injected_errors_use_the_zap_error_body(client: httpx.AsyncClient,
                                                      zap: ZapSimulator) -> None:
    zap.faults.fail_next = 1
    response = await client.get("/api/devices")
    assert response.status_code == 503
    assert set(response.json()) == {"message"}


async def test_throttling_answers_429_with_retry_after(client: httpx.AsyncClient,
                                                      zap: ZapSimulator) -> None:
    zap.faults.throttle_next = 1
    zap.faults.retry_after_s = 2
    response = await client.get("/api/devices")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert (await client.get("/api/devices")).status_code == 200


async def test_retry_after_text_goes_with_every_fault_answer(client: httpx.AsyncClient,
                                                               zap: ZapSimulator) -> None:
    zap.faults.throttle_next, zap.faults.fail_next = 1, 1
    zap.faults.retry_after = "Wed, 21 Oct 2037 07:28:00 GMT"
    answers = [await client.get("/api/devices") for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 429, 200]
    assert [a.headers.get("Retry-After") for a in answers] == [
        "Wed, 21 Oct 2037 07:28:00 GMT", "Wed, 21 Oct 2037 07:28:00 GMT", None]


async def test_fail_next_storm_then_recovery(client: httpx.AsyncClient,
                                             zap: ZapSimulator) -> None:
    zap.faults.fail_next = 3
    assert await statuses(client, 5) == [503, 503, 503, 200, 200]


async def test_a_lost_answer_comes_after_the_write_took_effect(
        client: httpx.AsyncClient, zap: ZapSimulator) -> None:
    zap.faults.lose_next = 1
    assert (await client.get("/api/devices")).status_code == 200, "reads are not counted"
    lost = await client.post("/api/devices", json=SUNGROW)
    assert lost.status_code == 503
    assert zap.device(SUNGROW_SERIAL) is not None, "the device was added all the same"
    again = await client.post("/api/devices", json=SUNGROW)
    assert again.status_code == 409, "a retry finds it there"


async def test_a_garbled_answer_is_the_body_set_then_answers_are_as_documented(
        client: httpx.AsyncClient) -> None:
    body = {"devices": [{"sn": "SG9", "ders": None}]}
    response = await client.put("/_sim/faults", json={"garble_next": 1, "garble_body": body})
    assert response.status_code == 200
    garbled = await client.get("/api/devices")
    assert (garbled.status_code, garbled.json()) == (200, body)
    assert (await client.get("/api/devices")).json() != body


async def test_a_garbled_write_answer_comes_after_the_write_took_effect(
        client: httpx.AsyncClient, zap: ZapSimulator) -> None:
    zap.faults.garble_next, zap.faults.garble_body = 1, []
    garbled = await client.post("/api/devices", json=SUNGROW)
    assert (garbled.status_code, garbled.json()) == (200, [])
    assert zap.device(SUNGROW_SERIAL) is not None, "the device was added all the same"


async def test_a_delayed_answer_comes_after_the_write_took_effect(
        client: httpx.AsyncClient, zap: ZapSimulator) -> None:
    # An hour: the write's answer does not come within the test, and neither would a
    # read's if the delay held reads too (the client gives up after its 5 s).
    zap.faults.answer_delay_ms = 3_600_000
    with pytest.raises(httpx.ReadTimeout):  # the client gives up before the answer comes
        await client.post("/api/devices", json=SUNGROW, timeout=0.5)
    assert zap.device(SUNGROW_SERIAL) is not None, "the device was added at once"
    read = await client.get("/api/devices")
    assert read.status_code == 200, "a read is answered, not delayed as a write's answer is"
    assert [d["sn"] for d in read.json()["devices"]] == [SUNGROW_SERIAL]


async def test_offline_refuse_is_connection_refused_until_back(client: httpx.AsyncClient,
                                                               zap: ZapSimulator) -> None:
    port = zap.port
    await zap.set_offline(Offline.REFUSE)
    with pytest.raises(httpx.ConnectError):
        await client.get("/api/devices")
    assert_port_kept(zap.host, port)
    await zap.set_offline(Offline.ONLINE)
    assert zap.port == port
    assert (await client.get("/api/devices")).status_code == 200


async def test_offline_refuse_answers_nothing_on_a_connection_kept_alive(
        zap: ZapSimulator) -> None:
    async with httpx.AsyncClient(base_url=zap.url) as kept:
        assert (await kept.get("/api/devices")).status_code == 200  # its connection kept
        await zap.set_offline(Offline.REFUSE)
        with pytest.raises(httpx.TransportError):
            await kept.get("/api/devices")
        await zap.set_offline(Offline.ONLINE)
        assert (await kept.get("/api/devices")).status_code == 200


async def test_offline_hang_times_the_client_out(client: httpx.AsyncClient,
                                                 zap: ZapSimulator) -> None:
    await zap.set_offline(Offline.HANG)
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/api/devices", timeout=0.2)
    await zap.set_offline(Offline.ONLINE)
    assert (await client.get("/api/devices")).status_code == 200


async def test_faults_set_through_the_admin_api(client: httpx.AsyncClient) -> None:
    response = await client.put("/_sim/faults", json={"fail_next": 2, "error_status": 500})
    assert response.status_code == 200
    assert await statuses(client, 3) == [500, 500, 200]
    # Admin endpoints are never faulted.
    await client.put("/_sim/faults", json={"fail_next": 5})
    assert (await client.get("/_sim/state")).status_code == 200


async def test_admin_api_takes_the_simulator_offline_after_answering(
        client: httpx.AsyncClient, zap: ZapSimulator) -> None:
    response = await client.put("/_sim/faults", json={"offline": "refuse"})
    assert response.status_code == 200, "the request that asks for it is still answered"
    assert response.json()["offline"] == "refuse", "the answer says what it is about to be"
    refused = False
    for _ in range(50):  # the port closes right after the answer
        async with httpx.AsyncClient(base_url=zap.url) as fresh:
            try:
                await fresh.get("/api/devices")
            except httpx.ConnectError:
                refused = True
                break
        await asyncio.sleep(0.01)
    assert refused, "new connections are refused once the simulator is offline"
    assert zap.faults.offline is Offline.REFUSE
    await zap.set_offline(Offline.ONLINE)
    async with httpx.AsyncClient(base_url=zap.url) as fresh:
        assert (await fresh.get("/api/devices")).status_code == 200


async def test_admin_api_refuses_an_unknown_offline_mode(client: httpx.AsyncClient,
                                                         zap: ZapSimulator) -> None:
    response = await client.put("/_sim/faults", json={"offline": "sleep", "fail_next": 2})
    assert (response.status_code, response.json()) == (400, {
        "error": "invalid_fault", "message": "offline must be one of online, refuse, hang, "
                                             "not 'sleep'"})
    assert (zap.faults.offline, zap.faults.fail_next) == (Offline.ONLINE, 0), "nothing changed"


async def test_admin_api_applies_all_of_an_update_or_none_of_it(client: httpx.AsyncClient,
                                                               zap: ZapSimulator) -> None:
    response = await client.put("/_sim/faults", json={"fail_next": 2, "fial_next": 1})
    assert response.status_code == 400
    assert response.json()["message"].startswith("unknown fault 'fial_next'; known: ")
    response = await client.put("/_sim/faults", json={"fail_next": 2, "latency_ms": "slow"})
    assert (response.status_code, response.json()["message"]) == (
        400, "latency_ms: 'slow' is not a valid value")
    response = await client.put("/_sim/faults", json={"fail_next": 2, "retry_after": 5})
    assert (response.status_code, response.json()["message"]) == (
        400, "retry_after: 5 is not a valid value")
    assert zap.faults.fail_next == 0, "the valid part of a refused update is not applied"


async def test_slow_modbus_device_beyond_the_timeout_is_503(
        client: httpx.AsyncClient, zap: ZapSimulator,
        modbus_sim: ModbusDeviceSimulator) -> None:
    # The fixture's Zap waits 0.3 s for the device, which answers in an hour: a gateway
    # that waited for it would leave the client to give up (after its 5 s), not answer.
    modbus_sim.slow_ms = 3_600_000
    response = await client.post("/api/devices", json=SUNGROW)
    assert response.status_code == 503, "the gateway gives up at its own timeout"
    assert zap.device(SUNGROW_SERIAL) is None, "a device that did not answer is not added"


async def test_slow_modbus_device_within_the_timeout_is_added_slowly(
        client: httpx.AsyncClient, modbus_sim: ModbusDeviceSimulator) -> None:
    modbus_sim.slow_ms = 100
    started = time.monotonic()
    response = await client.post("/api/devices", json=SUNGROW)
    assert response.status_code == 201
    assert response.json()["sn"] == SUNGROW_SERIAL
    assert time.monotonic() - started >= 0.09


@pytest.mark.parametrize(("changes", "message"), [
    ({"latency_ms": -5}, "latency_ms: must be a number 0 or more, not -5.0"),
    ({"error_rate": 1.5, "fail_next": 2}, "error_rate: must be a number from 0 to 1, not 1.5"),
    ({"fail_next": -3}, "fail_next: must be a number 0 or more, not -3"),
    ({"error_status": 200}, "error_status: must be a number from 400 to 599, not 200"),
])
async def test_admin_api_refuses_a_number_out_of_its_range(
        client: httpx.AsyncClient, zap: ZapSimulator, changes: dict[str, Any],
        message: str) -> None:
    response = await client.put("/_sim/faults", json=changes)
    assert (response.status_code, response.json()) == (400, {
        "error": "invalid_fault", "message": message})
    assert zap.faults == FaultConfig(), "nothing changed"
