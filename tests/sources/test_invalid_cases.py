"""Every file in tests/data/invalid/ breaks one rule, and `reconciler validate` must report
exactly the problems its header announces, at the announced place.

Header format (comment lines at the top of each file):

    # expect: LINE:COLUMN PATH: MESSAGE-SUBSTRING     (PATH is `-` when there is none)
    # jsonschema: reject | accept                     (checked in tests/cli/test_schema.py)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.cli import main as cli

INVALID_DIR = Path(__file__).resolve().parents[1] / "data" / "invalid"
CASES = sorted(INVALID_DIR.glob("*.yaml"))

_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S+): (.+)$")
_ERROR = re.compile(r"^error: (?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<rest>.*)$")


@dataclass(frozen=True)
class Expectation:
    line: int
    column: int
    path: str  # "" when the problem has no field path
    message: str

    def matches(self, line: int, column: int, rest: str) -> bool:
        prefix = f"{self.path}: " if self.path else ""
        return (
            (line, column) == (self.line, self.column)
            and rest.startswith(prefix)
            and self.message in rest[len(prefix):]
        )

    def __str__(self) -> str:
        return f"{self.line}:{self.column} {self.path or '-'}: {self.message}"


def expectations(path: Path) -> list[Expectation]:
    found = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.startswith("#"):
            break
        match = _EXPECT.match(text)
        if match:
            line, column, field_path, message = match.groups()
            found.append(Expectation(int(line), int(column),
                                     "" if field_path == "-" else field_path, message))
    return found


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 20, f"only {len(CASES)} invalid cases in {INVALID_DIR}"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_invalid_case_fails_where_its_header_says(
    case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = expectations(case)
    assert expected, f"{case.name} has no `# expect:` header line"

    code = cli.main(["validate", str(case)])

    out, err = capsys.readouterr()
    assert code == 1, f"{case.name}: expected exit 1, got {code}\n{out}{err}"
    assert out == ""
    errors = [m for m in map(_ERROR.match, err.splitlines()) if m]
    assert (
        err.splitlines()[-1] == f"invalid: {len(errors)} problem{'s' if len(errors) != 1 else ''}"
    )
    for match in errors:
        assert match["file"] == str(case)
    reported = [(int(m["line"]), int(m["column"]), m["rest"]) for m in errors]
    missing = [e for e in expected if not any(e.matches(*r) for r in reported)]
    unexpected = [r for r in reported if not any(e.matches(*r) for e in expected)]
    assert not missing and not unexpected, (
        f"{case.name}:\n  expected but not reported: {[str(e) for e in missing]}"
        f"\n  reported but not expected: {unexpected}\n--- stderr ---\n{err}"
    )
