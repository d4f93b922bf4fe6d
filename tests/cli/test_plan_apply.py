"""`reconciler plan` and `reconciler apply` end to end: the CLI runs in this process (its
own `asyncio.run`) against simulators served from a background thread, and reads its
settings from RECONCILER_* variables, as in production. Exit codes, saved plans and their
staleness checks, target selection, the state lock, failures, offline gateways, and
secrets that never appear in any output."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import (  # tests/engine holds the helpers shared with the engine tests
    ORG_A,
    ORG_B,
    TRANSFER_SERIAL,
    BodyRecorder,
    Doc,
    ThreadedSims,
    cloud_device,
    cloud_devices,
    converged_exactly_once,
    gateway,
    gateway_moved_to_home,
    load,
    mqtt_battery,
    owner,
    serial_of,
    shop_in_org_b,
    site,
    site_names,
    standard_site,
    write,
)

from reconciler.cli import main as cli
from reconciler.engine.config import MAX_SECRET_BYTES
from reconciler.engine.state import MAX_KEY_FILE_BYTES, MAX_STATE_FILE_BYTES, StateDir
from reconciler.plan.document import FORMAT_VERSION
from reconciler.sim.fleet import SimFleet


@dataclass
class Cli:
    """Runs `reconciler ARGS...` in this process; the fleet lives in `fleet_dir`."""

    sims: ThreadedSims
    fleet_dir: Path
    state_dir: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main(list(args))
        out, err = self.capsys.readouterr()
        return code, out, err

    def rewrite(self, docs: Iterable[Doc]) -> None:
        write(self.fleet_dir, docs)

    @property
    def path(self) -> str:
        return str(self.fleet_dir)


CliFactory = Callable[..., Cli]


@pytest.fixture
def make_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> Iterator[CliFactory]:
    running: list[ThreadedSims] = []

    def make(docs: list[Doc], *, env: dict[str, str] | None = None,
             before_start: Callable[[SimFleet], None] | None = None) -> Cli:
        fleet_dir = tmp_path / "sites"
        write(fleet_dir, docs)
        sims = ThreadedSims(load(docs), before_start=before_start).__enter__()
        running.append(sims)
        variables = sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state"),
                                  "RECONCILER_SECRETS_DIR": str(tmp_path / "secrets")}
        for key, value in (variables | (env or {})).items():
            monkeypatch.setenv(key, value)
        return Cli(sims, fleet_dir, tmp_path / "state", capsys)

    yield make
    for sims in running:
        sims.__exit__(None, None, None)


def two_sites() -> list[Doc]:
    return standard_site(1) + standard_site(2, labels={"tier": "gold"})


# -- exit codes ---------------------------------------------------------------------------------


def test_plan_detailed_exitcode_is_2_with_changes_0_without(make_cli: CliFactory) -> None:
    run = make_cli(two_sites())
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 2, out
    assert "Plan: 10 to create, 2 to claim, 4 to update." in out
    assert run("plan", run.path)[0] == 0, "without --detailed-exitcode changes are success"

    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    assert "Apply complete: 16 done, 0 failed" in out
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert (code, out.splitlines()[0]) == (0, "No changes. The actual state matches the desired "
                                              "state.")


def test_plan_exits_1_on_invalid_input(make_cli: CliFactory) -> None:
    run = make_cli(two_sites())
    (run.fleet_dir / "broken.yaml").write_text("kind: Device\nmetadata: {name: x}\n")
    code, out, err = run("plan", run.path, "--detailed-exitcode")
    assert code == 1 and "invalid desired state" in err and out == ""


def test_plan_json_and_markdown_outputs(make_cli: CliFactory) -> None:
    run = make_cli(two_sites())
    code, out, _ = run("plan", run.path, "-o", "json")
    doc = json.loads(out)
    assert code == 0 and doc["format_version"].startswith("1.")
    assert doc["summary"]["changes"] == 16
    code, out, _ = run("plan", run.path, "-o", "markdown")
    assert code == 0 and out.startswith("### Reconciler plan\n") and "| `⇒` |" in out


def test_a_very_long_display_name_is_cut_short_in_text_and_markdown_not_in_json(
        make_cli: CliFactory) -> None:
    """No platform limits a name's length, so a 200,000-character displayName is planned;
    the text and the Markdown show its start and its length (the Markdown then still fits
    a comment and shows the change), the JSON plan, for machines, the whole value."""
    long_name = "N" * 200_000
    docs = standard_site(1)
    docs[0]["spec"]["displayName"] = long_name
    run = make_cli(docs)
    code, out, _ = run("plan", run.path)
    assert code == 0 and len(out) < 5_000, out[:2_000]
    cut = f"'{'N' * 79}…' (200,000 characters)"  # the quote counted in
    assert f"no site named {cut} in org-alpha" in out, out[:2_000]

    docs[0]["spec"]["displayName"] = "Site s1"
    run.rewrite(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    docs[0]["spec"]["displayName"] = long_name
    run.rewrite(docs)
    cut = f'"{"N" * 199}…" (200,000 characters)'
    code, out, _ = run("plan", run.path)
    assert code == 0 and len(out) < 5_000, out[:2_000]
    assert f'    ~ name: "Site s1" -> {cut}' in out.splitlines(), out
    code, out, _ = run("plan", run.path, "-o", "markdown")
    assert code == 0 and len(out) < 5_000, out[:2_000]
    assert f'! name: "Site s1" -> {cut}' in out.splitlines(), out
    assert "Not shown here" not in out, out
    code, out, _ = run("plan", run.path, "-o", "json")
    [change] = [c for c in json.loads(out)["changes"] if c["address"] == "site/s1[novacore]"]
    assert change["after"]["name"] == long_name
    assert [d["new"] for d in change["diff"]] == [long_name]


def test_a_very_long_name_a_cloud_reports_is_cut_short_in_the_plan(
        make_cli: CliFactory) -> None:
    """A name of 100,000 characters set in Novacore, in a field change and in the
    description of a device nothing declares, shows as its start and its length."""
    docs = standard_site(1)
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    device = cloud_device(run.sims.sims, "SG0001")
    run.sims.call(run.sims.sims.novacore.rename_device, device.id, "N" * 100_000)
    code, out, _ = run("plan", run.path)
    assert code == 0 and len(out) < 2_000, out[:2_000]
    assert f'    ~ name: "{"N" * 199}…" (100,000 characters) -> "s1-inv"' in out.splitlines()
    run.rewrite([d for d in docs if d["metadata"]["name"] != "s1-inv"])
    code, out, _ = run("plan", run.path)
    assert code == 0 and len(out) < 2_000, out[:2_000]
    assert (f"  ! unmanaged: Novacore device {device.id} (SG0001, '{'N' * 79}…' (100,000 "
            "characters)) in site s1 is not declared") in out.splitlines(), out


def test_apply_without_auto_approve_and_without_a_terminal_refuses(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(two_sites())
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))  # an answer, but not a terminal
    run.sims.call(run.sims.sims.reset_counts)
    code, _, err = run("apply", run.path)
    assert code == 1
    assert "not asking for confirmation without a terminal; pass --auto-approve" in err
    # With -o json: no JSON on stdout, as for any apply that stops before applying.
    code, out, err = run("apply", run.path, "-o", "json")
    assert (code, out) == (1, ""), out
    assert "not asking for confirmation without a terminal; pass --auto-approve" in err
    assert run.sims.call(run.sims.sims.writes) == 0


# -- offline gateways ---------------------------------------------------------------------------


def test_offline_gateway_defers_by_default_and_fails_with_offline_fail(
        make_cli: CliFactory) -> None:
    run = make_cli(two_sites())
    run.sims.run(lambda: run.sims.sims.zaps[serial_of(2)].set_offline("refuse"))

    code, out, err = run("plan", run.path, "--offline=fail")
    assert code == 1
    # One error for the site: the first of its changes, and how many more wait with it.
    [error] = err.splitlines()
    assert error.startswith("error: site/s2[novacore]: would create; deferred: gateway s2-zap")
    assert error.endswith("(7 more changes of site s2 deferred)")
    assert out.count("is deferred") == 8
    # Saved all the same (for a CI artifact), but not offered to apply.
    saved = run.fleet_dir.parent / "failed-plan.json"
    code, _, err = run("plan", run.path, "--offline=fail", "--out", str(saved))
    assert code == 1 and saved.is_file()
    assert f"Saved the plan to {saved}; it has errors (below): fix them and plan again" in err
    assert "reconciler apply" not in err
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 2 and "… site/s2[novacore] is deferred" in out

    code, out, err = run("apply", run.path, "--auto-approve", "--offline=fail")
    assert code == 1 and run.sims.call(lambda: run.sims.sims.novacore.sites) == {}

    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    deferred = [line for line in out.splitlines() if line.startswith("deferred: ")]
    assert len(deferred) == 1 and deferred[0].startswith("deferred: site/s2[novacore]: ")
    assert deferred[0].endswith("(7 more of site s2)")
    assert out.splitlines()[-1].startswith(
        "Apply finished; the deferred changes wait for a run that can reach them: 8 done, "
        "0 failed, 0 skipped, 0 blocked, 8 deferred")
    sites = run.sims.call(lambda: sorted(s.name for s in run.sims.sims.novacore.sites.values()))
    assert sites == ["Site s1"], "the other site applied, the offline one waits"


# -- saved plans --------------------------------------------------------------------------------


def test_unchanged_saved_plan_applies(make_cli: CliFactory, tmp_path: Path) -> None:
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    code, _, err = run("plan", run.path, "--out", str(saved))
    assert code == 0 and f"Saved the plan to {saved}" in err
    code, out, _ = run("apply", str(saved))
    assert code == 0, out
    assert run.sims.call(converged_exactly_once, run.sims.sims, load(two_sites())) is None
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0


@pytest.mark.parametrize("edit", ["add a change", "alter a change", "drop a change"])
def test_a_saved_plan_with_edited_changes_is_refused(
        make_cli: CliFactory, tmp_path: Path, edit: str) -> None:
    """Applying what the inputs give instead of what the file says would apply a plan
    nobody reviewed."""
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    doc = json.loads(saved.read_text())
    if edit == "add a change":
        doc["changes"].append(dict(doc["changes"][0], address="site/extra[novacore]"))
    elif edit == "alter a change":
        doc["changes"][0]["after"]["name"] = "HACKED"
    else:
        doc["changes"].pop()
    saved.write_text(json.dumps(doc))
    run.sims.call(run.sims.sims.reset_counts)
    code, _, err = run("apply", str(saved))
    assert code == 1
    assert "the saved plan's changes are not the ones its inputs give" in err
    assert run.sims.call(run.sims.sims.writes) == 0


def test_a_saved_plan_cut_short_or_of_another_format_says_where_and_what_to_do(
        make_cli: CliFactory, tmp_path: Path) -> None:
    """A CI artifact cut short fails at the line and column where its text stops, not at
    a character offset; a plan of an unknown format says to make the plan again."""
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    whole = saved.read_text()
    cut = whole[:whole.index('"changes"') + 12]
    line, column = cut.count("\n") + 1, len(cut) - cut.rfind("\n")
    saved.write_text(cut)
    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", str(saved), "--auto-approve")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {saved}:{line}:{column}: not a saved plan: not valid "
                          "JSON ("), err
    assert err.rstrip().endswith("(the file ends there: was it cut short?); make the plan again "
                                 "with `reconciler plan --out`"), err
    saved.write_bytes(b"\xff\xfe{")
    code, _, err = run("apply", str(saved), "--auto-approve")
    assert code == 1 and err.startswith(f"error: {saved}:1:1: not a saved plan: not UTF-8 "), err
    saved.write_text(json.dumps(dict(json.loads(whole), format_version="9.0")))
    code, _, err = run("apply", str(saved), "--auto-approve")
    assert code == 1 and err == (f"error: {saved} has plan format '9.0'; this reconciler reads "
                                 f"{FORMAT_VERSION}: make the plan again with `reconciler plan "
                                 "--out`\n"), err
    assert run.sims.call(run.sims.sims.writes) == 0


def _as_format_1_4(doc: dict[str, Any]) -> dict[str, Any]:
    """A plan saved by a reconciler of plan format 1.4 (before `deferred_actions`,
    `summary.outside_selection` and `inputs.state_directory`), as that version wrote it."""
    older = json.loads(json.dumps(doc))
    older["format_version"] = "1.4"
    del older["inputs"]["state_directory"]
    del older["summary"]["outside_selection"]
    for change in older["changes"]:
        del change["deferred_actions"]
    return older


def _as_format_1_1(doc: dict[str, Any]) -> dict[str, Any]:
    """A plan saved by a reconciler of plan format 1.1, as that version wrote it: neither
    what 1.2 to 1.4 added (`inputs.endpoints`, `inputs.working_directory`, an unmanaged
    object's `gateway` and `prunable`) nor what came after."""
    older = _as_format_1_4(doc)
    older["format_version"] = "1.1"
    for key in ("endpoints", "working_directory", "secrets_directory"):
        older["inputs"].pop(key, None)
    for entry in older["unmanaged"]:
        for key in ("gateway", "prunable"):
            entry.pop(key, None)
    return older


@pytest.mark.parametrize("edited", [False, True])
def test_a_plan_saved_by_an_older_reconciler_applies_unless_edited(
        make_cli: CliFactory, tmp_path: Path, edited: bool) -> None:
    """A plan of format 1.4 has no `deferred_actions` in its changes: that is no edit, and it
    applies once its inputs are as they were; a change edited in it is still refused."""
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    older = _as_format_1_4(json.loads(saved.read_text()))
    if edited:
        older["changes"][0]["after"]["name"] = "HACKED"
    saved.write_text(json.dumps(older))
    code, out, err = run("apply", str(saved))
    if edited:
        assert code == 1
        assert "the saved plan's changes are not the ones its inputs give" in err
        assert run.sims.call(run.sims.sims.writes) == 0
        return
    assert code == 0, (out, err)
    assert run.sims.call(converged_exactly_once, run.sims.sims, load(two_sites())) is None
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0


def test_saved_plan_is_refused_when_the_actual_state_changed(
        make_cli: CliFactory, tmp_path: Path) -> None:
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    zap = run.sims.sims.zaps[serial_of(1)]
    run.sims.call(zap.install_device, {"type": "mqtt", "profile": "ferroamp",
                                       "broker_host": "192.168.1.99"}, sn="STRANGER")
    run.sims.call(run.sims.sims.reset_counts)
    code, _, err = run("apply", str(saved))
    assert code == 1
    assert "the actual state changed since the plan was made" in err
    assert run.sims.call(run.sims.sims.writes) == 0


@pytest.mark.parametrize("down", ["novacore", "gateway"])
def test_a_saved_plan_is_not_applied_while_what_it_reads_is_down_and_applies_after(
        make_cli: CliFactory, tmp_path: Path, down: str) -> None:
    """A source that does not answer is not a changed actual state: the apply says what it
    could not read and that the plan cannot be checked, writes nothing, and the same file
    applies once everything answers again."""
    docs = two_sites()
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    (inverter,) = [d for d in docs if d["metadata"]["name"] == "s1-inv"]
    inverter["spec"]["displayName"] = "Renamed in git"
    run.rewrite(docs)
    saved = tmp_path / "plan.json"
    code, out, _ = run("plan", run.path, "--out", str(saved))
    assert code == 0 and "Plan: 1 to update." in out, out

    sims = run.sims.sims
    url = sims.novacore.url if down == "novacore" else sims.zaps[serial_of(1)].url
    fault = {"fail_next": 200} if down == "novacore" else {"offline": "refuse"}
    assert httpx.put(f"{url}/_sim/faults", json=fault).status_code == 200
    run.sims.call(sims.reset_counts)
    code, out, err = run("apply", str(saved))
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == (
        "error: the saved plan cannot be checked against the actual state: what follows could "
        "not be read, so whether anything changed since the plan was made is not known; "
        "nothing was applied")
    if down == "novacore":
        assert lines[1].startswith(f"  Novacore ({url}), sites of organisation {ORG_A}: "
                                   "novacore.list_sites /sites: HTTP 503: ")
        assert lines[1].endswith("(gave up after 3 attempts)")
        assert f"  Novacore ({url}), gateways of organisation {ORG_A}: " in err
    else:
        assert lines[1:-1] == [
            f"  gateway s1-zap ({url}): zap.list_devices: cannot reach {url}: connection "
            "refused (gave up after 3 attempts)"]
    assert lines[-1] == (f"Apply {saved} again once they answer: it is applied if nothing "
                         "changed meanwhile, and refused if something did.")
    assert "the actual state changed" not in err
    assert run.sims.call(sims.writes) == 0

    if down == "novacore":
        httpx.put(f"{url}/_sim/faults", json={"fail_next": 0}).raise_for_status()
    else:  # its port is closed, admin API included
        run.sims.run(lambda: sims.zaps[serial_of(1)].set_offline("online"))
    code, out, _ = run("apply", str(saved))
    assert code == 0 and "✓ device/s1-inv[novacore] update" in out, out
    assert cloud_device(sims, "SG0001").name == "Renamed in git"


def test_saved_plan_is_refused_when_the_desired_state_changed(
        make_cli: CliFactory, tmp_path: Path) -> None:
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    docs = two_sites()
    docs[0]["spec"]["displayName"] = "Renamed in git"
    run.rewrite(docs)
    run.sims.call(run.sims.sims.reset_counts)
    code, _, err = run("apply", str(saved))
    assert code == 1 and "the desired state changed since the plan was made" in err
    assert run.sims.call(run.sims.sims.requests) == 0, "refused before observing anything"


def test_a_saved_plan_is_applied_only_against_the_endpoints_and_identity_it_was_made_with(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Novacores that hold nothing yet (staging and production before the first apply)
    answer alike, so the fingerprints cannot tell them apart: the plan records where it was
    made, and another Novacore, identity or an older plan without that record is refused
    before anything is read from either."""
    docs = [site("s1")]
    made_at = make_cli(docs)
    saved = tmp_path / "plan.json"
    code, out, _ = made_at("plan", made_at.path, "--out", str(saved))
    assert code == 0 and "Plan: 1 to create." in out, out
    endpoints = json.loads(saved.read_text())["inputs"]["endpoints"]
    assert list(endpoints) == ["novacore"]
    assert endpoints["novacore"]["url"] == made_at.sims.sims.novacore.url
    assert made_at.sims.sims.identity_id not in saved.read_text()

    other = make_cli(docs)  # its settings replace the first one's
    both = (made_at.sims, other.sims)
    for threaded in both:
        threaded.call(threaded.sims.reset_counts)
    code, out, err = other("apply", str(saved))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: the saved plan {saved} was made against other endpoints or accounts than "
        "these settings name; nothing was applied:",
        f"  the Novacore URL is {other.sims.sims.novacore.url} (RECONCILER_NOVACORE_URL); the "
        f"plan was made against {made_at.sims.sims.novacore.url}",
        "Make the plan again with these settings (`reconciler plan ... --out FILE`), or apply "
        "it with the settings it was made with."]

    monkeypatch.setenv("RECONCILER_NOVACORE_URL", made_at.sims.sims.novacore.url)
    monkeypatch.setenv("RECONCILER_NOVACORE_IDENTITY", "idt-someone-else")
    code, _, err = other("apply", str(saved))
    assert code == 1
    assert ("  the Novacore identity (RECONCILER_NOVACORE_IDENTITY, or the identity in "
            "RECONCILER_NOVACORE_TOKEN) is not the one the plan was made with") in err
    assert "idt-someone-else" not in err

    # A plan of format 1.1 records no endpoints: no settings apply it, a new plan does.
    older = _as_format_1_1(json.loads(saved.read_text()))
    saved.write_text(json.dumps(older))
    code, out, err = other("apply", str(saved))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: the saved plan {saved} cannot be checked against these settings; nothing "
        "was applied:",
        "  the saved plan does not record the endpoints it was made against (plan format "
        "1.1 records none; 1.2 and later do), so where it would be applied cannot be "
        "checked",
        "Make a new plan with this version (`reconciler plan ... --out FILE`), which "
        "records where it was made; no settings make this one applicable."]
    # One of a format that records them was edited.
    saved.write_text(json.dumps(older | {"format_version": "1.6"}))
    code, out, err = other("apply", str(saved))
    assert (code, out) == (1, "")
    assert err.splitlines()[1] == (
        "  the saved plan does not record the endpoints it was made against (plan format "
        "1.6 records them: was the file edited?), so where it would be applied cannot be "
        "checked")
    assert [threaded.call(threaded.sims.requests) for threaded in both] == [0, 0]


def test_a_saved_plan_applied_without_the_token_it_was_made_with_says_none_is_set(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Made in CI with a token, applied in a shell that has none: not another identity."""
    run = make_cli([site("s1")])
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    monkeypatch.delenv("RECONCILER_NOVACORE_TOKEN")
    monkeypatch.delenv("RECONCILER_NOVACORE_IDENTITY", raising=False)
    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", str(saved))
    assert (code, out) == (1, "")
    assert err.splitlines()[1] == (
        "  the Novacore identity (RECONCILER_NOVACORE_IDENTITY, or the identity in "
        "RECONCILER_NOVACORE_TOKEN) is not set; the plan was made with one"), err
    assert run.sims.call(run.sims.sims.requests) == 0


def test_a_saved_plan_applies_after_an_edit_that_declares_the_same(
        make_cli: CliFactory, tmp_path: Path) -> None:
    """What the files declare is compared, not their text (README: a comment is no change)."""
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    files = sorted(run.fleet_dir.rglob("*.yaml"))
    assert files
    for path in files:
        path.write_text("# reviewed\n" + path.read_text() + "\n")
    code, out, err = run("apply", str(saved))
    assert code == 0, err
    assert "Apply complete: 16 done, 0 failed" in out


def test_a_saved_plan_with_relative_paths_applies_from_any_directory(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`plan sites --out plan.json` records where it ran: `cd / && apply /dir/plan.json`
    reads the sites there, not in the current directory."""
    run = make_cli(two_sites())
    monkeypatch.chdir(tmp_path)
    assert run("plan", "sites", "--out", "plan.json")[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run("apply", str(tmp_path / "plan.json"))
    assert code == 0, err
    assert "Apply complete: 16 done, 0 failed" in out
    assert run.sims.call(converged_exactly_once, run.sims.sims, load(two_sites())) is None
    inputs = json.loads((tmp_path / "plan.json").read_text())["inputs"]
    assert (inputs["paths"], inputs["working_directory"]) == (["sites"], str(tmp_path))


def test_a_refused_apply_leaves_no_state_directory_where_it_ran(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saved plan refused as stale (found only once the lock is held and the actual state
    read), or an apply cancelled for want of a terminal, creates no `.reconciler/` in the
    directory it ran in, nor the missing parents of a RECONCILER_STATE_DIR; a state
    directory that was there keeps what it had."""
    run = make_cli(two_sites())
    monkeypatch.chdir(tmp_path)
    assert run("plan", "sites", "--out", "plan.json")[0] == 0
    assert run("apply", "plan.json")[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("RECONCILER_STATE_DIR")
    # Made with the default state directory here, which a plan does not create; then
    # overtaken by a device installed meanwhile.
    assert run("plan", "../sites", "--out", "../stale.json")[0] == 0
    assert list(elsewhere.iterdir()) == []
    run.sims.call(run.sims.sims.zaps[serial_of(1)].install_device,
                  {"type": "mqtt", "profile": "ferroamp", "broker_host": "192.168.1.99"},
                  sn="STRANGER")
    code, _, err = run("apply", str(tmp_path / "stale.json"))
    assert code == 1 and "is stale" in err, err
    assert list(elsewhere.iterdir()) == [], "a refused apply made state"

    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))  # not a terminal
    nested = elsewhere / "a" / "b" / "state"
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(nested))
    docs = two_sites()
    next(d for d in docs if d["metadata"]["name"] == "s1-inv")["spec"]["displayName"] = "New"
    run.rewrite(docs)
    code, _, err = run("apply", run.path)
    assert code == 1 and "Apply cancelled." in err, err
    assert list(elsewhere.iterdir()) == []

    # What was there stays: the state directory of the apply that made the plan.
    before = sorted(p.name for p in run.state_dir.iterdir())
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(run.state_dir))
    assert run("apply", run.path)[0] == 1
    assert sorted(p.name for p in run.state_dir.iterdir()) == before
    # An apply that records something keeps the directory it made.
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(nested))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    assert (nested / "inventory.json").is_file()


