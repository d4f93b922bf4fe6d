"""The Modbus identity check (`verification.checkSerial`) end to end, on real simulators:
what a plan says and an apply does when the serial cannot be read, through the gateway's
/api/modbus/read or directly, and that a device whose serial was not read as its
`hardwareId` is never added nor provisioned."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from simworld import (
    Doc,
    MakeWorld,
    World,
    cloud_devices,
    device,
    gateway,
    serial_of,
    site,
    standard_site,
)

from reconciler.engine.reconcile import PlanResult
from reconciler.plan.actions import Action, Change, Reason
from reconciler.sim.fleet import SimFleet
from reconciler.sim.modbus_device import ModbusDevice, ModbusDeviceSimulator


def identity_check(result: PlanResult) -> Change:
    """The plan's check of the serial of device s1-inv, which most tests here declare."""
    return next(c for c in result.plan.changes if c.address == "device/s1-inv[identity]")


def modbus_read_answers(body: str, status: int = 200) -> Callable[[SimFleet], None]:
    """A `before_start` making gateway s1's /api/modbus/read answer `body` (JSON)."""

    def install(sims: SimFleet) -> None:
        @web.middleware
        async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/api/modbus/read":
                return web.Response(text=body, status=status, content_type="application/json")
            return await handler(request)

        sims.zaps[serial_of(1)].app.middlewares.append(answer)

    return install


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("[4989]", "expected a JSON object, got list"),
        ('{"values": null}', "got None"),
        ('{"values": [70000, 0, 0, 0, 0, 0, 0, 0, 0, 0]}', "got [70000, 0,"),
        ('{"values": ["S", "G"]}', "got ['S', 'G']"),
        ('{"values": [21319]}', "expected `values` to be 10 register values"),
        # 100,000 values: said as their start and their length, not whole.
        ('{"values": [' + ", ".join(["70000"] * 100_000) + "]}",
         f"got {repr([70000] * 100_000)[:80]}… (700,000 characters)"),
    ],
    ids=["list", "null", "out-of-range", "strings", "short", "very-long"],
)
async def test_a_malformed_modbus_read_answer_is_an_unread_serial_not_a_crash_or_a_mismatch(
        make_world: MakeWorld, body: str, said: str) -> None:
    """[21319] is "SG": read as the device's serial it made a mismatch of an answer cut
    short; the others stopped the whole plan with a TypeError or OverflowError."""
    world = await make_world(standard_site(1, check_serial=True) + standard_site(2),
                             before_start=modbus_read_answers(body))
    result, report = await world.apply()
    verify = identity_check(result)
    assert (verify.action, verify.reason, verify.blocked) == (
        Action.VERIFY, Reason.IDENTITY_CHECK, False)
    assert verify.message.startswith("serial not read yet (zap.modbus_read: "), verify.message
    assert said in verify.message, verify.message
    statuses = {o.address: o.status for o in report.outcomes if o.site == "s1"}
    assert statuses["device/s1-inv[identity]"] == "failed"
    assert {statuses[f"device/s1-inv[{p}]"] for p in ("zap", "novacore")} == {"skipped"}
    assert "SG0001" not in world.sims.zaps[serial_of(1)].devices
    assert cloud_devices(world.sims, "SG0001") == []
    assert sorted(world.sims.zaps[serial_of(2)].devices) == ["P1M0002", "SG0002"], \
        "the other site applies"


# -- read directly (`via: direct`) ----------------------------------------------------------


def direct_inverter(name: str, gateway_name: str, hardware_id: str, port: int, *,
                    unit: int = 1, profile: str = "sungrow") -> Doc:
    """An inverter whose serial is read from the Modbus server at 127.0.0.1:`port`."""
    return device(name, gateway_name, hardware_id, "inverter",
                  {"modbusTcp": {"host": "127.0.0.1", "port": port, "unitId": unit,
                                 "profile": profile}},
                  [{"name": "pv", "type": "solar"}],
                  verification={"checkSerial": True, "via": "direct"})


