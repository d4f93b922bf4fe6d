"""The Modbus identity check (`verification.checkSerial`) end to end, on real simulators:
what a plan says and an apply does when the serial cannot be read, through the gateway's
/api/modbus/read or directly, and that a device whose serial was not read as its
`hardwareId` is never added nor provisioned."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from simworld import MakeWorld, cloud_devices, serial_of, standard_site

from reconciler.plan.actions import Action, Reason
from reconciler.sim.fleet import SimFleet


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
