"""What a real `reconciler watch` says beyond its changes, against simulators: objects that
nothing declares any more (listed as `reconciler plan` lists them, once per change of the
set, and counted in every run line), and writes left unfinished in the journal (named as
`reconciler apply` names them; another live process's writes in flight are not called
interrupted), what became of an Enapter config file written before (in its outcome
line, text and JSON, as `reconciler apply` says it), which planned changes are blocked, in
the JSON log as the text plan's [BLOCKED], and what a deferred one would do. A huge key of
an invalid file is cut in its diagnostic, text and JSON alike. The changes deferred are
listed when they or their reasons change, not at every run."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import REPO, WAIT_S, ZAP_SERIAL, Spawn, World, start_world
from aiohttp import web

from reconciler.engine.state import unfinished_intents
from reconciler.sim.fleet import SimFleet

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
                             "2 objects found that nothing declares (--prune removes them):"
                             ), heads
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


class HeldRename:
    """Holds the first device rename that reaches Novacore, once `armed`, until `release`
    is set: a write in flight for as long as a test needs, with its intent journaled."""

    def __init__(self) -> None:
        self.armed = False
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "PUT" and request.path.startswith("/devices/") and self.armed:
                self.armed = False
                self.arrived.set()
                await self.release.wait()
            return await handler(request)

        sims.novacore.app.middlewares.append(hold)


async def rename_held(world: World, spawn: Spawn, held: HeldRename) -> Any:
    """A watch agent whose rename of the inverter is in flight, held; the agent and the
    journal's intent of that write."""
    agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    held.armed = True
    world.edit("displayName: Sungrow SH10RT", "displayName: Sungrow A")
    await asyncio.wait_for(held.arrived.wait(), WAIT_S)
    [intent] = unfinished_intents(world.journal)
    assert intent["address"] == "device/home-solna-inverter[novacore]", intent
    return agent, intent


async def test_plan_only_does_not_call_the_writes_of_the_agent_holding_the_lock_interrupted(
        tmp_path: Path, spawn: Spawn) -> None:
    held = HeldRename()
    world = await start_world(tmp_path, before_start=held.install)
    try:
        agent, _ = await rename_held(world, spawn, held)
        reader = await spawn("watch", "sites", "--plan-only", "--log-format", "json",
                             env=world.env, cwd=world.cwd)
        await reader.wait_for(r'"event": "run"')
        held.release.set()
        await agent.wait_for(r"trigger=change changes=1 done=1 .*result=applied")
        assert await reader.terminate() == 0
        assert await agent.terminate() == 0
    finally:
        await world.sims.stop()
    assert "interrupted" not in reader.text, reader.text
    [note] = [e for e in map(json.loads, reader.out) if e["event"] == "note"]
    assert note["locked_by"].startswith(f"pid {agent.pid} on "), note
    assert "running `reconciler watch sites" in note["locked_by"], note
    assert note["unfinished"] == 1 and "writes" not in note, note
    assert world.cloud_name() == "Sungrow A"


async def test_after_kill_9_the_interrupted_writes_are_named_by_watch_as_by_apply(
        tmp_path: Path, spawn: Spawn) -> None:
    held = HeldRename()
    world = await start_world(tmp_path, before_start=held.install)
    try:
        agent, intent = await rename_held(world, spawn, held)
        await agent.kill()  # SIGKILL: the write is cut off, the lock goes with the process
        held.release.set()
        named = f"  {intent['address']} {intent['operation']} (started {intent['ts']})"

        reader = await spawn("watch", "sites", "--plan-only", env=world.env, cwd=world.cwd)
        await reader.wait_for(r"run=1 trigger=start ")
        assert await reader.terminate() == 0
        watched = [line.split(" ", 1)[1] for line in reader.out]
        at = watched.index("1 write(s) of an earlier run were interrupted; the plan observes "
                           "what they did:")
        assert watched[at + 1] == named, reader.text

        applied = await spawn("apply", "sites", "--auto-approve", env=world.env, cwd=world.cwd)
        assert await applied.finish() == 0, applied.text
        at = applied.out.index("note: 1 write(s) of an earlier run were interrupted; the "
                               "state is observed again before anything is applied:")
        assert applied.out[at + 1] == named, applied.text
    finally:
        await world.sims.stop()
    assert world.cloud_name() == "Sungrow A"
    assert unfinished_intents(world.journal) == [], "settled by the apply"