async def test_direct_reads_of_one_device_address_take_one_connection_at_a_time(
        make_world: MakeWorld) -> None:
    """Twelve units behind one Modbus address (a Modbus TCP gateway, or a dongle) that
    serves one client at a time: four connections at once (RECONCILER_GATEWAY_CONCURRENCY)
    had three of them closed at every turn, and half the devices were not verified."""
    units = range(1, 13)
    async with ModbusDeviceSimulator([ModbusDevice(f"SG{u:04d}", unit_id=u) for u in units],
                                     slow_ms=20, max_clients=1) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                *(direct_inverter(f"inv{u}", "s1-zap", f"SG{u:04d}", modbus.port, unit=u)
                  for u in units)]
        world = await make_world(docs, env={"RECONCILER_GATEWAY_RATE": "1000"})
        result = await world.plan()
    checked = [c for c in result.plan.changes if c.address.endswith("[identity]")]
    assert [c.before for c in checked] == [{"serial": f"SG{u:04d}"} for u in units], \
        [c.message for c in checked]
    assert not any(c.blocked for c in checked)
    assert (modbus.peak_clients, modbus.turned_away) == (1, 0)


async def test_direct_reads_of_different_device_addresses_go_at_once(
        make_world: MakeWorld) -> None:
    """One connection at a time per address, not overall."""
    sims = [ModbusDeviceSimulator([ModbusDevice(f"SG{i:04d}")], slow_ms=500) for i in range(4)]
    for sim in sims:
        await sim.start()
    try:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                *(direct_inverter(f"inv{i}", "s1-zap", f"SG{i:04d}", sim.port)
                  for i, sim in enumerate(sims))]
        world = await make_world(docs)
        in_flight: list[int] = []

        async def sample() -> None:
            # The simulators share this event loop: how many of them answer a read at once.
            while True:
                in_flight.append(sum(sim.reading for sim in sims))
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        try:
            result = await world.plan()
        finally:
            sampler.cancel()
    finally:
        for sim in sims:
            await sim.stop()
    checked = [c for c in result.plan.changes if c.address.endswith("[identity]")]
    assert [c.before for c in checked] == [{"serial": f"SG{i:04d}"} for i in range(4)]
    assert max(in_flight) == 4, f"at most {max(in_flight)} of four reads of 500 ms at once"


# -- register maps ----------------------------------------------------------------------------


def sunspec_inverter(port: int | None) -> Doc:
    """A SunSpec inverter FRO0001 of gateway s1: read through it, or directly at `port`."""
    if port is not None:
        return direct_inverter("s1-inv", "s1-zap", "FRO0001", port, profile="fronius")
    return device("s1-inv", "s1-zap", "FRO0001", "inverter",
                  {"modbusTcp": {"host": "192.168.1.60", "port": 502, "unitId": 1,
                                 "profile": "fronius"}},
                  [{"name": "pv", "type": "solar"}],
                  verification={"checkSerial": True, "via": "gateway"})


@pytest.mark.parametrize("base", [0, 40000, 50000])
@pytest.mark.parametrize("via", ["gateway", "direct"])
async def test_the_sunspec_serial_is_read_at_each_base_address_sunspec_allows(
        make_world: MakeWorld, via: str, base: int) -> None:
    """A device with its SunSpec map at 0 or 50000 (platform-apis §5.1) was read at 40000
    only, and never verified: refused there, or no marker."""
    async with ModbusDeviceSimulator(
            [ModbusDevice("FRO0001", profile="fronius", sunspec_base=base)]) as modbus:

        def map_at_base(sims: SimFleet) -> None:
            for server in sims.modbus:
                server.device(1).sunspec_base = base

        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                sunspec_inverter(modbus.port if via == "direct" else None)]
        world = await make_world(docs, before_start=map_at_base)
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked, verify.before) == (
        Reason.IDENTITY_CHECK, False, {"serial": "FRO0001"}), verify.message


@pytest.mark.parametrize("via", ["gateway", "direct"])
async def test_the_serial_is_read_from_the_older_65_register_common_model(
        make_world: MakeWorld, via: str) -> None:
    """70 registers were read from the base, two past the SN: a device with the common model
    of 65 registers (no Pad) and no end marker after it refused the read, and the plan said
    it had no SunSpec marker."""
    async with ModbusDeviceSimulator([ModbusDevice("FRO0001", profile="fronius")]) as modbus:

        def older_model(sims: SimFleet) -> None:
            for server in [*sims.modbus, modbus]:
                server.device(1).sunspec_common_length = 65
                server.device(1).sunspec_end_marker = False

        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                sunspec_inverter(modbus.port if via == "direct" else None)]
        world = await make_world(docs, before_start=older_model)
        assert modbus.device(1).holding_registers().keys() == set(range(40000, 40069))
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked, verify.before) == (
        Reason.IDENTITY_CHECK, False, {"serial": "FRO0001"}), verify.message


