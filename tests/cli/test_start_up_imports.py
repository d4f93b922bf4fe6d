"""The commands that need no engine start without it: `--version`, `--help`, `validate`,
`schema` and `crds` load no HTTP client, Kubernetes library or Modbus stack, so a
pre-commit hook or a CI step running `reconciler validate` starts in a fraction of the
time a plan does. Each runs as a user runs it, `python -m reconciler ...` in a process of
its own, which reports at exit what it had imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

# What the engine's commands load (clients, the operator, the Modbus identity reads, the
# watch agent's file watcher), and the others must not.
ENGINE_PACKAGES = {"httpx", "aiohttp", "kopf", "kubernetes", "pymodbus", "watchfiles"}
# httpx's own command line, which httpx imports when they are installed (the test
# environment has them): never run here, so never loaded (`reconciler/cli/__init__.py`).
HTTPX_COMMAND_LINE = {"click", "rich", "pygments"}
# What loading the models costs: `--version` and `--help` need no model either.
MODEL_PACKAGES = {"pydantic", "yaml"}

# Runs the CLI as `python -m reconciler` does, and writes the top-level packages imported
# by the time the process exits (after SystemExit, which `atexit` still sees) to a file.
PROBE = """
import atexit, json, runpy, sys
report_file = sys.argv[1]
def report():
    with open(report_file, "w") as out:
        json.dump(sorted({name.split(".")[0] for name, module in sys.modules.items()
                          if module is not None}), out)  # None: an import blocked
atexit.register(report)
sys.argv = ["reconciler", *sys.argv[2:]]
runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
"""


def imported(tmp_path: Path, *arguments: str) -> tuple[int, set[str]]:
    """The exit code of `reconciler ARGUMENTS` run in the repository, and the top-level
    packages it imported."""
    report = tmp_path / "imported.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *arguments],
        cwd=REPOSITORY, env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )
    assert report.exists(), done.stderr
    return done.returncode, set(json.loads(report.read_text()))


@pytest.mark.parametrize(
    "arguments",
    [["--version"], ["--help"], ["plan", "--help"], ["apply", "--help"], ["watch", "--help"],
     ["sim", "up", "--help"], ["operator", "--help"], ["demo", "--help"]],
)
def test_version_and_help_load_neither_the_engine_nor_the_models(
        tmp_path: Path, arguments: list[str]) -> None:
    code, packages = imported(tmp_path, *arguments)
    assert code == 0
    assert packages & (ENGINE_PACKAGES | MODEL_PACKAGES) == set()


def test_a_usage_error_loads_no_engine(tmp_path: Path) -> None:
    """Said with what the option takes (`main._VALUE_TAKEN`), which the parser knows."""
    code, packages = imported(tmp_path, "watch", "examples/sites", "--interval")
    assert code == 1
    assert packages & ENGINE_PACKAGES == set()


@pytest.mark.parametrize(
    ("arguments", "exit_code"),
    [
        (["validate", "examples/sites"], 0),
        (["validate", "-o", "json", "README.md"], 1),  # invalid: its problems are listed
        (["schema"], 0),
        (["schema", "--check", "--out", "schema/reconciler.schema.json"], 0),
        (["crds", "--check"], 0),
    ],
)
def test_validate_schema_and_crds_load_no_engine(
        tmp_path: Path, arguments: list[str], exit_code: int) -> None:
    code, packages = imported(tmp_path, *arguments)
    assert code == exit_code
    assert "pydantic" in packages  # they load the models, and that is all they need
    assert packages & ENGINE_PACKAGES == set()


def test_schema_written_to_a_file_loads_no_engine(tmp_path: Path) -> None:
    """`--out` is checked against the desired state and the state directory first."""
    out = tmp_path / "schema.json"
    code, packages = imported(tmp_path, "schema", "--out", str(out))
    assert code == 0
    assert out.read_text().startswith("{")
    assert packages & ENGINE_PACKAGES == set()


def test_a_command_that_runs_the_engine_loads_it(tmp_path: Path) -> None:
    """The probe sees what a command imports: `apply` loads the engine as it runs, even to
    say that its plan file does not exist."""
    code, packages = imported(tmp_path, "apply", str(tmp_path / "missing.json"))
    assert code == 1
    assert {"httpx", "aiohttp"} <= packages
    # Loaded when a device is read over Modbus or a gateway claimed, which this run does not.
    assert packages & {"pymodbus", "cryptography"} == set()
    assert packages & HTTPX_COMMAND_LINE == set()
