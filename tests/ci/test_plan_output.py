"""What `reconciler plan` gives a CI job, run as a CI job runs it (a subprocess, no
terminal, against simulators): a Markdown plan that a forge accepts as a comment however
large the fleet, and that says what it left out."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ci_helpers import EXAMPLES, Completed, World, ci_env, run

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.plan.advice import Audience
from reconciler.plan.markdown import size
from reconciler.plan.markdown_limits import DEFAULT_LIMIT
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sim.generate import write_fleet
from reconciler.sources import loader

# The options of a plan for the CLI's user (its advice names the CLI's flags).
CLI = PlanOptions(audience=Audience.CLI)

RECONCILER = [sys.executable, "-m", "reconciler"]
SITES = 40  # some 1,300 changes: a Markdown plan of about 300,000 characters


@dataclass
class Fleet:
    root: Path
    env: dict[str, str]

    async def plan(self, *args: str, env: dict[str, str] | None = None) -> Completed:
        return await run([*RECONCILER, "plan", *args], env=self.env | (env or {}),
                         cwd=self.root, within=120)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    write_fleet(tmp_path / "sites", SITES, 10)
    sims = SimFleet()
    sims.seed_fleet(loader.load_fleet([tmp_path / "sites"]), shared_modbus=True)
    await sims.start()
    yield Fleet(tmp_path, ci_env(**sims.env(), RECONCILER_STATE_DIR=str(tmp_path / "state")))
    await sims.stop()


def rows(markdown: str) -> list[str]:
    """The change rows of the Markdown's tables (not their heads)."""
    return [line for line in markdown.splitlines()
            if line.startswith("| ") and not line.startswith("| | Address")]


def assert_whole(markdown: str) -> None:
    """Every block the Markdown opens it closes: each `<details>`, each fence; the footer
    comes last, outside any of them (markdown-it reads it as a paragraph of its own)."""
    assert markdown.count("<details") == markdown.count("</details>")
    assert markdown.endswith("</sub>\n")
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(markdown)
    assert tokens[-2].type == "inline" and tokens[-2].content.startswith("<sub>format ")
    assert sum(t.type == "tr_open" for t in tokens) == len(rows(markdown)) + markdown.count(
        "| | Address | Action | Reason |")


async def test_a_large_plan_in_markdown_fits_a_comment_and_says_what_it_left_out(
        fleet: Fleet) -> None:
    result = await fleet.plan("sites", "-o", "markdown", "--detailed-exitcode",
                              "--out", "plan.json")
    assert result.code == 2, result.text
    markdown = result.stdout
    document = json.loads((fleet.root / "plan.json").read_text(encoding="utf-8"))
    pending = [c for c in document["changes"] if c["actions"] != ["no-op"]]
    assert len(pending) > 1000

    # Under GitHub's 65,536 with the room the workflow's header needs, and filled.
    assert DEFAULT_LIMIT - 10_000 < size(markdown) <= DEFAULT_LIMIT
    assert markdown.startswith(f"### Reconciler plan\n\n**{len(pending) - SITES * 11} to "
                               f"create, {SITES} to claim, {SITES * 10} to update**\n\n")
    shown = rows(markdown)
    note = re.search(r"^> \*\*Not shown here: (\d+) of (\d+) changes, in (\d+) of (\d+) "
                     r"sites\*\*, to keep this comment within 60,000 characters\. "
                     r"`reconciler plan -o text` lists every change, and the plan as JSON",
                     markdown, re.MULTILINE)
    assert note, markdown[:2000]
    sections = markdown.count("<details><summary><code>site-")
    assert [int(n) for n in note.groups()] == [
        len(pending) - len(shown), len(pending), SITES - sections + 1, SITES]
    # The first sites, in plan order, each in its own section; no row is cut in half.
    assert [r.split(" | ")[1] for r in shown] == [
        f"`{c['address']}`" for c in pending[:len(shown)]]
    assert_whole(markdown)

    # With no limit, every change.
    whole = await fleet.plan("sites", "-o", "markdown", "--markdown-limit", "0")
    assert whole.code == 0, whole.text
    assert len(rows(whole.stdout)) == len(pending) and "Not shown" not in whole.stdout
    assert size(whole.stdout) > 4 * DEFAULT_LIMIT
    assert_whole(whole.stdout)

    # A limit too small for the summary and the note is refused, as a usage error is.
    tiny = await fleet.plan("sites", "-o", "markdown", "--markdown-limit", "500")
    assert tiny.code == 1 and tiny.stdout == "", tiny.text
    assert ("--markdown-limit: expected a number of characters, at least 2000, or 0 for no "
            "limit, not '500'") in tiny.stderr


