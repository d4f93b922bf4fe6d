"""`reconciler watch --prune` as a subprocess against simulators: a file read while it is
being written (emptied first, as `generate > devices.yaml` does) is not taken for the
removal of what it declared; deleting the file is (see test_watch_vanished_file)."""

from __future__ import annotations

import pytest
from agent_helpers import Spawn, World

pytestmark = pytest.mark.slow


async def test_a_file_emptied_while_being_written_deletes_nothing(
        world: World, spawn: Spawn) -> None:
    agent = await spawn("watch", "sites", "--prune", "--interval", "60s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    device = world.cloud_device()
    assert device is not None
    writes = world.sims.writes()
    text = world.devices_file.read_text(encoding="utf-8")

    # The shell truncates at once; the command's output comes later.
    world.devices_file.write_text("", encoding="utf-8")
    [line] = await agent.wait_for(r"run=2 trigger=change .*result=")
    assert line.endswith("result=invalid"), agent.text
    [said] = await agent.wait_for(r"error: sites/devices\.yaml: declares nothing now")
    assert "Device home-solna-inverter" in said and "delete the file" in said, said
    assert world.sims.writes() == writes, "an emptied file must not delete anything"

    # Only the header comments written so far: still nothing declared, still held.
    world.devices_file.write_text(text.split("apiVersion")[0], encoding="utf-8")
    [line] = await agent.wait_for(r"run=3 trigger=change .*result=")
    assert line.endswith("result=invalid"), agent.text
    assert world.sims.writes() == writes

    # Written in full: the same devices, never deleted, nothing to do.
    world.devices_file.write_text(text, encoding="utf-8")
    [line] = await agent.wait_for(r"run=4 trigger=change .*result=")
    assert line.endswith("result=no-changes"), agent.text
    assert any("the desired state is valid again" in out for out in agent.out), agent.text
    assert world.cloud_device() == device

    # Deleting the file is a removal: --prune deletes what it declared once it has been
    # gone for the interval (test_watch_vanished_file), not before.
    world.devices_file.unlink()
    [line] = await agent.wait_for(r"run=5 trigger=change .*result=")
    assert line.endswith("result=no-changes"), agent.text
    await agent.wait_for(r"run=5 warning: sites/devices\.yaml is gone, and declared ")
    assert world.cloud_device() == device
    assert await agent.terminate() == 0
