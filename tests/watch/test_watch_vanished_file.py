"""`reconciler watch --prune` as a subprocess against simulators: a folder refilled file by
file, slower than the debounce, is read with a file still missing; what that file declared
is kept declared until it has been gone for a whole --interval, so its return deletes
nothing, and a file that stays gone has its objects removed by the next interval run."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_helpers import INVERTER_SN, Spawn, World

pytestmark = pytest.mark.slow

# Long enough for the file to come back before it, on a loaded machine.
INTERVAL = "20s"


async def test_a_file_missing_from_a_folder_being_refilled_deletes_nothing(
        world: World, spawn: Spawn, tmp_path: Path) -> None:
    agent = await spawn("watch", "sites", "--prune", "--interval", INTERVAL, "--debounce",
                        "0.2s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    device = world.cloud_device()
    assert device is not None
    writes = world.sims.writes()
    away = tmp_path / "devices.yaml"

    # The folder is refilled: site.yaml is there again, devices.yaml not yet.
    world.devices_file.rename(away)
    [line] = await agent.wait_for(r"run=2 trigger=change .*result=")
    assert line.endswith("result=no-changes"), agent.text
    [said] = await agent.wait_for(r"run=2 warning: sites/devices\.yaml is gone")
    assert said.endswith(
        f"run=2 warning: sites/devices.yaml is gone, and declared Device home-solna-inverter, "
        "Device home-solna-p1, which no other file declares: kept declared until it has "
        f"been gone for --interval ({INTERVAL}), then --prune removes them; a folder refilled "
        "file by file is not taken for their removal"), said
    assert world.sims.writes() == writes, "a file missing must not delete anything yet"

    away.rename(world.devices_file)
    [line] = await agent.wait_for(r"run=3 trigger=change .*result=")
    assert line.endswith("result=no-changes"), agent.text
    await agent.wait_for(r"run=3 note: sites/devices\.yaml is back; nothing it declared was "
                         r"removed$")
    assert world.cloud_device() == device and world.sims.writes() == writes

    # Removed for good: held, then removed by the interval run once it has been gone for
    # the interval.
    world.devices_file.unlink()
    [line] = await agent.wait_for(r"run=4 trigger=change .*result=")
    assert line.endswith("result=no-changes") and world.cloud_device() == device, agent.text
    [line] = await agent.wait_for(r"run=5 trigger=interval .*result=", within=60)
    assert line.endswith("result=applied"), agent.text
    await agent.wait_for(rf"run=5 warning: sites/devices\.yaml has been gone for {INTERVAL}: "
                         r"Device home-solna-inverter, Device home-solna-p1 are no longer kept "
                         r"declared, and --prune removes them$")
    assert world.cloud_device(INVERTER_SN) is None
    assert await agent.terminate() == 0


async def test_without_prune_nothing_is_held(world: World, spawn: Spawn) -> None:
    """Without --prune what no file declares is only reported: a file gone says so as any
    object found that nothing declares, at once."""
    agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    world.devices_file.unlink()
    [line] = await agent.wait_for(r"run=2 trigger=change .*result=")
    assert " unmanaged=0 " not in line, agent.text
    assert await agent.terminate() == 0
    assert not any(" is gone" in out for out in agent.out), agent.text