def test_a_saved_plan_reads_another_checkout_of_its_files_or_says_where_it_looked(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan made in CI applies from another checkout of the same files; where none
    holds them, the path, the directory it is relative to and what to do are named, and
    nothing is read or written."""
    run = make_cli(two_sites())
    monkeypatch.chdir(tmp_path)
    assert run("plan", "sites", "--out", "plan.json")[0] == 0
    saved = tmp_path / "plan.json"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (tmp_path / "sites").rename(checkout / "sites")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", str(saved))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: the saved plan {saved} names paths that could not be found:",
        f"  sites: relative to {tmp_path}, where the plan was made; not found there nor in "
        f"{elsewhere} (the current directory)",
        f"Run `reconciler apply` from {tmp_path}, or from a directory that holds the same "
        "files at sites."]

    older = json.loads(saved.read_text())
    older["format_version"] = "1.2"
    del older["inputs"]["working_directory"]
    (elsewhere / "older.json").write_text(json.dumps(older))
    code, out, err = run("apply", str(elsewhere / "older.json"))
    assert (code, out) == (1, "")
    assert err.splitlines()[1:] == [
        f"  sites: not found in {elsewhere} (the current directory); the plan does not record "
        "the directory it was made in (made by an older reconciler)",
        "Run `reconciler apply` from the directory the plan was made in."]
    assert run.sims.call(run.sims.sims.requests) == 0, "refused before observing anything"

    # The directory the plan ran in now holds other declarations: the checkout is read.
    docs = two_sites()
    docs[0]["spec"]["displayName"] = "Renamed in git"
    run.rewrite(docs)
    code, _, err = run("apply", str(saved))
    assert code == 1
    assert err.startswith(f"error: the desired state changed since the plan was made (sites "
                          f"read in {tmp_path}); run `reconciler plan` again"), err
    monkeypatch.chdir(checkout)
    code, out, err = run("apply", str(saved))
    assert code == 0, err
    assert "Apply complete: 16 done, 0 failed" in out
    assert run.sims.call(converged_exactly_once, run.sims.sims, load(two_sites())) is None


def test_a_plan_that_could_not_be_saved_is_refused_before_it_is_made(
        make_cli: CliFactory, tmp_path: Path) -> None:
    run = make_cli(two_sites())
    run.sims.call(run.sims.sims.reset_counts)
    missing = tmp_path / "no-such-dir" / "plan.json"
    code, out, err = run("plan", run.path, "--out", str(missing))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: --out: cannot write {missing}: the directory {missing.parent} does not exist",
        "invalid arguments: 1 problem"]
    assert run.sims.call(run.sims.sims.requests) == 0, "refused before observing anything"
    code, _, err = run("plan", run.path, "--out", str(tmp_path))
    assert code == 1 and f"cannot write {tmp_path}: it is a directory" in err


def test_a_selection_given_with_a_saved_plan_is_refused(make_cli: CliFactory,
                                                        tmp_path: Path) -> None:
    """The saved plan is what was reviewed: `--target` cannot narrow it after the fact."""
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", str(saved), "--target", "site/s1", "--exclude", "tier=gold")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "error: --target/--exclude: cannot be used with a saved plan, which is applied as it "
        "was made; pass --target and --exclude to `reconciler plan ... --out FILE` instead",
        "invalid arguments: 1 problem"]
    assert run.sims.call(run.sims.sims.requests) == 0


def test_a_saved_plan_given_with_the_sites_is_named_as_a_saved_plan(make_cli: CliFactory,
                                                                    tmp_path: Path) -> None:
    """`apply plan.json sites/` reads the plan as one more YAML file (JSON is YAML): it is
    named for what it is, and how to apply it, not as a document without a kind."""
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    run.sims.call(run.sims.sims.reset_counts)
    for command in (["apply", str(saved), run.path, "--auto-approve"],
                    ["validate", run.path, str(saved)]):
        code, out, err = run(*command)
        assert (code, out) == (1, ""), out + err
        assert err.splitlines()[0] == (
            f"error: {saved}:1:1: kind: missing `kind`: this is a plan saved by `reconciler "
            "plan --out`, not a resource; apply it on its own: `reconciler apply` with this "
            "file as its only path"), err
    assert run.sims.call(run.sims.sims.requests) == 0


# -- target and exclude -------------------------------------------------------------------------


def test_target_and_exclude_by_address_and_label(make_cli: CliFactory) -> None:
    docs = [*standard_site(1), site("s2", labels={"tier": "gold"}),
            gateway("s2-zap", "s2", serial_of(2), labels={"tier": "gold"})]
    run = make_cli(docs)
    sims = run.sims.sims

    code, out, _ = run("apply", run.path, "--auto-approve", "--target", "device/s1-inv")
    assert code == 0, out
    assert run.sims.call(lambda: sorted(sims.zaps[serial_of(1)].devices)) == ["SG0001"]
    assert run.sims.call(lambda: [s.name for s in sims.novacore.sites.values()]) == ["Site s1"]

    code, out, _ = run("apply", run.path, "--auto-approve", "--exclude", "tier=gold")
    assert code == 0, out
    assert run.sims.call(lambda: sorted(sims.zaps[serial_of(1)].devices)) == ["P1M0001", "SG0001"]
    assert run.sims.call(lambda: sims.novacore.gateways[serial_of(2)].org_id) is None

    code, out, _ = run("plan", run.path, "--target", "tier=gold", "-o", "json")
    assert {c["address"] for c in json.loads(out)["changes"]} == {
        "site/s2[novacore]", "gateway/s2-zap[novacore]"}
    code, out, _ = run("plan", run.path, "--target", "tier in (gold,silver)", "-o", "json")
    assert {c["address"] for c in json.loads(out)["changes"]} == {
        "site/s2[novacore]", "gateway/s2-zap[novacore]"}
    code, _, err = run("plan", run.path, "--target", "device/nope")
    assert code == 1 and "'device/nope' matches no resource" in err
    code, out, err = run("apply", run.path, "--auto-approve", "--target", "tier in (gold",
                         "--exclude", "devise/s1-inv")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "error: --target/--exclude: 'tier in (gold': opens a parenthesis it never closes; use "
        "kind/name (e.g. device/inv-1) or a label selector (key=value, key!=value, "
        "key in (a,b), key notin (a,b), key or !key, joined by commas)",
        "error: --target/--exclude: 'devise/s1-inv': unknown kind 'devise'; an address is "
        "kind/name, the kind one of site, gateway, device, der",
        "invalid arguments: 2 problems"]


def test_a_pattern_that_matches_nothing_says_what_was_meant(make_cli: CliFactory) -> None:
    """A typo in a target is an error that names the closest resource or label, before
    anything is read, not a silently empty plan."""
    run = make_cli(two_sites())
    run.sims.call(run.sims.sims.reset_counts)
    for pattern, said in (
            ("device/s1-innv", "'device/s1-innv' matches no resource (did you mean "
                               "device/s1-inv?)"),
            ("device/s1-zap", "'device/s1-zap' matches no resource (did you mean "
                              "gateway/s1-zap?)"),
            ("tier=gld", "'tier=gld' matches no resource (did you mean tier=gold? tier has "
                         "the values gold)"),
            ("tier in (silver,gld)", "'tier in (silver,gld)' matches no resource (did you "
                                     "mean tier=gold? tier has the values gold)"),
            ("teir=gold", "'teir=gold' matches no resource (no resource has the label "
                          "'teir'; did you mean 'tier'?)"),
            # A name in the wrong case means the name in the right one, however unlike
            # their spellings are letter by letter.
            ("device/S1-INV", "'device/S1-INV' matches no resource (did you mean "
                              "device/s1-inv?)"),
            ("tier=GOLD", "'tier=GOLD' matches no resource (did you mean tier=gold? tier has "
                          "the values gold)"),
            ("TIER", "'TIER' matches no resource (no resource has the label 'TIER'; did you "
                     "mean 'tier'?)")):
        for command in (["plan", run.path], ["apply", run.path, "--auto-approve"]):
            code, out, err = run(*command, "--target", pattern)
            assert (code, out) == (1, ""), (command, pattern)
            assert err.splitlines() == [f"error: --target/--exclude: {said}",
                                        "invalid arguments: 1 problem"], (command, pattern)
    assert run.sims.call(run.sims.sims.requests) == 0


def test_an_address_with_an_empty_kind_or_name_says_what_an_address_is(
        make_cli: CliFactory) -> None:
    """`device/` (a name left out, as a script's `device/$NAME` with NAME unset) is no
    address of a resource that is missing: it is refused as the address it is not."""
    run = make_cli(two_sites())
    run.sims.call(run.sims.sims.reset_counts)
    kinds = "site, gateway, device, der"
    for pattern, empty in (("device/", "name"), ("/s1-inv", "kind"), ("/", "kind and name")):
        for option in ("--target", "--exclude"):
            code, out, err = run("plan", run.path, option, pattern)
            assert (code, out) == (1, ""), (option, pattern, out)
            assert err.splitlines() == [
                f"error: --target/--exclude: {pattern!r}: the {empty} of the address is empty; "
                f"an address is kind/name (e.g. device/inv-1), the kind one of {kinds}",
                "invalid arguments: 1 problem"], (option, pattern, err)
    assert run.sims.call(run.sims.sims.requests) == 0


def test_bad_settings_are_named_and_nothing_is_read_or_written(make_cli: CliFactory) -> None:
    run = make_cli(standard_site(1), env={"RECONCILER_TIMEOUT": "-1",
                                          "RECONCILER_INSECURE_SKIP_TLS_VERIFY": "maybe"})
    for command in (["plan", run.path], ["apply", run.path, "--auto-approve"]):
        code, out, err = run(*command)
        assert code == 1 and out == ""
        assert err.splitlines() == [
            "error: RECONCILER_TIMEOUT: expected a number of seconds, greater than 0 and at most "
            "3,600; got '-1'",
            "error: RECONCILER_INSECURE_SKIP_TLS_VERIFY: expected true or false, got 'maybe'",
            "invalid settings: 2 problems"]
    assert run.sims.call(run.sims.sims.requests) == 0


def test_skipping_tls_verification_is_warned_about_on_every_run(make_cli: CliFactory) -> None:
    run = make_cli(standard_site(1))
    code, _, err = run("plan", run.path)
    assert code == 0 and "INSECURE_SKIP_TLS_VERIFY" not in err
    run_insecure = make_cli(standard_site(1), env={"RECONCILER_INSECURE_SKIP_TLS_VERIFY": "1"})
    for command in (["plan", run_insecure.path], ["apply", run_insecure.path, "--auto-approve"]):
        code, _, err = run_insecure(*command)
        assert code == 0, err
        assert ("warning: RECONCILER_INSECURE_SKIP_TLS_VERIFY is set: TLS certificates are not "
                "verified") in err.splitlines()[0]
        assert "RECONCILER_CA_BUNDLE" in err


# -- transfer -------------------------------------------------------------------------------


def test_transfer_refused_without_allow_transfer_and_done_with_it(make_cli: CliFactory) -> None:
    run = make_cli(shop_in_org_b())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    novacore = run.sims.sims.novacore
    assert run.sims.call(lambda: novacore.gateways[TRANSFER_SERIAL].org_id) == ORG_B

    run.rewrite(gateway_moved_to_home(allow_transfer=False))
    code, out, err = run("plan", run.path)
    assert code == 1
    assert run("plan", run.path, "--detailed-exitcode")[0] == 1, "an error, not just changes"
    assert "⇄ gateway/gw[novacore] will be transferred  [BLOCKED]" in out
    assert "error: gateway/gw[novacore]: gateway" in err and "allowTransfer" in err
    # The summary counts the blocked rows shown: what is in sync waits on nothing.
    [summary] = [line for line in out.splitlines() if line.startswith("Plan: ")]
    shown = out.count("[BLOCKED]")
    assert shown > 1 and summary.endswith(f", {shown} blocked."), (summary, out)
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 1 and "blocked: gateway/gw[novacore]" in out
    assert run.sims.call(lambda: novacore.gateways[TRANSFER_SERIAL].org_id) == ORG_B

    run.rewrite(gateway_moved_to_home(allow_transfer=True))
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    assert run.sims.call(lambda: novacore.gateways[TRANSFER_SERIAL].org_id) == ORG_A
    legacy = run.sims.call(lambda: [d.state for d in novacore.devices.values()
                                    if d.hardware_id == "FERRO-LEGACY"])
    assert legacy == ["orphaned"]


# -- failures and the lock ----------------------------------------------------------------------


def test_apply_exits_1_when_a_change_keeps_failing(make_cli: CliFactory) -> None:
    docs = [*standard_site(1), mqtt_battery("s1-bat", "s1-zap", "FERRO1"), *standard_site(2)]

    def broker_down(sims: SimFleet) -> None:
        sims.lans["s1"].mqtt_devices[("192.168.1.70", 1883, "ferroamp")].online = False

    run = make_cli(docs, env={"RECONCILER_RETRIES": "2"}, before_start=broker_down)
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 1
    assert "failed: device/s1-bat[zap]:" in out and "MQTT device not responding" in out
    assert "skipped: device/s1-bat[novacore]: not attempted" in out
    assert "Apply finished with errors: 16 done, 1 failed, 2 skipped" in out


def test_second_apply_while_the_lock_is_held_fails_naming_the_holder(
        make_cli: CliFactory) -> None:
    run = make_cli(two_sites())
    with StateDir(run.state_dir).lock("reconciler apply sites/ (held by the test)"):
        run.sims.call(run.sims.sims.reset_counts)
        code, _, err = run("apply", run.path, "--auto-approve")
    assert code == 1
    assert f"the state directory {run.state_dir} is locked by pid" in err
    assert "running `reconciler apply sites/ (held by the test)`" in err
    assert run.sims.call(run.sims.sims.requests) == 0
    assert run("apply", run.path, "--auto-approve")[0] == 0, "free again once released"


def test_a_state_directory_that_cannot_be_made_is_an_error_before_any_call(
        make_cli: CliFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    run = make_cli(two_sites(), env={"RECONCILER_STATE_DIR": str(blocker / "state")})
    for command in (["apply", run.path, "--auto-approve"], ["watch", run.path]):
        code, _, err = run(*command)
        assert code == 1 and "Traceback" not in err
        assert (f"cannot use {blocker / 'state'} as the state directory "
                f"(RECONCILER_STATE_DIR): {blocker} is a file, not a directory; set "
                "RECONCILER_STATE_DIR to a directory, or move the file away") in err
    assert run.sims.call(run.sims.sims.requests) == 0


# -- secrets ------------------------------------------------------------------------------------

ENV_PASSWORD = "env-pw-7f3a9c2e1b"  # a test value
FILE_PASSWORD = "file-pw-c81d44e0aa"  # a test value


def test_secrets_never_appear_in_any_output(make_cli: CliFactory, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-ENV", broker="192.168.1.70",
                         password_from={"env": "S1_BATTERY_PASSWORD"}),
            mqtt_battery("s1-bat2", "s1-zap", "FERRO-FILE", broker="192.168.1.71",
                         password_from={"secretKeyRef": {"name": "ferroamp", "key": "password"}})]
    recorder = BodyRecorder("POST", "/api/devices")
    serial = serial_of(1)
    run = make_cli(docs, env={"S1_BATTERY_PASSWORD": ENV_PASSWORD},
                   before_start=lambda sims: recorder.install(sims.zaps[serial].app))
    secret_file = tmp_path / "secrets" / "ferroamp" / "password"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text(FILE_PASSWORD + "\n")
    token = run.sims.sims.novacore_token
    caplog.set_level(logging.DEBUG)

    outputs: dict[str, str] = {}
    for fmt in ("text", "json", "markdown"):
        code, out, err = run("plan", run.path, "-o", fmt, "--out", str(tmp_path / "plan.json"))
        assert code == 0, err
        outputs[f"plan -o {fmt}"] = out + err
    outputs["saved plan"] = (tmp_path / "plan.json").read_text()
    code, out, err = run("apply", run.path, "--auto-approve", "-o", "json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] and report["counts"]["done"] == 14
    outputs["apply -o json"] = out + err
    code, out, err = run("apply", run.path, "--auto-approve")
    outputs["apply (text)"] = out + err
    for path in sorted(run.state_dir.iterdir()):
        outputs[f"state/{path.name}"] = path.read_text()
    assert "zap.add_device" in outputs["state/journal.jsonl"], "the journal was written"
    outputs["logs"] = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "something was logged (httpx logs each request)"

    for name, text in outputs.items():
        for secret in (ENV_PASSWORD, FILE_PASSWORD, token):
            assert secret not in text, f"a secret appears in {name}"

    sent = {body.get("broker_host"): body.get("password") for body in recorder.bodies}
    assert sent["192.168.1.70"] == ENV_PASSWORD, "the password reached the gateway"
    assert sent["192.168.1.71"] == FILE_PASSWORD
    battery = run.sims.call(lambda: run.sims.sims.zaps[serial].device("FERRO-ENV"))
    assert battery is not None and battery.password_set


def test_what_gateways_and_clouds_report_is_shown_but_never_acted_on_by_the_terminal(
        make_cli: CliFactory) -> None:
    # A gateway or cloud can report any text. Escape sequences (here: clear the screen, set
    # the window title) and a right-to-left override are shown as escapes; accented letters
    # are shown as written, in plans, progress lines and reports alike.
    docs = standard_site(1)
    docs[0]["spec"]["displayName"] = "Gård i Malmö"
    run = make_cli(docs)
    code, out, _ = run("plan", run.path)
    assert code == 0 and '+ name = "Gård i Malmö"' in out, out
    assert run("apply", run.path, "--auto-approve")[0] == 0

    hostile_name = "renamed\x1b[2J\u202eevil"
    hostile_sn = "X\x1b]0;pwned\x07"
    device_id = run.sims.call(lambda: cloud_device(run.sims.sims, "P1M0001").id)
    run.sims.call(run.sims.sims.novacore.rename_device, device_id, hostile_name)
    zap = run.sims.sims.zaps[serial_of(1)]
    run.sims.call(zap.install_device, {"type": "mqtt", "profile": "ferroamp",
                                       "broker_host": "192.168.1.99"}, sn=hostile_sn)

    shown = {}
    for fmt in ("text", "markdown"):
        code, out, err = run("plan", run.path, "-o", fmt)
        assert code == 0, err
        shown[f"plan -o {fmt}"] = out + err
    # A value is shown as JSON, which writes the escape character as \\u001b.
    assert '~ name: "renamed\\u001b[2J\\u202eevil" -> "s1-p1"' in shown["plan -o text"]
    assert "! unmanaged: " in shown["plan -o text"]
    assert "X\\x1b]0;pwned\\x07" in shown["plan -o text"]
    code, out, err = run("apply", run.path, "--auto-approve", "--prune")
    assert code == 0, out + err
    shown["apply --prune"] = out + err
    assert "device/s1-zap.X\\x1b]0;pwned\\x07[zap] delete" in out
    for name, text in shown.items():
        for char in ("\x1b", "\x07", "\u202e"):
            assert char not in text, f"{char!r} reaches the terminal in {name}"
    assert run.sims.call(zap.device, hostile_sn) is None, "removed all the same"


def test_a_missing_password_blocks_the_device_at_plan_time(make_cli: CliFactory) -> None:
    """A password that cannot be had stops the plan (exit 1) before anything is written,
    naming where it was looked for, instead of failing the apply half-way."""
    docs = [*two_sites(),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-ENV", broker="192.168.1.70",
                         password_from={"env": "S1_UNSET_PASSWORD"}),
            mqtt_battery("s2-bat", "s2-zap", "FERRO-2", broker="192.168.1.71",
                         password_from={"env": "S1_UNSET_PASSWORD"})]
    run = make_cli(docs)
    code, out, err = run("plan", run.path)
    assert code == 1
    assert out.count("[BLOCKED]") == 6, "the plan shows every blocked change"
    # The errors name each cause once and count what waits on them (novacore, publish).
    assert err.splitlines() == [
        f"error: device/s{i}-bat[zap]: MQTT password (from environment variable "
        "S1_UNSET_PASSWORD): environment variable S1_UNSET_PASSWORD is not set; provide it "
        "before applying" for i in (1, 2)
    ] + ["error: 4 more changes wait on these (shown [BLOCKED] in the plan)"]
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 1
    serial = serial_of(1)
    battery = run.sims.call(lambda: run.sims.sims.zaps[serial].device("FERRO-ENV"))
    assert battery is None, "nothing is added without its password"


def test_a_missing_password_behind_an_unreachable_gateway_is_the_error_that_fails_the_plan(
        make_cli: CliFactory) -> None:
    """The plan fails (exit 1, without --offline fail) for the password, which reaching the
    gateway would not give: the error says so, not only that the gateway is unreachable,
    which alone would be no error."""
    docs = [*two_sites(),
            mqtt_battery("s2-bat", "s2-zap", "FERRO-2", broker="192.168.1.71",
                         password_from={"env": "S2_UNSET_PASSWORD"})]
    run = make_cli(docs)
    run.sims.run(lambda: run.sims.sims.zaps[serial_of(2)].set_offline("refuse"))
    missing = ("MQTT password (from environment variable S2_UNSET_PASSWORD): environment "
               "variable S2_UNSET_PASSWORD is not set; provide it before applying")

    code, out, err = run("plan", run.path, "-o", "json", "--detailed-exitcode")
    assert code == 1, err
    [cause, waiting] = err.splitlines()
    assert cause.startswith(f"error: device/s2-bat[zap]: {missing}; its state is not known; "
                            "deferred: gateway s2-zap"), cause
    assert waiting == "error: 2 more changes wait on these (shown [BLOCKED] in the plan)"
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    battery = changes["device/s2-bat[zap]"]
    assert (battery["actions"], battery["blocked"], battery["reason"]) == (
        ["defer"], True, "target_unreachable")
    assert battery["message"].startswith(missing)

    code, out, err = run("apply", run.path, "--auto-approve", "-o", "json")
    assert code == 1, err
    outcomes = {o["address"]: o for o in json.loads(out)["outcomes"]}
    assert outcomes["device/s2-bat[zap]"]["status"] == "blocked"
    assert outcomes["device/s2-bat[zap]"]["message"].startswith(missing)


def test_a_password_gone_missing_for_a_device_in_place_is_said_not_taken_for_in_sync(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rotation with a mistyped variable must not pass as "no changes": whether the device
    still has the declared password cannot be checked, and the plan says so (exit 1). What
    does not send the password goes on."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-ENV", broker="192.168.1.70",
                         password_from={"env": "S1_BATTERY_PASSWORD"})]
    run = make_cli(docs, env={"S1_BATTERY_PASSWORD": ENV_PASSWORD})
    assert run("apply", run.path, "--auto-approve")[0] == 0
    monkeypatch.delenv("S1_BATTERY_PASSWORD")
    device_id = run.sims.call(lambda: cloud_device(run.sims.sims, "FERRO-ENV").id)
    run.sims.call(run.sims.sims.novacore.rename_device, device_id, "renamed in the cloud")

    code, out, err = run("plan", run.path, "-o", "json")
    assert code == 1
    changes = {c["address"]: c for c in json.loads(out)["changes"] if c["actions"] != ["no-op"]}
    check = changes["device/s1-bat[zap]"]
    assert (check["actions"], check["reason"], check["blocked"]) == (
        ["verify"], "secret_missing", True)
    assert err.splitlines() == [
        "error: device/s1-bat[zap]: MQTT password (from environment variable "
        "S1_BATTERY_PASSWORD): environment variable S1_BATTERY_PASSWORD is not set; whether "
        "the device still has the declared password cannot be checked: provide it"]
    assert not changes["device/s1-bat[novacore]"]["blocked"], "the rename needs no password"

    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 1 and "✓ device/s1-bat[novacore] update" in out, out + err
    battery = run.sims.call(lambda: run.sims.sims.zaps[serial_of(1)].device("FERRO-ENV"))
    assert battery is not None, "the device is left as it is"
    assert run.sims.call(run.sims.sims.writes) == 1, "only the rename"
    # Empty, as a CI secret nobody set reaches a job: not set either, never sent as "".
    monkeypatch.setenv("S1_BATTERY_PASSWORD", "")
    code, out, err = run("plan", run.path, "-o", "json")
    assert code == 1
    check = next(c for c in json.loads(out)["changes"] if c["address"] == "device/s1-bat[zap]")
    assert (check["actions"], check["reason"]) == (["verify"], "secret_missing")
    assert err.splitlines() == [
        "error: device/s1-bat[zap]: MQTT password (from environment variable "
        "S1_BATTERY_PASSWORD): environment variable S1_BATTERY_PASSWORD is empty, which "
        "counts as not set; whether the device still has the declared password cannot be "
        "checked: provide it"]
    monkeypatch.setenv("S1_BATTERY_PASSWORD", ENV_PASSWORD)
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0


def _state_files(run: Cli) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(run.state_dir.iterdir())}


def test_a_changed_mqtt_password_is_sent_again_by_replacing_the_device(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Zap never reports a password: the credential ledger notices the change, the plan
    says which password changed (never its value), and the device is added again with it."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-ENV", broker="192.168.1.70",
                         password_from={"env": "S1_BATTERY_PASSWORD"})]
    recorder = BodyRecorder("POST", "/api/devices")
    serial = serial_of(1)
    run = make_cli(docs, env={"S1_BATTERY_PASSWORD": ENV_PASSWORD},
                   before_start=lambda sims: recorder.install(sims.zaps[serial].app))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0

    rotated = "env-pw-rotated-5d0e"  # a test value
    monkeypatch.setenv("S1_BATTERY_PASSWORD", rotated)
    code, out, err = run("plan", run.path, "-o", "json", "--detailed-exitcode")
    assert code == 2, err
    pending = {c["address"]: c for c in json.loads(out)["changes"] if c["actions"] != ["no-op"]}
    assert sorted(pending) == ["device/s1-bat[publish]", "device/s1-bat[zap]"]
    replace = pending["device/s1-bat[zap]"]
    assert (replace["actions"], replace["reason"]) == (["delete", "create"], "secret_changed")
    assert "the MQTT password (from environment variable S1_BATTERY_PASSWORD) changed" in (
        replace["message"])
    code, text, _ = run("plan", run.path)
    assert "device/s1-bat[zap]" in text and "S1_BATTERY_PASSWORD" in text

    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    assert recorder.bodies[-1]["password"] == rotated, "the new password reached the gateway"
    battery = run.sims.call(lambda: run.sims.sims.zaps[serial].device("FERRO-ENV"))
    assert battery is not None and battery.password_set
    assert {d["type"]: d["enabled"] for d in battery.ders}["battery"], "publishing again"
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0, "sent once"

    state = _state_files(run)
    for name in ("credentials.key", "credentials.json"):
        assert (run.state_dir / name).stat().st_mode & 0o077 == 0, f"{name} is private"
    for name, text in state.items():
        for secret in (ENV_PASSWORD, rotated):
            assert secret not in text, f"a password appears in state/{name}"


def test_a_password_in_place_before_the_ledger_knew_it_is_adopted_by_the_next_apply(
        make_cli: CliFactory, tmp_path: Path) -> None:
    """A device added before the ledger kept an entry for it (here: the ledger was removed
    after it was found damaged): no change can be seen until an apply records the password
    in place; from then on a change of it is."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-FILE", broker="192.168.1.71",
                         password_from={"secretKeyRef": {"name": "ferroamp", "key": "password"}})]
    run = make_cli(docs)
    secret_file = tmp_path / "secrets" / "ferroamp" / "password"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text(FILE_PASSWORD + "\n")
    assert run("apply", run.path, "--auto-approve")[0] == 0
    (run.state_dir / "credentials.key").write_text("not a key")

    secret_file.write_text("file-pw-rotated-93b1\n")  # a test value
    code, out, err = run("plan", run.path, "--detailed-exitcode")
    assert (code, out) == (1, ""), "a damaged ledger is not taken for an empty one"
    assert f"error: cannot read {run.state_dir / 'credentials.key'}: not a key of 32 bytes" in err
    assert "remove credentials.key and credentials.json to start afresh" in err
    for name in ("credentials.key", "credentials.json"):
        (run.state_dir / name).unlink()
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0, "nothing known to compare"
    code, out, err = run("apply", run.path, "--auto-approve")
    assert (code, out.splitlines()[-1]) == (0, "Plan: no changes."), err
    secret_file.write_text("file-pw-rotated-again-4c7f\n")  # a test value
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 2
    assert "the MQTT password (from secret ferroamp/password) changed" in out


