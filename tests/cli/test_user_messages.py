"""What `plan` and `apply` tell a user where the bare error would leave them guessing: a
token refused (by a write, a first read, or the reads a release needs) or not set, a state
directory that could not be written after the remote writes or with nothing to do, a saved plan
applied already, a selection with nothing to do while the rest has, a huge value echoed in
an error, and the names of a large fleet listed in one. The CLI runs in this process
against simulators served from a background thread (`test_plan_apply.make_cli`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from simworld import ORG_B, Doc, gateway, serial_of, site, standard_site, write
from test_plan_apply import CliFactory

from reconciler.cli import main as cli
from reconciler.sim.fleet import SimFleet
from reconciler.state_files import INVENTORY, TEMPORARY_SUFFIX

make_cli = test_plan_apply.make_cli  # the fixture, shared


def releasable_gateway_site() -> list[Doc]:
    """Site s1 (org-alpha) with its gateway and devices, and site s2 (org-beta) with a
    gateway of its own, no device bound to it, released when undeclared."""
    released = gateway("s2-zap", "s2", serial_of(2))
    released["spec"]["deletionPolicy"] = "Release"
    return [*standard_site(1), site("s2", org=ORG_B), released]


@pytest.mark.parametrize("source", ["variable", "file"])
def test_a_token_refused_during_a_release_says_which_setting_to_change(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        source: str) -> None:
    run = make_cli(releasable_gateway_site())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    if source == "file":
        token_file = tmp_path / "novacore-token"
        token_file.write_text(os.environ["RECONCILER_NOVACORE_TOKEN"])
        monkeypatch.delenv("RECONCILER_NOVACORE_TOKEN")
        monkeypatch.setenv("RECONCILER_NOVACORE_TOKEN_FILE", str(token_file))
        hint = (f"note: the Novacore token from RECONCILER_NOVACORE_TOKEN_FILE ({token_file}) "
                "was refused (expired or wrong): write a new Novacore token into it and run "
                "the command again")
    else:
        hint = ("note: the Novacore token from RECONCILER_NOVACORE_TOKEN was refused (expired "
                "or wrong): set it to a new Novacore token and run the command again")
    run.rewrite([*standard_site(1), site("s2", org=ORG_B)])
    novacore = run.sims.sims.novacore
    # The release, the one write, answered 401 as a token past its 24 h is.
    run.sims.call(novacore.faults.update, {"error_status": 401, "lose_next": 1})
    code, out, _ = run("apply", run.path, "--auto-approve", "--prune")
    assert code == 1, out
    assert f"failed: gateway/{serial_of(2)}[novacore]: novacore.release_gateway " in out, out
    assert out.count(hint) == 1, out

    # Past its 24 h at the first read: the same advice.
    token = token_file.read_text() if source == "file" else os.environ["RECONCILER_NOVACORE_TOKEN"]
    run.sims.call(novacore.expire_token, token)
    for command in (["plan", run.path], ["apply", run.path, "--auto-approve", "--prune"]):
        code, out, err = run(*command)
        assert code == 1 and "HTTP 401" in err, err
        assert err.splitlines()[-1] == hint, err


@pytest.mark.parametrize("output", ["text", "json"])
def test_an_inventory_not_written_after_the_changes_still_reports_what_was_done(
        make_cli: CliFactory, output: str) -> None:
    run = make_cli(standard_site(1))
    # Where the inventory is written before it is renamed into place: its write fails as
    # on a full disk, once the changes are made.
    run.state_dir.mkdir()
    blocker = run.state_dir / (INVENTORY + TEMPORARY_SUFFIX)
    blocker.mkdir()
    code, out, err = run("apply", run.path, "--auto-approve", "-o", output)
    assert code == 1, out + err
    summary = out if output == "text" else err
    assert "Apply complete: 8 done, 0 failed, 0 skipped, 0 blocked, 0 deferred" in summary, \
        summary
    if output == "json":
        assert json.loads(out)["counts"]["done"] == 8, out
    assert err.splitlines()[-1].startswith(
        f"error: cannot write {run.state_dir / INVENTORY}, the inventory (what the runs "
        f"applied, for when it is declared no more): {blocker}: is a directory; the changes "
        "already made stay"), err


def test_a_saved_plan_applied_twice_says_it_may_have_been_applied_already(
        make_cli: CliFactory, tmp_path: Path) -> None:
    run = make_cli(standard_site(1) + standard_site(2))
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    assert run("apply", str(saved))[0] == 0
    run.sims.call(run.sims.sims.reset_counts)
    code, _, err = run("apply", str(saved))
    assert code == 1
    assert err.splitlines()[-1] == (
        f"error: the saved plan {saved} is stale: the actual state changed since the plan was "
        "made, and each change it lists is in place now: it may have been applied already (a "
        "saved plan applies once); nothing was applied. Run `reconciler plan` again and "
        "review the new plan"), err
    assert run.sims.call(run.sims.sims.writes) == 0


def test_a_saved_plan_applied_in_part_by_another_run_says_how_much_is_in_place(
        make_cli: CliFactory, tmp_path: Path) -> None:
    run = make_cli(standard_site(1) + standard_site(2))
    saved = tmp_path / "plan.json"
    code, out, _ = run("plan", run.path, "--out", str(saved))
    assert code == 0 and "Plan: 10 to create, 2 to claim, 4 to update." in out, out
    assert run("apply", run.path, "--auto-approve", "--target", "site/s1")[0] == 0
    code, _, err = run("apply", str(saved))
    assert code == 1
    assert (f"error: the saved plan {saved} is stale: the actual state changed since the plan "
            "was made, and 8 of the 16 changes it lists are in place now: it may have been "
            "applied in part already (an apply that failed or was stopped); nothing was "
            "applied.") in err, err


def test_a_saved_plan_overtaken_by_another_change_says_only_that_the_state_changed(
        make_cli: CliFactory, tmp_path: Path) -> None:
    run = make_cli(standard_site(1))
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    zap = run.sims.sims.zaps[serial_of(1)]
    run.sims.call(zap.install_device, {"type": "mqtt", "profile": "ferroamp",
                                       "broker_host": "192.168.1.99"}, sn="STRANGER")
    code, _, err = run("apply", str(saved))
    assert code == 1
    assert err.splitlines()[-1] == (
        f"error: the saved plan {saved} is stale: the actual state changed since the plan was "
        "made; nothing was applied. Run `reconciler plan` again and review the new plan"), err


def test_a_selection_with_nothing_to_do_says_the_rest_of_the_fleet_has_changes(
        make_cli: CliFactory) -> None:
    docs = standard_site(1) + standard_site(2, labels={"tier": "gold"})
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    docs[4]["spec"]["displayName"] = "Renamed in git"  # site s2
    docs[6]["spec"]["displayName"] = "Renamed too"  # device s2-inv
    run.rewrite(docs)
    for selection in (["--target", "site/s1"], ["--exclude", "site/s2"],
                      ["--target", "tier!=gold"]):
        code, out, _ = run("plan", run.path, "--detailed-exitcode", *selection)
        assert code == 0, out
        assert out.splitlines()[0] == (
            "No changes in the selected objects; 2 changes outside the selection (--target, "
            "--exclude) are not shown."), out
        code, out, _ = run("plan", run.path, "-o", "markdown", *selection)
        assert ("No changes in the selected objects; **2 changes outside the selection "
                "(--target, --exclude) are not shown**.") in out, out
        code, out, _ = run("plan", run.path, "-o", "json", *selection)
        assert json.loads(out)["summary"]["outside_selection"] == 2, out

    code, out, _ = run("plan", run.path, "--exclude", "device/s2-inv")
    assert out.splitlines()[-2:] == [
        "Plan: 1 to update.",
        "1 change outside the selection (--target, --exclude) is not shown."], out
    code, out, _ = run("plan", run.path)
    assert "outside the selection" not in out and "Plan: 2 to update." in out, out
    assert json.loads(run("plan", run.path, "-o", "json")[1])["summary"]["outside_selection"] == 0


def huge_value_documents(big: str) -> list[Doc]:
    """One document per file (a file holds at most 4 MiB): `big` as a timezone, a kind, a
    key of a spec, the name of a site declared twice, and a URL without a scheme."""
    kept = site("s1")
    kept["spec"]["displayName"] = big
    twice = site("s9")
    twice["spec"]["displayName"] = big
    timezone = site("s2")
    timezone["spec"]["timezone"] = big
    unknown_key = site("s3")
    unknown_key["spec"]["x" + big[:1000]] = 1
    schemeless = gateway("g", "s1", serial_of(1))
    schemeless["spec"]["zap"]["url"] = "a" * 300
    return [kept, twice, timezone, {"apiVersion": kept["apiVersion"], "kind": big,
                                    "metadata": {"name": "k"}}, unknown_key, schemeless]


def test_a_huge_value_is_echoed_cut_with_its_length_in_every_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    big = "A" * 1_000_000
    fleet_dir = tmp_path / "sites"
    fleet_dir.mkdir()
    for index, doc in enumerate(huge_value_documents(big)):
        write(fleet_dir / str(index), [doc])
    cut = "'" + "A" * 79 + "…' (1,000,000 characters)"
    code = cli.main(["validate", str(fleet_dir)])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert max(map(len, err.splitlines())) < 600, err[:2000]
    lines = err.splitlines()
    assert any(line.endswith(f"spec.timezone: unknown timezone {cut}; use an IANA name such "
                             "as 'Europe/Stockholm' or 'UTC'") for line in lines), err
    assert any(line.endswith(f"kind: unknown kind {cut}; known kinds: Site, Gateway, Device, "
                             "DER") for line in lines), err
    assert any(f"displayName {cut} is already used by Site 's1'" in line for line in lines), err
    key = "x" + "A" * 79 + "… (1,001 characters)"
    assert any(f": spec.{key}: unknown field '{key[:79]}…' (1,001 characters); valid fields "
               "here: " in line for line in lines), err
    assert any(f"{'a' * 79}…' (300 characters) has no scheme: write the URL whole, such as "
               f"'http://{'a' * 72}…' (307 characters)" in line for line in lines), err

    # -o json as well: the path holds the key cut as the message does, not whole.
    code = cli.main(["validate", "-o", "json", str(fleet_dir)])
    out, _ = capsys.readouterr()
    diagnostics = json.loads(out)["diagnostics"]
    assert code == 1 and len(out) < 10_000, out[:2000]
    assert f"spec.{key}" in [d["path"] for d in diagnostics], diagnostics

    # A setting and a --target given whole: cut as well.
    small = str(write(tmp_path / "small", [site("s1")]).parent)
    monkeypatch.setenv("RECONCILER_RETRIES", big)
    code = cli.main(["plan", small])
    _, err = capsys.readouterr()
    assert code == 1 and len(err) < 1000 and f"got {cut}" in err, err[:2000]
    monkeypatch.delenv("RECONCILER_RETRIES")
    code = cli.main(["plan", small, "--target", "site/" + big])
    _, err = capsys.readouterr()
    assert code == 1 and len(err) < 1000 and "'site/" + "A" * 74 + "…' (1,000,005 " in err, \
        err[:2000]


class RefusedSiteDevices:
    """Answers Novacore's `GET /sites/<id>/devices` of an undeclared organisation's sites
    (`org`) 401, "Token expired", as Novacore answers a token past its 24 h, while `org` is
    set: only the reads a release needs (`engine.release_reads`) are refused."""

    def __init__(self) -> None:
        self.org = ""

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
            sites = {i for i, s in sims.novacore.sites.items() if s.org_id == self.org}
            if self.org and request.path in {f"/sites/{i}/devices" for i in sites}:
                return web.json_response(
                    {"error": "unauthorized", "message": "Token expired"}, status=401)
            return await handler(request)

        sims.novacore.app.middlewares.append(refuse)


def test_a_token_refused_by_the_reads_a_release_needs_says_which_setting_to_change(
        make_cli: CliFactory) -> None:
    refused = RefusedSiteDevices()
    run = make_cli(releasable_gateway_site(), before_start=refused.install)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    # Site s2 and its gateway declared no more: the release reads every site of org-beta.
    run.rewrite(standard_site(1))
    refused.org = ORG_B
    hint = ("note: the Novacore token from RECONCILER_NOVACORE_TOKEN was refused (expired or "
            "wrong): set it to a new Novacore token and run the command again")
    for command in (["plan", run.path, "--prune"],
                    ["apply", run.path, "--auto-approve", "--prune"]):
        run.sims.call(run.sims.sims.reset_counts)
        code, out, err = run(*command)
        assert code == 1 and "HTTP 401" in err, out + err
        assert err.splitlines()[-1] == hint, err
        assert run.sims.call(run.sims.sims.writes) == 0, "nothing written"
    assert run.sims.sims.novacore.gateways[serial_of(2)].org_id == ORG_B


def test_a_novacore_token_not_set_is_said_so_not_called_refused(make_cli: CliFactory) -> None:
    # An empty variable counts as unset: a CI secret nobody set, or a variable mistyped.
    run = make_cli(standard_site(1), env={"RECONCILER_NOVACORE_TOKEN": ""})
    for command in (["plan", run.path], ["apply", run.path, "--auto-approve"]):
        run.sims.call(run.sims.sims.reset_counts)
        code, out, err = run(*command)
        assert code == 1 and out == "", out + err
        assert err == ("error: the fleet names Novacore organisations (or the state directory "
                       "remembers ones applied there) but no Novacore token is set: set "
                       "RECONCILER_NOVACORE_TOKEN or RECONCILER_NOVACORE_TOKEN_FILE\n"), err
        assert run.sims.call(run.sims.sims.novacore.count) == 0, "nothing sent without a token"


def test_a_reference_to_an_undeclared_name_lists_ten_declared_ones_and_the_one_meant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sites = [site(f"site-{n:04d}") for n in range(1000)]
    typo = gateway("g", "sit-0042", serial_of(1))
    lost = gateway("lost", "nowhere", serial_of(2))
    write(tmp_path / "fleet", [*sites, typo, lost])
    code = cli.main(["validate", str(tmp_path / "fleet")])
    _, err = capsys.readouterr()
    first_ten = ", ".join(f"'site-{n:04d}'" for n in range(10))
    assert code == 1
    assert (": spec.siteRef: Site 'sit-0042' is not declared (did you mean 'site-0042'?); "
            f"declared sites: {first_ten}, and 990 more") in err, err[:3000]
    assert (": spec.siteRef: Site 'nowhere' is not declared; declared sites: "
            f"{first_ten}, and 990 more") in err, err[:3000]
    assert max(map(len, err.splitlines())) < 400, err[:3000]


@pytest.mark.parametrize("output", ["text", "json"])
def test_an_inventory_not_written_with_nothing_to_do_still_prints_the_report(
        make_cli: CliFactory, output: str) -> None:
    run = make_cli(standard_site(1))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    # Nothing to do, but what the plan read is recorded (its gateways): the inventory's
    # write fails as on a full disk.
    (run.state_dir / INVENTORY).unlink()
    blocker = run.state_dir / (INVENTORY + TEMPORARY_SUFFIX)
    blocker.mkdir()
    code, out, err = run("apply", run.path, "--auto-approve", "-o", output)
    assert code == 1, out + err
    summary = out if output == "text" else err
    assert "No changes." in summary, summary
    if output == "json":
        report = json.loads(out)
        assert report["ok"] and set(report["counts"].values()) == {0}, out
    assert err.splitlines()[-1].startswith(
        f"error: cannot write {run.state_dir / INVENTORY}, the inventory"), err


def test_an_id_of_the_files_is_escaped_in_the_errors_a_plan_ends_with(
        make_cli: CliFactory) -> None:
    """The `error:` lines under a plan repeat its blocked changes' messages, which quote
    ids as declared: an escape sequence there is shown as text, as in the plan above."""
    docs = standard_site(1)
    run = make_cli(docs)  # the simulators know the fleet as it was: no such site
    docs[0]["spec"]["novacore"]["siteId"] = "sit-\x1b[2J\u202e"
    run.rewrite(docs)
    code, out, err = run("plan", run.path, "--no-color")
    assert code == 1, out + err
    assert "\x1b" not in err and "\u202e" not in err, repr(err)
    assert "error: site/s1[novacore]: site sit-\\x1b[2J\\u202e does not exist in" in err, err
