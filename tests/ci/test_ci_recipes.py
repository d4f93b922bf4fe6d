"""The shipped CI recipes, run end to end against simulators: `ci/reconciler-ci.sh`, the
`run:` steps of the GitHub workflow `ci/github/reconciler-plan.yml` (extracted from the
YAML and run as GitHub runs them), and the hooks of `.pre-commit-hooks.yaml` (invoked as
pre-commit invokes them: entry + args + matching staged filenames)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci_helpers import EXAMPLES, REPO, World, ci_env, run

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.sources.loader import load_fleet

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
        report = await reconciler.apply(await reconciler.plan())
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


async def drop_battery_der(world: World, devices: Path) -> None:
    """Apply, remove the inverter's battery DER from the desired state, and apply again."""
    settings = load_settings(world.env)
    text = await asyncio.to_thread(devices.read_text, encoding="utf-8")
    der = "    - name: battery-sbr096\n      type: battery\n"
    assert der in text
    for desired in (text, text.replace(der, "")):
        await asyncio.to_thread(devices.write_text, desired, encoding="utf-8")
        async with Reconciler(load_fleet([world.root / "sites"]), settings) as reconciler:
            report = await reconciler.apply(await reconciler.plan())
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
    for each in steps:
        # Expressions go through `env:`, never into a script (no injection from PR data),
        # which is also what lets this test run the scripts as they are.
        assert "${{" not in each.get("run", ""), each["name"]


async def run_step(workflow: dict[Any, Any], name: str, world: World,
                   values: dict[str, str], output: Path) -> Any:
    """Run a `run:` step as GitHub does (bash -eo pipefail), with `${{ ... }}` in its `env:`
    replaced from `values`."""
    selected = step(workflow, name)
    env = world.env | {k: str(v) for k, v in workflow.get("env", {}).items()}
    for key, value in selected.get("env", {}).items():
        expression = re.fullmatch(r"\$\{\{\s*(?:vars|secrets)\.(\w+)\s*\}\}", str(value))
        assert expression, f"unexpected env value {value!r}"
        env[key] = values.get(expression.group(1), "")
    env["GITHUB_OUTPUT"] = str(output)
    return await run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                      selected["run"]], env=env, cwd=world.root)


async def test_workflow_validate_and_plan_steps_run_end_to_end(world: World) -> None:
    workflow = load_workflow()
    output = world.root / "github-output"
    output.touch()
    values = {k: v for k, v in world.env.items() if k.startswith("RECONCILER_")}

    validate = await run_step(workflow, "Validate", world, values, output)
    assert validate.code == 0 and validate.stdout.startswith("valid:"), validate.text
    plan = await run_step(workflow, "Plan", world, values, output)
    assert plan.code == 0, plan.text  # exit 2 is recorded, not a failed step
    assert output.read_text(encoding="utf-8").splitlines() == ["exitcode=2"]
    assert "Changes planned" in plan.stdout
    assert_markdown_plan(world.root / "plan.md")
    assert json.loads((world.root / "plan.json").read_text())["changes"]

    await drop_battery_der(world, world.root / "sites" / "devices.yaml")
    plan = await run_step(workflow, "Plan", world, values, output)
    assert plan.code == 0, plan.text
    assert output.read_text(encoding="utf-8").splitlines()[-1] == "exitcode=0"
    assert plan.stdout == ("No changes; the plan lists 1 unmanaged object(s): found, declared "
                           "nowhere, left as they are.\n")


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