@pytest.mark.parametrize(("name", "damage", "says"), [
    ("credentials.json", "{garbage", "not JSON"),
    ("credentials.json", "[1, 2]", "not an object of objects"),
    ("inventory.json", "{garbage", "not JSON"),
    ("inventory.json", "\udcff", "not UTF-8"),
    # JSON in form, but past what Python's parser reads: said, not a traceback.
    ("inventory.json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "arrays or objects nested too deeply to read"),
    ("credentials.json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "arrays or objects nested too deeply to read"),
    ("inventory.json", '{"a": {"b": ' + "9" * 5000 + "}}",
     "a number of more than 4,300 digits, too long to read"),
])
def test_a_damaged_state_file_stops_the_run_and_is_left_as_it_is(
        make_cli: CliFactory, name: str, damage: str, says: str) -> None:
    """Taking a damaged file for an empty one would lose what it holds without a word (a
    password rotation not seen, a deletion policy forgotten) and then overwrite it."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-ENV", broker="192.168.1.70",
                         password_from={"env": "S1_BATTERY_PASSWORD"})]
    run = make_cli(docs, env={"S1_BATTERY_PASSWORD": ENV_PASSWORD})
    assert run("apply", run.path, "--auto-approve")[0] == 0
    path = run.state_dir / name
    path.write_bytes(damage.encode("utf-8", "surrogateescape"))
    run.sims.call(run.sims.sims.reset_counts)
    for command in (("plan", run.path), ("apply", run.path, "--auto-approve")):
        code, out, err = run(*command)
        assert code == 1 and f"error: cannot read {path}: {says}" in err, (command, out, err)
        assert "Traceback" not in err
    assert path.read_bytes() == damage.encode("utf-8", "surrogateescape"), "left for a look"
    assert run.sims.call(run.sims.sims.writes) == 0


@pytest.mark.parametrize("edit", [lambda f: f[:-1], lambda f: f.upper(), lambda f: [f],
                                  lambda f: None])
def test_a_password_fingerprint_edited_is_damage_not_a_changed_password(
        make_cli: CliFactory, edit: Any) -> None:
    """A fingerprint no password has, taken as recorded, would have the device's password
    seen as changed, and the device removed and added again on every apply."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-ENV", broker="192.168.1.70",
                         password_from={"env": "S1_BATTERY_PASSWORD"})]
    run = make_cli(docs, env={"S1_BATTERY_PASSWORD": ENV_PASSWORD})
    assert run("apply", run.path, "--auto-approve")[0] == 0
    path = run.state_dir / "credentials.json"
    ledger = json.loads(path.read_text())
    [(device, fingerprint)] = ledger["devices"].items()
    ledger["devices"][device] = edit(fingerprint)
    path.write_text(json.dumps(ledger))
    run.sims.call(run.sims.sims.reset_counts)
    for command in (("plan", run.path), ("apply", run.path, "--auto-approve")):
        code, out, err = run(*command)
        assert (code, out) == (1, ""), (command, out, err)
        assert err.startswith(f"error: cannot read {path}: the fingerprint of {device!r} is not "
                              "64 lowercase hex digits. It holds the fingerprints of the MQTT "
                              "passwords sent to devices; remove credentials.key and "
                              "credentials.json to start afresh"), err
    assert run.sims.call(run.sims.sims.writes) == 0


