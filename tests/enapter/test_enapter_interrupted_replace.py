"""A replace (a LINK slave moved to another master, its config to another file) whose
delete took effect and whose provisioning then failed, a 503 of the Enapter simulator on
loopback, leaves the config file written for the deleted device: the next plan removes it
without --prune, as the replace would have, where it waited for a --prune before (the
record of the delete did not say it was a replace's). A record an earlier version wrote,
which does not say, is left to --prune as it was. Through the CLI in a subprocess."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from enapter_world import SLAVE, World, fleet_of
from failed_provisioning import FailedProvisioning
from test_enapter_config_files import _cli, _slave_on, _write_fleet

from reconciler.sim.fleet import SimFleet


@dataclass
class Replaced:
    """The world once the replace failed: the old device's id and its file, the new file."""

    world: World
    fleet_dir: Path
    old_id: str
    a_file: Path
    b_file: Path


@pytest.fixture
async def replaced(tmp_path: Path) -> AsyncIterator[Replaced]:
    """The slave on lab-link writing cfg/a.json, then moved to lab-link-2 writing
    cfg/b.json by an apply whose provisioning failed once the old device was deleted."""
    text = _slave_on("lab-link", "cfg/a.json")
    fleet = fleet_of(text)
    sims = SimFleet(seed=11)
    sims.seed_fleet(fleet)
    failed = FailedProvisioning()
    failed.install(sims)
    await sims.start()
    try:
        world = World(sims, tmp_path, fleet)
        await world.converge()
        old_id = sims.enapter.by_hardware_id(SLAVE).id
        a_file = world.state_dir / "cfg" / "a.json"
        b_file = world.state_dir / "cfg" / "b.json"
        fleet_dir = _write_fleet(tmp_path / "fleet", _slave_on("lab-link-2", "cfg/b.json"))
        failed.failing = True
        code, output = await _cli(world, "apply", str(fleet_dir), "--auto-approve",
                                  "--no-color")
        assert code == 1 and "provisioning is down" in output, output
        assert sims.enapter.by_hardware_id(SLAVE) is None, "the delete took effect"
        assert a_file.is_file() and not b_file.exists()
        failed.failing = False
        yield Replaced(world, fleet_dir, old_id, a_file, b_file)
    finally:
        await sims.stop()


async def test_an_interrupted_replace_has_its_old_config_file_removed_without_prune(
        replaced: Replaced) -> None:
    world, old_id, a_file, b_file = (
        replaced.world, replaced.old_id, replaced.a_file, replaced.b_file)
    gone = (f"Enapter device {old_id} of site lab is gone: an apply replacing it deleted it "
            f"and stopped before it removed {a_file}, the config file written for it; "
            "removed, as the replace would have")
    code, output = await _cli(world, "plan", str(replaced.fleet_dir), "--no-color")
    assert code == 0, output
    assert gone in output, output
    assert "--prune" not in output, output

    code, output = await _cli(world, "apply", str(replaced.fleet_dir), "--auto-approve",
                              "--no-color")
    assert code == 0, output
    assert f"removed {a_file}" in output, output
    assert not a_file.exists() and b_file.is_file()
    assert old_id not in (world.state_dir / "inventory.json").read_text()
    code, output = await _cli(world, "plan", str(replaced.fleet_dir), "--detailed-exitcode")
    assert code == 0, output


async def test_a_record_of_an_earlier_version_is_left_to_prune_as_before(
        replaced: Replaced) -> None:
    world, old_id, a_file = replaced.world, replaced.old_id, replaced.a_file
    inventory_file = world.state_dir / "inventory.json"
    inventory: dict[str, Any] = json.loads(inventory_file.read_text())
    [record] = [r for r in inventory["enapter_config_files"].values()
                if r["device_id"] == old_id]
    assert (record["deleting"], record.pop("replacing")) == ("lab", True)
    inventory_file.write_text(json.dumps(inventory))  # as an earlier version wrote it

    code, output = await _cli(world, "apply", str(replaced.fleet_dir), "--auto-approve",
                              "--no-color")
    assert code == 0, output
    assert (f"Enapter device {old_id} of site lab is gone: an apply deleted it and stopped "
            f"before it removed {a_file}, the config file written for it "
            "(--prune removes it)") in output, output
    assert a_file.is_file()
    code, output = await _cli(world, "apply", str(replaced.fleet_dir), "--prune",
                              "--auto-approve", "--no-color")
    assert code == 0, output
    assert not a_file.exists()
