"""`reconciler COMMAND --help` as a first-time user reads it: the examples that name the
example fleet work on it as shown, and a mistyped option is answered with the usage of the
command it was given to."""

from __future__ import annotations

import inspect
import itertools
import re
import shlex
from pathlib import Path

import pytest

from reconciler.cli import main as cli
from reconciler.engine import config
from reconciler.operator import config as operator_config
from reconciler.plan import markdown_limits, targeting
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


@pytest.mark.parametrize(("argv", "prog", "mistyped"), [
    (["plan", "examples/sites", "--dry-run"], "reconciler plan", "--dry-run"),
    (["apply", "--yes", "examples/sites"], "reconciler apply", "--yes"),
    (["sim", "up", "--fleet", "examples/sites", "--verbose"], "reconciler sim up", "--verbose"),
])
def test_a_mistyped_option_is_answered_with_the_usage_of_its_command(
        argv: list[str], prog: str, mistyped: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Not with the top level's usage, which lists no option of the command."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 1  # not argparse's 2: "changes present" to a CI gate
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {prog} ")
    assert err.splitlines()[-1] == f"{prog}: error: unrecognized arguments: {mistyped}"


def test_the_markdown_limit_range_is_the_one_help_and_readme_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--markdown-limit` takes 0 or at least `markdown_limits.MIN_LIMIT`: `plan --help` and the
    README say so, and the refusal of a smaller one names the same range."""
    words = " ".join(_help(["plan"], capsys).split())
    start = words.index("--markdown-limit CHARS with")
    option = words[start:words.index("--no-color", start)]
    assert f"{markdown_limits.MIN_LIMIT} or more" in option and "0 for no limit" in option, option
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"of at least {markdown_limits.MIN_LIMIT:,} characters" in readme

    below = str(markdown_limits.MIN_LIMIT - 1)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["plan", str(tmp_path), "-o", "markdown", "--markdown-limit", below])
    assert stopped.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "reconciler plan: error: argument --markdown-limit: expected a number of characters, "
        f"at least {markdown_limits.MIN_LIMIT}, or 0 for no limit, not '{below}'")
    for accepted in (str(markdown_limits.MIN_LIMIT), "0"):
        # Past the arguments: refused for the path, which holds no YAML.
        assert cli.main(["plan", str(tmp_path), "-o", "markdown", "--markdown-limit",
                         accepted]) == 1
        assert "no YAML files" in capsys.readouterr().err


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_option_of_every_command_is_in_the_readme(
        capsys: pytest.CaptureFixture[str]) -> None:
    """An option that only `--help` names is one a reader of the README never learns of."""
    readme = _readme()
    missing = sorted({
        f"{' '.join(command)} {option}"
        for command in [[], *COMMANDS]
        # Whole options only: `--print-` is `--print-env` wrapped at a line's end.
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z](?![\w-])",
                                 _help(command, capsys))
        if option != "--help" and not re.search(rf"{re.escape(option)}(?![\w-])", readme)
    })
    assert not missing, f"options the README does not name: {missing}"


def _named(readme: str, variable: str) -> bool:
    """Whether the README names `variable`, in full or, as its tables do, by the end that
    follows a prefix given before it (`RECONCILER_NOVACORE_URL`, `_TOKEN`)."""
    parts = variable.split("_")
    return f"`{variable}`" in readme or any(
        f"`_{'_'.join(parts[i:])}`" in readme for i in range(1, len(parts)))


def test_every_setting_and_operator_variable_is_in_the_readme() -> None:
    """The variables the reconciler and its operator read, each said where a user looks."""
    settings = [f"RECONCILER_{name.upper()}" for name in config.Settings.__dataclass_fields__
                if name != "proxies"]
    operator = sorted(set(re.findall(r"RECONCILER_OPERATOR_[A-Z_]+",
                                     inspect.getsource(operator_config))))
    assert len(operator) >= 10, operator  # the test reads the operator's table
    readme = _readme()
    missing = [name for name in [*settings, *operator] if not _named(readme, name)]
    assert not missing, f"variables the README does not name: {missing}"
