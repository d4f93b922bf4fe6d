"""Diagnostics printed as text show what the input holds without letting a terminal act on
it: a control character in a key or a file name is escaped, and each diagnostic stays one
line."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main as cli

SITE = """apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata:
  name: home
spec:
  displayName: Home
  timezone: Europe/Stockholm
  "bogus\\e[31m": 1
"""


@pytest.mark.parametrize(("command", "summary"), [
    ("plan", "invalid desired state: 1 problem"),
    ("validate", "invalid: 1 problem"),
])
def test_control_characters_in_paths_and_file_names_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, summary: str
) -> None:
    (tmp_path / "a\x1b[2J\nb.yaml").write_text(SITE, encoding="utf-8")
    code = cli.main([command, str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "\x1b" not in err
    assert err.splitlines() == [
        f"error: {tmp_path}/a\\x1b[2J\\nb.yaml:8:3: spec.bogus\\x1b[31m: unknown field "
        "'bogus\\x1b[31m'; valid fields here: displayName, timezone, location, novacore, "
        "enapter, flatpeak",
        summary,
    ]
