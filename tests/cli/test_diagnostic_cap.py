"""A desired state with very many problems shows the first 20 of each file and 100 in all,
exactly as they would be shown uncapped, then how many more each file has; the exit code
stays 1. `validate` (text and JSON), `plan`, `apply` and `watch` say it the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main as cli
from reconciler.sources import loader

RULE = "note: the first 20 problems of a file and 100 in all are shown; fix these first"


def empty_sites(count: int) -> str:
    """`count` documents of `kind: Site` alone: three problems each."""
    return "---\nkind: Site\n" * count


def problems_of(path: Path, documents: int) -> list[str]:
    """The lines the uncapped output would print for `empty_sites(documents)`."""
    lines = []
    for number in range(documents):
        for field in ("apiVersion", "metadata", "spec"):
            lines.append(f"error: {path}:{2 * number + 2}:1: {field}: required field "
                         f"{field!r} is missing")
    return lines


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_one_file_shows_its_first_20_problems_and_counts_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "a-garbage.yaml"
    garbage.write_text(empty_sites(300), encoding="utf-8")
    other = tmp_path / "b-other.yaml"
    other.write_text("kind: Inverter\n", encoding="utf-8")
    code, out, err = run(["validate", str(tmp_path)], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        *problems_of(garbage, 300)[:20],
        # the cap is per file: a broken file does not hide the problems of the next
        f"error: {other}:1:7: kind: unknown kind 'Inverter'; known kinds: Site, Gateway, "
        "Device, DER",
        f"note: {garbage}: 880 more problems not shown",
        RULE,
        "invalid: 901 problems, 21 shown",
    ]


def test_at_most_100_problems_in_all_and_the_files_past_ten_summed_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [tmp_path / f"site-{i:02d}.yaml" for i in range(30)]
    for file in files:
        file.write_text(empty_sites(2), encoding="utf-8")  # 6 problems each, 180 in all
    code, out, err = run(["validate", str(tmp_path)], capsys)
    lines = err.splitlines()
    assert (code, out) == (1, "")
    shown = [line for file in files for line in problems_of(file, 2)][:100]
    assert lines[:100] == shown
    assert lines[100:] == [
        f"note: {files[16]}: 2 more problems not shown",
        *(f"note: {file}: 6 more problems not shown" for file in files[17:26]),
        "note: 4 more files: 24 more problems not shown",
        RULE,
        "invalid: 180 problems, 100 shown",
    ]


def test_json_lists_the_problems_shown_with_the_total_and_what_is_not_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text(empty_sites(50), encoding="utf-8")
    code, out, err = run(["validate", "-o", "json", str(garbage)], capsys)
    assert (code, err) == (1, "")
    document = json.loads(out)
    assert document["valid"] is False
    assert document["problems"] == 150
    assert document["omitted"] == [{"file": str(garbage), "problems": 130}]
    shown = [f"error: {d['file']}:{d['line']}:{d['column']}: {d['path']}: {d['message']}"
             for d in document["diagnostics"]]
    assert shown == problems_of(garbage, 50)[:20]


def test_a_valid_document_after_the_cap_is_still_loaded_and_its_clashes_counted(
    tmp_path: Path,
) -> None:
    """Past the cap, problems are counted, not dropped unseen: the total is exact, the
    cross-resource rules included, and later valid documents still count as declared."""
    site = ("---\napiVersion: energy.reconciler.dev/v1alpha1\nkind: Site\nmetadata:\n"
            "  name: home\nspec:\n  displayName: Home\n  timezone: Europe/Stockholm\n")
    path = tmp_path / "sites.yaml"
    path.write_text(empty_sites(10) + site * 25, encoding="utf-8")
    result = loader.load_paths([path])
    assert len(result.diagnostics) == 20
    # 30 missing fields, then the name `home` declared again 24 times
    assert result.omitted == {str(path): 10 + 24}
    assert [r.name for r in result.resources] == ["home"] * 25


@pytest.mark.parametrize("command", ["plan", "apply", "watch"])
def test_plan_apply_and_watch_show_the_same_capped_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path / "state"))
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text(empty_sites(1000), encoding="utf-8")
    code, out, err = run([command, str(garbage)], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        *problems_of(garbage, 1000)[:20],
        f"note: {garbage}: 2980 more problems not shown",
        RULE,
        "invalid desired state: 3000 problems, 20 shown",
    ]
