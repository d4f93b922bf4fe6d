"""`reconciler COMMAND --help` as a first-time user reads it: the examples that name the
example fleet work on it as shown."""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path

import pytest

from reconciler.cli import main as cli
from reconciler.plan import targeting
from reconciler.sources.loader import load_fleet

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [["validate"], ["plan"], ["apply"], ["watch"], ["demo"], ["sim"], ["sim", "up"],
            ["operator"], ["schema"], ["crds"]]


def _help(command: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        cli.main([*command, "--help"])
    assert stopped.value.code == 0
    return capsys.readouterr().out


def _selector_examples(text: str) -> list[tuple[str, str]]:
    """(example line, pattern) of each --target/--exclude of an example on examples/sites."""
    found = []
    for line in text.splitlines():
        command = line.split("#", 1)[0].strip()
        if not command.startswith("reconciler ") or "examples/sites" not in command:
            continue
        words = shlex.split(command)
        for option, value in itertools.pairwise(words):
            if option in ("--target", "--exclude"):
                found.append((command, value))
    return found


def test_the_selectors_of_the_help_examples_select_something_of_the_example_fleet(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Run as shown, an example naming a resource the examples do not have fails."""
    examples = [found for command in COMMANDS for found in _selector_examples(
        _help(command, capsys))]
    assert examples, "no --help example selects anything: the test reads nothing"
    fleet = load_fleet([ROOT / "examples" / "sites"])
    for command, pattern in examples:
        assert targeting.pattern_problems(fleet, [pattern]) == [], command