async def test_the_outcome_lines_say_what_became_of_a_config_file_written_before(
        tmp_path: Path, spawn: Spawn) -> None:
    world = await start_world(tmp_path, "h2-lab-enapter")
    try:
        state = Path(world.env["RECONCILER_STATE_DIR"])
        written, moved = state / "secrets" / "h2-lab-ucm.json", state / "keys" / "h2-lab-ucm.json"
        devices = world.sites / "devices.yaml"
        address = "device/h2-lab-ucm[enapter]"
        agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                            env=world.env, cwd=world.cwd)
        await agent.wait_for(r"run=1 trigger=start .* result=applied")
        assert written.is_file()
        world.edit("file: secrets/h2-lab-ucm.json", "file: keys/h2-lab-ucm.json", devices)
        [line] = await agent.wait_for(re.escape(f"✓ {address} update"))
        assert line.endswith(f"✓ {address} update: removed {written}"), agent.text
        assert await agent.terminate() == 0
        assert moved.is_file() and not written.exists()

        agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                            "--log-format", "json", env=world.env, cwd=world.cwd)
        await agent.wait_for(r'"event": "run".*"result": "no-changes"')
        world.edit("file: keys/h2-lab-ucm.json", "file: secrets/h2-lab-ucm.json", devices)

        def outcome(line: str) -> bool:
            event = json.loads(line)
            return bool(event["event"] == "outcome" and event["address"] == address)

        [line] = await agent.wait_for(outcome)
        assert await agent.terminate() == 0
        event = json.loads(line)
        assert event["status"] == "done" and event["config_file"] == f"removed {moved}", line
        assert written.is_file() and not moved.exists()
    finally:
        await world.sims.stop()


async def test_a_blocked_change_is_said_blocked_in_its_json_planned_event(
        tmp_path: Path, spawn: Spawn) -> None:
    # farm-gotland's Ferroamp reads its MQTT password from a secret nobody gave here.
    world = await start_world(tmp_path, "farm-gotland")
    try:
        agent = await spawn("watch", "sites", "--plan-only", "--interval", "60s",
                            "--log-format", "json", env=world.env, cwd=world.cwd)
        await agent.wait_for(r'"event": "run"')
        assert await agent.terminate() == 0
    finally:
        await world.sims.stop()
    planned = {e["address"]: e for e in map(json.loads, agent.out) if e["event"] == "planned"}
    blocked = {address for address, event in planned.items() if event["blocked"]}
    assert blocked == {f"device/farm-gotland-ferroamp[{part}]"
                       for part in ("zap", "novacore", "publish")}, agent.text
    assert "ferroamp-mqtt" in planned["device/farm-gotland-ferroamp[zap]"]["message"]
    assert blocked != planned.keys(), "and the others are not"
    assert all(event["blocked"] is False for address, event in planned.items()
               if address not in blocked), planned


async def test_a_deferred_change_says_what_it_would_do_in_its_json_planned_event(
        world: World, spawn: Spawn) -> None:
    await world.sims.zaps[ZAP_SERIAL].set_offline("refuse")
    agent = await spawn("watch", "sites", "--plan-only", "--interval", "60s",
                        "--log-format", "json", env=world.env, cwd=world.cwd)
    await agent.wait_for(r'"event": "run"')
    assert await agent.terminate() == 0
    planned = {e["address"]: e for e in map(json.loads, agent.out) if e["event"] == "planned"}
    # The site is deferred whole: what Novacore was read for says what it would do, what
    # the Zap holds is not known.
    cloud = planned["device/home-solna-inverter[novacore]"]
    assert (cloud["actions"], cloud["deferred_actions"]) == (["defer"], ["create"]), cloud
    zap = planned["device/home-solna-inverter[zap]"]
    assert (zap["actions"], zap["deferred_actions"]) == (["defer"], None), zap
    # Every key of the event is one the README gives it.
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    start = readme.index("With `--log-format json` every line is an object")
    listed = readme[start:readme.index("How it behaves:", start)]
    assert sorted(k for k in cloud if f"`{k}`" not in listed) == [], listed