@pytest.mark.parametrize(("name", "size", "says"), [
    ("inventory.json", MAX_STATE_FILE_BYTES + 1,
     "the file is 64.0 MiB (67,108,865 bytes), more than the 64 MiB a state file may hold"),
    ("credentials.json", MAX_STATE_FILE_BYTES + 1,
     "the file is 64.0 MiB (67,108,865 bytes), more than the 64 MiB a state file may hold"),
    ("credentials.key", MAX_KEY_FILE_BYTES + 1,
     "the file is 1.0 KiB (1,025 bytes), more than the 1 KiB the key file may hold"),
])
def test_a_state_file_larger_than_its_limit_stops_the_run_unread(
        make_cli: CliFactory, name: str, size: int, says: str) -> None:
    """Read whole, a file written over by something else could take any memory; it is
    refused by its size, as a damaged one, and left as it is."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-ENV", broker="192.168.1.70",
                         password_from={"env": "S1_BATTERY_PASSWORD"})]
    run = make_cli(docs, env={"S1_BATTERY_PASSWORD": ENV_PASSWORD})
    assert run("apply", run.path, "--auto-approve")[0] == 0
    path = run.state_dir / name
    with path.open("wb") as file:  # sparse: NUL bytes, which read would be "not JSON"
        file.truncate(size)
    run.sims.call(run.sims.sims.reset_counts)
    for command in (("plan", run.path), ("apply", run.path, "--auto-approve")):
        code, out, err = run(*command)
        assert code == 1 and f"error: cannot read {path}: {says}. It holds " in err, \
            (command, out, err)
        assert "Traceback" not in err
    assert path.stat().st_size == size, "left for a look"
    assert run.sims.call(run.sims.sims.writes) == 0


def test_an_empty_secret_file_is_no_password_to_send(make_cli: CliFactory,
                                                     tmp_path: Path) -> None:
    """As an empty variable counts as unset: a file emptied (a failed `sops -d > file`), or
    holding only a line break, would otherwise replace the device's password with none."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-FILE", broker="192.168.1.71",
                         password_from={"secretKeyRef": {"name": "ferroamp", "key": "password"}})]
    run = make_cli(docs)
    secret_file = tmp_path / "secrets" / "ferroamp" / "password"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text("ferro-secret")
    assert run("apply", run.path, "--auto-approve")[0] == 0
    secret_file.write_text("\n")
    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 1, out + err
    assert (f"MQTT password (from secret ferroamp/password): secret ferroamp/password at "
            f"{secret_file} is empty; expected the password in it") in out, out
    assert "will be replaced" not in out, out
    assert run.sims.call(run.sims.sims.writes) == 0
    battery = run.sims.call(lambda: run.sims.sims.zaps[serial_of(1)].device("FERRO-FILE"))
    assert battery is not None


