"""A device to add at a connection endpoint that a device already on the Zap takes (the
same Modbus TCP address and unit, RS-485 unit id, the P1 UART, MQTT broker and profile):
the Zap refuses the add (409) on every apply. The plan blocks it before anything is
written, naming the device there, unless the same plan frees the endpoint first (the
device there pruned, or replaced at another endpoint), which the add then waits for, and is
deferred with while that change is. A host is one however its address, or the case of its
name, is written. (Two declared Devices at one endpoint are invalid:
tests/cli/test_validate.py.) The CLI runs in this process against the simulators
(`test_plan_apply.make_cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from simworld import Doc, device, mqtt_battery, serial_of, standard_site
from test_plan_apply import CliFactory

make_cli = test_plan_apply.make_cli  # the fixture, shared

_MQTT_BLOCKED = (
    "device/s1-bat[zap]: gateway s1-zap already has device 'FERRO1' ({whose}) at MQTT "
    "broker 192.168.1.70:1883 with profile ferroamp: the Zap names an MQTT device after its "
    "broker and profile, not after `hardwareId` 'FERRO-TYPO', and refuses (409) to add a "
    "second one there; nothing is added. {fix}"
)


def _zap_writes(run: Any) -> int:
    return int(run.sims.call(run.sims.sims.zaps[serial_of(1)].writes))


def _on_zap(run: Any) -> dict[str, dict[str, Any]]:
    """The devices on the Zap: serial -> connection."""
    zap = run.sims.sims.zaps[serial_of(1)]
    return run.sims.call(lambda: {sn: dict(d.connection) for sn, d in zap.devices.items()})


def _install(run: Any, body: dict[str, Any], sn: str) -> None:
    run.sims.call(run.sims.sims.zaps[serial_of(1)].install_device, body, sn=sn)


def rtu(name: str, hardware_id: str, unit: int) -> Doc:
    return device(name, "s1-zap", hardware_id, "inverter",
                  {"modbusRtu": {"unitId": unit, "profile": "sungrow"}},
                  [{"name": "pv", "type": "solar"}])


# -- MQTT: the Zap names the device ----------------------------------------------------------


def _mqtt_fleet(hardware_id: str) -> list[Doc]:
    return [*standard_site(1), mqtt_battery("s1-bat", "s1-zap", hardware_id)]


def test_a_wrong_hardware_id_of_an_mqtt_device_blocks_its_add_naming_the_device_there(
        make_cli: CliFactory) -> None:
    run = make_cli(_mqtt_fleet("FERRO1"))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(_mqtt_fleet("FERRO-TYPO"))

    code, out, err = run("plan", run.path, "--no-color", "--detailed-exitcode")
    assert code == 1, out + err
    assert "+ device/s1-bat[zap] will be created  [BLOCKED]" in out, out
    said = _MQTT_BLOCKED.format(
        whose="battery, which no Device declares on it",
        fix="Correct `hardwareId` to 'FERRO1' if it is that device; if it is another, change "
            "`connection.mqtt` of this one, or remove 'FERRO1' from the Zap (`apply --prune` "
            "removes what no Device declares)",
    )
    assert f"error: {said}" in err.splitlines(), err

    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 1, out + err
    assert "Device already exists" not in out + err, out + err  # the Zap was not asked
    assert run.sims.call(run.sims.sims.writes) == 0


# -- a device nobody declares at the endpoint ------------------------------------------------

_STRANGERS = {
    "s1-inv": ({"type": "modbus_tcp", "ip": "192.168.1.60", "port": 502, "unit_id": 1,
                "profile": "sungrow"},
               "inverter", "Modbus TCP 192.168.1.60:502 unit id 1", "connection.modbusTcp"),
    "s1-p1": ({"type": "p1_uart", "profile": "p1_meter"},
              "energy_meter", "the P1 UART", "connection.p1Uart"),
    "s1-rtu": ({"type": "modbus_rtu", "unit_id": 3, "profile": "sungrow"},
               "inverter", "RS-485 unit id 3", "connection.modbusRtu.unitId"),
}


@pytest.mark.parametrize("name", sorted(_STRANGERS))
def test_an_add_where_an_undeclared_device_is_blocked_and_waits_for_its_prune(
        make_cli: CliFactory, name: str) -> None:
    """Blocked, naming the device there, with no write to the Zap; with --prune, the
    add waits for the removal that frees the endpoint, and the apply converges."""
    fleet = [*standard_site(1), rtu("s1-rtu", "RTU0003", 3)]
    run = make_cli(fleet)
    run.rewrite([d for d in fleet if d["metadata"]["name"] != name])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    body, kind, endpoint, field = _STRANGERS[name]
    _install(run, body, "STRANGER")
    run.rewrite(fleet)

    code, out, err = run("plan", run.path, "--no-color")
    assert code == 1, out + err
    assert f"+ device/{name}[zap] will be created  [BLOCKED]" in out, out
    said = (
        f"device/{name}[zap]: gateway s1-zap already has device 'STRANGER' ({kind}, which no "
        f"Device declares on it) at {endpoint}: the Zap refuses (409) to add a second device "
        f"there; nothing is added. Correct `hardwareId` to 'STRANGER' if it is that device; "
        f"if it is another, change `{field}` of this one, or remove 'STRANGER' from the Zap "
        "(`apply --prune` removes what no Device declares)"
    )
    assert f"error: {said}" in err.splitlines(), err

    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 1, out + err
    assert _zap_writes(run) == 0

    code, out, err = run("plan", run.path, "--no-color", "--prune")
    assert code == 0, out + err
    assert (f"added once device/s1-zap.STRANGER[zap] frees {endpoint}" in out), out
    assert run("apply", run.path, "--auto-approve", "--prune")[0] == 0
    on_zap = _on_zap(run)
    assert "STRANGER" not in on_zap
    hardware_id = next(d["spec"]["hardwareId"] for d in fleet if d["metadata"]["name"] == name)
    assert hardware_id in on_zap, on_zap
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0


# -- declared devices moving between endpoints -----------------------------------------------


def test_an_add_waits_for_the_replace_that_moves_the_device_off_its_endpoint(
        make_cli: CliFactory) -> None:
    """RTU-B, on the Zap at unit 3, is declared at unit 4, and a new Device at unit 3: the
    add goes after RTU-B's replace (sent at once, it would be refused: 409)."""
    fleet = [*standard_site(1), rtu("s1-rtu-a", "RTU-A", 3), rtu("s1-rtu-b", "RTU-B", 4)]
    run = make_cli(fleet)  # the bus: RTU-A answers at unit 3, RTU-B at unit 4
    _install(run, {"type": "modbus_rtu", "unit_id": 3, "profile": "sungrow"}, "RTU-B")

    code, out, err = run("plan", run.path, "--no-color")
    assert code == 0, out + err
    assert "added once device/s1-rtu-b[zap] frees RS-485 unit id 3" in out, out
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    units = {sn: c["unit_id"] for sn, c in _on_zap(run).items() if sn.startswith("RTU")}
    assert units == {"RTU-A": 3, "RTU-B": 4}
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0


