"""The config files Enapter devices declare (`configOutput.file`), against the Enapter
simulator on loopback, through the CLI in a subprocess and the engine: which paths are
refused, and where (file, line, field), and what the generated schemas say of them; the
file written for a device that --prune deletes is removed after the delete, said by the
plan and the apply report (text and JSON), as is the one written before for a device whose
file moved elsewhere (updated, or deleted and provisioned again) or whose configOutput
names no file any more, and a file the reconciler did not write, or that is no longer the
one it wrote, is left alone; a file that could not be removed (the file immutable, or its
directory not to be looked into) is removed by the next apply, its failure reported as worth
trying again, and one left by an apply
killed between a --prune delete and its removal by the next --prune (by the next apply
for a replace's delete); a file recorded as
written for another device is not a device's config; an apply killed right after it
renamed a config file into place leaves it recorded, for a later --prune to remove, and one
killed right before leaves the record of the file there; the temporary file of one killed
as it wrote it is removed by the next apply, and so are those with no record (of a run
with another state directory, or older versions' names), which a plan names and leaves;
one it did not write, or that a running apply writes (holding its lock), is left alone."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from enapter_world import (
    MASTER,
    SLAVE,
    UCM,
    UCM_MQTT,
    MakeWorld,
    World,
    device,
    failures,
    fleet_of,
    renderings,
    site_and_gateway,
)
from killed_writes import KILLED_AT_A_RENAME
from unremovable import unremovable

from reconciler.engine import enapter_files
from reconciler.engine.reconcile import PlanResult, Reconciler
from reconciler.engine.state import write_temporary
from reconciler.plan.actions import Action, Change
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions


def _ucm_writing_to(file: str) -> str:
    return site_and_gateway() + device(
        "lab-ucm", f"{{kind: ucm, configOutput: {{file: '{file}'}}}}", hardware=UCM)


async def _cli(world: World, *args: str) -> tuple[int, str]:
    """`reconciler ARGS...` in a subprocess with the world's settings: its exit code and
    everything it printed."""
    code, stdout, stderr = await _cli_streams(world, *args)
    return code, stdout + stderr


async def _cli_streams(world: World, *args: str,
                       preexec_fn: Callable[[], None] | None = None) -> tuple[int, str, str]:
    """`reconciler ARGS...` as `_cli` runs it: its exit code, stdout and stderr apart.
    `preexec_fn` runs in the child before it starts (see `_unsearchable`)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", *args,
        env={**os.environ, **world.env()}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=preexec_fn)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _outcome(report: dict[str, Any], address: str) -> dict[str, Any]:
    """The outcome of `address` in a JSON apply report."""
    return next(o for o in report["outcomes"] if o["address"] == address)


def _write_fleet(directory: Path, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "lab.yaml").write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize("file", ["~nouser/x", "~/x", "~root/x"])
async def test_a_config_file_starting_with_a_tilde_is_refused_at_the_field(
        make_world: MakeWorld, tmp_path: Path, file: str) -> None:
    world = await make_world(_ucm_writing_to("cfg/ucm.json"))
    text = _ucm_writing_to(file)
    fleet_dir = _write_fleet(tmp_path / "fleet", text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if file in row)
    column = text.splitlines()[line - 1].index(f"'{file}'") + 1
    where = f"lab.yaml:{line}:{column}: spec.enapter.configOutput.file: "
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        code, output = await _cli(world, *command, str(fleet_dir))
        assert code == 1, output
        assert "Traceback" not in output
        assert f"{where}file {file!r} starts with '~', which is not expanded" in output, output
        assert "give an absolute path" in output
    assert world.sims.enapter.writes() == 0
    assert not list(world.tmp.rglob("x"))


async def test_a_config_file_naming_a_fifo_or_device_is_not_written_over(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """Renamed over it, the config (credentials, 0600) would take the place of a FIFO, or of
    a device such as /dev/null when the reconciler runs as root: the device is not asked
    for a config, and the FIFO is left as it was."""
    fifo = tmp_path / "ucm.fifo"
    os.mkfifo(fifo)
    world = await make_world(_ucm_writing_to(str(fifo)))
    fleet_dir = _write_fleet(tmp_path / "fleet", _ucm_writing_to(str(fifo)))
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve")
    assert code == 1, output
    assert (f"cannot write the communication config to {fifo}: it is not a regular file (a "
            "FIFO, socket or device); name a file in configOutput.file; Enapter Cloud was "
            "not asked for a config") in output, output
    assert fifo.is_fifo()


# -- removal of the config file of a deleted device ---------------------------------------------


def _two_ucms(ucm_file: str = "cfg/ucm.json", mqtt_file: str = "cfg/mqtt.json") -> str:
    return _ucm_writing_to(ucm_file) + device(
        "lab-ucm-mqtt", f"{{kind: ucm, protocol: MQTT, configOutput: {{file: '{mqtt_file}'}}}}",
        hardware=UCM_MQTT)


def _without_the_ucm(mqtt_file: str = "cfg/mqtt.json") -> str:
    return site_and_gateway() + device(
        "lab-ucm-mqtt", f"{{kind: ucm, protocol: MQTT, configOutput: {{file: '{mqtt_file}'}}}}",
        hardware=UCM_MQTT)


def _delete_of(result: PlanResult, device_id: str) -> Change:
    return next(c for c in result.plan.pending
                if c.action is Action.DELETE and c.external_id == device_id)


async def test_prune_removes_the_config_file_it_wrote_for_a_deleted_device(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_two_ucms())
    fleet_dir = _write_fleet(tmp_path / "fleet", _two_ucms())
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve")
    assert code == 0, output
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    mqtt_file = world.state_dir / "cfg" / "mqtt.json"
    assert ucm_file.is_file() and mqtt_file.is_file()
    hand_made = world.state_dir / "cfg" / "notes.json"  # in the same directory, not written by it
    hand_made.write_text("{}")
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id

    _write_fleet(fleet_dir, _without_the_ucm())
    code, output = await _cli(world, "plan", str(fleet_dir), "--prune", "--no-color")
    assert code == 0, output
    said = f"then {ucm_file}, the config file an earlier apply wrote for it, is removed"
    assert said in output, output
    assert str(mqtt_file) not in output and "notes.json" not in output
    code, output = await _cli(world, "plan", str(fleet_dir), "--prune", "-o", "json")
    assert said in output
    assert ucm_file.is_file()  # a plan removes nothing

    address = _delete_of(await world.plan(fleet_of(_without_the_ucm()), prune=True),
                         ucm_id).address
    code, stdout, stderr = await _cli_streams(world, "apply", str(fleet_dir), "--prune",
                                              "--auto-approve", "-o", "json")
    assert code == 0, stdout + stderr
    # The JSON report alone, on stdout: the progress lines on stderr say it too.
    detail = _outcome(json.loads(stdout), address)["detail"]
    assert detail == {"id": ucm_id, "config_file": f"removed {ucm_file}"}, stdout
    assert world.sims.enapter.by_hardware_id(UCM) is None
    assert not ucm_file.exists()
    assert mqtt_file.is_file() and hand_made.read_text() == "{}"
    assert ucm_id not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(fleet_dir), "--prune", "--detailed-exitcode")
    assert code == 0, output