async def test_a_common_model_too_short_to_hold_the_serial_is_said_so(
        make_world: MakeWorld) -> None:
    inverter = ModbusDevice("FRO0001", profile="fronius", holding_writes={40003: 40})
    async with ModbusDeviceSimulator([inverter]) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                sunspec_inverter(modbus.port)]
        world = await make_world(docs)
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked, verify.before) == (Reason.IDENTITY_CHECK, False, None)
    assert "the SunSpec common model at 40000 is 40 registers long, too short to hold the " \
        "serial (SN), which needs 64 (profile 'fronius')" in verify.message, verify.message


async def test_a_device_without_a_sunspec_map_is_said_so_naming_every_base_tried(
        make_world: MakeWorld) -> None:
    async with ModbusDeviceSimulator([ModbusDevice("SG0001")]) as modbus:  # a Sungrow
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                sunspec_inverter(modbus.port)]
        world = await make_world(docs)
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_CHECK, False)
    assert "no SunSpec marker at 40000, 0, 50000: the device does not speak SunSpec " \
        "(profile 'fronius')" in verify.message, verify.message


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (404, '{"error": "Not found"}', "HTTP 404: Not found"),
        (400, '{"error": "Invalid JSON body"}', "HTTP 400: Invalid JSON body"),
        (200, '{"values": null}', "expected `values` to be 68 register values"),
    ],
    ids=["firmware-without-modbus-read", "bad-request", "malformed"],
)
async def test_a_gateway_refusing_the_sunspec_read_is_said_so_not_taken_for_no_sunspec(
        make_world: MakeWorld, status: int, body: str, said: str) -> None:
    """Any refusal of a read was taken for a device without those registers, and every base
    tried in turn: a Zap whose firmware has no /api/modbus/read made the plan say that the
    device does not speak SunSpec."""
    docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)), sunspec_inverter(None)]
    world = await make_world(docs, before_start=modbus_read_answers(body, status))
    result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_CHECK, False)
    assert said in verify.message, verify.message
    assert "SunSpec marker" not in verify.message, verify.message


async def test_a_device_in_a_fault_state_is_said_so_not_taken_for_one_without_sunspec(
        make_world: MakeWorld) -> None:
    inverter = ModbusDevice("FRO0001", profile="fronius", fault=ExcCodes.DEVICE_FAILURE)
    async with ModbusDeviceSimulator([inverter]) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                sunspec_inverter(modbus.port)]
        world = await make_world(docs)
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_CHECK, False)
    assert (f"Modbus device 127.0.0.1:{modbus.port} answered the read of 68 registers at "
            "40000 (unit id 1) with server device failure (exception 4)") in verify.message, \
        verify.message


async def test_a_sunspec_map_that_does_not_start_with_the_common_model_is_not_read_as_one(
        make_world: MakeWorld) -> None:
    """The SN is at its offset only in the common model (ID 1), which SunSpec puts first."""
    inverter = ModbusDevice("FRO0001", profile="fronius", holding_writes={40002: 103})
    async with ModbusDeviceSimulator([inverter]) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                sunspec_inverter(modbus.port)]
        world = await make_world(docs)
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked, verify.before) == (Reason.IDENTITY_CHECK, False, None)
    assert "the SunSpec map at 40000 starts with model 103, not the common model (1)" \
        in verify.message, verify.message


async def test_no_device_at_the_unit_id_is_named_and_tried_again(make_world: MakeWorld) -> None:
    """Exception 11 (the Modbus gateway's target did not answer: a wrong unit id, or a device
    offline behind it) was shown as pymodbus's repr and taken for a permanent refusal."""
    async with ModbusDeviceSimulator([ModbusDevice("SG0001", unit_id=1)]) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                direct_inverter("s1-inv", "s1-zap", "SG0001", modbus.port, unit=7)]
        world = await make_world(docs)
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_CHECK, False)
    assert (f"Modbus device 127.0.0.1:{modbus.port} answered the read of 10 registers at 4989 "
            "(unit id 7) with gateway target device failed to respond (exception 11) "
            "(gave up after 3 attempts)") in verify.message, verify.message