def test_a_secret_file_larger_than_its_limit_blocks_the_device_unread(
        make_cli: CliFactory, tmp_path: Path) -> None:
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-FILE", broker="192.168.1.71",
                         password_from={"secretKeyRef": {"name": "ferroamp", "key": "password"}})]
    run = make_cli(docs)
    secret_file = tmp_path / "secrets" / "ferroamp" / "password"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text("p" * (MAX_SECRET_BYTES + 1))
    code, out, err = run("plan", run.path)
    assert code == 1, out + err
    assert err.splitlines() == [
        "error: device/s1-bat[zap]: MQTT password (from secret ferroamp/password): secret "
        f"ferroamp/password at {secret_file} is 64.0 KiB (65,537 bytes), more than the 64 KiB "
        "a secret file may hold, and is not read; expected the password alone; provide it "
        "before applying",
        "error: 2 more changes wait on these (shown [BLOCKED] in the plan)",
    ]
    secret_file.write_text("p" * MAX_SECRET_BYTES)  # of exactly the limit: sent
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    battery = run.sims.call(lambda: run.sims.sims.zaps[serial_of(1)].device("FERRO-FILE"))
    assert battery is not None


def test_journal_lines_that_are_no_record_are_skipped_and_the_rest_read(
        make_cli: CliFactory) -> None:
    """A journal line torn, not UTF-8, not an object or longer than any line the journal
    writes (read a piece at a time, never whole) is skipped; the intents around it are
    still reported as interrupted, and the run goes on."""
    run = make_cli(standard_site(1))
    run.state_dir.mkdir()
    intent = {"ts": "2026-01-01T00:00:00Z", "run": "r1", "address": "site/s1[novacore]",
              "operation": "create_site", "phase": "intent"}
    (run.state_dir / "journal.jsonl").write_bytes(b"\n".join([
        b"\xff\xfe not UTF-8",
        b"1",
        b'["a", "list"]',
        b'{"phase": "settled", "runs": 7}',
        b'{"run": ["r1"], "phase": "intent"}',
        b'{"ts": "' + b"x" * 200_000 + b'", "run": "r2", "phase": "intent"}',
        json.dumps(intent).encode(),
        b'{"torn',
    ]))
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0 and "Traceback" not in err, out + err
    assert out.startswith(
        "note: 1 write(s) of an earlier run were interrupted; the state is observed again "
        "before anything is applied:\n"
        "  site/s1[novacore] create_site (started 2026-01-01T00:00:00Z)\n"), out
    assert StateDir(run.state_dir).unfinished() == [], "settled by the run"


