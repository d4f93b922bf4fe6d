"""`reconciler watch` as a subprocess against simulators, its Novacore token in a file
(RECONCILER_NOVACORE_TOKEN_FILE, as the chart mounts a Secret): when Novacore starts
refusing the token, the log says so and that the file is read again; a file that cannot be
read ends that run only, naming the file; a token rotated in the file is used at the next
run, without a restart. A token from the variable, refused, says how to rotate it, and so
does one refused for a single write of a run whose reads went through. A run error that
comes back at every run is said when it changes, and once it is gone."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import INVERTER_SN, ZAP_SERIAL, Spawn, World, start_world
from aiohttp import web

from reconciler.sim.fleet import SimFleet

pytestmark = pytest.mark.slow


def rotate(path: Path, token: str) -> None:
    """Write `token` into `path` as kubelet updates a mounted Secret: the new file is
    complete before it takes the old one's place, so no run reads half of it."""
    new = path.with_name(path.name + ".new")
    new.write_text(token + "\n", encoding="utf-8")
    os.replace(new, path)


async def test_a_token_rotated_in_its_file_is_used_at_the_next_run(
        world: World, spawn: Spawn, tmp_path: Path) -> None:
    old = world.env["RECONCILER_NOVACORE_TOKEN"]
    token_file = tmp_path / "novacore-token"
    rotate(token_file, old)
    env = {k: v for k, v in world.env.items() if k != "RECONCILER_NOVACORE_TOKEN"}
    env["RECONCILER_NOVACORE_TOKEN_FILE"] = str(token_file)
    agent = await spawn("watch", "sites", "--interval", "0.5s", env=env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .* result=applied")

    # A day later: Novacore answers the token 401, "Token expired".
    world.sims.novacore.expire_token(old)
    [refused] = await agent.wait_for(r"trigger=interval .*result=error")
    run = re.search(r"run=(\d+)", refused)[1]  # type: ignore[index]
    assert any(re.search(rf"run={run} error: novacore\.\w+ /\S+: HTTP 401: .*Token expired",
                         line) for line in agent.out), agent.text
    assert any(line.endswith(
        f"run={run} note: the Novacore token from RECONCILER_NOVACORE_TOKEN_FILE "
        f"({token_file}) was refused; the file is read again at the next run: write a new "
        "Novacore token into it, no restart needed") for line in agent.out), agent.text

    # A file that cannot be read ends that run, naming the file; the agent goes on.
    token_file.unlink()
    await agent.wait_for(
        lambda line: line.endswith(f"error: RECONCILER_NOVACORE_TOKEN_FILE: cannot read "
                                   f"{token_file} (the Novacore token): No such file or "
                                   "directory"))
    token_file.write_text("\n", encoding="utf-8")
    await agent.wait_for(
        lambda line: line.endswith(f"error: RECONCILER_NOVACORE_TOKEN_FILE: {token_file} is "
                                   "empty; expected the Novacore token in it"))

    # The token rotated in the file: the next run reads it and corrects the drift made
    # meanwhile, by the same process.
    world.sims.zaps[ZAP_SERIAL].set_der(INVERTER_SN, "pv", enabled=False)
    new = world.sims.novacore.issue_token(world.sims.identity_id)
    rotate(token_file, new)
    await agent.wait_for(r"trigger=interval changes=1 done=1 failed=0 .*result=applied")
    assert world.zap_der_enabled("pv") is True
    assert await agent.terminate() == 0
    for token in (old, new, *world.secrets()):
        assert token not in agent.text, "a credential was printed"


async def test_a_refused_token_from_the_variable_says_how_to_rotate_it(
        world: World, spawn: Spawn) -> None:
    world.sims.novacore.expire_token(world.env["RECONCILER_NOVACORE_TOKEN"])
    agent = await spawn("watch", "sites", "--interval", "60s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=1 trigger=start .*result=error")
    assert any(line.endswith(
        "run=1 note: the Novacore token from RECONCILER_NOVACORE_TOKEN was refused; the "
        "variable is read at start only: restart with a new Novacore token, or name a file "
        "holding it in RECONCILER_NOVACORE_TOKEN_FILE, which is read again at the next run")
        for line in agent.out), agent.text
    assert await agent.terminate() == 0
    for token in world.secrets():
        assert token not in agent.text, "a credential was printed"


async def test_a_token_file_that_cannot_be_read_at_start_is_a_start_up_error(
        world: World, spawn: Spawn, tmp_path: Path) -> None:
    env = {k: v for k, v in world.env.items() if k != "RECONCILER_NOVACORE_TOKEN"}
    missing = tmp_path / "missing-token"
    env["RECONCILER_NOVACORE_TOKEN_FILE"] = str(missing)
    agent = await spawn("watch", "sites", env=env, cwd=world.cwd)
    assert await agent.finish() == 1
    assert agent.err == [
        f"error: RECONCILER_NOVACORE_TOKEN_FILE: cannot read {missing} (the Novacore token): "
        "No such file or directory",
        "invalid settings: 1 problem",
    ], agent.text

    both = env | {"RECONCILER_NOVACORE_TOKEN": world.env["RECONCILER_NOVACORE_TOKEN"]}
    agent = await spawn("watch", "sites", env=both, cwd=world.cwd)
    assert await agent.finish() == 1
    assert agent.err[0] == (
        "error: RECONCILER_NOVACORE_TOKEN_FILE: RECONCILER_NOVACORE_TOKEN is set too; set "
        "either RECONCILER_NOVACORE_TOKEN (the Novacore token) or "
        "RECONCILER_NOVACORE_TOKEN_FILE (a file holding it), not both"), agent.text
    assert world.sims.writes() == 0


class RefusedRename:
    """Answers Novacore's device renames (`PUT /devices/<id>`) 401, "Token expired", as
    Novacore answers a token past its 24 h, while `refusing` is set: the run's reads go
    through and one write fails (installed before the simulator serves)."""

    def __init__(self) -> None:
        self.refusing = False

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.refusing and request.method == "PUT" and request.path.startswith(
                    "/devices/"):
                return web.json_response(
                    {"error": "unauthorized", "message": "Token expired"}, status=401)
            return await handler(request)

        sims.novacore.app.middlewares.append(refuse)


async def test_a_write_refused_for_its_token_says_how_to_rotate_it(
        tmp_path: Path, spawn: Spawn) -> None:
    refused = RefusedRename()
    world = await start_world(tmp_path, before_start=refused.install)
    try:
        agent = await spawn("watch", "sites", "--interval", "60s", "--debounce", "0.2s",
                            env=world.env, cwd=world.cwd)
        await agent.wait_for(r"run=1 trigger=start .* result=applied")
        refused.refusing = True
        world.edit("displayName: Sungrow SH10RT", "displayName: Sungrow A")
        [run] = await agent.wait_for(r"run=2 trigger=change .*failed=1 .*result=failed")
        assert any("device/home-solna-inverter[novacore]" in line and "HTTP 401" in line
                   for line in agent.out), agent.text
        notes = [line for line in agent.out if " note: " in line]
        assert len(notes) == 1 and notes[0].endswith(
            "run=2 note: the Novacore token from RECONCILER_NOVACORE_TOKEN was refused; the "
            "variable is read at start only: restart with a new Novacore token, or name a "
            "file holding it in RECONCILER_NOVACORE_TOKEN_FILE, which is read again at the "
            "next run"), agent.text
        assert agent.out.index(notes[0]) < agent.out.index(run), "before the run's line"
        assert await agent.terminate() == 0
    finally:
        await world.sims.stop()
    for token in world.secrets():
        assert token not in agent.text, "a credential was printed"


def run_errors(lines: list[str], fmt: str) -> dict[str, list[tuple[int, str]]]:
    """What the log says of run errors: each `error` and `note` said (its run and message),
    each `recovered` (its run and the run that said the error gone), and each run's
    `result` (its run and result)."""
    said: dict[str, list[tuple[int, str]]] = {
        "error": [], "note": [], "recovered": [], "result": []}
    for line in lines:
        if fmt == "json":
            event = json.loads(line)
            kind = "result" if event["event"] == "run" else event["event"]
            if kind in said:
                what = {"result": "result", "recovered": "error_since"}.get(kind, "message")
                said[kind].append((event["run"], str(event[what])))
            continue
        for kind, pattern in (
                ("error", r" run=(\d+) error: (.*)$"),
                ("note", r" run=(\d+) note: (.*)$"),
                ("recovered", r" run=(\d+) no error any more \(last said at run=(\d+)\)$"),
                ("result", r" run=(\d+) trigger=\w+ .* result=(\S+)$")):
            if (found := re.search(pattern, line)) is not None:
                said[kind].append((int(found[1]), found[2]))
    return said


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_run_error_is_said_when_it_changes_not_at_every_run(
        world: World, spawn: Spawn, tmp_path: Path, fmt: str) -> None:
    """A token refused for a night: every run ends in an error, said in full (with its
    note) once; counted as result=error by every run line; said again when it changes (the
    file gone), and once a run plans again, one line says it is gone."""
    old = world.env["RECONCILER_NOVACORE_TOKEN"]
    token_file = tmp_path / "novacore-token"
    rotate(token_file, old)
    env = {k: v for k, v in world.env.items() if k != "RECONCILER_NOVACORE_TOKEN"}
    env["RECONCILER_NOVACORE_TOKEN_FILE"] = str(token_file)
    agent = await spawn("watch", "sites", "--interval", "0.3s", "--log-format", fmt,
                        env=env, cwd=world.cwd)

    def errors_in_a_row(count: int) -> bool:
        results = [result for _, result in run_errors(agent.out, fmt)["result"]]
        return results[-count:] == ["error"] * count

    await agent.wait_for(lambda _: run_errors(agent.out, fmt)["result"] != [])
    world.sims.novacore.expire_token(old)
    await agent.wait_for(lambda _: errors_in_a_row(4))
    said = run_errors(agent.out, fmt)
    [(refused_at, refused)] = said["error"]
    assert re.search(r"^novacore\.\w+ /\S+: HTTP 401: .*Token expired", refused), refused
    assert said["note"] == [(refused_at, f"the Novacore token from "
                             f"RECONCILER_NOVACORE_TOKEN_FILE ({token_file}) was refused; the "
                             "file is read again at the next run: write a new Novacore token "
                             "into it, no restart needed")], agent.text
    assert (refused_at, "error") in said["result"], agent.text

    # Another error: said at once, then not again either.
    token_file.unlink()
    await agent.wait_for(lambda _: len(run_errors(agent.out, fmt)["error"]) == 2)
    seen = len(run_errors(agent.out, fmt)["result"])
    await agent.wait_for(lambda _: len(run_errors(agent.out, fmt)["result"]) >= seen + 3)
    said = run_errors(agent.out, fmt)
    assert len(said["error"]) == 2 and len(said["note"]) == 1, agent.text
    missing_at, missing = said["error"][1]
    assert missing == (f"RECONCILER_NOVACORE_TOKEN_FILE: cannot read {token_file} (the "
                       "Novacore token): No such file or directory"), missing
    assert all(result == "error" for run, result in said["result"] if run >= refused_at)

    # A new token in the file: the next run plans, and says that the error is gone, once.
    rotate(token_file, world.sims.novacore.issue_token(world.sims.identity_id))
    await agent.wait_for(lambda _: run_errors(agent.out, fmt)["recovered"] != [])
    [(back_at, since)] = run_errors(agent.out, fmt)["recovered"]
    assert since == str(missing_at), agent.text
    seen = len(run_errors(agent.out, fmt)["result"])
    await agent.wait_for(lambda _: len(run_errors(agent.out, fmt)["result"]) >= seen + 2)
    assert await agent.terminate() == 0
    said = run_errors(agent.out, fmt)
    assert len(said["recovered"]) == 1 and len(said["error"]) == 2, agent.text
    assert all(result != "error" for run, result in said["result"] if run >= back_at)


async def test_an_error_of_every_apply_is_said_once_not_gone_and_back_at_every_run(
        world: World, spawn: Spawn) -> None:
    """A run that plans and then fails in its apply (the journal cannot be written) fails
    so at every run: its error is said once, with no line between two runs saying that
    it is gone, since no run got past it."""
    world.journal.mkdir(parents=True)  # a directory where the journal file goes
    agent = await spawn("watch", "sites", "--interval", "0.3s", env=world.env, cwd=world.cwd)
    await agent.wait_for(r"run=4 trigger=interval .* result=error$")
    assert await agent.terminate() == 0
    said = run_errors(agent.out, "text")
    assert [run for run, _ in said["error"]] == [1], agent.text
    assert "cannot write the journal" in said["error"][0][1], agent.text
    assert said["recovered"] == [], agent.text
