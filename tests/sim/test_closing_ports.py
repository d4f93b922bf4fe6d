"""A simulator (HTTP or Modbus) that stops listening (offline, or stopped) leaves no socket
of its port unclosed, however close a client's connect came to it: one accepted in the
instant before was dropped for the garbage collector to find (`reconciler.sim.listener`),
a `ResourceWarning` in whatever test ran then. Each connection is ended by the simulator,
as a device gone from the network answers nothing."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from typing import Any

import pytest
from zap_fixtures import ZAP_SERIAL

from reconciler.sim.modbus_device import ModbusDevice, ModbusDeviceSimulator
from reconciler.sim.zap import ZapSimulator

CLIENTS = 3
# How many turns of the loop pass between the clients' connects and the closing: asyncio
# accepts at one turn and makes the connections at the next, so a run of them puts the
# closing before, inside and after that window, whatever turn the accept falls on.
TURNS = range(5)


async def _zap() -> tuple[Any, int]:
    sim = ZapSimulator(serial=ZAP_SERIAL)
    await sim.start()
    return sim, sim.port


async def _modbus() -> tuple[Any, int]:
    sim = ModbusDeviceSimulator([ModbusDevice("SG0001", profile="sungrow", unit_id=1)])
    return sim, await sim.start()


async def _zap_offline(sim: Any) -> None:
    await sim.set_offline("refuse")


async def _modbus_offline(sim: Any) -> None:
    await sim.set_offline(True)


async def _stop(sim: Any) -> None:
    await sim.stop()


CASES = {
    "zap-offline": (_zap, _zap_offline),
    "zap-stopped": (_zap, _stop),
    "modbus-offline": (_modbus, _modbus_offline),
    "modbus-stopped": (_modbus, _stop),
}


async def _ended(client: socket.socket) -> bool:
    """Whether the other end closed the connection (end of stream, or reset). The wait is
    only a guard: a connection left open would otherwise hang the test."""
    try:
        async with asyncio.timeout(10):
            return await asyncio.get_running_loop().sock_recv(client, 1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _unclosed() -> list[str]:
    """The ResourceWarnings of sockets and transports the garbage collector closes now."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if "unclosed" in str(w.message)]


@pytest.mark.parametrize("turns", TURNS)
@pytest.mark.parametrize("case", CASES)
async def test_no_connection_of_a_closed_port_is_left_unclosed(
        no_leaked_tasks: None, case: str, turns: int) -> None:
    start, close = CASES[case]
    sim, port = await start()
    # Connected by the system (the listener's backlog) before the loop has accepted them.
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CLIENTS)]
    try:
        for client in clients:
            client.setblocking(False)
        for _ in range(turns):
            await asyncio.sleep(0)
        await close(sim)
        # A connection accepted before the closing but not yet made is made at the next
        # turn: it would be dropped then, and found by the collector.
        await asyncio.sleep(0)
        assert not _unclosed(), f"{case} after {turns} turns"
        ended = await asyncio.gather(*(_ended(client) for client in clients))
        assert ended == [True] * CLIENTS, "the simulator ends every connection"
    finally:
        await sim.stop()
        for client in clients:
            client.close()
    assert not _unclosed()
