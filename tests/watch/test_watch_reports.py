"""What a real `reconciler watch` says beyond its changes, against simulators: objects that
nothing declares any more (listed as `reconciler plan` lists them, once per change of the
set, and counted in every run line)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from agent_helpers import Spawn, World

pytestmark = pytest.mark.slow

P1_DOCUMENT = "---\napiVersion: energy.reconciler.dev/v1alpha1\nkind: Device\nmetadata:\n" \
              "  name: home-solna-p1\n"
ANNEX = """\
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata:
  name: home-solna-annex
spec:
  displayName: Home, Solna (annex)
  timezone: Europe/Stockholm
  novacore:
    orgId: org-4f2a9c71
"""


def unmanaged_lines(lines: list[str]) -> list[str]:
    return [line.split("! unmanaged: ", 1)[1] for line in lines if "! unmanaged: " in line]


async def test_a_device_deleted_from_git_is_listed_as_plan_lists_it_once_per_change(
        world: World, spawn: Spawn) -> None:
    agent = await spawn("watch", "sites", "--interval", "0.5s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* unmanaged=0 .*result=applied")
    text = world.devices_file.read_text(encoding="utf-8")
    world.devices_file.write_text(text[:text.index(P1_DOCUMENT)], encoding="utf-8")

    [changed] = await agent.wait_for(r"trigger=change ")
    assert re.search(r" unmanaged=2 .*result=no-changes$", changed), agent.text
    # Two interval runs after it: the same objects, counted and not listed again.
    await agent.wait_for(r"trigger=interval .* unmanaged=2 .*result=no-changes", count=2)
    heads = [line for line in agent.out if "found that nothing declares" in line]
    assert len(heads) == 1, agent.text
    assert heads[0].endswith(" No changes. The declared objects match the actual state; "
                             "2 objects found that nothing declares (--prune removes them "
                             "where their policy allows):"), heads
    assert not any("actual state matches" in line for line in agent.out)

    plan = await spawn("plan", "sites", env=world.env, cwd=world.cwd)
    assert await plan.finish() == 0, plan.text
    listed = unmanaged_lines(agent.out)
    assert sorted(listed) == sorted(unmanaged_lines(plan.out)), (agent.text, plan.text)
    assert len(listed) == 2 and all("E0043007123456789" in line for line in listed), listed

    world.devices_file.write_text(text, encoding="utf-8")  # declared again
    await agent.wait_for(r"run=\d+ no objects found that nothing declares any more")
    [back] = (await agent.wait_for(r"trigger=change ", count=2))[1:]
    assert " unmanaged=0 " in back, agent.text
    assert await agent.terminate() == 0


async def test_a_site_whose_file_left_the_tree_is_listed_in_the_json_log(
        world: World, spawn: Spawn, tmp_path: Path) -> None:
    annex = world.sites / "annex.yaml"
    annex.write_text(ANNEX, encoding="utf-8")
    agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                        "--log-format", "json", env=world.env, cwd=world.cwd)
    await agent.wait_for(r'"event": "run".*"result": "applied"')
    annex.rename(tmp_path / "annex.yaml")  # moved out of the tree

    def changed(line: str) -> bool:
        event = json.loads(line)
        return bool(event["event"] == "run" and event["trigger"] == "change")

    [run] = await agent.wait_for(changed)
    assert await agent.terminate() == 0
    events = [json.loads(line) for line in agent.out]
    [listed] = [e for e in events if e["event"] == "unmanaged"]
    assert listed["count"] == 1 and json.loads(run)["unmanaged"] == 1, agent.text
    [site] = listed["objects"]
    assert "was applied for Site home-solna-annex, which is declared no more" in \
        site["description"], site
    assert json.loads(run)["result"] == "no-changes"