async def test_a_huge_key_is_cut_in_the_diagnostics_text_and_json(
        world: World, spawn: Spawn) -> None:
    # As long as a YAML key may be (1,024 characters): an edit that makes the files invalid.
    key = "x" + "A" * 1000
    cut = "x" + "A" * 79 + "… (1,001 characters)"
    agents = {fmt: await spawn("watch", "sites", "--plan-only", "--log-format", fmt,
                               "--debounce", "0.2s", env=world.env, cwd=world.cwd)
              for fmt in ("json", "text")}
    for agent in agents.values():
        await agent.wait_for(r"run=1 trigger=start|\"run\": 1, \"trigger\"")
    world.edit("  displayName: Grid meter (P1)\n",
               f"  displayName: Grid meter (P1)\n  {key}: 1\n")
    for fmt, agent in agents.items():
        await agent.wait_for("result=invalid" if fmt == "text" else '"result": "invalid"')
        assert await agent.terminate() == 0
        assert max(map(len, agent.out)) < 1000, agent.text[:2000]
    [diagnostic] = [e for e in map(json.loads, agents["json"].out) if e["event"] == "diagnostic"]
    assert diagnostic["path"] == f"spec.{cut}", diagnostic
    assert any(f": spec.{cut}: unknown field" in line for line in agents["text"].out), \
        agents["text"].text


def deferred_listings(lines: list[str], fmt: str) -> list[tuple[int, list[str]]]:
    """Each listing of the deferred changes in the log: its run and the reason of each
    change listed under it (`ADDRESS ACTION: MESSAGE`); none listed is the line saying
    that nothing is deferred any more."""
    listings: list[tuple[int, list[str]]] = []
    for line in lines:
        if fmt == "json":
            event = json.loads(line)
            if event["event"] == "deferred":
                listings.append((event["run"], []))
                assert event["count"] >= 0, event
            elif event["event"] == "outcome" and event["status"] == "deferred":
                assert listings and listings[-1][0] == event["run"], line
                listings[-1][1].append(
                    f"{event['address']} {event['action']}: {event['message']}")
            continue
        head = re.search(r" run=(\d+) (?:(\d+) changes? deferred, tried again at every run; "
                         r"listed again when they or their reasons change:|(no changes "
                         r"deferred any more))$", line)
        if head is not None:
            listings.append((int(head.group(1)), []))
        elif (change := re.search(r"Z   … (\S+) (\w+) deferred: (.*)$", line)) is not None:
            assert listings, line
            listings[-1][1].append(f"{change.group(1)} {change.group(2)}: {change.group(3)}")
    return listings


