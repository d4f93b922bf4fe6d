"""The shipped CI recipes, run end to end against simulators: `ci/reconciler-ci.sh`, the
`run:` steps of the GitHub workflow `ci/github/reconciler-plan.yml` (extracted from the
YAML and run as GitHub runs them), and the hooks of `.pre-commit-hooks.yaml` (invoked as
pre-commit invokes them: entry + args + matching staged filenames)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci_helpers import EXAMPLES, REPO, Completed, World, ci_env, run, start_world

from reconciler.engine.config import Settings, load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sources.loader import load_fleet

# The options of a plan for the CLI's user (its advice names the CLI's flags).
CLI = PlanOptions(audience=Audience.CLI)

pytestmark = pytest.mark.slow

CI_SCRIPT = REPO / "ci" / "reconciler-ci.sh"
WORKFLOW = REPO / "ci" / "github" / "reconciler-plan.yml"
HOOKS = REPO / ".pre-commit-hooks.yaml"

MARKDOWN_ROW = "| `+` | `site/home-solna[novacore]` | create |"


def assert_markdown_plan(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("### Reconciler plan"), text[:200]
    assert MARKDOWN_ROW in text, text


# -- ci/reconciler-ci.sh --------------------------------------------------------------------------


async def test_ci_script_maps_plan_exit_codes_and_writes_the_plan(world: World) -> None:
    out = world.root / "out"
    env = world.env | {"RECONCILER_OUT_DIR": str(out)}
    script = ["sh", str(CI_SCRIPT), "sites"]

    # A command that dies with 2 before planning (a wrapper, say), writing nothing.
    wrapper = world.root / "wrapper.sh"
    wrapper.write_text('#!/bin/sh\n[ "$1" = plan ] && exit 2\nexec reconciler "$@"\n')
    wrapper.chmod(0o755)

    # Read-only runs, side by side: changes; changes allowed to pass; a usage error; an
    # exit 2 that is no plan.
    changes, passing, usage, no_plan = await asyncio.gather(
        run(script, env=env, cwd=world.root),
        run(script, env=env | {"RECONCILER_CHANGES_EXIT": "0",
                               "RECONCILER_OUT_DIR": str(world.root / "out-pass")},
            cwd=world.root),
        run(script, env=env | {"RECONCILER_PLAN_ARGS": "--no-such-option",
                               "RECONCILER_OUT_DIR": str(world.root / "out-usage")},
            cwd=world.root),
        run(script, env=env | {"RECONCILER_BIN": str(wrapper),
                               "RECONCILER_OUT_DIR": str(world.root / "out-wrapper")},
            cwd=world.root))
    assert changes.code == 2, changes.text
    assert "changes planned; review" in changes.stdout
    assert_markdown_plan(out / "plan.md")
    document = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert document["format_version"] and any(c["address"] == "site/home-solna[novacore]"
                                              for c in document["changes"])
    assert world.sims.novacore.writes() == 0, "a CI plan writes nothing"
    assert passing.code == 0 and passing.stdout.endswith("exit 0\n"), passing.text
    # The reconciler exits 1 on a usage error (not argparse's 2, README "Exit codes") ...
    assert usage.code == 1 and "the plan failed (plan command exit 1)" in usage.stderr, \
        usage.text
    # ... and an exit 2 without plan.json is no "changes present" either.
    assert no_plan.code == 1 and "the plan failed (plan command exit 2)" in no_plan.stderr, \
        no_plan.text

    settings = load_settings(world.env)
    async with Reconciler(load_fleet([world.root / "sites"]), settings) as reconciler:
        report = await reconciler.apply(await reconciler.plan(CLI))
    assert report.ok, report.as_dict()
    converged = await run(script, env=env, cwd=world.root)
    assert converged.code == 0, converged.text
    assert "exit 0: no changes; the gateways and clouds match" in converged.stdout
    assert "No changes" in (out / "plan.md").read_text(encoding="utf-8")

    # A DER dropped from the desired state stays in Novacore, which cannot delete it: the
    # plan has nothing to apply, and the script does not call that a match.
    devices = world.root / "sites" / "devices.yaml"
    await drop_battery_der(world, devices)
    unmanaged = await run(script, env=env, cwd=world.root)
    assert unmanaged.code == 0, unmanaged.text
    assert (f"exit 0: no changes; {out}/plan.md lists 1 unmanaged object(s): found, declared "
            "nowhere, left as they are") in unmanaged.stdout
    assert "match" not in unmanaged.stdout

    devices.write_text(devices.read_text().replace("deviceType: inverter", "deviceType: x"))
    assert (out / "plan.md").exists() and (out / "plan.json").exists()
    invalid = await run(script, env=env, cwd=world.root)
    assert invalid.code == 1, invalid.text
    assert re.search(r"sites/devices\.yaml:12:\d+: spec\.deviceType", invalid.stderr)
    assert "exit 1: the desired state is invalid" in invalid.stderr
    # Nothing was planned: the previous run's plan is gone, not left to pass for this one's
    # (GitLab's `artifacts: when: always` would upload it).
    assert not (out / "plan.md").exists() and not (out / "plan.json").exists()


async def test_ci_script_says_what_is_wrong_when_it_cannot_plan(world: World) -> None:
    """Each way the script stops before planning names its cause: a path that does not
    exist is not an invalid desired state, nor is a reconciler command that cannot run,
    and a bad setting of the script's own is named. None leaves an earlier plan behind."""
    out = world.root / "out"
    out.mkdir()
    env = world.env | {"RECONCILER_OUT_DIR": str(out)}

    async def script(*args: str, **extra: str) -> Completed:
        for name in ("plan.md", "plan.json"):
            (out / name).write_text("an earlier run's\n", encoding="utf-8")
        done = await run(["sh", str(CI_SCRIPT), *args], env=env | extra, cwd=world.root)
        assert done.code == 1, done.text
        assert not (out / "plan.md").exists() and not (out / "plan.json").exists()
        return done

    missing = await script("sites", "site")
    assert missing.stdout == "", missing.text
    assert missing.stderr == (
        f"reconciler-ci: exit 1: site does not exist (in {world.root}); pass the paths of the "
        "desired state as arguments (default: sites); nothing was planned\n")
    (world.root / "sites").rename(world.root / "fleet")
    default = await script()
    assert default.stderr.startswith(f"reconciler-ci: exit 1: sites does not exist (in "
                                     f"{world.root});"), default.text
    no_bin = await script("fleet", RECONCILER_BIN=str(world.root / "no-such-reconciler"))
    assert ("reconciler-ci: exit 1: cannot run '" + str(world.root / "no-such-reconciler")
            + "' (exit 127; RECONCILER_BIN names the reconciler command, default: "
            "reconciler); nothing was planned") in no_bin.stderr, no_bin.text
    assert "invalid" not in no_bin.stderr
    for value in ("yes", "256", "-1"):
        bad = await script("fleet", RECONCILER_CHANGES_EXIT=value)
        assert bad.stderr == (
            "reconciler-ci: exit 1: RECONCILER_CHANGES_EXIT must be an exit code (a number "
            f"from 0 to 255, default 2); got '{value}'\n"), bad.text
    assert world.sims.requests() == 0, "nothing was read"


