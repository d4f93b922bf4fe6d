"""The Modbus identity check (`verification.checkSerial`) end to end, on real simulators:
what a plan says and an apply does when the serial cannot be read, through the gateway's
/api/modbus/read or directly, and that a device whose serial was not read as its
`hardwareId` is never added nor provisioned."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from simworld import (
    Doc,
    MakeWorld,
    cloud_devices,
    device,
    gateway,
    serial_of,
    site,
    standard_site,
)

from reconciler.plan.actions import Action, Reason
from reconciler.sim.fleet import SimFleet
from reconciler.sim.modbus_device import ModbusDevice, ModbusDeviceSimulator


def modbus_read_answers(body: str) -> Callable[[SimFleet], None]:
    """A `before_start` making gateway s1's /api/modbus/read answer `body` (200, JSON)."""

    def install(sims: SimFleet) -> None:
        @web.middleware
        async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/api/modbus/read":
                return web.Response(text=body, content_type="application/json")
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
    ],
    ids=["list", "null", "out-of-range", "strings", "short"],
)
async def test_a_malformed_modbus_read_answer_is_an_unread_serial_not_a_crash_or_a_mismatch(
        make_world: MakeWorld, body: str, said: str) -> None:
    """[21319] is "SG": read as the device's serial it made a mismatch of an answer cut
    short; the others stopped the whole plan with a TypeError or OverflowError."""
    world = await make_world(standard_site(1, check_serial=True) + standard_site(2),
                             before_start=modbus_read_answers(body))
    result, report = await world.apply()
    verify = next(c for c in result.plan.changes if c.address == "device/s1-inv[identity]")
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


async def test_direct_reads_of_one_device_address_keep_to_the_gateway_limits(
        make_world: MakeWorld) -> None:
    """Twelve units behind one Modbus address (a Modbus TCP gateway, or a dongle) were all
    connected to at once: many devices answer one client at a time, or refuse more."""
    units = range(1, 13)
    async with ModbusDeviceSimulator(
            [ModbusDevice(f"SG{u:04d}", unit_id=u) for u in units], slow_ms=50) as modbus:
        docs = [site("s1"), gateway("s1-zap", "s1", serial_of(1)),
                *(direct_inverter(f"inv{u}", "s1-zap", f"SG{u:04d}", modbus.port, unit=u)
                  for u in units)]
        world = await make_world(docs, env={"RECONCILER_GATEWAY_CONCURRENCY": "2",
                                            "RECONCILER_GATEWAY_RATE": "1000"})
        result = await world.plan()
    checked = [c for c in result.plan.changes if c.address.endswith("[identity]")]
    assert [c.before for c in checked] == [{"serial": f"SG{u:04d}"} for u in units]
    assert not any(c.blocked for c in checked)
    assert modbus.peak_reading == 2, "no more than RECONCILER_GATEWAY_CONCURRENCY at once"