def deferred_counts(lines: list[str], fmt: str) -> list[int]:
    """The deferred=N of each run line."""
    if fmt == "json":
        return [e["deferred"] for e in map(json.loads, lines) if e["event"] == "run"]
    return [int(m.group(1)) for m in map(re.compile(r" run=\d+ trigger=\w+ .* deferred=(\d+) ")
                                         .search, lines) if m]


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_deferred_changes_are_listed_when_they_or_their_reasons_change_not_every_run(
        world: World, spawn: Spawn, fmt: str) -> None:
    """A gateway that does not answer for many runs has its deferred changes listed once,
    counted in every run line; listed again, whole, when the reasons change (its cloud gone
    too), and once all are done, one line says that nothing is deferred any more."""
    run_line = r'"event": "run".*' if fmt == "json" else r"trigger=interval .*"
    deferred_run = run_line + (r'"deferred": [1-9]' if fmt == "json" else r" deferred=[1-9]")
    zap = world.sims.zaps[ZAP_SERIAL]
    await zap.set_offline("refuse")
    env = world.env | {"RECONCILER_RETRIES": "1"}
    agent = await spawn("watch", "sites", "--interval", "0.3s", "--log-format", fmt,
                        env=env, cwd=world.cwd)
    await agent.wait_for(deferred_run, count=4)
    [(run, listed)] = deferred_listings(agent.out, fmt)
    assert run == 1, agent.text
    assert len(listed) == len(set(listed)) == deferred_counts(agent.out, fmt)[0] > 0, listed
    assert any(line.startswith("device/home-solna-inverter[zap] defer: ") for line in listed)
    assert not any("Novacore" in line for line in listed), listed

    # The reasons change (Novacore does not answer either): listed again, once.
    await world.sims.novacore.set_offline("refuse")
    await agent.wait_for(lambda _: len(deferred_listings(agent.out, fmt)) == 2)
    # A run that Novacore stopped answering half-way through may have listed other reasons
    # again: two runs after, the reasons are those of Novacore gone.
    seen = len(agent.out)
    await agent.wait_for(lambda _: len(deferred_counts(agent.out[seen:], fmt)) >= 2)
    listings, seen = deferred_listings(agent.out, fmt), len(agent.out)
    await agent.wait_for(lambda _: len(deferred_counts(agent.out[seen:], fmt)) >= 3)
    assert deferred_listings(agent.out, fmt) == listings, agent.text
    again = listings[-1][1]
    assert again != listed and any("Novacore" in line for line in again), again
    assert len(again) == deferred_counts(agent.out, fmt)[-1], agent.text

    await world.sims.novacore.set_offline("online")
    await zap.set_offline("online")
    await agent.wait_for(lambda _: deferred_counts(agent.out, fmt)[-3:] == [0, 0, 0])
    assert await agent.terminate() == 0
    listings = deferred_listings(agent.out, fmt)
    # Back to the first reasons on the way (Novacore answered first) or not: whichever
    # listings the recovery made, the last one says that nothing is deferred any more.
    assert listings[-1][1] == [] and all(changes for _, changes in listings[:-1]), listings
    assert world.zap_der_enabled("pv") is True