async def test_a_device_silent_at_the_unit_id_is_said_not_to_answer_at_that_unit_id(
        make_world: MakeWorld) -> None:
    """A device on its own often leaves a read for another unit id unanswered: the message
    said only that the device did not answer, not at which unit id, nor what was read."""
    async with ModbusDeviceSimulator([ModbusDevice("SG0001", unit_id=1)],
                                     silent_to_other_units=True) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                direct_inverter("s1-inv", "s1-zap", "SG0001", modbus.port, unit=7)]
        world = await make_world(docs, env={"RECONCILER_MODBUS_TIMEOUT": "0.3"})
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_CHECK, False)
    assert (f"Modbus device 127.0.0.1:{modbus.port} did not answer the read of 10 registers "
            "at 4989 (unit id 7) within 0.3 s (RECONCILER_MODBUS_TIMEOUT; not retried in this "
            "run)") \
        in verify.message, \
        verify.message


async def test_registers_the_device_does_not_have_are_named_and_not_tried_again(
        make_world: MakeWorld) -> None:
    async with ModbusDeviceSimulator([ModbusDevice("FRO0001", profile="fronius")]) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                direct_inverter("s1-inv", "s1-zap", "FRO0001", modbus.port)]  # Sungrow map
        world = await make_world(docs)
        result = await world.plan()
    verify = identity_check(result)
    assert "(unit id 1) with illegal data address (exception 2)); it is checked" \
        in verify.message, verify.message


async def test_a_device_that_never_answers_is_said_to_not_answer_within_the_timeout(
        make_world: MakeWorld) -> None:
    """The connection is accepted, the read never answered: the message ended in "did not
    answer: " and nothing more. Each read was then tried again, three times in the plan
    and six in the apply's check, each after the whole timeout (RECONCILER_TIMEOUT's, at
    most 5 s): 50 such devices held a plan for 15 s, a thousand for minutes."""
    accepted: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                direct_inverter("s1-inv", "s1-zap", "SG0001", port), *standard_site(2)]
        world = await make_world(docs, env={"RECONCILER_MODBUS_TIMEOUT": "0.3"})
        result, report = await world.apply()
        asked = len(accepted)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    verify = identity_check(result)
    assert (f"Modbus device 127.0.0.1:{port} did not answer the read of 10 registers at 4989 "
            "(unit id 1) within 0.3 s (RECONCILER_MODBUS_TIMEOUT; not retried in this "
            "run)") \
        in verify.message, verify.message
    assert asked == 2, "once by the plan, once by the apply's check"
    statuses = {o.address: o.status for o in report.outcomes}
    assert statuses["device/s1-inv[identity]"] == "failed"
    assert statuses["device/s1-inv[zap]"] == "skipped"
    # Not asked again in the run, but a later run may find it answering: no refusal.
    [check] = [o for o in report.outcomes if o.address == "device/s1-inv[identity]"]
    assert check.retryable
    assert "SG0001" not in world.sims.zaps[serial_of(1)].devices
    assert sorted(world.sims.zaps[serial_of(2)].devices) == ["P1M0002", "SG0002"]


@pytest.mark.parametrize(
    ("profile", "serial", "said"),
    [
        ("sungrow", "", "input registers 4989-4998 are empty (profile 'sungrow')"),
        ("sungrow", "      ", "input registers 4989-4998 are empty (profile 'sungrow')"),
        ("fronius", "", "the SunSpec common model's SN, holding registers 40052-40067 are "
                        "empty (profile 'fronius')"),
    ],
    ids=["sungrow-nul", "sungrow-spaces", "sunspec-nul"],
)
async def test_a_device_reporting_no_serial_is_said_so_not_taken_for_another_device(
        make_world: MakeWorld, profile: str, serial: str, said: str) -> None:
    """Empty serial registers (not set, or not passed on by the dongle in front of the
    device) were planned as a mismatch, "the device reports serial '', not hardwareId
    'SG0001'", blocked, and told the user to correct `hardwareId`."""
    hardware_id = "SG0001" if profile == "sungrow" else "FRO0001"
    async with ModbusDeviceSimulator([ModbusDevice(serial, profile=profile)]) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                direct_inverter("s1-inv", "s1-zap", hardware_id, modbus.port, profile=profile),
                *standard_site(2)]
        world = await make_world(docs)
        result, report = await world.apply()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked, verify.before) == (
        Reason.IDENTITY_CHECK, False, None), verify.message
    assert f"serial not read yet (the device reports no serial: {said}); it is checked" \
        in verify.message, verify.message
    statuses = {o.address: o.status for o in report.outcomes}
    assert statuses["device/s1-inv[identity]"] == "failed"
    assert statuses["device/s1-inv[zap]"] == "skipped"
    assert hardware_id not in world.sims.zaps[serial_of(1)].devices
    assert sorted(world.sims.zaps[serial_of(2)].devices) == ["P1M0002", "SG0002"]