async def test_a_failed_delete_keeps_the_config_file_and_a_later_one_removes_it(
        make_world: MakeWorld) -> None:
    world = await make_world(_two_ucms())
    await world.converge()
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    smaller = fleet_of(_without_the_ucm())
    async with Reconciler(smaller, world.settings()) as reconciler:
        result = await reconciler.plan(PlanOptions(audience=Audience.CLI, prune=True))
        assert "is removed" in _delete_of(result, ucm_id).message
        # Since the plan, someone started a Lua device on the UCM: Enapter refuses the delete.
        async with httpx.AsyncClient(base_url=world.sims.enapter.url, headers={
                "X-Enapter-Auth-Token": world.sims.enapter_token}) as api:
            answer = await api.post("/v3/provisioning/lua_device", json={
                "runtime_id": ucm_id, "blueprint_id": "bp-gas-1", "name": "Gas sensor",
                "slug": "gas-1"})
            lua_id = answer.json()["device_id"]
        report = await reconciler.apply(result)
    assert [f["address"] for f in failures(report)] == [_delete_of(result, ucm_id).address]
    assert ucm_file.is_file()
    assert world.sims.enapter.by_hardware_id(UCM) is not None

    async with httpx.AsyncClient(base_url=world.sims.enapter.url, headers={
            "X-Enapter-Auth-Token": world.sims.enapter_token}) as api:
        assert (await api.delete(f"/v3/devices/{lua_id}")).status_code < 300
    result, report = await world.apply(smaller, prune=True)
    assert report.ok, report.as_dict()
    assert not ucm_file.exists()


async def _killed_once_the_ucm_is_deleted(world: World, fleet_dir: Path,
                                         hardware_id: str = UCM) -> None:
    """`reconciler apply FLEET_DIR --prune` in a subprocess, killed once its delete of the
    UCM (or the device of `hardware_id`) took effect in Enapter Cloud, before its answer
    came back."""
    # The delete takes effect at once; its answer would come much later.
    world.sims.enapter.faults.answer_delay_ms = 30_000
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", "apply", str(fleet_dir), "--prune",
        "--auto-approve", env={**os.environ, **world.env()},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(30):
            while world.sims.enapter.by_hardware_id(hardware_id) is not None:  # deleted
                assert process.returncode is None, "the apply ended before its delete"
                await asyncio.sleep(0.01)
    finally:
        process.kill()
        await process.wait()
    world.sims.enapter.faults.answer_delay_ms = 0


async def test_an_apply_killed_once_the_delete_took_effect_leaves_the_file_to_the_next_prune(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_two_ucms())
    await world.converge()
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    fleet_dir = _write_fleet(tmp_path / "fleet", _without_the_ucm())
    await _killed_once_the_ucm_is_deleted(world, fleet_dir)
    assert ucm_file.is_file(), "killed before it removed the file"

    code, output = await _cli(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, output
    gone = (f"Enapter device {ucm_id} of site lab is gone: an apply deleted it and stopped "
            f"before it removed {ucm_file}, the config file written for it")
    assert f"{gone} (--prune removes it)" in output, output
    code, output = await _cli(world, "apply", str(fleet_dir), "--prune", "--auto-approve",
                              "--no-color")
    assert code == 0, output
    assert f"{gone}; removed (--prune)" in output, output
    assert f"removed {ucm_file}" in output
    assert not ucm_file.exists()
    assert (world.state_dir / "cfg" / "mqtt.json").is_file()
    assert ucm_id not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(fleet_dir), "--prune", "--detailed-exitcode")
    assert code == 0, output


async def test_a_config_file_it_did_not_write_or_no_longer_owns_is_never_removed(
        make_world: MakeWorld) -> None:
    world = await make_world(_two_ucms())
    # The UCM is provisioned with no configOutput; its config is then put in place by hand,
    # and the file declared: the reconciler sees a config there and writes none.
    await world.converge(fleet_of(site_and_gateway() + device(
        "lab-ucm", "{kind: ucm}", hardware=UCM) + _without_the_ucm()[len(site_and_gateway()):]))
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    ucm_file.write_text("installed by hand")
    await world.converge()
    assert ucm_file.read_text() == "installed by hand"
    mqtt_file = world.state_dir / "cfg" / "mqtt.json"
    assert mqtt_file.is_file()
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    mqtt_id = world.sims.enapter.by_hardware_id(UCM_MQTT).id

    result = await world.plan(fleet_of(site_and_gateway()), prune=True)
    assert "config file" not in _delete_of(result, ucm_id).message
    assert f"then {mqtt_file}" in _delete_of(result, mqtt_id).message

    # Written by the reconciler, then replaced by someone: no longer the file it wrote.
    mqtt_file.write_text("someone else's")
    result = await world.plan(fleet_of(site_and_gateway()), prune=True)
    assert "config file" not in renderings(result)
    _, report = await world.apply(fleet_of(site_and_gateway()), prune=True)
    assert report.ok, report.as_dict()
    assert world.sims.enapter.by_hardware_id(UCM) is None
    assert world.sims.enapter.by_hardware_id(UCM_MQTT) is None
    assert ucm_file.read_text() == "installed by hand"
    assert mqtt_file.read_text() == "someone else's"


async def test_a_config_file_a_declared_device_names_is_kept(make_world: MakeWorld) -> None:
    world = await make_world(_two_ucms())
    await world.converge()
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    # The UCM is removed, and the other device now names its file: the delete leaves it,
    # and the other device's config is written there (it held the UCM's).
    taking_over = fleet_of(_without_the_ucm(mqtt_file="cfg/ucm.json"))
    result = await world.plan(taking_over, prune=True)
    assert "config file" not in _delete_of(result, ucm_id).message
    _, report = await world.apply(taking_over, prune=True)
    assert report.ok, report.as_dict()
    assert world.sims.enapter.by_hardware_id(UCM) is None
    assert _protocol_in(ucm_file) == "MQTT"


# -- what the schemas say of configOutput.file ----------------------------------------------------


