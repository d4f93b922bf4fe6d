"""`reconciler watch` as a subprocess against simulators: edits are applied, invalid edits
change nothing, drift is corrected on the interval, the lock keeps a second writer out,
SIGTERM leaves no half-written state, unreachable targets do not stop the agent, a serial
edited away from its URL override is warned about once, a closed stdout stops the agent."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import (
    INVERTER_SN,
    REPO,
    WAIT_S,
    ZAP_SERIAL,
    Proc,
    Spawn,
    World,
    start_world,
)
from aiohttp import web

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.engine.state import StateDir, unfinished_intents
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sim.server import READ_METHODS
from reconciler.sources.loader import load_fleet

pytestmark = pytest.mark.slow

RUN_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z run=(\d+) trigger=(\w+) "
                      r"changes=(\d+) done=(\d+) failed=(\d+) deferred=(\d+) blocked=(\d+) "
                      r"skipped=(\d+) unmanaged=\d+ duration=[\d.]+s result=([\w-]+)$")


def runs(lines: list[str], trigger: str | None = None) -> list[re.Match[str]]:
    found = [m for m in map(RUN_LINE.match, lines) if m]
    return [m for m in found if trigger is None or m.group(2) == trigger]


def no_secrets(world: World, text: str) -> None:
    for secret in world.secrets():
        assert secret not in text, "a credential was printed"


async def first_deferred_drift_run(agent: Proc) -> int:
    """The number of the first interval run deferred, once the test has set a throttle
    while the agent runs: the first run it reached. Those before it, however many a slow
    test let the agent start before the throttle was set, found the server answering."""
    [line] = await agent.wait_for(r"run=\d+ trigger=interval .* result=deferred")
    match = RUN_LINE.match(line)
    assert match is not None, line
    return int(match.group(1))


def drift_runs_after(agent: Proc, run: int) -> list[str]:
    return [m.group(0) for m in runs(agent.out, "interval") if int(m.group(1)) > run]


async def test_an_edit_is_applied_once_after_a_burst_of_saves(world: World, spawn: Spawn) -> None:
    # The saves come 0.1 s apart: far enough for the file watch to see each on its own,
    # well within the debounce however late a loaded machine wakes the test or the agent.
    agent = await spawn("watch", "sites", "--interval", "6s", "--debounce", "3s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    assert world.cloud_name() == "Sungrow SH10RT"

    # An editor saving several times in quick succession: one run, with the last content.
    for name in ("Sungrow A", "Sungrow B", "Sungrow C"):
        world.edit(world.devices_file.read_text().split("displayName: ")[1].split("\n")[0],
                   name)
        await asyncio.sleep(0.1)
    [line] = await agent.wait_for(r"trigger=change")
    assert " changes=1 done=1 failed=0 " in line and line.endswith("result=applied"), line
    assert world.cloud_name() == "Sungrow C"
    run = int(line.split(" run=")[1].split()[0])
    assert any(re.search(rf"run={run} changed: sites/devices\.yaml", line) for line in agent.out)

    # No more change runs: the run after it is the next drift run, an interval later. A
    # save seen late would have made a change run come first.
    [after] = await agent.wait_for(rf" run={run + 1} trigger=")
    assert f" run={run + 1} trigger=interval " in after, agent.text
    assert len(runs(agent.out, "change")) == 1, agent.text
    assert await agent.terminate() == 0
    no_secrets(world, agent.text)


async def test_an_invalid_edit_changes_nothing_and_the_last_valid_state_stays_in_force(
        world: World, spawn: Spawn) -> None:
    agent = await spawn("watch", "sites", "--interval", "1s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    writes = world.sims.writes()

    world.edit("deviceType: inverter", "deviceType: toaster")
    await agent.wait_for(r"trigger=change .*result=invalid")
    assert any(re.search(r"error: sites/devices\.yaml:12:\d+: spec\.deviceType: ", line)
               for line in agent.out), agent.text
    assert world.sims.writes() == writes, "an invalid edit must not write anything"

    # Drift is still corrected, against the last valid desired state.
    world.sims.zaps[ZAP_SERIAL].set_der(INVERTER_SN, "pv", enabled=False)
    await agent.wait_for(r"trigger=interval changes=1 done=1 .*result=applied")
    assert world.zap_der_enabled("pv") is True
    assert any("reconciling the last valid desired state" in line for line in agent.out)

    world.edit("deviceType: toaster", "deviceType: inverter")
    await agent.wait_for(r"desired state is valid again")
    assert await agent.terminate() == 0


async def test_a_merge_conflict_left_in_a_file_is_named_at_its_line_and_changes_nothing(
        world: World, spawn: Spawn) -> None:
    agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    writes = world.sims.writes()

    # A `git pull` that stopped on a conflict leaves both sides in the file, as git writes
    # them; YAML alone would blame a line after the marker, naming no conflict.
    world.edit("  displayName: Sungrow SH10RT\n",
               "<<<<<<< HEAD\n  displayName: Sungrow ours\n=======\n"
               "  displayName: Sungrow theirs\n>>>>>>> 0f23897 (rename the inverter)\n")
    line = next(n for n, text in enumerate(world.devices_file.read_text().splitlines(), 1)
                if text.startswith("<<<<<<< "))
    await agent.wait_for(r"trigger=change .*result=invalid")
    assert any(text.endswith(f"  error: sites/devices.yaml:{line}:1: unresolved merge conflict "
                             f"(lines {line}-{line + 4}, between git's `<<<<<<<` and "
                             "`>>>>>>>` lines): keep the side you want and remove the marker "
                             "lines") for text in agent.out), agent.text
    assert world.sims.writes() == writes, "a conflicted file must not write anything"
    assert world.cloud_name() == "Sungrow SH10RT"
    assert await agent.terminate() == 0


async def test_an_edit_with_very_many_problems_logs_the_first_20_and_counts_the_rest(
        world: World, spawn: Spawn) -> None:
    agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    (world.sites / "garbage.yaml").write_text("---\nkind: Site\n" * 1000, encoding="utf-8")
    await agent.wait_for(r"trigger=change .*result=invalid")
    errors = [line for line in agent.out if "  error: sites/garbage.yaml:" in line]
    assert len(errors) == 20, agent.text
    assert errors[0].endswith("error: sites/garbage.yaml:2:1: apiVersion: required field "
                              "'apiVersion' is missing")
    assert any(line.endswith("run=2 invalid desired state (3000 problems, 20 shown); "
                             "nothing changed, the last valid state stays in force")
               for line in agent.out), agent.text
    notes = [line.split(" ", 1)[1] for line in agent.out if "  note: " in line]
    assert notes == ["  note: sites/garbage.yaml: 2980 more problems not shown",
                     "  note: the first 20 problems of a file and 100 in all are shown; fix "
                     "these first"], agent.text
    assert await agent.terminate() == 0


async def test_every_event_of_the_json_log_is_one_the_readme_lists(
        world: World, spawn: Spawn) -> None:
    """A Retry-After that holds the next run back (`held`) and an edit with more problems
    than are shown (`omitted`) among them, with the fields the README gives them."""
    agent = await spawn("watch", "sites", "--interval", "0.5s", "--debounce", "0.2s",
                        "--log-format", "json", env=world.env, cwd=world.cwd)
    await agent.wait_for(r'"event": "run".*"result": "applied"')
    novacore = world.sims.novacore
    novacore.faults.throttle_next, novacore.faults.retry_after_s = 1000, 86400
    await agent.wait_for(r'"event": "held"')
    (world.sites / "garbage.yaml").write_text("---\nkind: Site\n" * 1000, encoding="utf-8")
    await agent.wait_for(r'"event": "run".*"result": "invalid"')
    assert await agent.terminate() == 0

    events = [json.loads(line) for line in agent.out]
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    start = readme.index("With `--log-format json` every line is an object")
    listed = readme[start:readme.index("How it behaves:", start)]
    assert sorted({e["event"] for e in events if f"`{e['event']}`" not in listed}) == []
    [held] = [e for e in events if e["event"] == "held"]
    assert held["retry_after"] == 86400 and "`next_run`" in listed
    [omitted] = [e for e in events if e["event"] == "omitted"]
    assert omitted["problems"] == 2980 and "`problems`" in listed


async def test_drift_is_corrected_on_the_interval_and_json_lines_parse(
        world: World, spawn: Spawn) -> None:
    agent = await spawn("watch", "sites", "--interval", "1s", "--log-format", "json",
                        env=world.env, cwd=world.cwd)
    await agent.wait_for(r'"event": "run".*"result": "applied"')
    world.sims.zaps[ZAP_SERIAL].set_der(INVERTER_SN, "pv", enabled=False)
    device = world.cloud_device()
    assert device is not None
    world.sims.novacore.rename_device(device.id, "renamed in the cloud UI")

    def corrected(line: str) -> bool:
        event: dict[str, object] = json.loads(line)
        return (event["event"] == "run" and event["trigger"] == "interval"
                and event["done"] == 2)

    await agent.wait_for(corrected)
    assert world.zap_der_enabled("pv") is True
    assert world.cloud_name() == "Sungrow SH10RT"
    assert await agent.terminate() == 0

    events = [json.loads(line) for line in agent.out]  # every stdout line is JSON
    assert {"start", "run", "outcome", "stopping", "stopped"} <= {e["event"] for e in events}
    first = next(e for e in events if e["event"] == "run")
    assert first["run"] == 1 and first["trigger"] == "start"
    assert set(first) >= {"ts", "changes", "done", "failed", "deferred", "blocked", "skipped",
                          "duration", "result"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", e["ts"]) for e in events)
    no_secrets(world, agent.text)


async def test_a_second_agent_and_a_manual_apply_are_refused_naming_the_holder(
        world: World, spawn: Spawn) -> None:
    agent = await spawn("watch", "sites", "--interval", "60s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r" watching sites ")  # the lock is taken before this line

    second = await spawn("watch", "sites", env=world.env, cwd=world.cwd)
    manual = await spawn("apply", "sites", "--auto-approve", env=world.env, cwd=world.cwd)
    assert await second.finish() == 1
    assert await manual.finish() == 1
    for refused in (second, manual):
        message = "\n".join(refused.err)
        assert "is locked by" in message, message
        assert f"pid {agent.pid} " in message and "`reconciler watch sites" in message, message
    assert agent.process.returncode is None, "the holder keeps running"

    assert await agent.terminate() == 0
    with StateDir(world.cwd / "state").lock("test"):  # released: the next writer gets it
        pass


async def test_a_state_directory_removed_under_the_agent_is_locked_again_before_it_writes(
        world: World, spawn: Spawn) -> None:
    # `git clean -fdx` in the checkout, or `rm -rf` to start afresh: the agent's lock went
    # with the directory, and a lock on a file no longer there keeps no other writer out.
    state = world.cwd / "state"
    agent = await spawn("watch", "sites", "--interval", "60s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    shutil.rmtree(state)

    world.edit("Sungrow SH10RT", "Sungrow again")
    await agent.wait_for(r"run=2 trigger=change .* result=applied")
    assert any("run=2 note: the state directory" in line
               and "was removed or replaced while the agent ran: its lock is taken again"
               in line for line in agent.out), agent.text
    manual = await spawn("apply", "sites", "--auto-approve", env=world.env, cwd=world.cwd)
    assert await manual.finish() == 1
    assert f"is locked by pid {agent.pid} " in "\n".join(manual.err), manual.text

    # Removed again, and another writer came first: the agent's run writes nothing and
    # names it; the next run tries the lock again.
    shutil.rmtree(state)
    second = await spawn("watch", "sites", "--interval", "60s", env=world.env, cwd=world.cwd)
    await second.wait_for(r"run=1 trigger=start ")
    world.edit("Sungrow again", "Sungrow by the second")
    [line] = await agent.wait_for(r"run=3 trigger=change ")
    assert line.endswith("result=error") and " done=0 " in line, agent.text
    assert any(f"run=3 error: the state directory {state} is locked by pid {second.pid} "
               in line for line in agent.out), agent.text
    await second.wait_for(r"run=2 trigger=change .* result=applied")
    assert world.cloud_name() == "Sungrow by the second"
    assert await second.terminate() == 0
    assert await agent.terminate() == 0
    no_secrets(world, agent.text)


class HoldWritesAfterTheFirst:
    """Once a first write was answered, holds every later write, on any simulator, before it
    is carried out, until `release` is set: the agent's apply, however fast, cannot get
    past the writes it has in flight until the test has stopped it, however slow the test."""

    def __init__(self) -> None:
        self.answered = False
        self.holding = asyncio.Event()  # a write is held
        self.release = asyncio.Event()

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method in READ_METHODS:
                return await handler(request)
            if self.answered:
                self.holding.set()
                await self.release.wait()
            response = await handler(request)
            self.answered = True
            return response

        for server in sims.http_servers():
            server.app.middlewares.append(hold)


async def _sigterm_while_held(spawn: Spawn, world: World, held: Any, what: str,
                              signum: signal.Signals = signal.SIGTERM) -> Proc:
    """A watch agent of `world`, sent SIGTERM (or `signum`) once `held` (a simulator
    middleware with `holding` and `release` events) holds `what`; the request held is let go
    once the agent says it is stopping, so that it starts nothing more."""
    agent = await spawn("watch", "sites", "--interval", "60s", env=world.env, cwd=world.cwd)
    try:
        await asyncio.wait_for(held.holding.wait(), WAIT_S)
    except TimeoutError:
        raise AssertionError(f"{what} not held within {WAIT_S}s:\n{agent.text}") from None
    agent.process.send_signal(signum)
    await agent.wait_for(rf" {signum.name}: stopping; ")
    held.release.set()
    return agent


# SIGHUP: the terminal the agent runs in closed, or its ssh session lost.
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
async def test_sigterm_mid_apply_finishes_writes_in_flight_and_the_next_start_converges(
        tmp_path: Path, spawn: Spawn, signum: signal.Signals) -> None:
    held = HoldWritesAfterTheFirst()
    world = await start_world(tmp_path, before_start=held.install)
    try:
        agent = await _sigterm_while_held(spawn, world, held, "a write after the first", signum)
        assert await agent.finish() == 0
        [line] = runs(agent.out)
        assert line.group(9) == "stopped", agent.text
        # The first write, and the one held when the signal came: in flight, so finished.
        assert int(line.group(4)) >= 2, agent.text
        assert int(line.group(8)) > 0, "some changes were not started"
        assert any("skipped: not started: stopping" in out for out in agent.out), agent.text
        assert unfinished_intents(world.journal) == [], "every write started was finished"
        assert agent.out[-1].endswith("stopped after 1 run")

        again = await spawn("watch", "sites", "--interval", "60s", env=world.env, cwd=world.cwd)
        await again.wait_for(r"run=1 trigger=start .* failed=0 .*result=applied")
        assert await again.terminate() == 0
        async with Reconciler(load_fleet([world.sites]), load_settings(world.env)) as reconciler:
            result = await reconciler.plan(PlanOptions(audience=Audience.CLI))
        assert not result.plan.has_changes, "converged"
    finally:
        held.release.set()  # a test failed early: no simulator handler is left waiting
        await world.sims.stop()


class SigtermAtFirstRename:
    """Sends SIGTERM to `agent` when the first device rename reaches Novacore, and holds
    that write for `pause_s` so that it is in flight when the agent handles the signal."""

    def __init__(self, pause_s: float = 0.3) -> None:
        self.pause_s = pause_s
        self.agent: Proc | None = None  # armed once set
        self.sent = False

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def terminate(request: web.Request, handler: Any) -> web.StreamResponse:
            if (request.method == "PUT" and request.path.startswith("/devices/")
                    and self.agent is not None and not self.sent):
                self.sent = True
                self.agent.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(self.pause_s)
            return await handler(request)

        sims.novacore.app.middlewares.append(terminate)


async def test_sigterm_sends_none_of_the_writes_waiting_for_a_slot(
        tmp_path: Path, spawn: Spawn) -> None:
    """One call in flight at a time: when SIGTERM comes, one rename is being served and the
    other waits for its slot. That one is not sent nor journaled, the run is reported
    stopped with it skipped, and the next start makes it, once."""
    sigterm = SigtermAtFirstRename()
    world = await start_world(tmp_path, before_start=sigterm.install)
    try:
        env = world.env | {"RECONCILER_CONCURRENCY": "1"}
        agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                            env=env, cwd=world.cwd)
        await agent.wait_for(r"run=1 trigger=start .* result=applied")
        renames = world.sims.novacore.requests
        renames.clear()
        journaled = len(world.journal.read_text().splitlines())
        sigterm.agent = agent
        world.edit("displayName: Sungrow SH10RT", "displayName: Sungrow A")
        world.edit("displayName: Grid meter (P1)", "displayName: Grid meter B")
        assert await agent.finish() == 0
        [line] = runs(agent.out, "change")
        changes, done, skipped, result = line.group(3, 4, 8, 9)
        assert (changes, done, skipped, result) == ("2", "1", "1", "stopped"), agent.text
        assert renames["PUT /devices/{device_id}"] == 1, "only the rename in flight was sent"
        stopped_run = [json.loads(text)
                       for text in world.journal.read_text().splitlines()[journaled:]]
        assert [r["phase"] for r in stopped_run] == ["intent", "done"], stopped_run
        assert unfinished_intents(world.journal) == []

        again = await spawn("watch", "sites", "--interval", "60s", env=env, cwd=world.cwd)
        await again.wait_for(r"run=1 trigger=start changes=1 done=1 failed=0 .*result=applied")
        assert await again.terminate() == 0
        assert renames["PUT /devices/{device_id}"] == 2, "the other rename made once"
        assert sorted(d.name for d in world.sims.novacore.devices.values()) == [
            "Grid meter B", "Sungrow A"]
    finally:
        await world.sims.stop()


class HoldTheClaimSignature:
    """Holds the Zap's signature of the gateway claim, the first of that change's two
    writes (the Zap signs, then Novacore claims), before it is carried out, until
    `release` is set: the test stops the agent while that write is in flight."""

    def __init__(self) -> None:
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "POST" and request.path == "/api/crypto/sign":
                self.holding.set()
                await self.release.wait()
            return await handler(request)

        sims.zaps[ZAP_SERIAL].app.middlewares.append(hold)


async def test_sigterm_after_the_zap_signed_the_claim_still_claims_it_in_novacore(
        tmp_path: Path, spawn: Spawn) -> None:
    """A claim whose signature was sent when SIGTERM comes is in flight: its second write,
    Novacore's claim, is still sent after the stop, and the claim is done. The gateway's
    devices, which wait for the claim, are not started."""
    held = HoldTheClaimSignature()
    world = await start_world(tmp_path, before_start=held.install)
    try:
        agent = await _sigterm_while_held(spawn, world, held, "the claim's signature")
        assert await agent.finish() == 0, agent.text

        novacore = world.sims.novacore
        assert novacore.requests["POST /gateways/claim"] == 1, agent.text
        assert novacore.gateways[ZAP_SERIAL].org_id == "org-4f2a9c71", "signed, then claimed"
        assert any(line.endswith("  ✓ gateway/home-solna-zap[novacore] claim")
                   for line in agent.out), agent.text
        assert any(line.endswith("  - device/home-solna-p1[zap] create skipped: not started: "
                                 "stopping") for line in agent.out), agent.text
        [line] = runs(agent.out)
        assert line.group(4, 9) == ("2", "stopped"), "the site and the claim are done"
        assert unfinished_intents(world.journal) == [], "every write started was finished"
    finally:
        held.release.set()  # a test failed early: no simulator handler is left waiting
        await world.sims.stop()


async def test_unreachable_gateway_defers_and_the_agent_recovers(
        world: World, spawn: Spawn) -> None:
    zap = world.sims.zaps[ZAP_SERIAL]
    await zap.set_offline("refuse")
    env = world.env | {"RECONCILER_RETRIES": "2"}
    agent = await spawn("watch", "sites", "--interval", "1s", env=env, cwd=world.cwd)
    [first] = await agent.wait_for(r"run=1 trigger=start")
    # The whole site waits for its gateway: nothing is guessed, nothing is written.
    assert " done=0 failed=0 " in first and first.endswith("result=deferred"), agent.text
    assert world.sims.writes() == 0
    assert any(re.search(r"… device/home-solna-inverter\[zap\] defer deferred: ", line)
               for line in agent.out), agent.text

    await zap.set_offline("online")
    await agent.wait_for(r"trigger=interval .* failed=0 deferred=0 .*result=applied")
    assert world.zap_der_enabled("pv") is True
    assert await agent.terminate() == 0


async def test_a_server_asking_to_wait_a_day_is_not_called_again_by_the_next_runs(
        world: World, spawn: Spawn) -> None:
    """A Retry-After longer than a run waits holds the agent's next drift run back until
    then, and the log says when that run starts: an interval of half a second does not
    call a throttled Novacore twice a second. An edit still runs at once, without calling
    Novacore: the runs share what each server asked."""
    agent = await spawn("watch", "sites", "--interval", "0.5s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    novacore = world.sims.novacore
    novacore.faults.throttle_next, novacore.faults.retry_after_s = 1000, 86400
    novacore.requests.clear()
    throttled = await first_deferred_drift_run(agent)
    asked = sum(novacore.requests.values())
    assert asked > 0
    await asyncio.sleep(3)  # six intervals
    assert sum(novacore.requests.values()) == asked, novacore.requests
    assert not drift_runs_after(agent, throttled), agent.text
    [held] = [line for line in agent.out if "the next drift run starts at" in line]
    assert re.search(rf"run={throttled} the next drift run starts at \d{{4}}-\d\d-\d\dT[\d:]+Z, "
                     r"not before: a server asked to be called again in 86400 s "
                     r"\(Retry-After\); a file change still runs at once", held), held

    # An edit is someone's: applied at once (its gateway's part), but Novacore asked every
    # run to wait, the edit's too: not called before then, and the run says until when.
    world.edit("displayName: Sungrow SH10RT", "displayName: Sungrow Roof")
    await agent.wait_for(rf"run={throttled + 1} trigger=change .* result=")
    assert sum(novacore.requests.values()) == asked, novacore.requests
    assert any(re.search(r"not sent: http://127\.0\.0\.1:\d+ asked \(Retry-After\) not to "
                         r"be called before \d{4}-\d\d-\d\dT[\d:]+Z", line)
               for line in agent.out), agent.text
    await asyncio.sleep(2)
    assert sum(novacore.requests.values()) == asked, novacore.requests
    assert not drift_runs_after(agent, throttled), agent.text
    assert await agent.terminate() == 0


async def test_a_retry_after_beyond_any_date_holds_the_next_run_for_a_day(
        world: World, spawn: Spawn) -> None:
    """A Retry-After of more seconds than a date holds (a wrong header) holds the next
    drift run for a day, the longest a Retry-After is honoured, instead of failing the run
    and calling the server again at every interval. The log says what the server asked,
    as the deferral does, cut short (308 digits), and that a day at most is waited."""
    agent = await spawn("watch", "sites", "--interval", "0.5s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    novacore = world.sims.novacore
    novacore.faults.throttle_next, novacore.faults.retry_after = 1000, "3" * 308
    novacore.requests.clear()
    throttled = await first_deferred_drift_run(agent)
    asked = sum(novacore.requests.values())
    await asyncio.sleep(2)
    assert sum(novacore.requests.values()) == asked, novacore.requests
    assert not drift_runs_after(agent, throttled), agent.text
    assert "unexpected error" not in agent.text, agent.text
    [held] = [line for line in agent.out if "the next drift run starts at" in line]
    assert f"run={throttled} the next drift run starts at " in held, held
    said = "a server asked to be called again in 333333333333333… (308 characters) s"
    assert f"{said} (Retry-After; waited for a day at most); a file change" in held, held
    when = re.search(r"starts at (\S+Z), not before", held)
    assert when is not None, held
    start = datetime.datetime.strptime(when.group(1), "%Y-%m-%dT%H:%M:%S%z")
    ahead = (start - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert 86000 < ahead <= 86400, held
    assert len(held) < 300, held
    assert not [line for line in agent.out if "3" * 100 in line], agent.text
    assert await agent.terminate() == 0


async def test_unreachable_cloud_is_not_a_crash(world: World, spawn: Spawn) -> None:
    env = world.env | {"RECONCILER_NOVACORE_URL": "http://127.0.0.1:9", "RECONCILER_RETRIES": "1"}
    agent = await spawn("watch", "sites", "--interval", "0.5s", env=env, cwd=world.cwd)
    await agent.wait_for(r"trigger=interval .*result=deferred")
    assert runs(agent.out)[0].group(9) == "deferred"
    # Nothing is added to the gateway while its cloud side cannot be planned.
    assert world.sims.zaps[ZAP_SERIAL].devices == {}
    assert world.sims.novacore.writes() == 0
    assert await agent.terminate() == 0


async def test_a_serial_edited_away_from_its_url_override_is_warned_about_once(
        world: World, spawn: Spawn) -> None:
    site = world.sites / "site.yaml"
    # Only the override (RECONCILER_GATEWAY_URLS) leads to the simulated Zap.
    world.edit("url: http://192.168.1.40", "url: http://127.0.0.1:9", site)
    env = world.env | {"RECONCILER_RETRIES": "1"}
    agent = await spawn("watch", "sites", "--interval", "1s", "--debounce", "0.2s",
                        env=env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")
    assert not any("warning" in line for line in agent.out), agent.text

    typo = ZAP_SERIAL[:-1]
    world.edit(f"serial: {ZAP_SERIAL}", f"serial: {typo}", site)
    # The run that applies the edit still reads the Zap at the override, as the removed
    # gateway (deletionPolicy Orphan), to say what was left on it: the warning says so.
    [warning] = await agent.wait_for(
        rf"run=\d+ warning: RECONCILER_GATEWAY_URLS: no declared gateway has serial "
        rf"{ZAP_SERIAL} \(did you mean {typo}\?\); its URL is used only to read what was "
        rf"left on the removed gateway home-solna-zap@{ZAP_SERIAL} \(deletionPolicy Orphan\), "
        r"until an apply of the whole fleet$")
    run = int(warning.split("run=")[1].split()[0])
    # Written right after the warning, but maybe not read yet: waited for, not looked up.
    await agent.wait_for(rf"run={run} warning: the declared gateway serials: {typo}$")
    # Later runs of the same desired state do not say it again.
    await agent.wait_for(rf"run={run + 2} trigger=interval")
    assert sum(" no declared gateway has serial " in line for line in agent.out) == 1, agent.text
    assert await agent.terminate() == 0
    # Nor at start, on stderr: read to its end only once the agent has exited.
    assert not any("warning" in line for line in agent.err), agent.text


async def test_a_mismatch_warned_about_at_start_is_not_repeated_by_the_runs(
        world: World, spawn: Spawn) -> None:
    env = world.env | {"RECONCILER_GATEWAY_URLS": world.env["RECONCILER_GATEWAY_URLS"]
                       + ",zap-0000=http://127.0.0.1:9"}
    agent = await spawn("watch", "sites", "--interval", "0.5s", env=env, cwd=world.cwd)
    await agent.wait_for(r"run=3 trigger=interval")
    assert not any("warning" in line for line in agent.out), agent.text
    assert await agent.terminate() == 0
    # Said at start, on stderr: read to its end only once the agent has exited.
    assert any(" no declared gateway has serial zap-0000" in line for line in agent.err), \
        agent.text


async def test_the_agent_stops_once_its_stdout_is_closed(world: World) -> None:
    """`reconciler watch ... | head -1`: once head has exited, so does the agent, saying
    why on stderr, without a traceback."""
    read_end, write_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", "watch", "sites", "--plan-only",
        "--interval", "0.5s", env=world.env, cwd=world.cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=write_end, stderr=asyncio.subprocess.PIPE)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as head:
            first = await asyncio.to_thread(head.readline)
        assert b" watching sites " in first, first
        assert process.stderr is not None
        err = (await asyncio.wait_for(process.stderr.read(), WAIT_S)).decode()
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 1, err
        assert "error: stdout was closed: stopping" in err, err
        assert "Traceback" not in err and "Exception ignored" not in err, err
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_agent_stops_when_its_stdout_cannot_be_written(world: World) -> None:
    """A log on a full disk: the agent stops as on SIGTERM, saying why on stderr, rather
    than fail with a traceback (mid-apply: with writes in flight)."""
    full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", "watch", "sites", "--interval", "0.5s",
        env=world.env, cwd=world.cwd, stdin=asyncio.subprocess.DEVNULL, stdout=full,
        stderr=asyncio.subprocess.PIPE)
    os.close(full)
    try:
        assert process.stderr is not None
        err = (await asyncio.wait_for(process.stderr.read(), WAIT_S)).decode()
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 1, err
        assert err == ("error: stdout cannot be written (No space left on device): stopping; "
                       "the changes in flight finish, nothing new starts\n"), err
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    with StateDir(world.cwd / "state").lock("test"):  # released
        pass


async def test_a_temporary_config_file_a_killed_run_left_is_removed_and_said(
        tmp_path: Path, spawn: Spawn) -> None:
    """As `apply` does, the agent removes the temporary Enapter config file a killed run
    left beside a config file it manages (it holds a device's credentials), and the
    temporary file of a state file (the credential ledger's), and logs one line naming
    each, never what it holds."""
    world = await start_world(tmp_path, "h2-lab-enapter")
    try:
        state_dir = Path(world.env["RECONCILER_STATE_DIR"])
        config = state_dir / "secrets" / "h2-lab-ucm.json"
        config.parent.mkdir(parents=True)
        leftover = config.with_name("h2-lab-ucm.json.tmp")  # as an earlier version named it
        leftover.write_text('{"mqtt_credentials": {"password": "s3cret-of-a-killed-run"}}')
        leftover.chmod(0o600)
        ledger = state_dir / "credentials.json.tmp"  # as `atomic_write` names it
        ledger.write_text('{"devices": {"s3cret-fingerprint": "x"}}')
        agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                            env=world.env, cwd=world.cwd)
        await agent.wait_for(r"run=1 trigger=start .* result=applied")
        assert not leftover.exists() and not ledger.exists()
        assert config.is_file()
        said = [line for line in agent.out if "note: removed" in line]
        assert len(said) == 2, said
        assert said[0].endswith(f" note: removed {ledger}, a temporary file of the credential "
                                "ledger left by an interrupted run"), said
        assert said[1].endswith(f"run=1 note: removed {leftover}, the temporary file an "
                                "earlier run, killed, left holding the config it was writing "
                                f"to {config}"), said
        assert await agent.terminate() == 0
        assert "s3cret" not in agent.text
        no_secrets(world, agent.text)
    finally:
        await world.sims.stop()