# The longest a Modbus read may wait: a plan that waited out one of its attempts would not
# end within `planned_before_a_timeout`'s minute, whatever the machine's load.
AN_HOUR_TIMEOUT = {"RECONCILER_MODBUS_TIMEOUT": "3600"}


async def planned_before_a_timeout(world: World) -> PlanResult:
    """The world's plan, which must end long before a read's timeout (`AN_HOUR_TIMEOUT`) ends."""
    try:
        return await asyncio.wait_for(world.plan(), 60)
    except TimeoutError:
        raise AssertionError("the plan waited for a read's timeout: the device had closed the "
                             "connection") from None


async def test_a_device_that_closes_the_connection_is_said_to_and_not_waited_for(
        make_world: MakeWorld) -> None:
    """A device serving one client at a time (here one already connected, as a Zap or a
    home automation system may be) closes the connection of any other. pymodbus left the
    read waiting for its whole timeout, at every attempt, and the plan said the device did
    not answer within it."""
    async with ModbusDeviceSimulator([ModbusDevice("SG0001")], max_clients=1) as modbus:
        other = AsyncModbusTcpClient("127.0.0.1", port=modbus.port, reconnect_delay=0)
        assert await other.connect()
        try:
            docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                    direct_inverter("s1-inv", "s1-zap", "SG0001", modbus.port),
                    *standard_site(2)]
            world = await make_world(docs, env=AN_HOUR_TIMEOUT)
            result = await planned_before_a_timeout(world)
        finally:
            other.close()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_CHECK, False)
    assert (f"Modbus device 127.0.0.1:{modbus.port} closed the connection without answering "
            "the read of 10 registers at 4989 (unit id 1); a device that serves one client at "
            "a time does so while it serves another (gave up after 3 attempts)") \
        in verify.message, verify.message
    assert modbus.turned_away == 3
    assert {c.address for c in result.plan.changes if c.site == "s2" and c.is_change} >= {
        "device/s2-inv[zap]", "device/s2-p1[zap]"}, "the other site is planned"


async def test_a_device_that_closes_the_connection_on_the_read_is_not_waited_for(
        make_world: MakeWorld) -> None:
    """Closed once the request came (as some devices do for a unit id they do not have), the
    read waited out its 5 s timeout three times: 15 s for an answer that could not come."""
    async def close_on_request(reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(12)  # a read request: MBAP header (7) and PDU (5)
        writer.close()

    server = await asyncio.start_server(close_on_request, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                direct_inverter("s1-inv", "s1-zap", "SG0001", port), *standard_site(2)]
        world = await make_world(docs, env=AN_HOUR_TIMEOUT)
        result = await planned_before_a_timeout(world)
    finally:
        server.close()
        await server.wait_closed()
    verify = identity_check(result)
    assert f"Modbus device 127.0.0.1:{port} closed the connection without answering the " \
        "read of 10 registers at 4989 (unit id 1)" in verify.message, verify.message


# -- what the serial registers hold -----------------------------------------------------------


def held(data: bytes) -> str:
    """Register bytes as the simulator takes a serial: bytes that are no UTF-8 by their
    surrogate escapes."""
    return data.decode("utf-8", "surrogateescape")


async def plan_serial_check(make_world: MakeWorld, via: str, serial: str,
                            hardware_id: str) -> Change:
    """The identity check of a Sungrow inverter `hardware_id` whose serial registers hold
    `serial`, read through its gateway or directly."""
    async with ModbusDeviceSimulator([ModbusDevice(serial)]) as modbus:

        def holding_serial(sims: SimFleet) -> None:
            for server in sims.modbus:
                server.device(1).serial = serial

        if via == "direct":
            inv = direct_inverter("s1-inv", "s1-zap", hardware_id, modbus.port)
        else:
            inv = device("s1-inv", "s1-zap", hardware_id, "inverter",
                         {"modbusTcp": {"host": "192.168.1.60", "port": 502, "unitId": 1,
                                        "profile": "sungrow"}},
                         [{"name": "pv", "type": "solar"}],
                         verification={"checkSerial": True, "via": "gateway"})
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)), inv]
        world = await make_world(docs, before_start=holding_serial)
        result = await world.plan()
    return identity_check(result)