def test_two_devices_trading_endpoints_are_blocked_before_any_write(
        make_cli: CliFactory) -> None:
    """Each replace removes its device and adds it again while the other still holds the
    endpoint it wants: neither can go first."""
    fleet = [*standard_site(1), rtu("s1-rtu-a", "RTU-A", 4), rtu("s1-rtu-b", "RTU-B", 3)]
    run = make_cli(fleet)
    _install(run, {"type": "modbus_rtu", "unit_id": 3, "profile": "sungrow"}, "RTU-A")
    _install(run, {"type": "modbus_rtu", "unit_id": 4, "profile": "sungrow"}, "RTU-B")
    run.rewrite([d for d in fleet if not d["metadata"]["name"].startswith("s1-rtu")])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(fleet)

    code, out, err = run("plan", run.path, "--no-color")
    assert code == 1, out + err
    trade = ("the Zap cannot trade endpoints between devices (device/s1-rtu-a[zap], "
             "device/s1-rtu-b[zap] would each wait for the next to move away); nothing is "
             "changed. Move one of them to a free endpoint first, apply, then declare the "
             "endpoints wanted")
    lines = err.splitlines()
    assert f"error: device/s1-rtu-a[zap]: {trade}" in lines, err
    assert f"error: device/s1-rtu-b[zap]: {trade}" in lines, err
    run.sims.call(run.sims.sims.reset_counts)
    assert run("apply", run.path, "--auto-approve")[0] == 1
    assert _zap_writes(run) == 0


# -- hosts as written ------------------------------------------------------------------------


def tcp(name: str, hardware_id: str, host: str) -> Doc:
    return device(name, "s1-zap", hardware_id, "inverter",
                  {"modbusTcp": {"host": host, "profile": "sungrow"}},
                  [{"name": "pv", "type": "solar"}])