async def drop_battery_der(world: World, devices: Path) -> None:
    """Apply, remove the inverter's battery DER from the desired state, and apply again."""
    settings = load_settings(world.env)
    text = await asyncio.to_thread(devices.read_text, encoding="utf-8")
    der = "    - name: battery-sbr096\n      type: battery\n"
    assert der in text
    for desired in (text, text.replace(der, "")):
        await asyncio.to_thread(devices.write_text, desired, encoding="utf-8")
        async with Reconciler(load_fleet([world.root / "sites"]), settings) as reconciler:
            report = await reconciler.apply(await reconciler.plan(CLI))
        assert report.ok, report.as_dict()


# -- the GitHub workflow --------------------------------------------------------------------------


def load_workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def step(workflow: dict[Any, Any], name: str) -> dict[str, Any]:
    steps = workflow["jobs"]["plan"]["steps"]
    found = [s for s in steps if s.get("name") == name]
    assert len(found) == 1, f"no step {name!r}"
    return found[0]  # type: ignore[no-any-return]


def workflow_header() -> str:
    """The comment the workflow file starts with."""
    lines = WORKFLOW.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in itertools.takewhile(lambda x: x.startswith("#"), lines))


# What the Plan step must pass on: every setting (engine.config) and the two files named by
# variables, but the state directory (the checkout's .reconciler, fresh on every run) and the
# secrets directory (set by the "MQTT passwords" step).
# (The proxies come from the standard variables, which a runner's environment holds already.)
FORWARDED = ({"RECONCILER_" + f.name.upper() for f in fields(Settings) if f.name != "proxies"}
             | {"RECONCILER_CONFIG", "RECONCILER_GATEWAY_URLS_FILE"}) \
    - {"RECONCILER_STATE_DIR", "RECONCILER_SECRETS_DIR"}
TOKENS = {"RECONCILER_NOVACORE_TOKEN", "RECONCILER_ENAPTER_TOKEN", "RECONCILER_FLATPEAK_API_KEY"}
IDS = {"RECONCILER_NOVACORE_IDENTITY", "RECONCILER_FLATPEAK_ACCOUNT_ID"}  # a secret or not
MQTT_SECRETS = {"RECONCILER_MQTT_SECRETS", "RECONCILER_MQTT_ENV"}