# -- removing gateways ----------------------------------------------------------------------


def test_a_deletion_policy_changed_in_git_alone_is_honoured_when_the_gateway_is_removed(
        make_cli: CliFactory) -> None:
    kept, removed = standard_site(1), standard_site(2, org=ORG_B)
    run = make_cli(kept + removed)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    # Release changes nothing remote: the apply has nothing to do, but remembers the policy.
    released = [{**d, "spec": {**d["spec"], "deletionPolicy": "Release"}}
                if d["kind"] == "Gateway" else d for d in removed]
    run.rewrite(kept + released)
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0 and out.startswith("No changes."), out

    run.rewrite(kept)  # the site of org-beta, and org-beta with it, leaves the desired state
    # Its devices stay in that site, bound to it: a release would orphan them.
    novacore = run.sims.sims.novacore
    bound = [d.id for d in novacore.devices.values() if d.gateway_serial == serial_of(2)]
    code, out, _ = run("apply", run.path, "--auto-approve", "--prune")
    assert code != 0 and "a release orphans them: device " in out, out
    assert all(f"device {i} (" in out for i in bound) and len(bound) == 2, out
    assert novacore.gateways[serial_of(2)].org_id == ORG_B
    headers = {"Authorization": f"Bearer {os.environ['RECONCILER_NOVACORE_TOKEN']}"}
    for device_id in bound:  # deleted by hand, as someone would in Novacore's UI
        deleted = httpx.delete(f"{os.environ['RECONCILER_NOVACORE_URL']}/_sim/devices/"
                               f"{device_id}", headers=headers)
        assert deleted.status_code == 200
    code, out, _ = run("apply", run.path, "--auto-approve", "--prune")
    assert code == 0, out
    assert f"⇐ gateway/{serial_of(2)}[novacore] will be released" in out
    assert novacore.gateways[serial_of(2)].org_id is None


def delete_novacore_site(site_id: str) -> None:
    """Delete a site in the Novacore simulator, as someone would in its UI."""
    headers = {"Authorization": f"Bearer {os.environ['RECONCILER_NOVACORE_TOKEN']}"}
    deleted = httpx.delete(f"{os.environ['RECONCILER_NOVACORE_URL']}/_sim/sites/{site_id}",
                           headers=headers)
    assert deleted.status_code == 200


def test_a_site_declared_no_more_is_reported_until_its_novacore_site_is_gone(
        make_cli: CliFactory, tmp_path: Path) -> None:
    kept, retired = standard_site(1), standard_site(2, org=ORG_B)
    run = make_cli(kept + retired)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    novacore = run.sims.sims.novacore
    (site_id,) = [s.id for s in novacore.sites.values() if s.org_id == ORG_B]
    # The Site resource of s1 is renamed in git: its display name still finds its site.
    renamed = [{**d, "metadata": {"name": "first"}} if d["kind"] == "Site"
               else {**d, "spec": {**d["spec"], "siteRef": "first"}} if d["kind"] == "Gateway"
               else d for d in kept]
    run.rewrite(renamed)

    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out
    reported = (f"! unmanaged: site {site_id} ('Site s2' in {ORG_B}) was applied for Site s2, "
                "which is declared no more; it and its devices stay in Novacore (--prune does "
                "not delete sites): delete it there, or declare the Site again")
    assert reported in out
    assert "Site s1" not in out.replace("'Site s2'", "")
    document = json.loads(run("plan", run.path, "-o", "json")[1])
    assert {"platform": "novacore", "id": site_id} in [
        {k: u[k] for k in ("platform", "id")} for u in document["unmanaged"]]
    # A selection judges what it selects; a Site declared nowhere is the whole fleet's.
    assert reported not in run("plan", run.path, "--target", "site/first")[1]
    # --prune leaves the site, also from a saved plan; the next plan reports it again.
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--prune", "--out", str(saved))[0] == 0
    code, out, _ = run("apply", str(saved))
    assert code == 0 and site_id in novacore.sites, out
    assert reported in run("plan", run.path)[1]

    # Deleted in Novacore: the apply that sees it gone forgets it.
    delete_novacore_site(site_id)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    inventory = json.loads((run.state_dir / "inventory.json").read_text())
    assert set(inventory["sites"]) == {"first"}
    assert inventory["sites"]["first"]["org"] == ORG_A
    code, out, _ = run("plan", run.path)
    assert code == 0 and "unmanaged: site" not in out, out


def test_an_empty_site_renamed_in_git_keeps_its_novacore_site(make_cli: CliFactory) -> None:
    """A Site with no devices has nothing to recognise its old site by: the inventory's
    memory of where the last apply put it is what keeps a new display name a rename."""
    run = make_cli([*standard_site(1), site("empty", display="New Site")])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    novacore = run.sims.sims.novacore
    (site_id,) = [s.id for s in novacore.sites.values() if s.name == "New Site"]
    run.rewrite([*standard_site(1), site("empty", display="Renamed Site")])

    code, out, _ = run("plan", run.path)
    assert code == 0, out
    assert "~ site/empty[novacore] will be updated in place" in out
    assert (f"renamed: an earlier apply put this Site in site {site_id} (the state directory "
            "remembers it), so it is renamed rather than created again") in out
    assert run("apply", run.path, "--auto-approve")[0] == 0
    assert site_names(run.sims.sims, ORG_A) == ["Renamed Site", "Site s1"]
    assert novacore.sites[site_id].name == "Renamed Site"
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out


