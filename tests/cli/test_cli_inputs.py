"""The CLI given awkward input: credentials with a trailing line break, output paths that
are directories or files, saved plans edited into the wrong shape, gateway URL overrides
for serials nobody declared, a mistyped setting variable, an unusable state directory,
`NO_COLOR=`. Each is run through `reconciler ...` in this process against simulators on
loopback (the fixtures of test_plan_apply), and ends in a clear message or works, never in
a traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

import test_plan_apply
from simworld import serial_of, standard_site
from test_plan_apply import CliFactory, two_sites

from reconciler.cli import common
from reconciler.cli import main as cli

make_cli = test_plan_apply.make_cli  # the fixture: simulators, a fleet and the CLI

# -- credentials --------------------------------------------------------------------------------


def test_tokens_and_keys_ending_in_a_line_break_work(make_cli: CliFactory,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As `kubectl create secret --from-file` or `echo "$TOKEN" > file` leave them."""
    run = make_cli(two_sites())
    for variable in ("RECONCILER_NOVACORE_TOKEN", "RECONCILER_ENAPTER_TOKEN",
                     "RECONCILER_FLATPEAK_API_KEY"):
        monkeypatch.setenv(variable, run.sims.env()[variable] + "\n")
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    assert "Apply complete: 16 done, 0 failed" in out


def test_bad_keys_of_a_settings_file_are_named_with_their_line(make_cli: CliFactory,
                                                            tmp_path: Path) -> None:
    run = make_cli(standard_site(1))
    config = tmp_path / "reconciler.toml"
    config.write_text('# limits\nretries = 3\n\n"timout" = 3\nconcurrency = "many"\n'
                      '[gateway_urls]\nzap-1 = 5\n')
    code, out, err = run("plan", run.path, "--config", str(config))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"error: {config}:4: timout: unknown key; did you mean 'timeout'?")
    assert lines[1:] == [
        f"error: {config}:5: concurrency: expected a whole number of calls in flight, from 1 to "
        "10,000, unquoted (a TOML integer); got 'many'",
        f"error: {config}:6: gateway_urls: zap-1: expected a URL string, got int",
        "invalid settings: 3 problems"]
    assert run.sims.call(run.sims.sims.requests) == 0


