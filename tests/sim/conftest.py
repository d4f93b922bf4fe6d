"""Fixtures that start simulators on loopback ports and stop them after the test: a simulated
LAN with a Modbus device simulator (a Sungrow at unit 1, a SunSpec Solis at unit 2) mapped
to 192.168.1.60:502, a Zap gateway on that LAN, and an httpx client pointed at the Zap.

Every fixture here depends on `no_leaked_tasks`, which is set up first and torn down last,
so a simulator that leaves an asyncio task behind fails the test that started it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from task_leaks import no_task_left_running
from zap_fixtures import INVERTER_IP, SOLIS_SERIAL, SUNGROW_SERIAL, ZAP_SERIAL

from reconciler.sim.lan import Lan
from reconciler.sim.modbus_device import ModbusDevice, ModbusDeviceSimulator
from reconciler.sim.zap import ZapSimulator


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    async with no_task_left_running():
        yield


@pytest.fixture
def lan() -> Lan:
    return Lan()


@pytest.fixture
async def modbus_sim(no_leaked_tasks: None, lan: Lan) -> AsyncIterator[ModbusDeviceSimulator]:
    sim = ModbusDeviceSimulator([
        ModbusDevice(SUNGROW_SERIAL, profile="sungrow", unit_id=1),
        ModbusDevice(SOLIS_SERIAL, profile="solis", unit_id=2),
    ])
    await sim.start()
    sim.attach(lan, INVERTER_IP, 502)
    yield sim
    await sim.stop()


@pytest.fixture
async def zap(no_leaked_tasks: None, lan: Lan,
              modbus_sim: ModbusDeviceSimulator) -> AsyncIterator[ZapSimulator]:
    # A short Modbus timeout keeps the "device does not answer" tests fast.
    sim = ZapSimulator(serial=ZAP_SERIAL, lan=lan, modbus_timeout_s=0.3, seed=7)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def client(zap: ZapSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=zap.url, timeout=5.0) as http:
        yield http