@pytest.mark.parametrize(("on_zap", "declared", "shown"), [
    ("0:0:0:0:0:0:0:1", "::1", "[::1]:502"),
    ("::ffff:192.168.1.61", "192.168.1.61", "192.168.1.61:502"),
    ("Inverter.LAN", "inverter.lan", "inverter.lan:502"),
], ids=["ipv6-forms", "ipv4-mapped", "name-case"])
def test_one_host_written_two_ways_is_one_endpoint(
        make_cli: CliFactory, on_zap: str, declared: str, shown: str) -> None:
    """A device on the Zap at an address (or name) written otherwise than the declared
    one is at the same endpoint: the add is blocked, naming it, with no write."""
    fleet = [*standard_site(1), tcp("s1-new", "SG-NEW", declared)]
    run = make_cli(fleet)
    run.rewrite(standard_site(1))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    _install(run, {"type": "modbus_tcp", "ip": on_zap, "port": 502, "unit_id": 1,
                   "profile": "sungrow"}, "STRANGER")
    run.rewrite(fleet)

    code, out, err = run("plan", run.path, "--no-color")
    assert code == 1, out + err
    assert "+ device/s1-new[zap] will be created  [BLOCKED]" in out, out
    assert (f"error: device/s1-new[zap]: gateway s1-zap already has device 'STRANGER' "
            f"(inverter, which no Device declares on it) at Modbus TCP {shown} unit id 1: "
            "the Zap refuses (409)") in err, err
    run.sims.call(run.sims.sims.reset_counts)
    assert run("apply", run.path, "--auto-approve")[0] == 1
    assert _zap_writes(run) == 0


@pytest.mark.parametrize(("applied", "declared"), [
    ("Inverter-7.LAN", "inverter-7.lan"),
    ("::1", "0:0:0:0:0:0:0:1"),
])
def test_a_host_written_another_way_is_not_drift(
        make_cli: CliFactory, applied: str, declared: str) -> None:
    """A device added at a host, then declared at the same host written otherwise: no
    change. The Zap cannot change a connection, so a difference would remove the device
    and add it again."""
    run = make_cli([*standard_site(1), tcp("s1-new", "SG-NEW", applied)])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite([*standard_site(1), tcp("s1-new", "SG-NEW", declared)])

    code, out, err = run("plan", run.path, "--no-color", "--detailed-exitcode")
    assert code == 0, out + err
    assert _on_zap(run)["SG-NEW"]["ip"] == applied

    run.rewrite([*standard_site(1), tcp("s1-new", "SG-NEW", "192.168.1.99")])
    code, out, err = run("plan", run.path, "--no-color", "--detailed-exitcode")
    assert code == 2, out + err
    assert "-/+ device/s1-new[zap] will be replaced" in out, out


# -- the removal that frees the endpoint waits -----------------------------------------------

_OTHER = serial_of(2)
_COPY = "device/s1-zap.RTU-A[zap]"


def _moved(to: str) -> list[Doc]:
    """RTU-A behind gateway `to` (s1-zap, or s2-zap at another site), and on s1-zap a new
    device at the unit id RTU-A had there once it moved."""
    docs = [*standard_site(1), *standard_site(2), rtu("s1-rtu-a", "RTU-A", 3)]
    docs[-1]["spec"]["gatewayRef"] = to
    return docs + ([rtu("s1-rtu-new", "RTU-NEW", 3)] if to != "s1-zap" else [])


def test_an_add_waiting_for_a_deferred_removal_is_deferred_naming_it(
        make_cli: CliFactory) -> None:
    """RTU-A moves to s2-zap, which is offline: the copy on s1-zap stays (removed only
    once the device is on s2-zap), so the new device at its unit id waits too, its
    add deferred naming that removal, instead of being sent to be refused (409)."""
    run = make_cli(_moved("s1-zap"))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(_moved("s2-zap"))
    run.sims.run(lambda: run.sims.sims.zaps[_OTHER].set_offline("refuse"))

    code, out, err = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out + err
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    assert changes[_COPY]["actions"] == ["defer"], changes[_COPY]
    add = changes["device/s1-rtu-new[zap]"]
    assert (add["actions"], add["deferred_actions"]) == (["defer"], ["create"]), add
    assert add["message"] == (
        f"would create; deferred: added once {_COPY} frees RS-485 unit id 3, and {_COPY} is "
        "deferred"
    ), add
    cloud = changes["device/s1-rtu-new[novacore]"]
    assert cloud["actions"] == ["defer"], cloud

    run.sims.call(run.sims.sims.reset_counts)
    run("apply", run.path, "--prune", "--auto-approve")
    assert _zap_writes(run) == 0
    assert set(_on_zap(run)) >= {"RTU-A"}

    run.sims.run(lambda: run.sims.sims.zaps[_OTHER].set_offline("online"))
    code, out, err = run("plan", run.path, "--prune", "--no-color")
    assert code == 0, out + err
    assert f"added once {_COPY} frees RS-485 unit id 3" in out, out