@pytest.mark.parametrize("via", ["gateway", "direct"])
async def test_serial_bytes_that_are_not_utf8_are_shown_escaped(
        make_world: MakeWorld, via: str) -> None:
    """Decoded as ASCII with U+FFFD, the plan said the device reports 'SG0001��': what the
    device holds was never shown, and any two such serials read the same."""
    verify = await plan_serial_check(make_world, via, held(b"SG0001\xff\xfe"), "SG0001")
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_MISMATCH, True), verify.message
    assert verify.before == {"serial": "SG0001\\xff\\xfe"}
    assert verify.message.startswith(
        "the device reports serial 'SG0001\\xff\\xfe', not hardwareId 'SG0001'"), verify.message


@pytest.mark.parametrize("via", ["gateway", "direct"])
async def test_a_utf8_serial_is_read_as_utf8(make_world: MakeWorld, via: str) -> None:
    """Sungrow documents its serial as UTF-8/ASCII: read as ASCII, a serial with a letter
    beyond ASCII never matched its hardwareId."""
    verify = await plan_serial_check(make_world, via, "SGÅ0001", "SGÅ0001")
    assert (verify.reason, verify.blocked, verify.before) == (
        Reason.IDENTITY_CHECK, False, {"serial": "SGÅ0001"}), verify.message


async def test_a_nul_before_the_serial_is_padding(make_world: MakeWorld) -> None:
    """Everything after the first NUL was dropped: the device was said to report no serial."""
    verify = await plan_serial_check(make_world, "direct", "\0\0 SG0001\0", "SG0001")
    assert (verify.reason, verify.blocked, verify.before) == (
        Reason.IDENTITY_CHECK, False, {"serial": "SG0001"}), verify.message


async def test_text_after_a_nul_is_part_of_the_serial_and_shown(make_world: MakeWorld) -> None:
    """Cut at the first NUL, what follows it was never compared nor shown."""
    verify = await plan_serial_check(make_world, "direct", "SG0001\0\x01x", "SG0001")
    assert (verify.reason, verify.blocked, verify.before) == (
        Reason.IDENTITY_MISMATCH, True, {"serial": "SG0001\0\x01x"}), verify.message
    assert verify.message.startswith(
        "the device reports serial 'SG0001\\x00\\x01x', which goes on after a NUL byte "
        "(\\x00), not hardwareId 'SG0001'"), verify.message


def counting_modbus_reads(reads: list[int], then: Callable[[SimFleet], None] | None = None,
                          ) -> Callable[[SimFleet], None]:
    """A `before_start` counting the registers gateway s1's /api/modbus/read is asked for
    (each request's `register`), then doing `then`."""

    def install(sims: SimFleet) -> None:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/api/modbus/read":
                reads.append((await request.json())["register"])
            return await handler(request)

        sims.zaps[serial_of(1)].app.middlewares.append(count)
        if then is not None:
            then(sims)

    return install


async def test_a_device_not_answering_the_gateway_is_said_so_at_the_first_base_address(
        make_world: MakeWorld) -> None:
    """The Zap answers 502 for a device that did not answer: taken for one without the
    registers, every base address was tried, each after the Zap's own Modbus timeout, 9
    reads in all, and the plan said only "HTTP 502". Then it was read three times at the
    first, each after that timeout too: it is read once."""
    reads: list[int] = []
    docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)), sunspec_inverter(None)]
    world = await make_world(docs, before_start=counting_modbus_reads(reads))
    for server in world.sims.modbus:
        await server.set_offline(True)
    result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_CHECK, False)
    assert ("Modbus device 192.168.1.60:502 did not answer the read of 68 registers at 40000 "
            "(unit id 1) through the gateway (zap.modbus_read /api/modbus/read: HTTP 502: "
            ) in verify.message, verify.message
    assert verify.message.endswith(
        "; not retried in this run)); it is checked before the device is added"), verify.message
    assert reads == [40000]


