"""Every text the planners, the engine and the operator write that advises a CLI flag
(`--prune`, `--target`, `--exclude`) is the CLI's wording of an `Advice`
(`plan.advice`), whose operator wording names none: the operator plans and applies for
`Audience.OPERATOR`, so such a text never reaches its Events, conditions, kopf errors or
`status.unmanaged`. A message added with such advice written out, not as an `Advice`,
fails here. The texts are read from the source (an f-string's values replaced by a word);
the modules only the CLI runs are left out, each saying why."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

from reconciler.plan.advice import PRUNED, Advice, Audience

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
FLAGS = ("--prune", "--target", "--exclude", "--interval", "--out", "--auto-approve")
# What names a CLI command to run, which the operator's user has not either.
COMMANDS = ("apply --", "apply with", "reconciler plan", "reconciler apply")
FOLDERS = ("plan", "engine", "providers", "operator")
CLI_ONLY = {
    "plan/render.py": "the CLI's plan as text",
    "plan/markdown.py": "the CLI's plan as Markdown",
    "plan/document.py": "the CLI's saved plan",
    "plan/targeting.py": "--target and --exclude themselves",
    "engine/watch.py": "the watch agent",
    "engine/watch_vanished.py": "the watch agent",
    "engine/watch_unmanaged.py": "the watch agent",
}


def _worded(node: ast.expr) -> str | None:
    """The text of a string constant or an f-string (its values replaced by a word)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "X" for v in node.values)
    return None


def _advice_parts(call: ast.Call) -> dict[str, ast.expr]:
    """The `cli` and `operator` arguments of an `Advice(...)` call, by name."""
    parts = dict(zip(("cli", "operator"), call.args, strict=False))
    parts |= {k.arg: k.value for k in call.keywords if k.arg in ("cli", "operator")}
    return parts


def _is_advice(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "Advice") or (
        isinstance(func, ast.Attribute) and func.attr == "Advice")


def _texts(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """The string constants and f-strings of `path` that are no docstring, each with what
    it is to an `Advice`: "cli", "operator", or None (no advice's wording)."""
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
    roles = {id(value): role for node in ast.walk(tree) if _is_advice(node)
             for role, value in _advice_parts(node).items()}  # type: ignore[arg-type]
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr) or id(node) in docstrings or id(node) in in_fstrings:
            continue
        text = _worded(node)
        if text is not None:
            yield node.lineno, text, roles.get(id(node))


@functools.cache
def _scanned() -> list[tuple[str, int, str, str | None]]:
    """Every text of the scanned modules: (module, line, text, its role to an `Advice`).
    Read once per process, when a test asks: not at collection, which every test worker
    makes of the whole suite (parsing the package took seconds of each)."""
    found = []
    for folder in FOLDERS:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            where = str(path.relative_to(PACKAGE))
            if where not in CLI_ONLY:
                found += [(where, line, text, role) for line, text, role in _texts(path)]
    return found


def _advising() -> list[tuple[str, int, str, str | None]]:
    """The texts that name a CLI flag."""
    return [(where, line, text, role) for where, line, text, role in _scanned()
            if any(flag in text for flag in FLAGS)]


def _for_operator() -> list[tuple[str, int, str]]:
    """The operator's wordings of the advices."""
    return [(where, line, text) for where, line, text, role in _scanned()
            if role == "operator"]


def test_the_search_finds_the_advice_it_looks_for() -> None:
    """A Lua twin's note, a blocked slug's reason, and what the operator says instead."""
    advising = _advising()
    assert any("apply --prune deletes it" in text for _, _, text, _ in advising), advising
    assert any("delete it (apply --prune)" in text for _, _, text, _ in advising), advising
    assert any(text == "delete it in Enapter Cloud" for _, _, text in _for_operator())


def test_each_text_advising_a_cli_flag_is_an_advices_cli_wording() -> None:
    """Each one found is said, with where it is."""
    outside = [f"{where}:{line}: {text!r}" for where, line, text, role in _advising()
               if role != "cli"]
    assert not outside, (
        "texts advising a CLI flag outside an Advice's cli wording (the operator would say "
        "them as they are; `plan.advice`):\n" + "\n".join(outside))


def test_each_operator_wording_names_no_cli_flag_nor_command() -> None:
    naming = [f"{where}:{line}: {text!r}" for where, line, text in _for_operator()
              if any(word in text for word in FLAGS + COMMANDS)]
    assert not naming, "operator wordings naming a CLI flag or command:\n" + "\n".join(naming)


def test_advice_is_worded_for_the_audience_its_caller_names() -> None:
    move = Advice(cli="apply with --prune, Site {site} included",
                  operator="delete it there (Site {site} lists it)")
    assert move.to(Audience.CLI, site="a{b}") == "apply with --prune, Site a{b} included"
    assert move.to(Audience.OPERATOR, site="lab") == "delete it there (Site lab lists it)"
    assert f"; deleted{PRUNED.to(Audience.CLI)}" == "; deleted (--prune)"
    assert f"; deleted{PRUNED.to(Audience.OPERATOR)}" == "; deleted"
