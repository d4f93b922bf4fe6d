"""`reconciler apply` (a subprocess, against the Enapter simulator on loopback) when a LINK
slave's config file cannot be written: its directory read-only, so that Enapter is not
asked for a config; or the state directory's record of it not to be written, once the
device is provisioned. The apply exits non-zero, saying which file, why, and that the
next apply tries again (its JSON report: a failure worth trying again, as the operator
takes it); the next apply converges, and does not provision the slave again: its plan
finds the device made, by its hardware id, and generates its config for it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from denied import denied_as_anyone
from enapter_world import MASTER, SLAVE, MakeWorld, World, device, site_and_gateway

from reconciler.state_files import INVENTORY, JOURNAL, TEMPORARY_SUFFIX

SLAVE_ADDRESS = "device/lab-slave[enapter]"
PROVISIONING = "POST /v3/provisioning/{kind}"


def _slave_writing_to(config_file: Path) -> str:
    return (site_and_gateway()
            + device("lab-link", "{kind: link_master}", hardware=MASTER, gateway=True)
            + device("lab-slave", f"{{kind: link_slave, masterRef: lab-link, "
                                  f"configOutput: {{file: '{config_file}'}}}}",
                     hardware=SLAVE, gateway=True))


async def _apply(world: World, fleet_dir: Path, *args: str,
                 preexec_fn: Callable[[], None] | None = None) -> tuple[int, str, str]:
    """`reconciler apply FLEET_DIR --auto-approve ARGS...` with the world's settings: its
    exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", "apply", str(fleet_dir), "--auto-approve",
        "--no-color", *args, env={**os.environ, **world.env()},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=preexec_fn)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _fleet_dir(tmp_path: Path, config_file: Path) -> Path:
    directory = tmp_path / "fleet"
    directory.mkdir()
    (directory / "lab.yaml").write_text(_slave_writing_to(config_file), encoding="utf-8")
    return directory


def _slave_outcome(stdout: str) -> dict[str, Any]:
    report = json.loads(stdout)
    return next(o for o in report["outcomes"] if o["address"] == SLAVE_ADDRESS)


def _provisioned_slaves(world: World) -> int:
    """The intents to provision the slave the journal records, every run's."""
    lines = (world.state_dir / JOURNAL).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return sum(1 for r in records if r.get("address") == SLAVE_ADDRESS
               and r.get("operation") == "enapter.provision_link_slave"
               and r.get("phase") == "intent")


async def test_a_config_directory_that_cannot_be_written_fails_the_apply_and_the_next_converges(
        make_world: MakeWorld, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o500)
    config_file = keys / "slave.json"
    world = await make_world(_slave_writing_to(config_file))
    fleet_dir = _fleet_dir(tmp_path, config_file)
    try:
        code, stdout, stderr = await _apply(world, fleet_dir, "-o", "json",
                                            preexec_fn=denied_as_anyone())
    finally:
        keys.chmod(0o700)
    assert code == 1, stdout + stderr
    assert "Traceback" not in stderr, stderr
    failed = _slave_outcome(stdout)
    assert failed["status"] == "failed", failed
    assert failed["message"] == (
        f"cannot write the communication config to {config_file}: the directory {keys} is "
        "not writable; Enapter Cloud was not asked for a config; the next apply tries again"
    ), failed
    assert failed["retryable"] is True, failed
    assert world.sims.enapter.by_hardware_id(SLAVE) is None, "Enapter was asked"

    code, stdout, stderr = await _apply(world, fleet_dir)
    assert code == 0, stdout + stderr
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert _provisioned_slaves(world) == 1


async def test_a_config_file_whose_record_cannot_be_written_fails_the_apply_and_the_next_converges(
        make_world: MakeWorld, tmp_path: Path) -> None:
    """The config file's directory can be written, the state directory's inventory cannot
    (what stands where it is written before it is renamed into place fails its write, as a
    full disk would): the slave is provisioned, and its config is not written. The next
    apply finds the device and writes its config, provisioning nothing again."""
    keys = tmp_path / "keys"
    config_file = keys / "slave.json"
    world = await make_world(_slave_writing_to(config_file))
    fleet_dir = _fleet_dir(tmp_path, config_file)
    world.state_dir.mkdir()
    blocker = world.state_dir / (INVENTORY + TEMPORARY_SUFFIX)
    blocker.mkdir()
    code, stdout, stderr = await _apply(world, fleet_dir, "-o", "json")
    assert code == 1, stdout + stderr
    assert "Traceback" not in stderr, stderr
    failed = _slave_outcome(stdout)
    assert failed["status"] == "failed", failed
    assert failed["message"] == (
        f"cannot write the communication config to {config_file}: the state directory's "
        f"record of the files it writes cannot be written ({world.state_dir / INVENTORY}: "
        f"{blocker}: is a directory); the next apply tries again"), failed
    assert failed["retryable"] is True, failed
    made = world.sims.enapter.by_hardware_id(SLAVE)
    assert made is not None and not config_file.exists()
    provisionings = world.sims.enapter.requests[PROVISIONING]

    blocker.rmdir()
    code, stdout, stderr = await _apply(world, fleet_dir)
    assert code == 0, stdout + stderr
    assert f"{SLAVE_ADDRESS}" in stdout + stderr
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert world.sims.enapter.requests[PROVISIONING] == provisionings, "provisioned again"
    assert _provisioned_slaves(world) == 1
    assert world.sims.enapter.by_hardware_id(SLAVE).id == made.id
    assert made.id in (world.state_dir / INVENTORY).read_text()
