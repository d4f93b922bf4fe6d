"""Static checks run as tests from the repository root with the virtualenv's own tools:
`ruff check .` (the whole repository), `mypy` (strict, on the `reconciler` package, as
pyproject configures it) and `lint-imports` (the layer contracts: `model` and `plan` import
no network, cluster or file-watching library). Any problem fails the test, with the tool's
output as the message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / command[0]
    if not executable.exists():
        pytest.fail(f"{executable} is missing: install the dev extra (pip install -e '.[dev]')")
    return subprocess.run([str(executable), *command[1:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.mark.parametrize("command", [
    pytest.param(("ruff", "check", ".", "--output-format", "concise", "--no-cache"), id="ruff"),
    pytest.param(("mypy",), id="mypy"),
    pytest.param(("lint-imports", "--no-cache"), id="import-contracts"),
])
def test_static_check_passes(command: tuple[str, ...]) -> None:
    result = run(*command)
    assert result.returncode == 0, (
        f"$ {' '.join(command)} (exit {result.returncode})\n{result.stdout}{result.stderr}")