def answering_502(text: str) -> Callable[[SimFleet], None]:
    """Gateway s1 answers every /api/modbus/read with a 502 carrying `text`."""

    def install(sims: SimFleet) -> None:
        @web.middleware
        async def fail(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/api/modbus/read":
                return web.json_response({"message": text}, status=502)
            return await handler(request)

        sims.zaps[serial_of(1)].app.middlewares.append(fail)

    return install


async def test_a_502_of_the_gateway_that_says_no_reason_is_not_retried(
        make_world: MakeWorld) -> None:
    """A 502 whose text says neither that the device did not answer nor which exception it
    answered was asked again twice at every base address (9 reads), each taking the Zap's
    own Modbus timeout: each base address is read once, and the plan says the gateway
    could not read the device, with the Zap's words."""
    reads: list[int] = []
    docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)), sunspec_inverter(None)]
    world = await make_world(
        docs, before_start=counting_modbus_reads(reads, answering_502("Modbus error 0x1f")))
    result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked) == (Reason.IDENTITY_CHECK, False)
    assert ("the gateway could not read Modbus device 192.168.1.60:502: the read of 68 "
            "registers at 40000 (unit id 1) failed (zap.modbus_read /api/modbus/read: HTTP "
            "502: ") in verify.message, verify.message
    assert "Modbus error 0x1f" in verify.message
    assert verify.message.endswith(
        "; not retried in this run)); it is checked before the device is added"), verify.message
    assert reads == [40000, 0, 50000]


async def test_a_device_without_a_sunspec_map_behind_the_gateway_is_said_so(
        make_world: MakeWorld) -> None:
    """Its 502s (exception 2, at each base) were taken as not answering: 9 reads, and the
    plan said "HTTP 502" rather than that the device has no SunSpec map."""
    reads: list[int] = []

    def sungrow(sims: SimFleet) -> None:
        for server in sims.modbus:
            server.device(1).profile = "sungrow"

    docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)), sunspec_inverter(None)]
    world = await make_world(docs, before_start=counting_modbus_reads(reads, sungrow))
    result = await world.plan()
    verify = identity_check(result)
    assert "no SunSpec marker at 40000, 0, 50000: the device does not speak SunSpec " \
        "(profile 'fronius')" in verify.message, verify.message
    assert reads == [40000, 0, 50000]


async def test_a_device_failure_through_the_gateway_is_named(make_world: MakeWorld) -> None:
    def failing(sims: SimFleet) -> None:
        for server in sims.modbus:
            server.device(1).fault = ExcCodes.DEVICE_FAILURE

    docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)), sunspec_inverter(None)]
    world = await make_world(docs, before_start=failing)
    result = await world.plan()
    verify = identity_check(result)
    assert ("Modbus device 192.168.1.60:502 answered the read of 68 registers at 40000 "
            "(unit id 1) through the gateway with server device failure (exception 4)); it "
            "is checked") in verify.message, verify.message


async def test_a_device_answering_as_another_unit_id_is_said_so(
        make_world: MakeWorld) -> None:
    """A device on its own may answer any unit id as its own, and say so in its answer.
    pymodbus skipped that answer (logging a hex dump) and waited for one that never came:
    the plan said the device did not answer within the timeout, three times over."""
    async with ModbusDeviceSimulator([ModbusDevice("SG0001", unit_id=1)],
                                     answers_as=1) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                direct_inverter("s1-inv", "s1-zap", "SG0001", modbus.port, unit=7)]
        world = await make_world(docs, env={"RECONCILER_MODBUS_TIMEOUT": "2"})
        result = await world.plan()
    verify = identity_check(result)
    assert (verify.reason, verify.blocked, verify.before) == (
        Reason.IDENTITY_CHECK, False, None), verify.message
    assert (f"serial not read yet (Modbus device 127.0.0.1:{modbus.port} answered the read of "
            "10 registers at 4989 as unit id 1, not as unit id 7 that was asked; if it is the "
            "device, its `unitId` is 1); it is checked") in verify.message, verify.message
    assert modbus.reads[(7, 4)] == 1, "asked once: it answers the same way again"
