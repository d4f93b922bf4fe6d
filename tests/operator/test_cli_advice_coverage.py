"""Every text the planners and the engine write that advises a CLI flag (`--prune`,
`--target`, `--exclude`) is said without it by `cli_advice.for_operator`, through which the
operator writes its Events, conditions and `status.unmanaged`: a note added with such
advice, and not rewritten, fails here rather than reaching an operator's Event. The texts
are read from the source (an f-string's values replaced by a word), as the operator would
get them; the modules only the CLI runs are left out, each saying why."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.operator.cli_advice import for_operator

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
FLAGS = ("--prune", "--target", "--exclude", "--interval", "--out")
CLI_ONLY = {
    "plan/render.py": "the CLI's plan as text",
    "plan/markdown.py": "the CLI's plan as Markdown",
    "plan/document.py": "the CLI's saved plan",
    "plan/targeting.py": "--target and --exclude themselves",
    "engine/watch.py": "the watch agent",
    "engine/watch_vanished.py": "the watch agent",
    "engine/watch_unmanaged.py": "the watch agent",
}


def _texts(path: Path) -> Iterator[tuple[int, str]]:
    """The string constants and f-strings of `path` that are no docstring."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    in_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                   for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(
                v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and id(node) not in in_fstrings):
            yield node.lineno, node.value


def _advising() -> list[tuple[str, int, str]]:
    found = []
    for folder in ("plan", "engine", "providers"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            where = str(path.relative_to(PACKAGE))
            if where in CLI_ONLY:
                continue
            found += [(where, line, text) for line, text in _texts(path)
                      if any(flag in text for flag in FLAGS)]
    return found


ADVISING = _advising()


def test_the_planners_advise_the_clis_flags_somewhere() -> None:
    """The search finds what it looks for (a Lua twin's note, a blocked slug's reason)."""
    assert any("apply --prune deletes it" in text for _, _, text in ADVISING), ADVISING
    assert any("delete it (apply --prune)" in text for _, _, text in ADVISING), ADVISING


@pytest.mark.parametrize(("where", "line", "text"), ADVISING,
                         ids=[f"{where}:{line}" for where, line, _ in ADVISING])
def test_the_operator_says_each_without_the_clis_flags(where: str, line: int, text: str) -> None:
    said = for_operator(text)
    assert not any(flag in said for flag in FLAGS), f"{where}:{line}: {said!r}"