BOTH_ORGS = standard_site(1) + standard_site(2, org=ORG_B)  # both organisations exist


def test_a_site_moved_to_another_organisation_reports_the_site_it_left(
        make_cli: CliFactory) -> None:
    run = make_cli([*BOTH_ORGS, site("empty", display="Depot")])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    novacore = run.sims.sims.novacore
    (old_id,) = [s.id for s in novacore.sites.values() if s.name == "Depot"]
    run.rewrite([*BOTH_ORGS, site("empty", display="Depot", org=ORG_B)])

    code, out, _ = run("plan", run.path)
    assert code == 0 and "+ site/empty[novacore] will be created" in out, out
    assert run("apply", run.path, "--auto-approve")[0] == 0
    (new_id,) = [s.id for s in novacore.sites.values()
                 if s.org_id == ORG_B and s.name == "Depot"]
    reported = (f"! unmanaged: site {old_id} ('Depot' in {ORG_A}) was applied for Site empty "
                "before the Site moved to another site (its orgId or siteId changed); it stays "
                "in Novacore (--prune does not delete sites)")
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0 and reported in out, out
    # Still reported after an apply with nothing to do, and forgotten once deleted there.
    assert run("apply", run.path, "--auto-approve")[0] == 0
    assert reported in run("plan", run.path)[1]
    delete_novacore_site(old_id)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    inventory = json.loads((run.state_dir / "inventory.json").read_text())
    assert inventory["left_sites"] == {}
    assert inventory["sites"]["empty"] == {"org": ORG_B, "id": new_id}
    code, out, _ = run("plan", run.path)
    assert code == 0 and "unmanaged: site" not in out, out


def test_a_site_moved_back_is_not_reported_as_left(make_cli: CliFactory) -> None:
    run = make_cli([*BOTH_ORGS, site("empty", display="Depot")])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite([*BOTH_ORGS, site("empty", display="Depot", org=ORG_B)])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    # Back: the first site is found by name again; the one in org-beta is the one left.
    run.rewrite([*BOTH_ORGS, site("empty", display="Depot")])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    out = run("plan", run.path)[1]
    assert f"('Depot' in {ORG_B}) was applied for Site empty before" in out, out
    assert f"('Depot' in {ORG_A})" not in out, out


def out_of_reach_orgs() -> list[Doc]:
    """s1 in org-alpha; s2 in org-gamma, which the token may not read (403); s3 in no
    Novacore organisation of its own, with a gateway (and no devices, which would need one)
    claimed into org-delta, which does not exist (404). (A gateway's organisation other than
    its Site's is refused by validation.)"""
    s3 = site("s3")
    del s3["spec"]["novacore"]
    return [*standard_site(1), *standard_site(2, org="org-gamma"), s3,
            gateway("s3-zap", "s3", serial_of(3), org="org-delta")]


def lose_access(sims: SimFleet) -> None:
    """The token's identity loses org-gamma; org-delta is no more."""
    for orgs in sims.novacore.members.values():
        orgs.pop("org-gamma", None)
        orgs.pop("org-delta", None)
    del sims.novacore.orgs["org-delta"]


def test_a_site_in_an_organisation_the_token_cannot_read_is_blocked_and_the_rest_applied(
        make_cli: CliFactory, tmp_path: Path) -> None:
    """A 403 or 404 for one organisation is no reason to stop the fleet (the token is good)
    nor to defer (reading again gives the same answer): the sites that declare it are
    blocked at plan time, naming the field to correct, and nothing of them is written."""
    run = make_cli(out_of_reach_orgs())
    run.sims.call(lose_access, run.sims.sims)
    novacore = run.sims.sims.novacore
    code, out, err = run("plan", run.path, "--out", str(tmp_path / "plan.json"))
    assert code == 1, out + err
    assert ("error: site/s2[novacore]: Novacore organisation org-gamma cannot be read with "
            "this token (novacore.list_sites /sites: HTTP 403") in err, err
    assert "Correct `spec.novacore.orgId` of Site s2" in err
    assert ("error: gateway/s3-zap[novacore]: Novacore organisation org-delta cannot be read "
            "with this token (novacore.list_gateways /gateways: HTTP 404") in err, err
    assert "Correct `spec.zap.orgId` of Gateway s3-zap" in err
    assert "error: gateway/s2-zap[novacore]" not in err, "said once, at the site"
    assert "+ site/s1[novacore] will be created" in out and "[BLOCKED]" in out

    run.sims.call(run.sims.sims.reset_counts)
    code, out, _ = run("apply", str(tmp_path / "plan.json"))
    assert code == 1, out
    assert "blocked: site/s2[novacore]" in out and "blocked: gateway/s3-zap[novacore]" in out
    assert "Apply finished with errors: 8 done, 0 failed, 0 skipped, 9 blocked" in out, out
    converged_exactly_once(run.sims.sims, load(standard_site(1)))
    writes = run.sims.call(lambda: {k: n for k, n in novacore.requests.items()
                                    if not k.startswith("GET")})
    assert writes == {"POST /sites": 1, "POST /gateways/claim": 1,
                      "POST /devices/provision": 2}, "site s1 only"
    assert run.sims.call(lambda: sorted((s.org_id, s.name) for s in novacore.sites.values())
                         ) == [(ORG_A, "Site s1")]
    for serial in (serial_of(2), serial_of(3)):
        assert run.sims.call(lambda s=serial: (novacore.gateways[s].org_id,
                                               dict(run.sims.sims.zaps[s].devices))) == (None, {})
    # Read once per plan, not retried (RECONCILER_RETRIES is 6): the answer would not change.
    run.sims.call(run.sims.sims.reset_counts)
    assert run("plan", run.path)[0] == 1
    lists = run.sims.call(lambda: (novacore.requests["GET /sites"],
                                   novacore.requests["GET /gateways"]))
    assert lists == (3, 3), "each organisation once"


def test_a_der_removed_from_a_device_is_reported_in_every_format_while_novacore_keeps_it(
        make_cli: CliFactory) -> None:
    """Novacore has no DER delete: the apply switches the DER's publishing off on the Zap and
    leaves it in Novacore. Every plan after lists it as unmanaged, in text, Markdown and
    JSON alike, and none says that the actual state matches the desired state."""
    docs = standard_site(1)
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    (inverter,) = [d for d in docs if d["metadata"]["name"] == "s1-inv"]
    inverter["spec"]["ders"] = [d for d in inverter["spec"]["ders"] if d["name"] != "battery"]
    run.rewrite(docs)
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0 and "Apply complete: 1 done" in out, out
    assert "✓ device/s1-inv[publish] update" in out

    novacore = run.sims.sims.novacore
    device = cloud_device(run.sims.sims, "SG0001")
    (der_id,) = [d.id for d in novacore.ders.values()
                 if d.device_id == device.id and d.name == "battery"]
    description = (f"DER battery (battery, {der_id}) of Novacore device {device.id} (Device "
                   "s1-inv) is not declared (Novacore has no DER delete; left as it is)")
    for prune in ([], ["--prune"]):
        code, out, _ = run("plan", run.path, "--detailed-exitcode", *prune)
        assert code == 0, "nothing to apply: no change, whatever is listed"
        assert out.splitlines()[:2] == [
            # Nothing removes it, --prune included: the header says so.
            "No changes. The declared objects match the actual state; 1 object found that "
            "nothing declares (apply --prune leaves it, as it says):",
            f"  ! unmanaged: {description}"], out
        code, out, _ = run("plan", run.path, "-o", "markdown", *prune)
        assert code == 0 and out.splitlines()[2] == (
            "No changes. The declared objects match the actual state; **1 object found that "
            "nothing declares** (below).")
        assert "- DER battery (battery, " in out and "Unmanaged objects (1)" in out
        document = json.loads(run("plan", run.path, "-o", "json", *prune)[1])
        assert document["unmanaged"] == [{"platform": "novacore", "site": "s1",
                                          "device": "s1-inv", "id": der_id,
                                          "description": description, "prunable": False}]
        assert [c["message"] for c in document["changes"] if c["message"]] == []
    code, out, _ = run("apply", run.path, "--auto-approve", "--prune")
    assert code == 0 and f"! unmanaged: {description}" in out
    assert der_id in novacore.ders, "left as it is"


# -- Ctrl-C while applying ----------------------------------------------------------------------


class CtrlC:
    """Presses Ctrl-C (SIGINT to this process, where the CLI runs) when the first write
    reaches the Novacore simulator once `armed` (with `path`: the first write to that path
    on any simulator), `times` times, the next one `pause_s` later while that write is
    still being served."""

    def __init__(self, times: int = 1, pause_s: float = 0.3, *, armed: bool = True,
                 path: str | None = None) -> None:
        self.times, self.pause_s, self.armed, self.path = times, pause_s, armed, path
        self.pressed = False

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def press(request: web.Request, handler: Any) -> web.StreamResponse:
            if (request.method in ("POST", "PUT") and self.path in (None, request.path)
                    and self.armed and not self.pressed):
                self.pressed = True
                for press_number in range(self.times):
                    if press_number:
                        await asyncio.sleep(self.pause_s)
                    os.kill(os.getpid(), signal.SIGINT)
                await asyncio.sleep(self.pause_s)  # the write is still in flight
            return await handler(request)

        servers = sims.http_servers() if self.path else [sims.novacore]
        for server in servers:
            server.app.middlewares.append(press)


def test_ctrl_c_while_applying_lets_the_writes_in_flight_finish(make_cli: CliFactory) -> None:
    ctrl_c = CtrlC()
    run = make_cli(two_sites(), before_start=ctrl_c.install)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert ctrl_c.pressed and code == 1, out + err
    assert "SIGINT: stopping; the writes in flight finish" in err
    assert "skipped:" in out and "not started: stopping" in out
    assert "done" in out.splitlines()[-1] and " 0 done" not in out.splitlines()[-1]
    assert StateDir(run.state_dir).unfinished() == [], "no write was cut off"

    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0 and "interrupted" not in out + err, out + err
    converged_exactly_once(run.sims.sims, load(two_sites()))


def test_a_second_ctrl_c_stops_at_once_and_the_next_run_converges(
        make_cli: CliFactory) -> None:
    ctrl_c = CtrlC(times=2)
    run = make_cli(two_sites(), before_start=ctrl_c.install)
    code, _, err = run("apply", run.path, "--auto-approve")
    assert code == 130 and "interrupted" in err, err
    [cut_off] = StateDir(run.state_dir).unfinished()
    assert cut_off["phase"] == "intent", "the write in flight was cut off"

    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    assert "note: 1 write(s) of an earlier run were interrupted; the state is observed " \
        "again before anything is applied:" in out
    # Which write: its address and operation, as the journal's intent names it.
    assert f"\n  {cut_off['address']} {cut_off['operation']} (started {cut_off['ts']})\n" in out
    converged_exactly_once(run.sims.sims, load(two_sites()))

    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0 and "interrupted" not in out, "observed again: not reported again"


def _device_renames(request_counts: dict[str, int]) -> int:
    return request_counts.get("PUT /devices/{device_id}", 0)


