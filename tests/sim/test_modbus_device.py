"""The Modbus device simulator through a real pymodbus client (platform-apis §5): Sungrow
identity input registers, the SunSpec common model, several devices by unit id, live
values, serial swaps, slow answers and going offline on the same port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from ports import assert_port_kept
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from zap_fixtures import SOLIS_SERIAL, SUNGROW_SERIAL

from reconciler.sim import modbus_device as md
from reconciler.sim.lan import Lan
from reconciler.sim.modbus_device import ModbusDevice, ModbusDeviceSimulator

GATEWAY_NO_RESPONSE = 0x0B
ILLEGAL_ADDRESS = 0x02


@pytest.fixture
async def modbus(modbus_sim: ModbusDeviceSimulator) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=modbus_sim.port, timeout=1.0, retries=0,
                                  reconnect_delay=0)
    assert await client.connect()
    yield client
    client.close()


async def read_input(client: AsyncModbusTcpClient, address: int, count: int,
                     unit: int = 1) -> list[int]:
    response = await client.read_input_registers(address, count=count, device_id=unit)
    assert not response.isError(), response
    return list(response.registers)


async def read_holding(client: AsyncModbusTcpClient, address: int, count: int,
                       unit: int = 2) -> list[int]:
    response = await client.read_holding_registers(address, count=count, device_id=unit)
    assert not response.isError(), response
    return list(response.registers)


# -- encoding ----------------------------------------------------------------------------------


def test_strings_are_two_chars_per_register_high_byte_first_nul_padded() -> None:
    assert md.encode_string("SH1", 3) == [0x5348, 0x3100, 0x0000]
    assert md.decode_string([0x5348, 0x3100, 0x0000]) == "SH1"
    assert md.encode_string("ABCDEF", 2) == [0x4142, 0x4344], "truncated to the field"


def test_u32_is_low_word_first() -> None:
    assert md.u32_low_first(0x00012345) == [0x2345, 0x0001]
    assert md.from_u32_low_first([0x2345, 0x0001]) == 0x12345
    assert md.from_u32_low_first(md.u32_low_first(-5), signed=True) == -5


def test_power_values_change_slightly_over_time() -> None:
    device = ModbusDevice("X", pv_w=4000, drift=0.05)
    start = device.live(device._epoch)
    later = device.live(device._epoch + md.DRIFT_PERIOD_S / 4)
    assert start.pv_w == 4000
    assert later.pv_w != start.pv_w
    assert abs(later.pv_w - start.pv_w) <= 0.05 * 4000 + 1


# -- identity registers over TCP -----------------------------------------------------------------


async def test_sungrow_serial_and_device_type_in_input_registers(
        modbus: AsyncModbusTcpClient) -> None:
    serial = await read_input(modbus, md.SUNGROW_SERIAL, md.SUNGROW_SERIAL_REGS)
    assert md.decode_string(serial) == SUNGROW_SERIAL
    assert serial[-1] == 0, "NUL padded to 20 characters"
    assert await read_input(modbus, md.SUNGROW_DEVICE_TYPE, 1) == [0x0E03]  # SH10RT


async def test_sunspec_common_model_in_holding_registers(modbus: AsyncModbusTcpClient) -> None:
    regs = await read_holding(modbus, md.SUNSPEC_BASE, 72)
    assert regs[:4] == [0x5375, 0x6E53, 1, 66], '"SunS", ID 1, L 66'
    assert md.decode_string(regs[4:20]) == "Ginlong"
    assert md.decode_string(regs[20:36]) == "RHI-5K-48ES-5G"
    assert md.decode_string(regs[44:52]) == "1.0.0"
    assert md.decode_string(regs[52:68]) == SOLIS_SERIAL
    assert regs[68] == 2, "DA is the unit id"
    assert regs[70] == 0xFFFF, "end marker at 40070"


async def test_each_profile_answers_only_its_own_identity_map(
        modbus: AsyncModbusTcpClient) -> None:
    sunspec_on_sungrow = await modbus.read_holding_registers(40000, count=2, device_id=1)
    sungrow_on_sunspec = await modbus.read_input_registers(4989, count=10, device_id=2)
    assert sunspec_on_sungrow.isError()
    assert sungrow_on_sunspec.isError()
    assert sungrow_on_sunspec.exception_code == ILLEGAL_ADDRESS


async def test_unknown_unit_id_gets_gateway_no_response(modbus: AsyncModbusTcpClient) -> None:
    response = await modbus.read_input_registers(4989, count=10, device_id=42)
    assert response.isError()
    assert response.exception_code == GATEWAY_NO_RESPONSE


async def test_live_values_are_low_word_first_and_signed_as_documented(
        modbus: AsyncModbusTcpClient, modbus_sim: ModbusDeviceSimulator) -> None:
    device = modbus_sim.device(1)
    pv = md.from_u32_low_first(await read_input(modbus, md.SUNGROW_PV_POWER, 2))
    grid = md.from_u32_low_first(await read_input(modbus, md.SUNGROW_GRID_POWER, 2), signed=True)
    [state] = await read_input(modbus, md.SUNGROW_RUNNING_STATE, 1)
    battery, soc = await read_input(modbus, md.SUNGROW_BATTERY_POWER, 2)
    assert abs(pv - device.pv_w) <= device.drift * device.pv_w + 1
    assert grid > 0, "export is positive in register 13009 (the site exports)"
    assert state & md.STATE_CHARGING
    assert abs(battery - device.battery_w) <= device.drift * device.battery_w + 1
    assert abs(soc - 550) <= 1


async def test_serial_swap_is_seen_by_the_next_read(modbus: AsyncModbusTcpClient,
                                                    modbus_sim: ModbusDeviceSimulator) -> None:
    modbus_sim.set_serial("A2399999999", unit_id=1)
    regs = await read_input(modbus, md.SUNGROW_SERIAL, md.SUNGROW_SERIAL_REGS)
    assert md.decode_string(regs) == "A2399999999"


async def test_devices_can_be_added_while_serving(modbus: AsyncModbusTcpClient,
                                                  modbus_sim: ModbusDeviceSimulator) -> None:
    modbus_sim.add(ModbusDevice("SMA-77", profile="sma", unit_id=3))
    regs = await read_holding(modbus, md.SUNSPEC_SN, md.SUNSPEC_SN_REGS, unit=3)
    assert md.decode_string(regs) == "SMA-77"
    with pytest.raises(ValueError, match="already taken"):
        modbus_sim.add(ModbusDevice("dup", unit_id=3))


async def test_holding_writes_are_kept(modbus: AsyncModbusTcpClient) -> None:
    response = await modbus.write_register(13049, 2, device_id=1)
    assert not response.isError()
    assert await read_holding(modbus, 13049, 1, unit=1) == [2]


async def test_attach_maps_a_lan_address(modbus_sim: ModbusDeviceSimulator) -> None:
    lan = Lan()
    modbus_sim.attach(lan, "10.0.0.9", 1502)
    assert lan.modbus_target("10.0.0.9", 1502) == ("127.0.0.1", modbus_sim.port)


# -- faults ------------------------------------------------------------------------------------


async def test_slow_ms_delays_every_answer(modbus: AsyncModbusTcpClient,
                                           modbus_sim: ModbusDeviceSimulator) -> None:
    modbus_sim.slow_ms = 150
    started = time.monotonic()
    await read_input(modbus, md.SUNGROW_DEVICE_TYPE, 1)
    assert time.monotonic() - started >= 0.14


async def test_slower_than_the_client_timeout_is_no_answer(
        modbus_sim: ModbusDeviceSimulator) -> None:
    # The client's timeout bounds its connect too: long enough for a loaded machine to
    # connect in, far shorter than the device's answer.
    modbus_sim.slow_ms = 30_000
    client = AsyncModbusTcpClient("127.0.0.1", port=modbus_sim.port, timeout=1.0, retries=0,
                                  reconnect_delay=0)
    assert await client.connect()
    try:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(4989, count=10, device_id=1)
    finally:
        client.close()
    # The fixture then stops the server with that request still sleeping: it must be
    # cancelled, not leaked.


async def test_offline_refuses_and_comes_back_on_the_same_port(
        modbus_sim: ModbusDeviceSimulator) -> None:
    port = modbus_sim.port
    await modbus_sim.set_offline(True)
    assert modbus_sim.offline
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0,
                                  reconnect_delay=0)
    assert not await client.connect(), "connection refused while offline"
    client.close()
    assert_port_kept("127.0.0.1", port)
    await modbus_sim.set_offline(False)
    assert modbus_sim.port == port
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0,
                                  reconnect_delay=0)
    assert await client.connect()
    try:
        assert await read_input(client, md.SUNGROW_DEVICE_TYPE, 1) == [0x0E03]
    finally:
        client.close()


async def test_start_on_port_zero_reports_the_bound_port_and_stops_cleanly(
        no_leaked_tasks: None) -> None:
    async with ModbusDeviceSimulator([ModbusDevice("S1")]) as sim:
        assert sim.port > 0
        assert sim.running
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.5, retries=0,
                                      reconnect_delay=0)
        assert await client.connect()
        client.close()
    assert not sim.running
    await asyncio.sleep(0)
