"""`reconciler watch --prune` as a subprocess against simulators: a folder refilled file by
file, slower than the debounce, is read with a file still missing; what that file declared
is kept declared until it has been gone for a whole --interval, so its return deletes
nothing, and a file that stays gone has its objects removed by the next interval run."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_helpers import INVERTER_SN, WAIT_S, Spawn, World

P1_SN = "E0043007123456789"

pytestmark = pytest.mark.slow

# Long enough for the file to come back before it, on a loaded machine.
INTERVAL_S = 20
INTERVAL = f"{INTERVAL_S}s"


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
    [line] = await agent.wait_for(r"run=5 trigger=interval .*result=", within=INTERVAL_S + WAIT_S)
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


async def test_documents_missing_from_a_file_being_written_delete_nothing(
        world: World, spawn: Spawn) -> None:
    """A file read while it is being written up to a document boundary (an editor, `git
    checkout`, a copy) declares its first documents only: what the others declared is kept
    declared as a file gone's is, and removed once it has been undeclared for --interval."""
    agent = await spawn("watch", "sites", "--prune", "--interval", INTERVAL, "--debounce",
                        "0.2s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    meter = world.cloud_device(P1_SN)
    assert meter is not None
    writes = world.sims.writes()
    text = world.devices_file.read_text(encoding="utf-8")
    inverter_only, _ = text.split("\n---\n")

    # Written up to the end of its first document: the meter's is not there yet.
    world.devices_file.write_text(inverter_only + "\n", encoding="utf-8")
    [line] = await agent.wait_for(r"run=2 trigger=change .*result=")
    assert line.endswith("result=no-changes"), agent.text
    [said] = await agent.wait_for(r"run=2 warning: sites/devices\.yaml no longer declares")
    assert said.endswith(
        "run=2 warning: sites/devices.yaml no longer declares Device home-solna-p1, which no "
        "other file declares: kept declared until they have been undeclared for --interval "
        f"({INTERVAL}), then --prune removes them; a file read while it is being written is "
        "not taken for their removal"), said
    assert world.sims.writes() == writes, "a file cut short must not delete anything yet"

    world.devices_file.write_text(text, encoding="utf-8")
    [line] = await agent.wait_for(r"run=3 trigger=change .*result=")
    assert line.endswith("result=no-changes"), agent.text
    await agent.wait_for(r"run=3 note: sites/devices\.yaml declares Device home-solna-p1 "
                         r"again; nothing was removed$")
    assert world.cloud_device(P1_SN) == meter and world.sims.writes() == writes

    # Removed for good: kept, then removed by the interval run once it has been
    # undeclared for the interval.
    world.devices_file.write_text(inverter_only + "\n", encoding="utf-8")
    [line] = await agent.wait_for(r"run=4 trigger=change .*result=")
    assert line.endswith("result=no-changes") and world.cloud_device(P1_SN) == meter, \
        agent.text
    [line] = await agent.wait_for(r"run=5 trigger=interval .*result=", within=INTERVAL_S + WAIT_S)
    assert line.endswith("result=applied"), agent.text
    await agent.wait_for(rf"run=5 warning: sites/devices\.yaml has not declared Device "
                         rf"home-solna-p1 for {INTERVAL}: they are no longer kept declared, "
                         r"and --prune removes them$")
    assert world.cloud_device(P1_SN) is None
    assert world.cloud_device() is not None
    assert await agent.terminate() == 0


async def test_objects_kept_that_no_longer_fit_leave_the_files_valid(
        world: World, spawn: Spawn, tmp_path: Path) -> None:
    """A gateway renamed while the file of its devices is gone: the devices kept name the
    old gateway, which the new one replaces. They are left out of the desired state, not
    made an error of the files (which are valid without them), and not deleted either:
    --prune removes nothing while they are left out."""
    agent = await spawn("watch", "sites", "--prune", "--interval", INTERVAL, "--debounce",
                        "0.2s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    device = world.cloud_device()
    assert device is not None
    away = tmp_path / "devices.yaml"
    site_file = world.sites / "site.yaml"

    world.devices_file.rename(away)
    [line] = await agent.wait_for(r"run=2 trigger=change .*result=")
    assert line.endswith("result=no-changes"), agent.text

    # The same edit renames the gateway the devices kept declared name.
    world.edit("name: home-solna-zap", "name: home-solna-gw", site_file)
    [line] = await agent.wait_for(r"run=3 trigger=change .*result=")
    assert not line.endswith("result=invalid"), agent.text
    [said] = await agent.wait_for(r"run=3 warning: Gateway home-solna-zap, kept declared")
    assert "does not fit the files as they are now" in said, said
    assert "the same gateway is already declared as Gateway 'home-solna-gw'" in said, said
    [said] = await agent.wait_for(r"run=3 warning: Device home-solna-inverter, kept declared")
    assert "since sites/devices.yaml is gone" in said and "home-solna-zap" in said, said
    assert "--prune removes nothing until it fits again" in said, said
    assert world.cloud_device() == device
    assert world.zap_der_enabled("pv") is not None, "the inverter must stay on its Zap"

    # The devices' file comes back naming the new gateway: nothing was removed.
    away.write_text(away.read_text(encoding="utf-8").replace(
        "gatewayRef: home-solna-zap", "gatewayRef: home-solna-gw"), encoding="utf-8")
    away.rename(world.devices_file)
    [line] = await agent.wait_for(r"run=4 trigger=change .*result=")
    assert not line.endswith(("result=invalid", "result=failed")), agent.text
    await agent.wait_for(r"run=4 note: sites/devices\.yaml is back; nothing it declared was "
                         r"removed$")
    assert world.cloud_device() == device
    assert world.zap_der_enabled("pv") is not None

    # The old gateway's name, left out, is let go after the interval: --prune is back, and
    # finds nothing of it to remove (the Zap is the renamed Gateway's).
    [line] = await agent.wait_for(r"run=5 trigger=interval .*result=", within=INTERVAL_S + WAIT_S)
    assert line.endswith("result=no-changes"), agent.text
    await agent.wait_for(rf"run=5 warning: sites/site\.yaml has not declared Gateway "
                         rf"home-solna-zap for {INTERVAL}: ")
    await agent.wait_for(r"run=5 note: no object kept declared is left out any more: "
                         r"--prune removes again what no file declares$")
    assert world.cloud_device() == device
    assert world.zap_der_enabled("pv") is not None
    assert await agent.terminate() == 0


async def test_the_unmanaged_listing_says_no_object_is_removed_while_some_are_left_out(
        world: World, spawn: Spawn, tmp_path: Path) -> None:
    """While objects kept are left out, the runs plan without --prune: the objects found
    that nothing declares (here, the devices left out, on the Zap and in the cloud) are
    listed as ones this run removes none of, and why, not as ones --prune removes."""
    agent = await spawn("watch", "sites", "--prune", "--interval", INTERVAL, "--debounce",
                        "0.2s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    device = world.cloud_device()
    world.devices_file.rename(tmp_path / "devices.yaml")
    await agent.wait_for(r"run=2 trigger=change .*result=")
    world.edit("name: home-solna-zap", "name: home-solna-gw", world.sites / "site.yaml")
    [line] = await agent.wait_for(r"run=3 trigger=change .*result=")
    assert not line.endswith(("result=invalid", "result=failed")), agent.text
    [head] = await agent.wait_for(r"run=3 .*found that nothing declares")
    assert "(--prune removes them)" not in head, head
    assert "(this run removes none of them: " in head, head
    assert "Device home-solna-inverter" in head, head
    assert ("kept declared, do not fit the files as they are now, and --prune removes "
            "nothing until they fit again, are declared again or are let go):") in head, head
    assert world.cloud_device() == device
    assert world.zap_der_enabled("pv") is not None
    assert await agent.terminate() == 0