def test_ctrl_c_sends_none_of_the_writes_still_waiting_for_a_slot(
        make_cli: CliFactory) -> None:
    """One call in flight at a time: when Ctrl-C comes, one rename is being served and the
    other four wait behind the limit. Those four are not sent, are listed as not started,
    leave no unfinished write in the journal, and the next apply makes them, once each."""
    docs = standard_site(1) + standard_site(2) + standard_site(3)
    ctrl_c = CtrlC(armed=False)
    run = make_cli(docs, env={"RECONCILER_CONCURRENCY": "1"}, before_start=ctrl_c.install)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    renamed = ["s1-inv", "s1-p1", "s2-inv", "s2-p1", "s3-inv"]
    for doc in docs:
        if doc["kind"] == "Device" and doc["metadata"]["name"] in renamed:
            doc["spec"]["displayName"] = f"Renamed {doc['metadata']['name']}"
    run.rewrite(docs)
    journal = run.state_dir / "journal.jsonl"
    earlier_lines = len(journal.read_text().splitlines())
    run.sims.call(run.sims.sims.reset_counts)
    ctrl_c.armed = True

    code, out, err = run("apply", run.path, "--auto-approve")
    assert ctrl_c.pressed and code == 1, out + err
    assert "SIGINT: stopping; the writes in flight finish" in err
    not_started = {line.split(": ")[1] for line in out.splitlines()
                   if line.startswith("skipped: ") and line.endswith("not started: stopping")}
    assert len(not_started) == 4, out
    assert out.splitlines()[-1].startswith("Apply finished with errors: 1 done, 0 failed, "
                                           "4 skipped"), out
    sent = run.sims.call(lambda: dict(run.sims.sims.novacore.requests))
    assert _device_renames(sent) == 1, f"only the rename in flight was sent: {sent}"
    assert StateDir(run.state_dir).unfinished() == [], "no write left without an outcome"
    stopped_run = [json.loads(line) for line in journal.read_text().splitlines()[earlier_lines:]]
    assert not [r for r in stopped_run if r.get("address") in not_started], \
        "nothing journaled for a write never sent"

    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0 and "interrupted" not in out + err, out + err
    assert "Apply complete: 4 done" in out, out
    sent = run.sims.call(lambda: dict(run.sims.sims.novacore.requests))
    assert _device_renames(sent) == 4, f"each rename not started is made once: {sent}"
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out


def test_ctrl_c_after_a_gateway_signed_its_claim_lets_novacore_claim_it(
        make_cli: CliFactory) -> None:
    """A claim is two writes: the Zap signs, then Novacore claims. Ctrl-C while the first
    Zap signs: that claim is in flight and is made whole, though its second write waits for
    a slot after the stop; the other gateway's claim, not started, sends nothing."""
    ctrl_c = CtrlC(path="/api/crypto/sign")
    run = make_cli(two_sites(), env={"RECONCILER_CONCURRENCY": "1"},
                   before_start=ctrl_c.install)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert ctrl_c.pressed and code == 1, out + err

    def claims() -> tuple[dict[str, int], int]:
        sims = run.sims.sims
        signs = {serial: zap.requests["POST /api/crypto/sign"]
                 for serial, zap in sims.zaps.items()}
        return signs, sims.novacore.requests["POST /gateways/claim"]

    signs, claimed = run.sims.call(claims)
    [signed] = [serial for serial, count in signs.items() if count]
    assert signs[signed] == 1 and claimed == 1, (signs, claimed)
    assert run.sims.call(owner, run.sims.sims, signed) == ORG_A, "signed, then claimed"
    index = 1 if signed == serial_of(1) else 2
    assert f"✓ gateway/s{index}-zap[novacore] claim" in out, out
    assert f"skipped: gateway/s{3 - index}-zap[novacore]: " in out, out
    assert StateDir(run.state_dir).unfinished() == [], "no write left without an outcome"

    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0 and "interrupted" not in out + err, out + err
    signs, claimed = run.sims.call(claims)
    assert list(signs.values()) == [1, 1] and claimed == 2, "each gateway claimed once"
    converged_exactly_once(run.sims.sims, load(two_sites()))


# -- negative selectors, --prune with a selection, Markdown escaping ----------------------------


def _addresses(out: str) -> set[str]:
    return {c["address"] for c in json.loads(out)["changes"]}


def test_negative_selectors_judge_a_device_by_the_site_that_holds_it(
        make_cli: CliFactory) -> None:
    """A device of a Site labelled `region: stockholm` is in Stockholm without repeating the
    label: `region!=stockholm` never touches it, and excluding `region!=stockholm` keeps it."""
    docs = (standard_site(1, labels={"region": "stockholm"})
            + standard_site(2, labels={"customer": "acme"}))
    run = make_cli(docs)
    everything = _addresses(run("plan", run.path, "-o", "json")[1])
    of_s1 = {a for a in everything if "/s1" in a}
    assert of_s1 and of_s1 != everything

    for option, pattern, expected in (("--target", "!customer", of_s1),
                                      ("--exclude", "region!=stockholm", of_s1),
                                      ("--exclude", "customer", of_s1),
                                      ("--target", "region notin (malmo)", everything)):
        code, out, err = run("plan", run.path, "-o", "json", option, pattern)
        assert (code, _addresses(out)) == (0, expected), (option, pattern, err)

    code, out, _ = run("apply", run.path, "--auto-approve", "--target", "region!=stockholm")
    assert code == 0, out
    sims = run.sims.sims
    assert run.sims.call(lambda: [s.name for s in sims.novacore.sites.values()]) == ["Site s2"]
    assert run.sims.call(lambda: sorted(sims.zaps[serial_of(1)].devices)) == []
    assert run.sims.call(lambda: sims.novacore.gateways[serial_of(1)].org_id) is None


def test_an_excluded_target_brings_nothing_along_and_one_excluded_whole_is_an_error(
        make_cli: CliFactory) -> None:
    """What a target needs is planned for the target, so not for one the exclusions left
    out; and a target they leave nothing of selects nothing, as a typo does: an error, not
    a plan of its site alone or a "No changes" that says the state matches."""
    docs = two_sites()
    for doc in docs:
        if doc["kind"] == "Device" and doc["metadata"]["name"].endswith("-inv"):
            doc["metadata"]["labels"] = {"role": "inverter"}
    run = make_cli(docs)
    code, out, err = run("plan", run.path, "-o", "json", "--target", "role=inverter",
                         "--exclude", "gateway/s2-zap")
    assert code == 0, err
    assert _addresses(out) == {
        "site/s1[novacore]", "gateway/s1-zap[novacore]", "device/s1-inv[zap]",
        "device/s1-inv[novacore]", "device/s1-inv[publish]"}

    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", run.path, "--auto-approve", "--target", "device/s1-inv",
                         "--exclude", "gateway/s1-zap")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "error: --target/--exclude: 'device/s1-inv' selects nothing: --exclude "
        "'gateway/s1-zap' leaves out what device/s1-inv depends on, and a resource is not "
        "planned without what it depends on",
        "invalid arguments: 1 problem"]
    code, out, err = run("plan", run.path, "--detailed-exitcode", "--target", "tier=gold",
                         "--exclude", "site/s2")
    assert (code, out) == (1, "")
    assert "'tier=gold' selects nothing: --exclude 'site/s2' leaves it out" in err
    assert run.sims.call(run.sims.sims.requests) == 0


def test_prune_with_a_selection_removes_what_is_undeclared_in_the_selected_site_only(
        make_cli: CliFactory) -> None:
    run = make_cli(two_sites())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    zaps = run.sims.sims.zaps
    for index in (1, 2):
        run.sims.call(zaps[serial_of(index)].install_device,
                      {"type": "mqtt", "profile": "ferroamp", "broker_host": "192.168.1.99"},
                      sn=f"STRAY{index}")

    code, out, _ = run("plan", run.path, "--target", "site/s1")
    assert code == 0 and "found that nothing declares" in out, out
    assert "STRAY1" in out and "STRAY2" not in out
    code, out, _ = run("plan", run.path, "--exclude", "tier=gold", "--prune")
    assert "- device/s1-zap.STRAY1[zap] will be destroyed" in out and "STRAY2" not in out
    assert "Plan: 1 to delete." in out
    code, out, _ = run("plan", run.path, "--target", "device/s1-inv", "--prune")
    # The two removals the whole fleet has are said to be left out, not that none is.
    assert out.startswith("No changes in the selected objects; 2 changes outside the "
                          "selection"), "a site a target only needs is not pruned"

    code, out, _ = run("apply", run.path, "--auto-approve", "--target", "site/s1", "--prune")
    assert code == 0, out
    assert run.sims.call(zaps[serial_of(1)].device, "STRAY1") is None
    assert run.sims.call(zaps[serial_of(2)].device, "STRAY2") is not None


def test_a_pruned_device_goes_with_its_gateway_in_novacore_as_on_the_zap(
        make_cli: CliFactory) -> None:
    """A device removed from git is on its gateway twice: on the Zap and, bound to the
    gateway, in Novacore. `--exclude gateway/G --prune` deletes neither, `--target
    gateway/G --prune` both, instead of the Novacore copy going with the site alone."""
    docs = two_sites()
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite([d for d in docs if d["metadata"]["name"] != "s1-p1"])
    sims = run.sims.sims

    code, out, _ = run("plan", run.path, "-o", "json", "--target", "gateway/s1-zap")
    assert code == 0
    assert sorted(e["platform"] for e in json.loads(out)["unmanaged"]) == ["novacore", "zap"]

    run.sims.call(sims.reset_counts)
    code, out, err = run("apply", run.path, "--auto-approve", "--prune",
                         "--exclude", "gateway/s1-zap")
    # The two removals --target gateway/s1-zap makes below are said to be left out.
    assert code == 0 and out.startswith("No changes in the selected objects; 2 changes "
                                        "outside the selection"), out + err
    assert run.sims.call(sims.writes) == 0
    assert run.sims.call(cloud_device, sims, "P1M0001")
    assert run.sims.call(sims.zaps[serial_of(1)].device, "P1M0001") is not None

    code, out, _ = run("apply", run.path, "--auto-approve", "--prune",
                       "--target", "gateway/s1-zap")
    assert code == 0, out
    assert "✓ device/s1.P1M0001[novacore] delete" in out
    assert "✓ device/s1-zap.P1M0001[zap] delete" in out
    assert run.sims.call(sims.zaps[serial_of(1)].device, "P1M0001") is None
    assert run.sims.call(cloud_devices, sims, "P1M0001") == []
    assert run("plan", run.path, "--prune", "--detailed-exitcode")[0] == 0


def test_markdown_plan_keeps_a_serial_with_pipes_and_backticks_in_its_cell(
        make_cli: CliFactory) -> None:
    run = make_cli(standard_site(1))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.sims.call(run.sims.sims.zaps[serial_of(1)].install_device,
                  {"type": "mqtt", "profile": "ferroamp", "broker_host": "192.168.1.99"},
                  sn="X|Y`Z")
    code, out, _ = run("plan", run.path, "--prune", "-o", "markdown")
    assert code == 0 and "| ``device/s1-zap.X\\|Y`Z[zap]`` | delete |" in out, out