async def test_the_same_plan_is_the_same_bytes_whatever_the_order_of_the_files_and_hash_seed(
        fleet: Fleet) -> None:
    """A CI job diffs plans: the files given in another order (a shell expands
    `sites/*.yaml` in its locale's order) or another PYTHONHASHSEED change no byte of the
    text, the Markdown or the JSON."""
    files = sorted(str(p.relative_to(fleet.root)) for p in (fleet.root / "sites").iterdir())
    outputs: dict[str, list[bytes]] = {"text": [], "markdown": [], "json": []}
    for order, seed in ((files, "1"), (files[::-1], "2")):
        saved = fleet.root / f"plan-{seed}.json"
        for form in ("text", "markdown"):
            limit = ["--markdown-limit", "0"] if form == "markdown" else []
            result = await fleet.plan(*order, "-o", form, *limit,
                                      "--out", str(saved), env={"PYTHONHASHSEED": seed})
            assert result.code == 0, result.text
            outputs[form].append(result.stdout.encode())
            outputs["json"].append(saved.read_bytes())
    for form, produced in outputs.items():
        assert len(set(produced)) == 1, f"{form}: the outputs differ"
    assert b"`site/site-00000[novacore]`" in outputs["markdown"][0].split(b"<details>")[1]


async def on_a_terminal(argv: list[str], *, env: dict[str, str], cwd: Path) -> str:
    """What `argv` writes to a terminal (a pseudo-terminal as its stdout)."""
    primary, secondary = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=secondary,
        stderr=asyncio.subprocess.DEVNULL)
    os.close(secondary)

    def read_all() -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the process closed the terminal
                return b"".join(chunks)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    try:
        output = await asyncio.wait_for(asyncio.to_thread(read_all), 60)
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(primary)
    return output.decode()


@pytest.mark.parametrize(("variables", "colour"), [
    ({"TERM": "xterm-256color"}, True),
    ({"TERM": "dumb"}, False),
    ({"TERM": "xterm-256color", "NO_COLOR": "1"}, False),
])
async def test_a_plan_on_a_terminal_is_coloured_unless_no_color_or_a_dumb_terminal(
        world: World, variables: dict[str, str], colour: bool) -> None:
    env = {k: v for k, v in world.env.items() if k not in ("NO_COLOR", "TERM")} | variables
    shown = await on_a_terminal([*RECONCILER, "plan", "sites"], env=env, cwd=world.root)
    assert "site/home-solna[novacore] will be created" in shown, shown
    assert ("\x1b[" in shown) is colour, shown


async def test_a_plan_in_a_locale_without_its_characters_is_written_not_a_traceback(
        world: World) -> None:
    """A CI agent or a Windows console whose encoding has no `⇒` (Latin-1, cp1252): the
    Markdown is UTF-8 all the same, as the forge reads it; text shows an escape."""
    latin1 = world.env | {"PYTHONIOENCODING": "latin-1"}
    result = await run([*RECONCILER, "plan", "sites", "-o", "markdown"], env=latin1,
                       cwd=world.root)
    assert result.code == 0, result.text
    assert "| `⇒` | `gateway/home-solna-zap[novacore]` | claim |" in result.stdout

    ascii_only = world.env | {"PYTHONIOENCODING": "ascii"}
    result = await run([*RECONCILER, "plan", "sites"], env=ascii_only, cwd=world.root)
    assert result.code == 0 and "Traceback" not in result.stderr, result.text
    assert "\\u21d2 gateway/home-solna-zap[novacore] will be claimed" in result.stdout


def strict_json(text: str) -> Any:
    """JSON as jq or JavaScript reads it: no NaN, Infinity or -Infinity."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(("value", "written"), [
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")])
async def test_a_number_json_has_not_in_a_cloud_answer_never_reaches_the_plan_json(
        tmp_path: Path, value: float, written: str) -> None:
    """Python's JSON decoder takes NaN and Infinity (and 1e999 as Infinity), JSON has
    neither: an answer holding one is refused, as a malformed one is (what it was to
    observe is deferred, saying why), and `-o json` stays JSON."""
    (tmp_path / "sites").mkdir()
    shutil.copy(EXAMPLES / "townhouse-malmo-flatpeak.yaml", tmp_path / "sites")
    sims = SimFleet()
    sims.seed_fleet(loader.load_fleet([tmp_path / "sites"]))
    await sims.start()
    try:
        env = ci_env(**sims.env(), RECONCILER_STATE_DIR=str(tmp_path / "state"))
        async with Reconciler(loader.load_fleet([tmp_path / "sites"]),
                              load_settings(env)) as reconciler:
            report = await reconciler.apply(await reconciler.plan(CLI))
        assert report.ok, report.as_dict()
        [device_id, *_] = sims.flatpeak.devices
        sims.flatpeak.set_device_properties(device_id, {"tampered": value})
        result = await run([*RECONCILER, "plan", "sites", "-o", "json"], env=env,
                           cwd=tmp_path)
    finally:
        await sims.stop()
    assert result.code == 0, result.text
    document = strict_json(result.stdout)
    deferred = [c for c in document["changes"] if c["actions"] == ["defer"]]
    assert deferred and all(c["component"] == "flatpeak" for c in deferred), result.text
    assert (f"flatpeak.list_devices: the answer holds {written}, which is no JSON number: "
            in deferred[0]["message"])
