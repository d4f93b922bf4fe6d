"""Which files the watch agent watches, and that its watch follows the paths it was given:
a watched folder removed and put back is watched again, and a watched symlink flipped to
another release is a change, after which the new release is watched and the old is not.
`WatchSet` in-process on a tmp tree; the rest through a `reconciler watch` subprocess
against simulators."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from agent_helpers import Spawn, World

from reconciler.engine.filewatch import WatchSet


def test_only_desired_state_files_are_relevant(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()
    sites = tmp_path / "sites"
    sites.mkdir()
    single = tmp_path / "extra.yml"
    single.write_text("")
    watched = WatchSet.of([sites, single])
    assert watched.roots == (str(sites),) and watched.parents == (str(tmp_path),)
    assert watched.listings == ()  # where `sites` is listed is watched already
    named = {
        os.path.join(sites, "a", "devices.yaml"): True,
        os.path.join(sites, "site.yml"): True,
        str(single): True,
        os.path.join(sites, "README.md"): False,
        os.path.join(sites, ".#devices.yaml"): False,
        os.path.join(sites, ".github", "workflows", "ci.yml"): False,  # hidden: not read
        os.path.join(sites, "a", ".draft.yaml"): False,
        os.path.join(tmp_path, "other.yaml"): False,  # beside a named file, not named
        os.path.join(tmp_path, "sites-old", "a.yaml"): False,
    }
    assert {path: watched.name(path) is not None for path in named} == named
    # Where the paths are listed: a change there may make them lead elsewhere.
    assert watched.listing(str(sites)) and watched.listing(str(single))
    assert not watched.listing(os.path.join(tmp_path, "sites-old"))


def test_a_symlinked_folder_is_watched_where_it_leads_and_named_as_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    r1, r2 = tmp_path / "rel" / "r1", tmp_path / "rel" / "r2"
    r1.mkdir(parents=True)
    r2.mkdir()
    Path("current").symlink_to("rel/r1")
    before = WatchSet.of(["current"])
    assert before.roots == (str(r1),)
    assert before.name(str(r1 / "devices.yaml")) == str(tmp_path / "current" / "devices.yaml")
    assert before.listing(str(tmp_path / "current"))
    assert WatchSet.of(["current"]).moved(before) == []

    Path("current.new").symlink_to("rel/r2")
    os.replace("current.new", "current")
    after = WatchSet.of(["current"])
    assert after.moved(before) == [str(tmp_path / "current")]
    assert after.roots == (str(r2),)
    assert after.name(str(r1 / "devices.yaml")) is None
    assert after.name(str(r2 / "devices.yaml")) == str(tmp_path / "current" / "devices.yaml")


def test_a_link_on_the_way_is_watched_where_it_is_listed(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()
    (tmp_path / "rel" / "r1" / "sites").mkdir(parents=True)
    (tmp_path / "rel" / "r2" / "sites").mkdir(parents=True)
    (tmp_path / "current").symlink_to("rel/r1")
    given = tmp_path / "current" / "sites"
    before = WatchSet.of([given])
    assert before.roots == (str(tmp_path / "rel" / "r1" / "sites"),)
    assert before.listing(str(tmp_path / "current"))  # where the flip happens
    assert str(tmp_path) in before.listings

    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to("rel/r2")
    assert WatchSet.of([given]).moved(before) == [str(given)]


def test_a_folder_removed_or_put_back_leads_elsewhere(tmp_path: Path) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    present = WatchSet.of([sites])
    shutil.rmtree(sites)
    removed = WatchSet.of([sites])
    assert removed.moved(present) == [str(sites)] and removed.roots == ()
    sites.mkdir()  # the same name, another directory
    assert WatchSet.of([sites]).moved(removed) == [str(sites)]


@pytest.mark.slow
async def test_a_watched_folder_removed_and_put_back_is_watched_again(
        world: World, spawn: Spawn) -> None:
    copy = world.cwd / "copy"
    shutil.copytree(world.sites, copy)
    agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")

    shutil.rmtree(world.sites)
    await agent.wait_for(r"trigger=change .*result=invalid")
    shutil.copytree(copy, world.sites)
    await agent.wait_for(r"the desired state is valid again")

    world.edit("displayName: Sungrow SH10RT", "displayName: Sungrow B")
    await agent.wait_for(r"trigger=change changes=1 done=1 .*result=applied")
    assert world.cloud_name() == "Sungrow B"
    assert any(line.endswith(" changed: sites/devices.yaml") for line in agent.out), agent.text
    assert not any(" error: watching " in line for line in agent.out), agent.text
    assert await agent.terminate() == 0


@pytest.mark.slow
async def test_flipping_a_watched_symlink_is_a_change_and_only_its_new_target_is_watched(
        world: World, spawn: Spawn) -> None:
    r1, r2 = world.cwd / "rel" / "r1", world.cwd / "rel" / "r2"
    shutil.copytree(world.sites, r1)
    shutil.copytree(world.sites, r2)
    world.edit("displayName: Sungrow SH10RT", "displayName: Sungrow r2", r2 / "devices.yaml")
    current = world.cwd / "current"
    current.symlink_to("rel/r1")
    agent = await spawn("watch", "current", "--interval", "60s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    assert world.cloud_name() == "Sungrow SH10RT"

    # The usual deploy: a new link renamed over the old one, in one step.
    (world.cwd / "current.new").symlink_to("rel/r2")
    os.replace(world.cwd / "current.new", current)
    await agent.wait_for(r"run=2 trigger=change changes=1 done=1 .*result=applied")
    assert world.cloud_name() == "Sungrow r2"

    # The old release is no longer live: its edits are no change; the new one's are.
    world.edit("displayName: Home, Solna", "displayName: Home, old", r1 / "site.yaml")
    world.edit("displayName: Sungrow r2", "displayName: Sungrow r2b", r2 / "devices.yaml")
    await agent.wait_for(r"run=3 trigger=change changes=1 done=1 .*result=applied")
    assert world.cloud_name() == "Sungrow r2b"
    changed = [line.split(" changed: ", 1)[1] for line in agent.out if " changed: " in line]
    assert changed == ["current", "current/devices.yaml"], agent.text
    assert await agent.terminate() == 0


async def test_plan_only_on_a_state_directory_that_is_a_file_says_so_and_plans(
        world: World, spawn: Spawn, tmp_path: Path) -> None:
    """As `plan` says it: the plans go on, without what the state directory remembers."""
    blocker = tmp_path / "state-file"
    blocker.write_text("")
    env = world.env | {"RECONCILER_STATE_DIR": str(blocker)}
    agent = await spawn("watch", "sites", "--plan-only", env=env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=planned")
    assert await agent.terminate() == 0
    assert agent.err == [
        f"warning: cannot use the state directory {blocker} (RECONCILER_STATE_DIR): it is a "
        "file, not a directory; the agent's plans do not know the deletion policies remembered "
        "for gateways, the MQTT passwords last sent to devices (a changed password is not "
        "shown), or writes an earlier run left unfinished"], agent.text
