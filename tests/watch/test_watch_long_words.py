"""An id a page long in the log of a real `reconciler watch`: a 5,000-character hardwareId
that the device does not report blocks its changes, and the text log shows it cut, as the
plan and `reconciler apply` show it (its start and its length), where the JSON log, for
machines, keeps the message whole. A serial a Zap reports, listed as unmanaged, is cut by
its own length, before its escapes are written."""

from __future__ import annotations

import json

import pytest
from agent_helpers import INVERTER, INVERTER_SN, ZAP_SERIAL, Spawn, World

pytestmark = pytest.mark.slow

LONG = 5_000


async def test_a_long_hardware_id_is_cut_in_the_text_log_not_in_the_json_log(
        world: World, spawn: Spawn) -> None:
    hardware_id = "SN" + "7" * (LONG - 2)
    world.edit(f"hardwareId: {INVERTER_SN}", f"hardwareId: {hardware_id}")
    address = f"device/{INVERTER}[identity]"
    said = f"the device reports serial {INVERTER_SN!r}, not hardwareId "
    text = await spawn("watch", "sites", "--interval", "60s", env=world.env, cwd=world.cwd)
    await text.wait_for(r"run=1 trigger=start .* result=failed")
    assert await text.terminate() == 0
    assert hardware_id not in text.text
    [line] = [line for line in text.out if f"! {address} verify blocked: " in line]
    cut = f"'{hardware_id[:200]}…'; ({LONG:,} characters)"
    assert f"{said}{cut} it is not" in line, line[-500:]
    assert max(map(len, text.out)) < 1_000, text.text[:2_000]

    # The plan's text, cut when it is rendered, is not cut again as lines of the log.
    plan = await spawn("watch", "sites", "--plan-only", "--interval", "60s", env=world.env,
                       cwd=world.cwd)
    await plan.wait_for(r"run=1 trigger=start .* result=")
    assert await plan.terminate() == 0
    [message, *_] = [line for line in plan.out if f"{said}'{hardware_id[:200]}" in line
                 and " ! " not in line]
    assert f"      {said}{cut} it is not" in message, message[-500:]
    assert "(201 characters)" not in plan.text, plan.text[:3_000]

    agent = await spawn("watch", "sites", "--interval", "60s", "--log-format", "json",
                        env=world.env, cwd=world.cwd)

    def blocked(line: str) -> bool:
        event = json.loads(line)
        return bool(event.get("address") == address and "message" in event)

    [line] = await agent.wait_for(blocked)
    assert await agent.terminate() == 0
    assert f"{said}{hardware_id!r}; it is not" in json.loads(line)["message"], line[-500:]


async def test_an_unmanaged_serial_is_cut_by_its_own_length_not_its_escapes(
        world: World, spawn: Spawn) -> None:
    """A serial a Zap reports with escape characters in it: one of 180 characters is listed
    whole, escaped, though escaped it is longer than a word may be; one of 5,000 is cut
    with its own length, not that of its escapes."""
    short = "SN" + "\x1b" * 30 + "7" * 148
    long = "SN" + "\x1b" * 30 + "8" * (LONG - 32)
    zap = world.sims.zaps[ZAP_SERIAL]
    for sn in (short, long):
        zap.install_device({"type": "p1_uart"}, sn=sn)
    agent = await spawn("watch", "sites", "--interval", "60s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=")
    assert await agent.terminate() == 0
    assert "\x1b" not in agent.text
    listed = [line.split("! unmanaged: ", 1)[1] for line in agent.out
              if "! unmanaged: " in line]
    meter = "energy_meter SN" + "\\x1b" * 30
    assert f"{meter}{'7' * 148} on gateway home-solna-zap is not declared" in listed, listed
    [cut] = [line for line in listed if "8" * 100 in line]
    assert cut.startswith(f"{meter}{'8' * 168}… ({LONG:,} characters) on gateway"), cut[:600]


async def test_a_plan_line_cut_and_escaped_is_not_cut_again_in_the_log(
        world: World, spawn: Spawn) -> None:
    """A serial of escape characters a Zap reports, in the message of its removal that
    `--plan-only --prune` logs: the plan cuts it, escapes it (four times as long), and the
    log shows that line as it is, with one ellipsis and the serial's own length."""
    sn = "SN" + "\x1b" * 300
    world.sims.zaps[ZAP_SERIAL].install_device({"type": "p1_uart"}, sn=sn)
    plan = await spawn("watch", "sites", "--plan-only", "--prune", "--interval", "60s",
                       env=world.env, cwd=world.cwd)
    await plan.wait_for(r"run=1 trigger=start .* result=")
    assert await plan.terminate() == 0
    assert "\x1b" not in plan.text
    [line] = [line for line in plan.out if "is not declared; removed (--prune)" in line]
    cut = "SN" + "\\x1b" * 198 + "… (302 characters)"
    assert f"      energy_meter {cut} on gateway home-solna-zap is not declared" in line, line
    assert line.count("…") == 1, line