async def test_the_schemas_say_how_a_config_file_path_is_taken(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(site_and_gateway())
    code, output = await _cli(world, "schema")
    assert code == 0, output
    schema = json.loads(output)
    output_model = schema["$defs"]["ConfigOutput"]
    described = [output_model["properties"]["file"]["description"]]
    code, output = await _cli(world, "crds", "--out", str(tmp_path / "crds"))
    assert code == 0, output
    crd = yaml.safe_load((tmp_path / "crds" / "devices.energy.reconciler.dev.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    enapter = spec["properties"]["enapter"]["properties"]
    described.append(enapter["configOutput"]["properties"]["file"]["description"])
    for description in described:
        assert "a path starting with `~` is refused, not expanded" in description
        assert "relative path is taken under the state directory" in description
        assert "absolute path as given" in description


async def test_the_text_apply_report_says_the_config_file_was_removed(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_two_ucms())
    await world.converge()
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    fleet_dir = _write_fleet(tmp_path / "fleet", _without_the_ucm())
    address = _delete_of(await world.plan(fleet_of(_without_the_ucm()), prune=True),
                         ucm_id).address
    code, output = await _cli(world, "apply", str(fleet_dir), "--prune", "--auto-approve",
                              "--no-color")
    assert code == 0, output
    done = [line for line in output.splitlines() if f"✓ {address} delete" in line]
    assert len(done) == 1, output
    assert done[0].endswith(f"✓ {address} delete: removed {ucm_file}"), output
    assert not ucm_file.exists()


# -- a device's config file moved to another path -------------------------------------------------


def _update_of(result: PlanResult, device_id: str) -> Change:
    return next(c for c in result.plan.pending
                if c.action is Action.UPDATE and c.external_id == device_id)


async def test_a_config_file_moved_elsewhere_removes_the_one_written_before(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_ucm_writing_to("cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    b_file = world.state_dir / "cfg" / "b.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    written_before = a_file.read_text()

    fleet_dir = _write_fleet(tmp_path / "fleet", _ucm_writing_to("cfg/b.json"))
    code, output = await _cli(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, output
    said = (f"once it is written, {a_file}, the file an earlier apply wrote its config to, "
            "is removed")
    assert said in output, output
    assert f"the config file {b_file} is missing" in output
    assert a_file.read_text() == written_before  # a plan removes nothing

    address = _update_of(await world.plan(fleet_of(_ucm_writing_to("cfg/b.json"))),
                         ucm_id).address
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    assert f"✓ {address} update: removed {a_file}" in output, output
    assert not a_file.exists()
    assert b_file.is_file() and b_file.read_text() != written_before
    inventory = (world.state_dir / "inventory.json").read_text()
    assert str(b_file) in inventory and str(a_file) not in inventory
    code, output = await _cli(world, "plan", str(fleet_dir), "--detailed-exitcode")
    assert code == 0, output

    # Moved back, the file is removed in turn; the JSON report says so too.
    _write_fleet(fleet_dir, _ucm_writing_to("cfg/a.json"))
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "-o", "json")
    assert code == 0, output
    report, _ = json.JSONDecoder().raw_decode(output, output.index('{\n  "ok"'))
    detail = next(o["detail"] for o in report["outcomes"] if o["address"] == address)
    assert detail == {"id": ucm_id, "config": f"written to {a_file}",
                      "config_file": f"removed {b_file}"}
    assert a_file.is_file() and not b_file.exists()


async def test_a_config_file_moved_elsewhere_leaves_one_changed_since_alone(
        make_world: MakeWorld) -> None:
    world = await make_world(_ucm_writing_to("cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    a_file.write_text("edited by hand")
    moved = fleet_of(_ucm_writing_to("cfg/b.json"))
    result = await world.plan(moved)
    assert "a.json" not in renderings(result)
    _, report = await world.apply(moved)
    assert report.ok, report.as_dict()
    [outcome] = [o for o in report.outcomes if o.action == "update"]
    assert outcome.detail["config_file"] == f"left {a_file} alone: it changed since it was written"
    assert a_file.read_text() == "edited by hand"
    assert (world.state_dir / "cfg" / "b.json").is_file()


# -- a config file written for another device -----------------------------------------------------


def _protocol_in(path: Path) -> str:
    return str(json.loads(path.read_text())["mqtt_protocol"])


async def test_a_config_file_written_for_another_device_is_not_this_ones(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_two_ucms())
    await world.converge()
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    mqtt_file = world.state_dir / "cfg" / "mqtt.json"
    assert (_protocol_in(ucm_file), _protocol_in(mqtt_file)) == ("MQTTS", "MQTT")
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    mqtt_id = world.sims.enapter.by_hardware_id(UCM_MQTT).id

    # Each device now names the other's file, which holds the other's config.
    swapped = _two_ucms(ucm_file="cfg/mqtt.json", mqtt_file="cfg/ucm.json")
    fleet_dir = _write_fleet(tmp_path / "fleet", swapped)
    code, output = await _cli(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, output
    for path, other in ((mqtt_file, mqtt_id), (ucm_file, ucm_id)):
        said = (f"the config file {path} holds the communication config an earlier apply "
                f"wrote for another Enapter device ({other}), not this one's: a new "
                "communication config is generated and written there")
        assert said in output, output
    assert "is removed" not in output  # each file is the other Device's config now

    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    assert (_protocol_in(ucm_file), _protocol_in(mqtt_file)) == ("MQTT", "MQTTS")
    code, output = await _cli(world, "plan", str(fleet_dir), "--detailed-exitcode")
    assert code == 0, output


async def test_a_config_file_written_for_a_device_deleted_since_is_not_this_ones(
        make_world: MakeWorld) -> None:
    world = await make_world(_two_ucms())
    await world.converge()
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    mqtt_file = world.state_dir / "cfg" / "mqtt.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    mqtt_id = world.sims.enapter.by_hardware_id(UCM_MQTT).id
    # The UCM is deleted in Enapter Cloud, not by the reconciler: its file stays, and the
    # MQTT device is pointed at it.
    async with httpx.AsyncClient(base_url=world.sims.enapter.url, headers={
            "X-Enapter-Auth-Token": world.sims.enapter_token}) as api:
        assert (await api.delete(f"/v3/devices/{ucm_id}")).status_code < 300
    taking_over = fleet_of(_without_the_ucm(mqtt_file="cfg/ucm.json"))
    result = await world.plan(taking_over)
    message = _update_of(result, mqtt_id).message
    assert f"another Enapter device ({ucm_id}), not this one's" in message
    assert f"once it is written, {mqtt_file}" in message  # its own, named by no Device now
    _, report = await world.apply(taking_over)
    assert report.ok, report.as_dict()
    assert _protocol_in(ucm_file) == "MQTT"
    assert not mqtt_file.exists()
    assert not (await world.plan(taking_over)).plan.has_changes


# -- a device whose configOutput names no file any more -------------------------------------------


def _ucm_with_output(output: str) -> str:
    return site_and_gateway() + device("lab-ucm", f"{{kind: ucm{output}}}", hardware=UCM)


async def test_a_config_output_switched_away_from_a_file_removes_the_one_written(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_ucm_writing_to("cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    said = (f"its configOutput names no file now: {a_file}, the config file an earlier "
            "apply wrote for it, is removed")

    # To a Secret: the CLI writes none, and the file holds credentials all the same.
    to_secret = _ucm_with_output(", configOutput: {secretName: ucm-config}")
    fleet_dir = _write_fleet(tmp_path / "fleet", to_secret)
    code, output = await _cli(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, output
    assert said in output, output
    assert f'- written_config_file = "{a_file}"' in output, output
    assert a_file.is_file()  # a plan removes nothing
    address = _update_of(await world.plan(fleet_of(to_secret)), ucm_id).address
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    assert f"✓ {address} update: removed {a_file}" in output, output
    assert not a_file.exists()
    assert str(a_file) not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(fleet_dir), "--detailed-exitcode")
    assert code == 0, output

    # No configOutput at all: the same.
    await world.converge()
    assert a_file.is_file()
    dropped = fleet_of(_ucm_with_output(""))
    assert said in _update_of(await world.plan(dropped), ucm_id).message
    _, report = await world.apply(dropped)
    assert report.ok, report.as_dict()
    [outcome] = [o for o in report.outcomes if o.address == address]
    assert outcome.detail == {"id": ucm_id, "config_file": f"removed {a_file}"}
    assert not a_file.exists()
    assert not (await world.plan(dropped)).plan.has_changes

    # One changed since it was written is not the reconciler's to remove.
    await world.converge()
    a_file.write_text("edited by hand")
    assert not (await world.plan(dropped)).plan.has_changes
    await world.converge(dropped)
    assert a_file.read_text() == "edited by hand"


# -- a config file that could not be removed ------------------------------------------------------


def _without_permission_checks_bypassed() -> None:
    """In a child about to run the CLI as root: drop the capabilities that let root look
    into any directory (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that a directory's
    mode stops it as it stops anyone else."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(99)


@contextlib.contextmanager
def _unsearchable(directory: Path) -> Iterator[Callable[[], None] | None]:
    """`directory` cannot be looked into inside the block (mode 000) by a CLI run with the
    `preexec_fn` yielded (None: nothing needed, not root)."""
    mode = directory.stat().st_mode
    directory.chmod(0)
    try:
        yield _without_permission_checks_bypassed if os.geteuid() == 0 else None
    finally:
        directory.chmod(mode)


async def test_a_config_file_whose_directory_cannot_be_looked_into_is_removed_by_the_next_prune(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_two_ucms(ucm_file="ucm/ucm.json"))
    await world.converge()
    ucm_file = world.state_dir / "ucm" / "ucm.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    fleet_dir = _write_fleet(tmp_path / "fleet", _without_the_ucm())
    with _unsearchable(ucm_file.parent) as restricted:
        code, out, err = await _cli_streams(world, "plan", str(fleet_dir), "--prune",
                                            "--no-color", preexec_fn=restricted)
        if code == 99:
            pytest.skip("running as root without CAP_SETPCAP: no way to be denied")
        assert code == 0, out + err
        said = f"then {ucm_file}, the config file an earlier apply wrote for it, is removed"
        assert said in out, out
        code, out, err = await _cli_streams(world, "apply", str(fleet_dir), "--prune",
                                            "--auto-approve", "--no-color",
                                            preexec_fn=restricted)
    # The device is gone; the file is not, and is not taken for gone: its record stays.
    assert code == 1, out + err
    assert (f"the device is deleted in Enapter Cloud, but its config file {ucm_file} could "
            "not be removed: Permission denied") in out + err, out + err
    assert "next apply with --prune tries again" in out + err
    assert "gone already" not in out + err
    assert world.sims.enapter.by_hardware_id(UCM) is None
    assert ucm_file.is_file()
    assert str(ucm_file) in (world.state_dir / "inventory.json").read_text()

    code, output = await _cli(world, "apply", str(fleet_dir), "--prune", "--auto-approve",
                              "--no-color")
    assert code == 0, output
    assert f"removed {ucm_file}" in output, output
    assert not ucm_file.exists() and (world.state_dir / "cfg" / "mqtt.json").is_file()
    assert ucm_id not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(fleet_dir), "--prune", "--detailed-exitcode")
    assert code == 0, output


async def test_a_config_file_moved_elsewhere_whose_removal_failed_is_removed_by_the_next_apply(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_ucm_writing_to("cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    b_file = world.state_dir / "keys" / "b.json"  # another directory: it can be written
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    moved = fleet_of(_ucm_writing_to("keys/b.json"))
    with unremovable(a_file):
        _, report = await world.apply(moved)
    [failed] = failures(report)
    assert f"{a_file} could not be removed" in failed["message"], failed
    assert "the next apply tries again" in failed["message"]
    assert a_file.is_file() and b_file.is_file()
    inventory = (world.state_dir / "inventory.json").read_text()
    assert str(a_file) in inventory and str(b_file) in inventory

    # The next plan removes it, as an update of the device; b.json is its config.
    fleet_dir = _write_fleet(tmp_path / "fleet", _ucm_writing_to("keys/b.json"))
    code, output = await _cli(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, output
    said = (f"its configOutput.file names {b_file} now: {a_file}, the config file an earlier "
            "apply wrote for it, is removed")
    assert said in output, output
    assert "missing" not in output and "generate" not in output
    address = _update_of(await world.plan(moved), ucm_id).address
    written = b_file.read_text()
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    assert f"✓ {address} update: removed {a_file}" in output, output
    assert not a_file.exists() and b_file.read_text() == written
    code, output = await _cli(world, "plan", str(fleet_dir), "--detailed-exitcode")
    assert code == 0, output

    # Removed by a prune in turn, as the file of the deleted device.
    _, report = await world.apply(fleet_of(site_and_gateway()), prune=True)
    assert report.ok, report.as_dict()
    assert not b_file.exists()


@pytest.mark.parametrize(("audience", "again"), [
    (Audience.CLI, "the next apply tries again"),
    (Audience.OPERATOR, "the next reconcile tries again"),
])
async def test_a_config_file_whose_removal_failed_says_who_tries_again_to_its_audience(
        make_world: MakeWorld, audience: Audience, again: str) -> None:
    """The operator's user is told that its next reconcile removes it, not an apply, which
    the operator runs none of; the CLI's as before."""
    world = await make_world(_ucm_writing_to("cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    with unremovable(a_file):
        _, report = await world.apply(fleet_of(_ucm_writing_to("keys/b.json")),
                                      audience=audience)
    [failed] = failures(report)
    assert f"{a_file} could not be removed" in failed["message"], failed
    assert failed["message"].endswith(
        f"it holds the device's credentials: remove it (or {again})"), failed


async def test_an_apply_killed_once_the_delete_took_effect_leaves_every_file_of_the_device(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_ucm_writing_to("cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    b_file = world.state_dir / "keys" / "b.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    with unremovable(a_file):  # the device has two files: a.json is left over
        _, report = await world.apply(fleet_of(_ucm_writing_to("keys/b.json")))
    assert failures(report) and a_file.is_file() and b_file.is_file()
    fleet_dir = _write_fleet(tmp_path / "fleet", site_and_gateway())
    await _killed_once_the_ucm_is_deleted(world, fleet_dir)
    assert a_file.is_file() and b_file.is_file(), "killed before it removed the files"

    code, output = await _cli(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, output
    gone = (f"Enapter device {ucm_id} of site lab is gone: an apply deleted it and stopped "
            f"before it removed {a_file} and {b_file}, the config files written for it")
    assert f"{gone} (--prune removes it)" in output, output
    code, output = await _cli(world, "apply", str(fleet_dir), "--prune", "--auto-approve",
                              "--no-color")
    assert code == 0, output
    assert f"removed {a_file}; removed {b_file}" in output, output
    assert not a_file.exists() and not b_file.exists()
    assert ucm_id not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(fleet_dir), "--prune", "--detailed-exitcode")
    assert code == 0, output


async def test_records_kept_by_device_id_as_earlier_versions_wrote_them_are_read(
        make_world: MakeWorld) -> None:
    world = await make_world(_two_ucms())
    await world.converge()
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    inventory_file = world.state_dir / "inventory.json"
    inventory = json.loads(inventory_file.read_text())
    # Before a device could have several, a record was keyed by its device's id.
    inventory["enapter_config_files"] = {
        file.pop("device_id"): file for file in inventory["enapter_config_files"].values()}
    inventory_file.write_text(json.dumps(inventory))
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    result = await world.plan(fleet_of(_without_the_ucm()), prune=True)
    assert f"then {ucm_file}, the config file" in _delete_of(result, ucm_id).message
    _, report = await world.apply(fleet_of(_without_the_ucm()), prune=True)
    assert report.ok, report.as_dict()
    assert not ucm_file.exists()
    assert not (await world.plan(fleet_of(_without_the_ucm()), prune=True)).plan.has_changes


# -- a device provisioned again (replaced) whose config file moved --------------------------------

MASTER_2 = "LM0000000000000000000000000000002"


def _slave_on(master: str, file: str) -> str:
    return (site_and_gateway()
            + device("lab-link", "{kind: link_master}", hardware=MASTER, gateway=True)
            + device("lab-link-2", "{kind: link_master}", hardware=MASTER_2, gateway=True)
            + device("lab-slave", f"{{kind: link_slave, masterRef: {master}, "
                                  f"configOutput: {{file: '{file}'}}}}",
                     hardware=SLAVE, gateway=True))


async def test_a_device_replaced_with_its_config_file_moved_removes_the_one_written_before(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_slave_on("lab-link", "cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    b_file = world.state_dir / "cfg" / "b.json"
    old_id = world.sims.enapter.by_hardware_id(SLAVE).id
    assert a_file.is_file()

    moved = _slave_on("lab-link-2", "cfg/b.json")
    [replace] = [c for c in (await world.plan(fleet_of(moved))).plan.pending
                 if c.external_id == old_id]
    assert replace.action is Action.REPLACE
    said = (f"once it is provisioned again, {a_file}, the config file an earlier apply wrote "
            "for the device it replaces, is removed")
    assert said in replace.message, replace.message
    fleet_dir = _write_fleet(tmp_path / "fleet", moved)
    code, stdout, stderr = await _cli_streams(world, "apply", str(fleet_dir), "--auto-approve",
                                              "-o", "json")
    assert code == 0, stdout + stderr
    new_id = world.sims.enapter.by_hardware_id(SLAVE).id
    assert new_id != old_id
    detail = _outcome(json.loads(stdout), replace.address)["detail"]
    assert detail["config_file"] == f"removed {a_file}", detail
    assert b_file.is_file() and not a_file.exists()
    inventory = (world.state_dir / "inventory.json").read_text()
    assert old_id not in inventory and str(a_file) not in inventory
    assert not (await world.plan(fleet_of(moved))).plan.has_changes

    # Removed by a prune in turn, as the file of the deleted device.
    _, report = await world.apply(fleet_of(site_and_gateway()), prune=True)
    assert report.ok, report.as_dict()
    assert not b_file.exists()


async def test_a_replace_whose_old_config_file_cannot_be_removed_leaves_it_to_the_next_apply(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """The device provisioned again, the file written for the one it replaced cannot be
    removed (immutable): a failure of this host's, no platform's refusal. The apply exits
    non-zero and says the next apply tries again, and its report says the failure is worth
    trying again (what the operator follows: it retries it, holding nothing back); the next
    apply removes the file, as an update of the device provisioned again."""
    world = await make_world(_slave_on("lab-link", "cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    b_file = world.state_dir / "keys" / "b.json"  # another directory: it can be written
    old_id = world.sims.enapter.by_hardware_id(SLAVE).id
    fleet_dir = _write_fleet(tmp_path / "fleet", _slave_on("lab-link-2", "keys/b.json"))
    with unremovable(a_file):
        code, stdout, stderr = await _cli_streams(world, "apply", str(fleet_dir),
                                                  "--auto-approve", "-o", "json")
    assert code == 1, stdout + stderr
    assert "Traceback" not in stderr, stderr
    new_id = world.sims.enapter.by_hardware_id(SLAVE).id
    assert new_id != old_id and b_file.is_file() and a_file.is_file()
    [failed] = [o for o in json.loads(stdout)["outcomes"] if o["status"] == "failed"]
    assert failed["action"] == "replace", failed
    assert failed["message"].startswith(
        "the config file an earlier apply wrote for the device, which its configOutput names "
        f"no more, {a_file} could not be removed: "), failed
    assert failed["message"].endswith(
        "; it holds the device's credentials: remove it (or the next apply tries again)"), failed
    assert failed["retryable"] is True, failed
    assert str(a_file) in (world.state_dir / "inventory.json").read_text()

    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    assert f"update: removed {a_file}" in output, output
    assert not a_file.exists() and b_file.is_file()
    assert str(a_file) not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(fleet_dir), "--detailed-exitcode")
    assert code == 0, output


async def test_a_replace_killed_once_the_delete_took_effect_leaves_the_moved_file_to_the_next_apply(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """Removed without --prune: the device was deleted to be provisioned again, not for
    want of a declaration (`test_enapter_interrupted_replace` fails its provisioning)."""
    world = await make_world(_slave_on("lab-link", "cfg/a.json"))
    await world.converge()
    a_file = world.state_dir / "cfg" / "a.json"
    b_file = world.state_dir / "cfg" / "b.json"
    old_id = world.sims.enapter.by_hardware_id(SLAVE).id
    fleet_dir = _write_fleet(tmp_path / "fleet", _slave_on("lab-link-2", "cfg/b.json"))
    # Killed once the old device is deleted, before it is provisioned again.
    await _killed_once_the_ucm_is_deleted(world, fleet_dir, SLAVE)
    assert a_file.is_file() and not b_file.exists()

    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    gone = (f"Enapter device {old_id} of site lab is gone: an apply replacing it deleted it "
            f"and stopped before it removed {a_file}, the config file written for it; "
            "removed, as the replace would have")
    assert gone in output, output
    assert f"removed {a_file}" in output
    assert not a_file.exists() and b_file.is_file()
    assert old_id not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(fleet_dir), "--prune", "--detailed-exitcode")
    assert code == 0, output


# -- an apply killed as it puts a config file in place ---------------------------------------------


async def _killed_at_the_rename_of(world: World, fleet_dir: Path, path: Path,
                                   when: str) -> None:
    """`reconciler apply FLEET_DIR` in a subprocess, killed (SIGKILL) just `when` ("before"
    or "after") it renamed a file it wrote onto `path`, or once it made its temporary
    file ("created")."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_AT_A_RENAME, when, str(path), "apply", str(fleet_dir),
        "--auto-approve", env={**os.environ, **world.env()},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(process.wait(), timeout=60) == -9, "it was not killed"


# Run as `python -c`: `reconciler ARGS...`, killed (SIGKILL) at the first file it opens
# once it removed PATH: before the inventory that forgets PATH's record is written.
_KILLED_AFTER_A_REMOVE = """
import os, runpy, signal, sys
target = os.path.normpath(sys.argv.pop(1))
removed = False
def hook(event, args):
    global removed
    if event == "os.remove" and os.path.normpath(os.fspath(args[0])) == target:
        removed = True
    elif event == "open" and removed:
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
sys.argv[0] = "reconciler"
runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
"""


async def test_an_apply_killed_once_it_removed_a_deleted_devices_config_file_forgets_it(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """Killed between removing the config file of a device its --prune deleted and writing
    the inventory that forgets the file: the record of a file gone, for a device gone,
    is forgotten by the next apply instead of staying for good."""
    world = await make_world(_two_ucms())
    await world.converge()
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    fleet_dir = _write_fleet(tmp_path / "fleet", _without_the_ucm())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KILLED_AFTER_A_REMOVE, str(ucm_file), "apply", str(fleet_dir),
        "--prune", "--auto-approve", env={**os.environ, **world.env()},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(process.wait(), timeout=60) == -9, "it was not killed"
    assert world.sims.enapter.by_hardware_id(UCM) is None and not ucm_file.exists()
    assert ucm_id in (world.state_dir / "inventory.json").read_text()

    code, output = await _cli(world, "apply", str(fleet_dir), "--prune", "--auto-approve",
                              "--no-color")
    assert code == 0, output
    assert ucm_id not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(fleet_dir), "--prune", "--detailed-exitcode")
    assert code == 0, output


async def test_an_apply_killed_once_a_config_file_is_in_place_leaves_it_to_a_later_prune(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_two_ucms())
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    fleet_dir = _write_fleet(tmp_path / "fleet", _two_ucms())
    await _killed_at_the_rename_of(world, fleet_dir, ucm_file, "after")
    assert ucm_file.is_file(), "killed once the file was in place"
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id

    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve")
    assert code == 0, output
    code, output = await _cli(world, "plan", str(fleet_dir), "--detailed-exitcode")
    assert code == 0, output
    _write_fleet(fleet_dir, _without_the_ucm())
    code, output = await _cli(world, "apply", str(fleet_dir), "--prune", "--auto-approve",
                              "--no-color")
    assert code == 0, output
    assert f"removed {ucm_file}" in output, output
    assert world.sims.enapter.by_hardware_id(UCM) is None
    assert not ucm_file.exists()
    assert ucm_id not in (world.state_dir / "inventory.json").read_text()


async def test_an_apply_killed_before_a_config_file_is_in_place_keeps_the_one_there(
        make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world(_two_ucms())
    await world.converge()
    mqtt_file = world.state_dir / "cfg" / "mqtt.json"
    written = mqtt_file.read_text()
    mqtt_id = world.sims.enapter.by_hardware_id(UCM_MQTT).id
    # The UCM now names the MQTT device's file, which holds that device's config.
    moved = _two_ucms(ucm_file="cfg/mqtt.json", mqtt_file="cfg/other.json")
    fleet_dir = _write_fleet(tmp_path / "fleet", moved)
    await _killed_at_the_rename_of(world, fleet_dir, mqtt_file, "before")
    assert mqtt_file.read_text() == written, "killed before the UCM's config was in place"

    code, output = await _cli(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, output
    said = (f"the config file {mqtt_file} holds the communication config an earlier apply "
            f"wrote for another Enapter device ({mqtt_id}), not this one's")
    assert said in output, output
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve")
    assert code == 0, output
    assert _protocol_in(mqtt_file) == "MQTTS"
    code, output = await _cli(world, "plan", str(fleet_dir), "--detailed-exitcode")
    assert code == 0, output


# -- the temporary file of a config file an apply was killed writing ------------------------------


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("when", ["created", "before"])
async def test_the_temporary_file_of_a_config_file_an_apply_was_killed_writing_is_removed(
        make_world: MakeWorld, tmp_path: Path, when: str) -> None:
    world = await make_world(_ucm_writing_to("cfg/a.json"))
    a_file = world.state_dir / "cfg" / "a.json"
    fleet_dir = _write_fleet(tmp_path / "fleet", _ucm_writing_to("cfg/a.json"))
    # Killed once the temporary file holds the config, before it was renamed ("before"),
    # or as soon as it was made, before a byte of it was written ("created").
    await _killed_at_the_rename_of(world, fleet_dir, a_file, when)
    [leftover] = _leftovers(a_file.parent)
    assert leftover.startswith("a.json.") and not a_file.exists()
    if when == "before":
        assert '"mqtt_credentials"' in (a_file.parent / leftover).read_text()
    # Files of the same look that it did not write are not its to remove.
    mine_alike = a_file.parent / "a.json.0123456789abcdef.tmp"
    mine_alike.write_text("kept")
    users = a_file.parent / "notes.tmp"
    users.write_text("kept")

    # The next apply writes the config elsewhere: the one left is removed all the same.
    _write_fleet(fleet_dir, _ucm_writing_to("keys/b.json"))
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    ucm_id = world.sims.enapter.by_hardware_id(UCM).id
    said = (f"note: removed {a_file.parent / leftover}, the temporary file a killed apply "
            f"left holding the config it was writing to {a_file} for Enapter device {ucm_id}")
    assert said in output, output
    assert _leftovers(a_file.parent) == ["a.json.0123456789abcdef.tmp", "notes.tmp"]
    assert mine_alike.read_text() == "kept" and users.read_text() == "kept"
    assert (world.state_dir / "keys" / "b.json").is_file() and not a_file.exists()
    assert _leftovers(world.state_dir / "keys") == []
    inventory = json.loads((world.state_dir / "inventory.json").read_text())
    assert inventory["enapter_config_files_pending"] == {}
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0 and "note:" not in output, output


async def test_a_temporary_config_file_another_running_apply_writes_is_left_alone(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """A writer locks its temporary file (flock) until it is renamed into place: one held
    is left alone, and once let go of (as a killed process's lock is) it is removed, even
    when the pid it was recorded by is alive (reused by another process)."""
    world = await make_world(_ucm_writing_to("cfg/a.json"))
    a_file = world.state_dir / "cfg" / "a.json"
    fleet_dir = _write_fleet(tmp_path / "fleet", _ucm_writing_to("cfg/a.json"))
    await _killed_at_the_rename_of(world, fleet_dir, a_file, "before")
    [leftover] = _leftovers(a_file.parent)
    # Recorded by a pid alive now (this test's own).
    inventory_file = world.state_dir / "inventory.json"
    inventory = json.loads(inventory_file.read_text())
    [pending] = inventory["enapter_config_files_pending"].values()
    pending["owner"] = f"{os.getpid()}-another"
    inventory_file.write_text(json.dumps(inventory))
    # Held as a running writer holds it.
    held = os.open(a_file.parent / leftover, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, output = await _cli(world, "plan", str(fleet_dir), "--no-color")
        assert code == 0 and leftover not in output, output
        code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
        assert code == 0, output
        assert "note: removed" not in output and leftover in _leftovers(a_file.parent)
        assert a_file.is_file()
    finally:
        os.close(held)
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    assert f"note: removed {a_file.parent / leftover}, the temporary file" in output, output
    assert _leftovers(a_file.parent) == []


async def test_the_temporary_config_file_of_a_run_with_another_state_directory_is_removed(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """Killed between the write and the rename of a config file given by its absolute
    path, the run leaves a temporary file recorded in its state directory only: a later
    run with another state directory (or that one removed) has no record of it, and
    removes it all the same, as the plan says, which removes nothing."""
    ucm_file = tmp_path / "keys" / "ucm.json"
    world = await make_world(_ucm_writing_to(str(ucm_file)))
    fleet_dir = _write_fleet(tmp_path / "fleet", _ucm_writing_to(str(ucm_file)))
    await _killed_at_the_rename_of(world, fleet_dir, ucm_file, "before")
    [leftover] = _leftovers(ucm_file.parent)
    secret = json.loads((ucm_file.parent / leftover).read_text())["mqtt_credentials"]
    assert stat.S_IMODE((ucm_file.parent / leftover).stat().st_mode) == 0o600
    shutil.rmtree(world.state_dir)

    code, stdout, stderr = await _cli_streams(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, stdout + stderr
    note = (f"note: {ucm_file.parent / leftover} is the temporary file an earlier run, "
            f"killed, left holding the config it was writing to {ucm_file}; the next apply "
            "removes it")
    assert note in stderr.splitlines(), stderr
    assert _leftovers(ucm_file.parent) == [leftover] and not world.state_dir.exists()

    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    said = [line for line in output.splitlines() if leftover in line]
    assert said == [f"note: removed {ucm_file.parent / leftover}, the temporary file an earlier "
                    f"run, killed, left holding the config it was writing to {ucm_file}"]
    assert json.dumps(secret)[1:-1] not in output and "password" not in output
    assert _leftovers(ucm_file.parent) == [] and ucm_file.is_file()


async def test_a_run_of_another_state_directory_leaves_a_temporary_file_not_yet_locked(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """Creating a temporary config file and locking it are two calls: an apply of another
    state directory clearing leftovers between them (here, a real one, run by the writer
    just as it made its file) finds the file empty and held by nobody. It leaves it alone:
    nothing is written before the lock, so it may be a write under way, and it holds no
    credentials. Before, it removed it, and the write failed (to be tried again)."""
    ucm_file = tmp_path / "keys" / "ucm.json"
    world = await make_world(_ucm_writing_to(str(ucm_file)))
    await world.converge()
    fleet_dir = _write_fleet(tmp_path / "fleet", _ucm_writing_to(str(ucm_file)))
    tmp = ucm_file.with_name(f"ucm.json.{secrets.token_hex(8)}.tmp")
    cleaner: list[subprocess.CompletedProcess[str]] = []
    held: list[int] = []

    def made(descriptor: int) -> None:
        # The writer has made its file and not locked it yet.
        cleaner.append(subprocess.run(
            [sys.executable, "-m", "reconciler", "apply", str(fleet_dir), "--auto-approve",
             "--no-color"],
            env={**os.environ, **world.env(), "RECONCILER_STATE_DIR": str(tmp_path / "other")},
            capture_output=True, text=True, timeout=60, check=False))
        held.append(enapter_files.hold(descriptor))

    try:
        # In a thread: the simulators the cleaner calls serve in this event loop.
        written = await asyncio.to_thread(
            write_temporary, ucm_file, '{"written": true}', private=True, tmp=tmp, opened=made)
    finally:
        for descriptor in held:
            os.close(descriptor)
    [run] = cleaner
    assert run.returncode == 0, run.stdout + run.stderr
    assert str(tmp) not in run.stdout + run.stderr, run.stdout + run.stderr
    assert written == tmp and tmp.read_text() == '{"written": true}'


async def test_temporary_config_files_older_versions_left_are_removed_and_no_one_elses(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """Older versions recorded no temporary file: `NAME.tmp`, and before it mkstemp's
    `.NAME.XXXXXXXX.tmp`, each private to its user. Those left beside a config file the
    fleet declares are removed; files of other names, or not as a writer makes them (a
    link, another mode), and a config file a Device declares under such a name, stay."""
    # The MQTT device's config file has the name of a temporary file of the UCM's.
    text = _two_ucms(ucm_file="cfg/ucm.json", mqtt_file="cfg/ucm.json.0123456789abcdef.tmp")
    world = await make_world(text)
    await world.converge()
    cfg = world.state_dir / "cfg"
    declared = cfg / "ucm.json.0123456789abcdef.tmp"
    assert declared.is_file()
    credentials = '{"mqtt_credentials": {"password": "s3cret-left-by-an-old-run"}}'
    ours = [cfg / "ucm.json.tmp", cfg / ".ucm.json.k2_9xq0a.tmp"]
    alike = [cfg / "notes.tmp", cfg / "ucm.json.bak.tmp", cfg / "ucm.json.0123.tmp",
             cfg / ".ucm.json.abc.tmp", cfg / "ucm.json.0123456789ABCDEF.tmp",
             cfg / "other.json.tmp"]
    for file in ours + alike:
        file.write_text(credentials)
        file.chmod(0o600)
    shared = cfg / ".ucm.json.zzzzzzzz.tmp"  # as old versions name it, not as they make it
    shared.write_text(credentials)
    shared.chmod(0o644)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(credentials)
    elsewhere.chmod(0o600)
    link = cfg / ".ucm.json.linktoit.tmp"
    link.symlink_to(elsewhere)
    inventory = (world.state_dir / "inventory.json").read_bytes()
    fleet_dir = _write_fleet(tmp_path / "fleet", text)

    code, stdout, stderr = await _cli_streams(world, "plan", str(fleet_dir), "--no-color")
    assert code == 0, stdout + stderr
    notes = sorted(line for line in stderr.splitlines() if "the next apply removes it" in line)
    assert notes == [f"note: {file} is the temporary file an earlier run, killed, left holding "
                     f"the config it was writing to {cfg / 'ucm.json'}; the next apply removes "
                     "it" for file in sorted(ours)], stderr
    assert all(file.exists() for file in ours)
    assert (world.state_dir / "inventory.json").read_bytes() == inventory

    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0, output
    removed = sorted(line for line in output.splitlines() if "note: removed" in line)
    assert removed == [f"note: removed {file}, the temporary file an earlier run, killed, left "
                       f"holding the config it was writing to {cfg / 'ucm.json'}"
                       for file in sorted(ours)], output
    assert "s3cret" not in output
    assert not any(file.exists() for file in ours)
    for file in [*alike, shared, elsewhere]:
        assert file.read_text() == credentials, file
    assert link.is_symlink() and declared.is_file() and (cfg / "ucm.json").is_file()
    code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve", "--no-color")
    assert code == 0 and "note:" not in output, output


# -- how often writing a config file writes the inventory -----------------------------------------

_IN_MOVED_TO, _IN_CREATE, _IN_Q_OVERFLOW = 0x80, 0x100, 0x4000


class _DirectoryEvents:
    """The files made in a directory and renamed into it, in the order the kernel reports
    them (inotify): each write of a state file is a rename onto its name."""

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0:
            pytest.skip(f"inotify is not available: {os.strerror(ctypes.get_errno())}")
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), _IN_CREATE | _IN_MOVED_TO) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"cannot watch {directory}")

    def read(self) -> list[tuple[str, str]]:
        """("made" or "renamed", file name) of what happened since the last read."""
        data = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.fd, 1 << 16):
                data += chunk
        events, offset = [], 0
        while offset < len(data):
            _, mask, _, length = struct.unpack_from("iIII", data, offset)
            assert not mask & _IN_Q_OVERFLOW, "events were lost"
            name = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode()
            events.append(("renamed" if mask & _IN_MOVED_TO else "made", name))
            offset += 16 + length
        return events

    def close(self) -> None:
        os.close(self.fd)


async def test_each_config_file_written_writes_the_inventory_twice(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """Once before its temporary file is made (a kill leaves that file, holding the
    credentials, known as the reconciler's) and once before it is renamed into place (its
    identity: a kill right after leaves it recorded), and not again after the rename; the
    apply then writes the inventory once, at its end, as any apply does."""
    text = _two_ucms(ucm_file="ucm.json", mqtt_file="mqtt.json")  # in the state directory
    world = await make_world(text)
    world.state_dir.mkdir(mode=0o700)
    fleet_dir = _write_fleet(tmp_path / "fleet", text)
    events = _DirectoryEvents(world.state_dir)
    try:
        code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve")
        seen = events.read()
    finally:
        events.close()
    assert code == 0, output
    # Both recorded as written, by the apply's last write at the latest.
    recorded = json.loads((world.state_dir / "inventory.json").read_text())
    assert recorded["enapter_config_files_pending"] == {}
    assert sorted(Path(path).name for path in recorded["enapter_config_files"]) == [
        "mqtt.json", "ucm.json"]
    said = " ".join(f"{how}:{name}" for how, name in seen)
    inventory = ("renamed", "inventory.json")
    for config in ("ucm.json", "mqtt.json"):
        [made] = [i for i, (how, name) in enumerate(seen)
                  if how == "made" and name.startswith(f"{config}.") and name.endswith(".tmp")]
        renamed = seen.index(("renamed", config))
        assert inventory in seen[:made], f"{config}: not recorded before it was made: {said}"
        assert inventory in seen[made:renamed], f"{config}: not given its identity: {said}"
    # The two files' writes may interleave: counted in all, and after the last rename only
    # the apply's own write.
    assert seen.count(inventory) == 2 * 2 + 1, said
    last = max(seen.index(("renamed", config)) for config in ("ucm.json", "mqtt.json"))
    assert seen[last + 1:].count(inventory) == 1, said


# -- how often an apply looks for the temporary files killed runs left -----------------------------

# Run as `python -c`: `reconciler ARGS...` ("cli"), or a plan and its apply made with the
# engine itself as the demo and benchmarks do ("engine", ARGS the fleet's paths), saying on
# stderr each time the process lists the directory DIR (how leftovers beside the config
# files there are found).
_LISTING = """
import asyncio, os, runpy, sys
how, target = sys.argv.pop(1), os.path.normpath(sys.argv.pop(1))
def hook(event, args):
    if event == "os.listdir" and os.path.normpath(os.fsdecode(args[0])) == target:
        os.write(2, b"listed the config directory\\n")
sys.addaudithook(hook)
if how == "cli":
    sys.argv[0] = "reconciler"
    runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
else:
    from reconciler.engine.config import load_settings
    from reconciler.engine.reconcile import Reconciler
    from reconciler.plan.advice import Audience
    from reconciler.plan.planner import PlanOptions
    from reconciler.sources.loader import load_fleet
    async def main():
        async with Reconciler(load_fleet(sys.argv[1:]), load_settings()) as reconciler:
            result = await reconciler.plan(PlanOptions(audience=Audience.CLI))
            assert (await reconciler.apply(result)).ok
    asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["cli", "engine"])
async def test_an_apply_looks_for_leftover_config_files_once(
        make_world: MakeWorld, tmp_path: Path, how: str) -> None:
    """Whether it applies changes or has nothing to do, and whether the CLI or code using
    the engine applies: once, before its plan (the CLI, which says what it removed) or
    when it records what it did (the engine used directly), not both."""
    world = await make_world(_two_ucms())
    cfg = world.state_dir / "cfg"
    fleet_dir = _write_fleet(tmp_path / "fleet", _two_ucms())
    leftover = cfg / "ucm.json.tmp"  # as an earlier version named it
    args = (["apply", str(fleet_dir), "--auto-approve", "--no-color"] if how == "cli"
            else [str(fleet_dir)])
    for run in ("with changes", "with nothing to do"):
        if run == "with nothing to do":
            leftover.write_text('{"mqtt_credentials": {"password": "s3cret-left"}}')
            leftover.chmod(0o600)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _LISTING, how, str(cfg), *args,
            env={**os.environ, **world.env()}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        output = stdout.decode() + stderr.decode()
        assert process.returncode == 0, output
        assert output.count("listed the config directory") == 1, f"{run}: {output}"
        assert (cfg / "ucm.json").is_file() and not leftover.exists(), run
        if how == "cli" and run == "with nothing to do":
            assert f"note: removed {leftover}, the temporary file" in output, output
