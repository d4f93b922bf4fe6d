"""An MQTT device declared with a `hardwareId` the Zap does not give it: the Zap names an
MQTT device after its broker and profile, so the device at that broker is on the Zap
already under its own serial, and adding the declared one is refused (409) on every
apply. The plan blocks the add before anything is written, naming the device there. (Two
Devices declaring one broker and profile are invalid: tests/model/test_fleet_rules.py.)
The CLI runs in this process against the simulators (`test_plan_apply.make_cli`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from simworld import Doc, mqtt_battery, standard_site
from test_plan_apply import CliFactory

make_cli = test_plan_apply.make_cli  # the fixture, shared

_BLOCKED = ("device/s1-bat[zap]: gateway s1-zap already has MQTT device 'FERRO1' ({whose}) "
            "at broker 192.168.1.70:1883 with profile ferroamp: the Zap names an MQTT device "
            "after its broker and profile, not after `hardwareId` 'FERRO-TYPO', and refuses "
            "(409) to add a second one there; nothing is added. {fix}")


def _fleet(hardware_id: str) -> list[Doc]:
    return [*standard_site(1), mqtt_battery("s1-bat", "s1-zap", hardware_id)]


def test_a_wrong_hardware_id_of_an_mqtt_device_blocks_its_add_naming_the_device_there(
        make_cli: CliFactory) -> None:
    run = make_cli(_fleet("FERRO1"))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(_fleet("FERRO-TYPO"))

    code, out, err = run("plan", run.path, "--no-color", "--detailed-exitcode")
    assert code == 1, out + err
    assert "+ device/s1-bat[zap] will be created  [BLOCKED]" in out, out
    said = _BLOCKED.format(
        whose="which no Device declares",
        fix="Correct `hardwareId` to 'FERRO1' if it is that device, or `connection.mqtt` "
            "if it is another",
    )
    assert f"error: {said}" in err.splitlines(), err

    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 1, out + err
    assert "Device already exists" not in out + err, out + err  # the Zap was not asked
    assert run.sims.call(run.sims.sims.writes) == 0