def test_workflow_runs_on_pull_requests_comments_labels_and_fails_on_errors() -> None:
    workflow = load_workflow()
    # YAML 1.1 reads the key `on` as true.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict) and "pull_request" in triggers
    assert workflow["permissions"]["pull-requests"] == "write"
    steps = workflow["jobs"]["plan"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert "pip install" in step(workflow, "Install the reconciler")["run"]
    comment = step(workflow, "Comment the plan on the pull request")
    assert comment["uses"].startswith("actions/github-script@")
    assert "plan.md" in comment["with"]["script"]
    label = step(workflow, "Label the pull request")
    assert "reconciler:changes" in label["with"]["script"]
    assert 'EXITCODE === "2"' in label["with"]["script"]
    fail = step(workflow, "Fail on a plan error")
    assert "exitcode != '0'" in fail["if"] and "exitcode != '2'" in fail["if"]
    names = [s.get("name") for s in steps]
    # The passwords are in place before the plan (python: after setup-python), and their
    # files go right after it, whatever happened.
    assert names.index("MQTT passwords") + 1 == names.index("Plan") \
        == names.index("Remove the MQTT password files") - 1
    assert uses.index(next(u for u in uses if u.startswith("actions/setup-python@"))) \
        < names.index("MQTT passwords")
    remove = step(workflow, "Remove the MQTT password files")
    assert remove["if"] == "always()"
    assert remove["run"] == 'rm -rf "$RUNNER_TEMP/reconciler-secrets"'
    for each in steps:
        # Expressions go through `env:`, never into a script (no injection from PR data),
        # which is also what lets this test run the scripts as they are.
        assert "${{" not in each.get("run", ""), each["name"]


def test_workflow_forwards_every_setting_a_plan_reads() -> None:
    """Each RECONCILER_* setting reaches the plan from a repository variable of the same
    name, the tokens from secrets only; the header names them all, and the MQTT secrets."""
    workflow = load_workflow()
    forwarded = step(workflow, "Plan")["env"]
    assert set(forwarded) == FORWARDED
    for name, value in forwarded.items():
        sources = re.findall(r"\b(vars|secrets)\.(\w+)", value)
        assert sources and {source for _, source in sources} == {name}, value
        kinds = [kind for kind, _ in sources]
        expected = ["secrets"] if name in TOKENS else ["secrets", "vars"] if name in IDS \
            else ["vars"]
        assert kinds == expected, name
    mqtt = step(workflow, "MQTT passwords")["env"]
    assert set(re.findall(r"\bsecrets\.(\w+)", " ".join(mqtt.values()))) == MQTT_SECRETS
    assert "vars.RECONCILER_SECRETS_DIR" in mqtt["SECRETS_DIR"]
    header = workflow_header()
    for name in FORWARDED | MQTT_SECRETS | {"RECONCILER_SECRETS_DIR", "RECONCILER_PLAN_ARGS"}:
        assert re.search(rf"\b{name}\b", header), f"the header does not name {name}"
    # A hosted runner reaches no gateway: the header says what that does to every PR.
    assert "deferred changes count as changes" in " ".join(header.replace("#", "").split())
    assert "--offline fail" in header and workflow["env"]["RECONCILER_PLAN_ARGS"] == ""


def github_env(path: Path) -> dict[str, str]:
    """The variables a step wrote to $GITHUB_ENV: NAME=value, or NAME<<DELIMITER lines."""
    values: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").split("\n"))
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value = []
            while (next_line := next(lines)) != delimiter:  # StopIteration: no delimiter
                value.append(next_line)
            values[name] = "\n".join(value)
        elif line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


RUNNERS = itertools.count()  # each Job has a runner directory of its own


class Job:
    """The workflow's job on a runner: steps run one after another in `root` (the checkout),
    `run:` steps in bash -eo pipefail (or python for `shell: python`), with the workflow's
    `env:`, what earlier steps wrote to $GITHUB_ENV, and the step's own `env:`, where
    `${{ vars.X }}` and `${{ secrets.X }}` (or `a || b` of them) come from `github` (unset:
    empty, as GitHub gives them). No RECONCILER_* of the test's own reaches a step: only
    what the workflow passes on."""

    def __init__(self, root: Path, state_dir: Path, *, variables: dict[str, str],
                 secrets: dict[str, str], workflow_env: dict[str, str] | None = None) -> None:
        self.workflow = load_workflow()
        self.root = root
        self.github = {"vars": variables, "secrets": secrets}
        self.runner = root.parent / f"runner-{next(RUNNERS)}"
        self.temp = self.runner / "temp"
        self.temp.mkdir(parents=True)
        self.output, self.env_file = self.runner / "github-output", self.runner / "github-env"
        self.output.touch()
        self.env_file.touch()
        # On a runner the state directory is the checkout's .reconciler, fresh every run;
        # here the test's, so that an apply of the test is seen by the plan.
        self.base = ci_env(RECONCILER_STATE_DIR=str(state_dir)) | {
            k: str(v) for k, v in self.workflow.get("env", {}).items()} | (workflow_env or {})

    def expression(self, value: str) -> str:
        inner = re.fullmatch(r"\$\{\{\s*(.*?)\s*\}\}", value)
        assert inner, f"unexpected env value {value!r}"
        result = ""
        for alternative in inner.group(1).split("||"):
            ref = re.fullmatch(r"\s*(vars|secrets)\.(\w+)\s*", alternative)
            assert ref, f"unexpected expression {value!r}"
            result = self.github[ref.group(1)].get(ref.group(2), "")
            if result:
                break
        return result

    def env(self, name: str) -> dict[str, str]:
        selected = step(self.workflow, name)
        env = self.base | github_env(self.env_file)
        env |= {key: self.expression(str(value)) for key, value in selected.get("env", {}).items()}
        return env | {"GITHUB_OUTPUT": str(self.output), "GITHUB_ENV": str(self.env_file),
                      "RUNNER_TEMP": str(self.temp)}

    async def run(self, name: str) -> Completed:
        selected = step(self.workflow, name)
        if selected.get("shell") == "python":
            script = self.runner / "step.py"
            script.write_text(selected["run"], encoding="utf-8")
            argv = [sys.executable, str(script)]
        else:
            assert selected.get("shell", "bash") == "bash"
            argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", selected["run"]]
        return await run(argv, env=self.env(name), cwd=self.root)

    def exitcodes(self) -> list[str]:
        return self.output.read_text(encoding="utf-8").splitlines()


def repository_settings(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """RECONCILER_* settings split as the header says: tokens (and the Flatpeak account) as
    repository secrets, the rest (the Novacore identity too) as variables."""
    settings = {k: v for k, v in env.items() if k.startswith("RECONCILER_")}
    settings.pop("RECONCILER_STATE_DIR", None)
    secret = TOKENS | {"RECONCILER_FLATPEAK_ACCOUNT_ID"}
    return ({k: v for k, v in settings.items() if k not in secret},
            {k: v for k, v in settings.items() if k in secret})


async def test_workflow_validate_and_plan_steps_run_end_to_end(world: World) -> None:
    variables, secrets = repository_settings(world.env)
    job = Job(world.root, Path(world.env["RECONCILER_STATE_DIR"]), variables=variables,
              secrets=secrets)

    validate = await job.run("Validate")
    assert validate.code == 0 and validate.stdout.startswith("valid:"), validate.text
    assert (await job.run("MQTT passwords")).code == 0
    plan = await job.run("Plan")
    assert plan.code == 0, plan.text  # exit 2 is recorded, not a failed step
    assert job.exitcodes() == ["exitcode=2"]
    assert "Changes planned" in plan.stdout
    assert_markdown_plan(world.root / "plan.md")
    assert json.loads((world.root / "plan.json").read_text())["changes"]

    await drop_battery_der(world, world.root / "sites" / "devices.yaml")
    plan = await job.run("Plan")
    assert plan.code == 0, plan.text
    assert job.exitcodes()[-1] == "exitcode=0"
    assert plan.stdout == ("No changes; the plan lists 1 unmanaged object(s): found, declared "
                           "nowhere, left as they are.\n")


# Runs a github-script step's script as actions/github-script does (an async function of
# `require`, `github` and `context`), against a stand-in for GitHub's issue API (comments and
# labels) kept in a JSON file: {"comments": [{"id", "body"}], "labels": [name]}. Removing a
# label the issue does not have fails with status 404, as GitHub answers it.
GITHUB_SCRIPT = r"""
const fs = require("fs");
const [scriptFile, stateFile] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(stateFile, "utf8"));
state.labels = state.labels || [];
const github = {
  paginate: async (method, args) => (await method(args)).data,
  rest: { issues: {
    listComments: async () => ({ data: state.comments }),
    createComment: async ({ body }) => {
      state.comments.push({ id: state.comments.length + 1, body });
    },
    updateComment: async ({ comment_id, body }) => {
      state.comments.find((c) => c.id === comment_id).body = body;
    },
    addLabels: async ({ labels }) => {
      state.labels = [...new Set([...state.labels, ...labels])];
    },
    removeLabel: async ({ name }) => {
      if (!state.labels.includes(name)) {
        throw Object.assign(new Error("Label does not exist"), { status: 404 });
      }
      state.labels = state.labels.filter((label) => label !== name);
    },
  } },
};
const context = { repo: { owner: "owner", repo: "sites" }, issue: { number: 7 },
                  serverUrl: "https://github.com", runId: 42 };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction("require", "github", "context", fs.readFileSync(scriptFile, "utf8"))(
  require, github, context)
  .then(() => fs.writeFileSync(stateFile, JSON.stringify(state)))
  .catch((error) => { console.error(error); process.exit(1); });
"""


def step_runs(name: str, steps: dict[str, dict[str, str]], *, cancelled: bool = False) -> bool:
    """Whether GitHub runs the step `name` of the workflow, given `steps` (each step id's
    `outcome` and `outputs`) and whether the run was `cancelled`, by its `if:`: the
    functions and operators the workflow uses."""
    condition = step(load_workflow(), name).get("if", "success()")
    assert isinstance(condition, str)

    def value(match: re.Match[str]) -> str:
        found = steps.get(match.group(1), {})
        return repr(found.get(match.group(3)) or "" if match.group(3) else
                    found.get("outcome", ""))

    python = re.sub(r"steps\.(\w+)\.(outcome|outputs\.(\w+))", value, condition)
    for github, same in (("!cancelled()", str(not cancelled)), ("always()", "True"),
                         ("&&", " and "), ("||", " or ")):
        python = python.replace(github, same)
    assert re.fullmatch(r"[\w\s()'=!-]*", python), f"unexpected condition {condition!r}"
    return bool(eval(python, {"__builtins__": {}}))  # the workflow's own text, checked above


async def comment_step(root: Path, comments: Path, env: dict[str, str],
                       name: str = "Comment the plan on the pull request") -> Completed:
    """The github-script step `name` (the comment's, or the label's) run in the checkout
    `root`, with its `env:` as GitHub sets it, against the issue kept in `comments`."""
    script = root.parent / "comment.js"
    script.write_text(step(load_workflow(), name)["with"]["script"], encoding="utf-8")
    runner = root.parent / "github-script.js"
    runner.write_text(GITHUB_SCRIPT, encoding="utf-8")
    node = shutil.which("node")
    assert node is not None
    return await run([node, str(runner), str(script), str(comments)], env=ci_env() | env,
                     cwd=root)


@pytest.mark.skipif(shutil.which("node") is None, reason="runs github-script's JavaScript")
async def test_workflow_comment_says_nothing_was_planned_when_a_push_breaks_the_yaml(
        world: World) -> None:
    variables, secrets = repository_settings(world.env)
    comments = world.root.parent / "comments.json"
    comments.write_text('{"comments": []}', encoding="utf-8")
    job = Job(world.root, Path(world.env["RECONCILER_STATE_DIR"]), variables=variables,
              secrets=secrets)
    assert (await job.run("Validate")).code == 0
    assert (await job.run("MQTT passwords")).code == 0
    assert (await job.run("Plan")).code == 0 and job.exitcodes() == ["exitcode=2"]
    ran = {"validate": {"outcome": "success"}, "plan": {"outcome": "success",
                                                         "exitcode": "2"}}
    assert step_runs("Comment the plan on the pull request", ran)
    done = await comment_step(world.root, comments, {"EXITCODE": "2", "VALIDATED": "success"})
    assert done.code == 0, done.text
    [first] = json.loads(comments.read_text())["comments"]
    assert "**reconciler plan**: changes planned" in first["body"] and MARKDOWN_ROW in \
        first["body"]

    # The next push leaves a merge conflict in a file: the job stops at Validate, and the
    # comment must not go on showing the plan of the push before (nor its plan.md, still
    # in a self-hosted runner's checkout).
    devices = world.root / "sites" / "devices.yaml"
    devices.write_text(devices.read_text().replace(
        "  displayName: Sungrow SH10RT\n",
        "<<<<<<< HEAD\n  displayName: A\n=======\n  displayName: B\n>>>>>>> main\n"))
    job = Job(world.root, Path(world.env["RECONCILER_STATE_DIR"]), variables=variables,
              secrets=secrets)
    assert (await job.run("Validate")).code == 1
    ran = {"validate": {"outcome": "failure"}}  # the plan did not run
    assert step_runs("Comment the plan on the pull request", ran)
    done = await comment_step(world.root, comments, {"EXITCODE": "", "VALIDATED": "failure"})
    assert done.code == 0, done.text
    [updated] = json.loads(comments.read_text())["comments"]
    assert updated["body"] == (
        "<!-- reconciler-plan -->\n**reconciler plan**: not planned: the desired state is "
        "invalid (every problem is in the [run log](https://github.com/owner/sites/actions/"
        "runs/42))\n\n")
    # Not from a run cancelled by a newer push: that one's comment follows.
    assert not step_runs("Comment the plan on the pull request",
                         {"validate": {"outcome": "success"}, "plan": {"outcome": "cancelled"}},
                         cancelled=True)


SECRET_PASSWORD = "ferroamp-pw-%25-secret"  # a `%` the add-mask command must escape
ENV_PASSWORD = "ambibox-pw-env\nsecond line"


async def test_workflow_plans_every_platform_and_mqtt_password_it_is_given(
        tmp_path: Path) -> None:
    """All the examples: Zaps, Novacore, Enapter, Flatpeak, and two MQTT passwords (one
    from a Secret, one from a variable). With the settings and passwords set as the header
    says, the plan blocks nothing; without the passwords, it blocks their devices."""
    world = await start_world(tmp_path, ".")
    try:
        variables, secrets = repository_settings(world.env)
        state = Path(world.env["RECONCILER_STATE_DIR"])
        passwords = {
            "RECONCILER_MQTT_SECRETS": json.dumps({"ferroamp-mqtt": {"password": SECRET_PASSWORD}}),
            "RECONCILER_MQTT_ENV": json.dumps({"AMBIBOX_MQTT_PASSWORD": ENV_PASSWORD}),
        }
        job = Job(world.root, state, variables=variables, secrets=secrets | passwords)
        assert (await job.run("Validate")).code == 0
        mqtt = await job.run("MQTT passwords")
        assert mqtt.code == 0, mqtt.text
        # Each value (each line of one) is masked first, with `%` escaped as GitHub reads it,
        # and appears nowhere else.
        masks = [line for line in mqtt.stdout.splitlines() if line.startswith("::add-mask::")]
        assert masks == ["::add-mask::ferroamp-pw-%2525-secret", "::add-mask::ambibox-pw-env",
                         "::add-mask::second line"], mqtt.text
        rest = "\n".join(line for line in mqtt.stdout.splitlines() if line not in masks)
        assert "pw-" not in rest + mqtt.stderr and "second line" not in rest
        assert "ferroamp-mqtt/password" in rest and "AMBIBOX_MQTT_PASSWORD" in rest
        secrets_dir = job.temp / "reconciler-secrets"
        assert job.env("Plan")["RECONCILER_SECRETS_DIR"] == str(secrets_dir)
        assert job.env("Plan")["AMBIBOX_MQTT_PASSWORD"] == ENV_PASSWORD
        password = secrets_dir / "ferroamp-mqtt" / "password"
        assert password.read_text(encoding="utf-8") == SECRET_PASSWORD
        assert stat.S_IMODE(password.stat().st_mode) == 0o600
        assert stat.S_IMODE(password.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700

        plan = await job.run("Plan")
        assert plan.code == 0 and job.exitcodes() == ["exitcode=2"], plan.text
        document = json.loads((world.root / "plan.json").read_text(encoding="utf-8"))
        assert document["summary"]["blocked"] == 0, plan.text
        assert document["summary"]["defer"] == 0, plan.text
        components = {change["component"] for change in document["changes"]}
        assert {"zap", "novacore", "enapter", "flatpeak"} <= components, components
        shown = plan.stdout + plan.stderr + (world.root / "plan.md").read_text(encoding="utf-8")
        assert "pw-" not in shown + json.dumps(document)
        assert (await job.run("Remove the MQTT password files")).code == 0
        assert not secrets_dir.exists()

        # The same without the passwords: their devices are blocked, the plan fails.
        bare = Job(world.root, state, variables=variables, secrets=secrets)
        assert (await bare.run("MQTT passwords")).code == 0
        plan = await bare.run("Plan")
        assert plan.code == 0 and bare.exitcodes() == ["exitcode=1"], plan.text
        shown = plan.stdout + plan.stderr + (world.root / "plan.md").read_text(encoding="utf-8")
        assert "from secret ferroamp-mqtt/password" in shown, shown
        assert "from environment variable AMBIBOX_MQTT_PASSWORD" in shown, shown
    finally:
        await world.sims.stop()


async def test_workflow_mqtt_passwords_refuses_what_would_misplace_a_password(
        tmp_path: Path) -> None:
    """Bad input stops the step with one ::error:: line that names no value."""
    cases = {
        "not JSON": ({"RECONCILER_MQTT_SECRETS": '{"a": {"password": "s3cret-1"'}, {},
                     "is not JSON"),
        "a setting": ({"RECONCILER_MQTT_ENV": '{"RECONCILER_NOVACORE_TOKEN": "s3cret-2"}'}, {},
                      "RECONCILER_NOVACORE_TOKEN is taken"),
        "a runner variable": ({"RECONCILER_MQTT_ENV": '{"PATH": "s3cret-3"}'}, {},
                              "PATH is taken"),
        "a path": ({"RECONCILER_MQTT_SECRETS": '{"../up": {"password": "s3cret-4"}}'}, {},
                   "'../up' is not a Secret name"),
        "no key": ({"RECONCILER_MQTT_SECRETS": '{"mqtt": "s3cret-5"}'}, {},
                   "mqtt: expected an object of key: value"),
        "both": ({"RECONCILER_MQTT_SECRETS": '{"mqtt": {"password": "s3cret-6"}}'},
                 {"RECONCILER_SECRETS_DIR": "/etc/reconciler/secrets"}, "not both"),
    }
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    jobs = {case: Job(checkout, tmp_path / "state", variables=variables, secrets=secrets)
            for case, (secrets, variables, _) in cases.items()}
    results = await asyncio.gather(*(job.run("MQTT passwords") for job in jobs.values()))
    for (case, (_, _, message)), result in zip(cases.items(), results, strict=True):
        errors = [line for line in result.stdout.splitlines() if line.startswith("::error::")]
        assert result.code == 1 and len(errors) == 1 and message in errors[0], (case, result.text)
        assert "s3cret" not in result.stdout.replace("::add-mask::s3cret", "") + result.stderr
        assert github_env(jobs[case].env_file) == {}, case

    # A self-hosted runner's own directory of Secret files is passed on as it is.
    job = Job(checkout, tmp_path / "state", secrets={},
              variables={"RECONCILER_SECRETS_DIR": "/etc/reconciler/secrets"})
    result = await job.run("MQTT passwords")
    assert result.code == 0, result.text
    assert github_env(job.env_file) == {"RECONCILER_SECRETS_DIR": "/etc/reconciler/secrets"}
    assert not (job.temp / "reconciler-secrets").exists()


async def test_workflow_unreachable_gateways_are_changes_unless_offline_fails(
        world: World) -> None:
    """What the header says of a hosted runner: a gateway that does not answer defers its
    site, which counts as a change (the PR would be labelled); "--offline fail" fails."""
    variables, secrets = repository_settings(world.env)
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serial = variables["RECONCILER_GATEWAY_URLS"].split("=", 1)[0]
    variables |= {"RECONCILER_GATEWAY_URLS": f"{serial}=http://127.0.0.1:{port}",
                  "RECONCILER_RETRIES": "1"}
    state = Path(world.env["RECONCILER_STATE_DIR"])
    deferring = Job(world.root, state, variables=variables, secrets=secrets)
    failing = Job(world.root, state, variables=variables, secrets=secrets,
                  workflow_env={"RECONCILER_PLAN_ARGS": "--offline fail"})
    for job in (deferring, failing):
        assert (await job.run("MQTT passwords")).code == 0
    deferred = await deferring.run("Plan")
    assert deferred.code == 0 and deferring.exitcodes() == ["exitcode=2"], deferred.text
    document = json.loads((world.root / "plan.json").read_text(encoding="utf-8"))
    assert document["summary"]["defer"] > 0, document["summary"]
    failed = await failing.run("Plan")
    assert failed.code == 0 and failing.exitcodes() == ["exitcode=1"], failed.text
    assert re.search(r"deferred: gateway home-solna-zap .*connection refused", failed.stderr), \
        failed.text


# -- pre-commit hooks ---------------------------------------------------------------------------


def hooks() -> dict[str, dict[str, Any]]:
    return {h["id"]: h for h in yaml.safe_load(HOOKS.read_text(encoding="utf-8"))}


def run_hook(hook: dict[str, Any], staged: list[str], cwd: Path,
             args: list[str] | None = None) -> subprocess.CompletedProcess[str] | None:
    """Invoke a hook as pre-commit does: skipped unless a staged file matches `files`;
    else `entry` + `args` (the user's replace the hook's) + the matching filenames when
    `pass_filenames`. None when skipped."""
    matching = [f for f in staged if re.search(hook.get("files", ""), f)]
    if not matching:
        return None
    argv = shlex.split(hook["entry"]) + (args if args is not None else hook.get("args", []))
    if hook.get("pass_filenames", True):
        argv += matching
    return subprocess.run(argv, cwd=cwd, env=ci_env(), capture_output=True, text=True,
                          timeout=30, check=False)


def test_pre_commit_hook_definitions() -> None:
    defined = hooks()
    assert set(defined) == {"reconciler-validate", "reconciler-validate-all"}
    for hook in defined.values():
        assert hook["entry"] == "reconciler validate"
        assert hook["language"] == "python"
        assert hook["require_serial"] is True
        # The loader reads .yaml and .yml in any letter case: so do the hooks.
        assert matched(hook["files"], YAML_NAMES + OTHER_NAMES) == YAML_NAMES, hook["id"]
    assert defined["reconciler-validate"]["pass_filenames"] is True
    assert defined["reconciler-validate-all"]["pass_filenames"] is False


YAML_NAMES = ["sites/a.yaml", "sites/b.yml", "sites/c.YAML", "sites/d.Yml", "sites/x/e.YML"]
OTHER_NAMES = ["sites/README.md", "sites/a.yaml.orig", "sites/yaml", "sites/ayml"]
WORKFLOWS = [".github/workflows/plan.yml", "charts/values.YAML"]


def matched(pattern: str, names: list[str]) -> list[str]:
    """The names pre-commit would pass for `files: pattern` (Python re.search)."""
    return [name for name in names if re.search(pattern, name)]


def test_the_documented_files_patterns_keep_yaml_of_any_case_under_sites() -> None:
    """The `files:` the README and the hooks' header suggest replaces the hook's own: it
    must keep every site YAML file, whatever the case of its extension, and nothing else."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n# \.pre-commit-config\.yaml\n(.*?)```", readme, re.S)
    assert block, "no .pre-commit-config.yaml example in the README"
    comments = [line[1:] for line in HOOKS.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    first = next(i for i, line in enumerate(comments) if line.strip().startswith("- repo:"))
    examples = {
        "README.md": yaml.safe_load(block.group(1))["repos"],
        ".pre-commit-hooks.yaml": yaml.safe_load(textwrap.dedent("\n".join(comments[first:]))),
    }
    for where, repos in examples.items():
        [hook] = [h for repo in repos for h in repo["hooks"]]
        assert hook["id"] in hooks(), where
        names = YAML_NAMES + OTHER_NAMES + WORKFLOWS
        assert matched(hook["files"], names) == YAML_NAMES, where


def test_pre_commit_hooks_validate_staged_files_and_the_whole_desired_state(
        tmp_path: Path) -> None:
    defined = hooks()
    per_file, whole = defined["reconciler-validate"], defined["reconciler-validate-all"]
    good_repo, bad_repo = tmp_path / "good", tmp_path / "bad"
    for repo in (good_repo, bad_repo):
        shutil.copytree(EXAMPLES / "home-solna", repo / "sites" / "home-solna")
        shutil.copy(EXAMPLES / "villa-lund-v2x.yaml", repo / "sites")
        (repo / "README.md").write_text("notes\n")
    devices = "sites/home-solna/devices.yaml"
    broken = bad_repo / devices
    broken.write_text(broken.read_text().replace("deviceType: inverter", "deviceType: toaster"))
    assert run_hook(per_file, ["README.md"], good_repo) is None, "not a YAML file: not run"
    (good_repo / "other").mkdir()
    shutil.copy(EXAMPLES / "villa-lund-v2x.yaml", good_repo / "other" / "VILLA.YML")

    with ThreadPoolExecutor(max_workers=4) as pool:
        # A self-contained file: the per-file hook is enough; README.md is not passed.
        good = pool.submit(run_hook, per_file, ["sites/villa-lund-v2x.yaml", "README.md"],
                           good_repo)
        # A file that refers to another one: alone, its reference looks dangling ...
        alone = pool.submit(run_hook, per_file, [devices], good_repo)
        # ... and the whole-state hook checks it in context, and finds real problems.
        in_context = pool.submit(run_hook, whole, [devices], good_repo, ["sites"])
        bad = pool.submit(run_hook, whole, [devices], bad_repo, ["sites"])
        # An upper-case extension is site YAML too: the loader reads it, the hook runs.
        upper = pool.submit(run_hook, per_file, ["other/VILLA.YML"], good_repo)

    assert (result := good.result()) is not None and result.returncode == 0, result
    assert (result := alone.result()) is not None and result.returncode == 1
    assert "Gateway 'home-solna-zap' is not declared" in result.stderr
    assert (result := in_context.result()) is not None and result.returncode == 0, result
    assert (result := bad.result()) is not None and result.returncode == 1
    assert re.search(r"sites/home-solna/devices\.yaml:12:\d+: spec\.deviceType", result.stderr)
    assert (result := upper.result()) is not None and result.returncode == 0, result


LABEL_STEP = "Label the pull request"


@pytest.mark.skipif(shutil.which("node") is None, reason="runs github-script's JavaScript")
async def test_workflow_label_goes_when_a_push_is_not_planned_or_its_plan_fails(
        world: World) -> None:
    """The label says what the plan of this push found: not the changes of a push before,
    once a push breaks the YAML (validate fails, no plan) or its plan fails."""
    variables, secrets = repository_settings(world.env)
    issue = world.root.parent / "issue.json"
    issue.write_text('{"comments": [], "labels": ["area:north"]}', encoding="utf-8")

    def labels() -> list[str]:
        return list(json.loads(issue.read_text())["labels"])

    async def label(env: dict[str, str]) -> None:
        done = await comment_step(world.root, issue, env, LABEL_STEP)
        assert done.code == 0, done.text

    job = Job(world.root, Path(world.env["RECONCILER_STATE_DIR"]), variables=variables,
              secrets=secrets)
    assert (await job.run("Validate")).code == 0
    assert (await job.run("MQTT passwords")).code == 0
    assert (await job.run("Plan")).code == 0 and job.exitcodes() == ["exitcode=2"]
    assert step_runs(LABEL_STEP, {"validate": {"outcome": "success"},
                                  "plan": {"outcome": "success", "exitcode": "2"}})
    await label({"EXITCODE": "2"})
    assert labels() == ["area:north", "reconciler:changes"]

    # The next push leaves a merge conflict: the job stops at Validate, and the label runs.
    devices = world.root / "sites" / "devices.yaml"
    devices.write_text(devices.read_text().replace(
        "  displayName: Sungrow SH10RT\n",
        "<<<<<<< HEAD\n  displayName: A\n=======\n  displayName: B\n>>>>>>> main\n"))
    assert (await Job(world.root, Path(world.env["RECONCILER_STATE_DIR"]), variables=variables,
                      secrets=secrets).run("Validate")).code == 1
    assert step_runs(LABEL_STEP, {"validate": {"outcome": "failure"}})
    await label({"EXITCODE": ""})
    assert labels() == ["area:north"]
    await label({"EXITCODE": ""})  # not labelled any more: nothing to remove, no failure
    assert labels() == ["area:north"]

    # Planned with changes again, then a plan that fails (exit 1): the label goes too.
    await label({"EXITCODE": "2"})
    failed = {"validate": {"outcome": "success"}, "plan": {"outcome": "success",
                                                           "exitcode": "1"}}
    assert step_runs(LABEL_STEP, failed)
    await label({"EXITCODE": "1"})
    assert labels() == ["area:north"]
    # Not from a run cancelled by a newer push, whose own label follows.
    assert not step_runs(LABEL_STEP, {"validate": {"outcome": "success"},
                                      "plan": {"outcome": "cancelled"}}, cancelled=True)
    # Nor when the job stopped before validating (the install failed): nothing was
    # checked, as the comment says nothing then.
    assert not step_runs(LABEL_STEP, {"validate": {"outcome": "skipped"}})