def test_a_mistyped_setting_variable_is_warned_about_naming_the_one_meant(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not read, it would leave its setting at the default unseen: here the state directory,
    whose memory of earlier applies would be somewhere else. Other tools' RECONCILER_*
    variables, and names close to none, are left alone; values are never shown."""
    run = make_cli(two_sites())
    elsewhere = tmp_path / "meant-state"
    monkeypatch.setenv("RECONCILER_STATE_DIRECTORY", str(elsewhere))
    monkeypatch.setenv("RECONCILER_NOVACORE_TOKN", "secret-value")
    monkeypatch.setenv("RECONCILER_TIMOUT", "")  # empty: unset
    for other in ("RECONCILER_PLAN_ARGS", "RECONCILER_OUT_DIR", "RECONCILER_OPERATOR_MODE",
                  "RECONCILER_BUILD_ID"):
        monkeypatch.setenv(other, "x")
    for command in (["plan", run.path], ["apply", run.path, "--auto-approve"]):
        code, out, err = run(*command)
        assert code == 0, out + err
        assert err.splitlines() == [
            "warning: RECONCILER_NOVACORE_TOKN is no setting and is not read; did you mean "
            "RECONCILER_NOVACORE_TOKEN?",
            "warning: RECONCILER_STATE_DIRECTORY is no setting and is not read; did you mean "
            "RECONCILER_STATE_DIR?"], err
    assert run.state_dir.is_dir() and not elsewhere.exists()


def test_a_token_with_a_line_break_inside_is_named_not_shown(make_cli: CliFactory,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    run = make_cli(standard_site(1))
    monkeypatch.setenv("RECONCILER_ENAPTER_TOKEN", "secret-part-one\nsecret-part-two\n")
    code, out, err = run("plan", run.path)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "error: RECONCILER_ENAPTER_TOKEN: contains a control character (a line break) at "
        "character 16; expected the value on one line, without control characters",
        "invalid settings: 1 problem"]
    assert "secret-part" not in err
    assert run.sims.call(run.sims.sims.requests) == 0


def test_credentials_in_a_gateway_or_cloud_url_are_refused_not_shown(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(standard_site(1))
    monkeypatch.setenv("RECONCILER_GATEWAY_URLS", f"{serial_of(1)}=http://admin:pw-one@127.0.0.1:1")
    monkeypatch.setenv("RECONCILER_NOVACORE_URL", "https://ops:pw-two@novacore.example/")
    code, out, err = run("plan", run.path)
    assert (code, out) == (1, "")
    advice = ("holds a user name or password: credentials in a URL would be shown in plans, "
              "errors and logs; remove the `user:password@` part and give credentials through "
              "a Secret or an environment variable")
    assert err.splitlines() == [
        f"error: RECONCILER_NOVACORE_URL: 'https://***@novacore.example/' {advice}",
        f"error: RECONCILER_GATEWAY_URLS: {serial_of(1)}: 'http://***@127.0.0.1:1' {advice}",
        "invalid settings: 2 problems"]
    assert "pw-" not in err and "admin" not in err
    assert run.sims.call(run.sims.sims.requests) == 0


def test_urls_ending_in_a_line_break_work(make_cli: CliFactory,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """As a URL read from a file (a ConfigMap's, `echo "$URL" > file`) leaves it, or a space
    copied in front of it: the whitespace around it is dropped, as a token's is."""
    run = make_cli(two_sites())
    env = run.sims.env()
    monkeypatch.setenv("RECONCILER_NOVACORE_URL", env["RECONCILER_NOVACORE_URL"] + "\n")
    monkeypatch.setenv("RECONCILER_ENAPTER_URL", " " + env["RECONCILER_ENAPTER_URL"] + "\r\n")
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    assert "Apply complete: 16 done, 0 failed" in out


def test_a_control_character_inside_a_url_is_named_before_anything_is_called(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL parser skips a tab or line break inside a URL, the HTTP client refuses it:
    the URL is refused where it is set, by position (it may hold a secret)."""
    run = make_cli(standard_site(1))
    novacore = run.sims.env()["RECONCILER_NOVACORE_URL"]
    monkeypatch.setenv("RECONCILER_NOVACORE_URL", novacore.replace("://", "://\t"))
    monkeypatch.setenv("RECONCILER_GATEWAY_URLS", f"{serial_of(1)}=http://127.0.0.1:1/\x01")
    monkeypatch.delenv("RECONCILER_ENAPTER_URL")  # the file's is used
    config = tmp_path / "reconciler.toml"
    config.write_text('enapter_url = "https://api.enapter.com\\nX-Injected: 1"\n')
    code, out, err = run("plan", run.path, "--config", str(config))
    assert (code, out) == (1, "")
    cloud = "e.g. https://api.example.com or https://proxy.example.com/novacore"
    assert err.splitlines() == [
        f"error: {config}:1: enapter_url: contains a control character (a line break) at "
        f"character 24; expected a URL on one line, without control characters ({cloud})",
        "error: RECONCILER_NOVACORE_URL: contains a control character (a tab) at character 8; "
        f"expected a URL on one line, without control characters ({cloud})",
        f"error: RECONCILER_GATEWAY_URLS: {serial_of(1)}: contains a control character (U+0001) "
        "at character 20; expected a URL on one line, without control characters (e.g. "
        "http://192.168.1.40 or http://zap.local)",
        "invalid settings: 3 problems"]
    assert run.sims.call(run.sims.sims.requests) == 0


# -- schema and crds --out ----------------------------------------------------------------------


def test_schema_and_crds_name_an_out_path_they_cannot_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "file.yaml"
    a_file.write_text("")
    assert cli.main(["schema", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot write {tmp_path}: it is a directory; --out names the schema file "
        "(FILE)\n")
    assert cli.main(["crds", "--out", str(a_file)]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot write {a_file}: it is a file, not a directory; --out names a "
        "directory for the CRD files (DIR)\n")


# -- saved plans --------------------------------------------------------------------------------


@pytest.mark.parametrize(("edit", "problem"), [
    pytest.param(lambda d: d.update(inputs=None), "inputs must be an object", id="inputs-null"),
    pytest.param(lambda d: d.update(options=None), "options must be an object",
                 id="options-null"),
    pytest.param(lambda d: d["inputs"].update(paths="/"), "inputs.paths must be a list of paths",
                 id="paths-a-string"),
    pytest.param(lambda d: d["inputs"].update(paths=[]), "inputs.paths must be a list of paths",
                 id="paths-empty"),
    pytest.param(lambda d: d["inputs"].pop("observed_sha256"),
                 "inputs.observed_sha256 must be a string", id="no-fingerprint"),
    pytest.param(lambda d: d["options"].update(targets="site/s1"),
                 "options.targets must be a list of addresses or selectors", id="targets"),
    pytest.param(lambda d: d["options"].update(prune="yes"), "options.prune must be true or "
                 "false", id="prune"),
    # Checked as `plan` checks --target and --exclude, instead of a traceback.
    pytest.param(lambda d: d["options"].update(targets=["tier in (gold"]),
                 "options.targets/options.excludes: 'tier in (gold': opens a parenthesis it "
                 "never closes", id="target-that-does-not-parse"),
    pytest.param(lambda d: d["options"].update(excludes=["sight/s1"]),
                 "options.targets/options.excludes: 'sight/s1': unknown kind 'sight'",
                 id="exclude-of-an-unknown-kind"),
    pytest.param(lambda d: d["options"].update(targets=["device/s1-invv"]),
                 "options.targets/options.excludes: 'device/s1-invv' matches no resource",
                 id="target-that-matches-nothing"),
])
def test_a_saved_plan_of_the_wrong_shape_is_refused(make_cli: CliFactory, tmp_path: Path,
                                                    edit: object, problem: str) -> None:
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    document = json.loads(saved.read_text())
    edit(document)  # type: ignore[operator]
    saved.write_text(json.dumps(document))
    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("apply", str(saved))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {saved} is not a valid saved plan: {problem}")
    assert run.sims.call(run.sims.sims.requests) == 0


@pytest.mark.parametrize("changes", [None, 7, {"address": "site/s1[novacore]"},
                                     [{"address": ["site/s1[novacore]"]}], ["site/s1"]])
def test_a_stale_saved_plan_whose_changes_were_edited_out_of_shape_is_refused(
        make_cli: CliFactory, tmp_path: Path, changes: object) -> None:
    """The changes of a stale plan are listed to say whether it was applied already: ones
    that are no list of objects with an address are refused as the inputs are."""
    run = make_cli(two_sites())
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    assert run("apply", run.path, "--auto-approve")[0] == 0  # the saved plan is stale now
    document = json.loads(saved.read_text())
    document["changes"] = changes
    saved.write_text(json.dumps(document))
    code, out, err = run("apply", str(saved), "--auto-approve")
    assert (code, out) == (1, "")
    assert err == (f"error: {saved} is not a valid saved plan: changes must be a list of "
                   "objects, each with its address (a string)\n")


@pytest.mark.parametrize(("content", "holds"), [
    ('{"format_version": "1.6", "changes": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "arrays or objects nested too deeply to read"),
    ('{"format_version": "1.6", "options": {"prune": ' + "9" * 5000 + "}}",
     "a number of more than 4,300 digits, too long to read"),
])
def test_a_saved_plan_json_cannot_read_is_refused_saying_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, holds: str) -> None:
    """JSON in form, but past what Python's parser reads: no plan `plan --out` writes."""
    saved = tmp_path / "plan.json"
    saved.write_text(content)
    assert cli.main(["apply", str(saved), "--auto-approve"]) == 1
    assert capsys.readouterr() == ("", f"error: {saved}: not a saved plan: it holds {holds}; "
                                       "make the plan again with `reconciler plan --out`\n")


@pytest.mark.parametrize("named", ["site", "site-through-dotdot", "new-site-file",
                                   "inventory", "journal"])
def test_plan_out_over_a_file_of_the_desired_state_or_the_state_directory_is_refused(
        make_cli: CliFactory, named: str) -> None:
    """The plan would be written whole over it: the user's YAML, or the memory of earlier
    applies, lost to a slip of `--out`."""
    run = make_cli(two_sites())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    site_file = sorted(run.fleet_dir.glob("*.yaml"))[0]
    out, why = {
        "site": (site_file, f"it is a file of the desired state ({site_file}), which the "
                            "plan would replace"),
        "site-through-dotdot": (run.fleet_dir / ".." / run.fleet_dir.name / site_file.name,
                                f"it is a file of the desired state ({site_file}), which the "
                                "plan would replace"),
        # Not there yet: the next plan of the folder would read the plan as site documents.
        "new-site-file": (run.fleet_dir / "plan.yaml", "it is named as a file of the desired "
                          f"state in {run.path}, whose next `validate` or `plan` would read "
                          "the plan there as site documents"),
        "inventory": (run.state_dir / "inventory.json", "it is the state directory's "
                      "inventory.json, which holds what earlier applies did and would be "
                      "replaced by the plan"),
        "journal": (run.state_dir / "journal.jsonl", "it is the state directory's "
                    "journal.jsonl, which holds what earlier applies did and would be "
                    "replaced by the plan"),
    }[named]
    before = out.read_bytes() if out.exists() else None
    code, stdout, err = run("plan", run.path, "--out", str(out))
    assert (code, stdout) == (1, "")
    assert err.splitlines() == [
        f"error: --out: cannot write {out}: {why}; name a file of its own (--out plan.json)",
        "invalid arguments: 1 problem"]
    assert (out.read_bytes() if out.exists() else None) == before


def test_plan_out_may_replace_a_link_to_a_site_file(make_cli: CliFactory,
                                                    tmp_path: Path) -> None:
    """The plan is renamed over the link, which is replaced: the file it points to is not
    touched, so the link is no reason to refuse."""
    run = make_cli(two_sites())
    site_file = sorted(run.fleet_dir.glob("*.yaml"))[0]
    before = site_file.read_bytes()
    link = tmp_path / "plan.json"
    link.symlink_to(site_file)
    assert run("plan", run.path, "--out", str(link))[0] == 0
    assert not link.is_symlink() and json.loads(link.read_text())["format_version"]
    assert site_file.read_bytes() == before


def test_an_in_sync_saved_plan_says_so_and_reports_zero_counts(make_cli: CliFactory,
                                                               tmp_path: Path) -> None:
    run = make_cli(two_sites())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    saved = tmp_path / "plan.json"
    assert run("plan", run.path, "--out", str(saved))[0] == 0
    code, out, _ = run("apply", str(saved))
    assert (code, out.splitlines()[0]) == (0, "No changes. The actual state matches the "
                                              "desired state.")
    code, out, _ = run("apply", run.path, "-o", "json")
    report = json.loads(out)
    assert code == 0 and set(report) == {"ok", "seconds", "counts", "outcomes"}
    assert report["ok"] is True and report["outcomes"] == []
    assert report["counts"] == {"done": 0, "failed": 0, "skipped": 0, "blocked": 0,
                                "deferred": 0}


def test_plan_out_dash_is_refused_pointing_at_o_json(make_cli: CliFactory, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(two_sites())
    monkeypatch.chdir(tmp_path)
    code, out, err = run("plan", run.path, "--out", "-")
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == (
        "error: --out: the saved plan is written to a file, not standard output; name a file "
        "(--out plan.json), or use `-o json > plan.json`, the same document")
    assert not (tmp_path / "-").exists()


def test_a_markdown_limit_without_markdown_output_is_refused_naming_the_option(
        make_cli: CliFactory) -> None:
    """Not ignored: the user would take the text or JSON for cut to the limit."""
    run = make_cli(two_sites())
    run.sims.call(run.sims.sims.reset_counts)
    for output in ("text", "json"):
        given = ["-o", output] if output == "json" else []
        code, out, err = run("plan", run.path, *given, "--markdown-limit", "5000")
        assert (code, out) == (1, "")
        assert err.splitlines() == [
            f"error: --markdown-limit: applies to -o markdown only, and the output is "
            f"{output}; add -o markdown, or leave the option out",
            "invalid arguments: 1 problem"]
    assert run.sims.call(run.sims.sims.requests) == 0, "refused before observing anything"
    code, out, _ = run("plan", run.path, "-o", "markdown", "--markdown-limit", "5000")
    assert code == 0 and out.startswith("### Reconciler plan"), out


@pytest.mark.parametrize(("options", "problems"), [
    (["--interval", "0"], ["error: --interval: must be longer than zero (e.g. 30s or 5m), "
                           "not '0'"]),
    (["--interval", "5x"], ["error: --interval: invalid duration '5x': use seconds (30) or "
                            "units (500ms, 30s, 5m, 1h, 1m30s)"]),
    (["--debounce", "-1"], ["error: --debounce: invalid duration '-1': a duration cannot be "
                            "negative; use seconds (30) or units (500ms, 30s, 5m, 1h, 1m30s)"]),
    # Not taken by argparse for an option ("expected one argument"): said as any other.
    (["--debounce", "-1s"], ["error: --debounce: invalid duration '-1s': a duration cannot be "
                             "negative; use seconds (30) or units (500ms, 30s, 5m, 1h, "
                             "1m30s)"]),
    (["--interval", "-5m", "--debounce", "-x"], [
        "error: --interval: invalid duration '-5m': a duration cannot be negative; use seconds "
        "(30) or units (500ms, 30s, 5m, 1h, 1m30s)",
        "error: --debounce: invalid duration '-x': use seconds (30) or units (500ms, 30s, 5m, "
        "1h, 1m30s)"]),
    (["--interval", "inf"], ["error: --interval: invalid duration 'inf': must be a finite "
                             "number; use seconds (30) or units (500ms, 30s, 5m, 1h, 1m30s)"]),
    (["--interval", "0s", "--debounce", "x"], [
        "error: --interval: must be longer than zero (e.g. 30s or 5m), not '0s'",
        "error: --debounce: invalid duration 'x': use seconds (30) or units (500ms, 30s, 5m, "
        "1h, 1m30s)"]),
])
def test_watch_names_each_bad_duration_and_counts_the_problems_as_other_commands_do(
        make_cli: CliFactory, options: list[str], problems: list[str]) -> None:
    run = make_cli(two_sites())
    code, out, err = run("watch", run.path, *options)
    assert (code, out) == (1, "")
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    assert err.splitlines() == [*problems, f"invalid arguments: {count}"]
    assert not run.state_dir.exists(), "no lock taken"


@pytest.mark.parametrize("options", [["--debounce"], ["--interval", "--plan-only"]])
def test_watch_says_what_a_duration_given_no_value_takes(tmp_path: Path,
                                                         options: list[str]) -> None:
    # A real command line: argparse refuses it before any path is read.
    done = subprocess.run([sys.executable, "-m", "reconciler", "watch", str(tmp_path), *options],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines()[-1] == (
        f"reconciler watch: error: argument {options[0]}: expected one argument: a duration, "
        "seconds (30) or units (500ms, 30s, 5m, 1h, 1m30s)")


def test_plan_says_what_a_markdown_limit_given_no_value_takes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "plan", str(tmp_path), "-o",
                           "markdown", "--markdown-limit"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines()[-1] == (
        "reconciler plan: error: argument --markdown-limit: expected one argument: a number "
        "of characters, at least 2000, or 0 for no limit")


def test_watch_of_a_missing_path_says_it_as_plan_does(make_cli: CliFactory,
                                                      tmp_path: Path) -> None:
    run = make_cli(two_sites())
    missing = str(tmp_path / "no-such-sites")
    for command in ("plan", "watch"):
        code, out, err = run(command, missing)
        assert (code, out) == (1, "")
        assert err.splitlines() == [f"error: {missing}: no such file or directory",
                                    "invalid desired state: 1 problem"], command


# -- gateway URL overrides ----------------------------------------------------------------------


def test_an_override_for_an_undeclared_serial_is_warned_about(make_cli: CliFactory,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    run = make_cli(two_sites())
    mistyped = serial_of(1) + "1"
    urls = run.sims.env()["RECONCILER_GATEWAY_URLS"]
    monkeypatch.setenv("RECONCILER_GATEWAY_URLS", f"{urls},{mistyped}=http://127.0.0.1:1")
    code, _, err = run("plan", run.path)
    assert code == 0
    assert err.splitlines() == [
        f"warning: RECONCILER_GATEWAY_URLS: no declared gateway has serial {mistyped} "
        f"(did you mean {serial_of(1)}?); its URL is not used",
        f"warning: the declared gateway serials: {serial_of(1)}, {serial_of(2)}"]


def test_an_unreachable_gateway_is_named_by_the_url_called(make_cli: CliFactory,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    run = make_cli(standard_site(1))
    monkeypatch.setenv("RECONCILER_GATEWAY_URLS", f"{serial_of(1)}=http://127.0.0.1:1")
    monkeypatch.setenv("RECONCILER_RETRIES", "1")
    code, out, err = run("plan", run.path, "--offline=fail")
    assert code == 1
    assert "gateway s1-zap (http://127.0.0.1:1): " in err, err
    assert "192.168.1.2" not in out + err


# -- state directory, colour --------------------------------------------------------------------


@pytest.mark.parametrize("below", [False, True], ids=["the-file", "below-a-file"])
def test_a_plan_with_an_unusable_state_directory_says_what_it_does_not_know(
        make_cli: CliFactory, tmp_path: Path, below: bool) -> None:
    blocker = tmp_path / "state-file"
    blocker.write_text("")
    state = blocker / "state" if below else blocker
    run = make_cli(standard_site(1), env={"RECONCILER_STATE_DIR": str(state)})
    code, out, err = run("plan", run.path)
    assert code == 0 and "Plan:" in out
    assert err.splitlines() == [
        f"warning: cannot use the state directory {state} (RECONCILER_STATE_DIR): "
        f"{blocker if below else 'it'} is a file, not a directory; this plan does not know the "
        "deletion policies remembered for gateways, the MQTT passwords last sent to devices (a "
        "changed password is not shown), or writes an earlier run left unfinished"]


@pytest.mark.parametrize("below", [False, True], ids=["the-file", "below-a-file"])
def test_apply_and_watch_refuse_a_state_directory_that_is_a_file_naming_the_setting(
        make_cli: CliFactory, tmp_path: Path, below: bool) -> None:
    """Not "File exists" (or "Not a directory"), the OSError's words: what the path is and
    which setting to change, exit 1 as any other usage error, before anything is written."""
    blocker = tmp_path / "state-file"
    blocker.write_text("kept")
    state = blocker / "state" if below else blocker
    run = make_cli(standard_site(1), env={"RECONCILER_STATE_DIR": str(state)})
    for command in (("apply", run.path, "--auto-approve"), ("watch", run.path)):
        code, _, err = run(*command)
        assert code == 1, (command, err)
        assert err.splitlines()[-1] == (
            f"error: cannot use {state} as the state directory (RECONCILER_STATE_DIR): "
            f"{blocker if below else 'it'} is a file, not a directory; set "
            "RECONCILER_STATE_DIR to a directory, or move the file away"), (command, err)
    assert blocker.read_text() == "kept"
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 2 and "Plan: " in out, "nothing was applied"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("value", "color"), [(None, True), ("", True), ("1", False)])
def test_only_a_non_empty_no_color_turns_colour_off(monkeypatch: pytest.MonkeyPatch,
                                                    value: str | None, color: bool) -> None:
    if value is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", value)
    assert common.use_color(_Terminal()) is color
    assert common.use_color(_Terminal(), disabled=True) is False


# -- paths no file system takes -----------------------------------------------------------------


def test_paths_with_a_name_too_long_are_refused_naming_where_they_come_from(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name of more than 255 bytes failed the first `stat` of it: a traceback from
    `plan --out`, `apply NAME.json` and a state directory set so."""
    run = make_cli(standard_site(1))
    long = "n" * 300
    limit = "a file or directory name holds at most 255 bytes (UTF-8): shorten it"
    code, out, err = run("plan", run.path, "--out", str(tmp_path / f"{long}.json"))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: --out: cannot write {tmp_path}/{long}.json: has a name of "
                          f"305 bytes ('{'n' * 79}…' (305 characters)); {limit}"), err
    code, out, err = run("apply", f"{long}.json", "--auto-approve")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {long}.json: cannot be read (File name too long)"), err
    for variable in ("RECONCILER_STATE_DIR", "RECONCILER_SECRETS_DIR"):
        with monkeypatch.context() as patched:
            patched.setenv(variable, str(tmp_path / long / "state"))
            code, out, err = run("apply", run.path, "--auto-approve")
        assert (code, out) == (1, ""), err
        assert err.startswith(f"error: {variable}: '{tmp_path}/"), err
        assert f"has a name of 300 bytes ('{'n' * 79}…' (300 characters)); {limit}" in err, err
    assert run.sims.call(run.sims.sims.writes) == 0