class RefusedRenames:
    """Novacore answers a device's rename with a 422 and `reason`, while one is set: a
    failure no retry gets past, for as many runs as a test needs."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def install(self, sims: SimFleet) -> None:
        novacore = sims.novacore

        @web.middleware
        async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "PUT" and request.path.startswith("/devices/") \
                    and self.reason is not None:
                return web.json_response(novacore.error_body(422, "invalid_name", self.reason),
                                         status=422)
            return await handler(request)

        novacore.app.middlewares.append(refuse)


NOT_MADE_HEAD = re.compile(r" run=(\d+) (?:(\d+) changes? not made \((.*)\), planned again at "
                           r"every run; listed again when they or their reasons change:|no "
                           r"changes failed, blocked or skipped any more)$")


def not_made_listings(lines: list[str], fmt: str = "text") -> list[tuple[int, list[str]]]:
    """Each listing of the changes failed, blocked or skipped: its run and each change
    listed under it (`ADDRESS ACTION STATUS: MESSAGE`); none listed is the line saying that
    none is left."""
    listings: list[tuple[int, list[str]]] = []
    for line in lines:
        if fmt == "json":
            event = json.loads(line)
            if event["event"] == "failing":
                listings.append((event["run"], []))
            elif event["event"] == "outcome" and event["status"] != "done":
                assert listings and listings[-1][0] == event["run"], line
                listings[-1][1].append(f"{event['address']} {event['action']} "
                                       f"{event['status']}: {event['message']}")
            continue
        if (head := NOT_MADE_HEAD.search(line)) is not None:
            listings.append((int(head.group(1)), []))
        elif (change := re.search(r"Z   [✗!-] (\S+) (\w+) (failed|blocked|skipped): (.*)$",
                                  line)) is not None:
            assert listings, line
            listings[-1][1].append(" ".join(change.group(1, 2)) + f" {change.group(3)}: "
                                   + change.group(4))
    return listings


def run_counts(lines: list[str], key: str) -> list[int]:
    """The `key=N` (failed, blocked, ...) of each text run line."""
    return [int(m.group(1)) for m in map(re.compile(rf" run=\d+ trigger=\w+ .* {key}=(\d+) ")
                                         .search, lines) if m]


async def test_a_failure_that_keeps_failing_is_listed_once_and_again_when_its_reason_changes(
        tmp_path: Path, spawn: Spawn) -> None:
    """A rename the cloud refuses at every run is listed in full once, then only counted
    (failed=1 in every run line); a new reason is listed in full; once it is made, one line
    says that nothing fails any more."""
    refused = RefusedRenames()
    world = await start_world(tmp_path, before_start=refused.install)
    try:
        agent = await spawn("watch", "sites", "--interval", "0.3s", "--debounce", "0.2s",
                            env=world.env, cwd=world.cwd)
        await agent.wait_for(r"run=1 trigger=start .* result=applied")
        refused.reason = "Device name 'Sungrow A' is taken in this site"
        world.edit("displayName: Sungrow SH10RT", "displayName: Sungrow A")
        await agent.wait_for(r"trigger=interval .* failed=1 .*result=failed", count=3)
        [(run, [line])] = not_made_listings(agent.out)
        assert line.startswith("device/home-solna-inverter[novacore] update failed: "), line
        assert "Sungrow A' is taken in this site" in line, line
        heading = next(line for line in agent.out if NOT_MADE_HEAD.search(line))
        assert heading.endswith(f" run={run} 1 change not made (1 failed), planned again at "
                                "every run; listed again when they or their reasons change:")
        assert sum("Sungrow A' is taken" in o for o in agent.out) == 1, agent.text

        refused.reason = "Device names are read-only until the site is verified"
        await agent.wait_for(lambda _: len(not_made_listings(agent.out)) == 2)
        seen = len(agent.out)
        await agent.wait_for(lambda _: len(run_counts(agent.out[seen:], "failed")) >= 3)
        listings = not_made_listings(agent.out)
        assert len(listings) == 2, agent.text
        [again] = listings[1][1]
        assert "Device names are read-only until the site is verified" in again, again
        assert all(count == 1 for count in run_counts(agent.out, "failed")[1:]), agent.text

        refused.reason = None
        await agent.wait_for(r" no changes failed, blocked or skipped any more$")
        await agent.wait_for(r"✓ device/home-solna-inverter\[novacore\] update")
        assert await agent.terminate() == 0
    finally:
        await world.sims.stop()
    assert world.cloud_name() == "Sungrow A"
    assert [len(changes) for _, changes in not_made_listings(agent.out)] == [1, 1, 0]


async def test_blocked_changes_are_listed_in_the_json_log_once_per_change_of_their_set(
        tmp_path: Path, spawn: Spawn) -> None:
    # farm-gotland's Ferroamp reads its MQTT password from a secret nobody gave here.
    world = await start_world(tmp_path, "farm-gotland")
    try:
        agent = await spawn("watch", "sites", "--interval", "0.3s", "--log-format", "json",
                            env=world.env, cwd=world.cwd)
        await agent.wait_for(r'"event": "run", "run": 4, ')
        assert await agent.terminate() == 0
    finally:
        await world.sims.stop()
    events = [json.loads(line) for line in agent.out]
    runs = [e for e in events if e["event"] == "run"]
    assert len(runs) >= 4 and all(r["blocked"] == 3 for r in runs), runs
    [heading] = [e for e in events if e["event"] == "failing"]
    assert (heading["run"], heading["count"], heading["blocked"], heading["failed"],
            heading["skipped"]) == (1, 3, 3, 0, 0), heading
    [(_, listed)] = not_made_listings(agent.out, "json")
    assert sorted(listed) == sorted(
        o for e in events if e["event"] == "outcome" and e["status"] == "blocked"
        for o in [f"{e['address']} {e['action']} blocked: {e['message']}"])
    assert {line.split(" ", 1)[0] for line in listed} == {
        f"device/farm-gotland-ferroamp[{part}]" for part in ("zap", "novacore", "publish")}
    assert all("ferroamp-mqtt" in line or "blocked by" in line for line in listed), listed
