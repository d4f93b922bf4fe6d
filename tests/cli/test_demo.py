"""`reconciler demo`, the README's main job: against the built-in simulators it plans,
applies, plans again with nothing to do and nothing written, makes drift, shows it and
corrects it, and exits 0."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main as cli

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def environment_kept() -> Iterator[None]:
    """The demo sets stand-in passwords in its own environment; drop them afterwards."""
    before = dict(os.environ)
    yield
    for key in set(os.environ) - set(before):
        del os.environ[key]


def test_the_demo_plans_applies_converges_and_corrects_drift(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        environment_kept: None) -> None:
    monkeypatch.chdir(REPOSITORY)
    code = cli.main(["demo", "--no-color"])
    out, err = capsys.readouterr()
    assert code == 0, out + err

    steps = re.split(r"^==> ", out, flags=re.MULTILINE)[1:]
    titles = [step.splitlines()[0] for step in steps]
    assert [t.split(":")[0] for t in titles] == [
        "Simulators started", "Plan", "Apply", "Plan again", "Drift", "Plan", "Apply", "Plan"]
    assert "Zap gateways" in steps[0]
    first, applied, again, drift, drifted, corrected, final = steps[1:]
    assert "will be claimed" in first and "will be created" in first
    assert re.search(r"Apply complete: \d+ done, 0 failed, 0 skipped, 0 blocked", applied)
    assert "Plan: no changes." in again
    assert re.search(r"\(\d+ read requests, 0 writes\)", again), "the no-op plan wrote nothing"
    assert len([line for line in drift.splitlines() if line.startswith("  - ")]) == 3
    assert "publishing of" in drift and "renamed in Novacore" in drift
    assert re.search(r"Plan: 3 to update\.", drifted), drifted
    assert "Apply complete: 3 done, 0 failed" in corrected
    assert "Plan: no changes." in final
    assert "Traceback" not in out + err


def test_the_demo_away_from_the_repository_runs_the_example_sites_installed_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], environment_kept: None) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--no-color"]) == 0
    out, _ = capsys.readouterr()
    assert "farm-gotland-ferroamp" in out and out.rstrip().endswith("Plan: no changes.")


def test_without_installed_examples_the_demo_asks_for_a_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler.cli import demo_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo_run, "PACKAGED_FLEET", tmp_path / "none")
    assert cli.main(["demo"]) == 1
    _, err = capsys.readouterr()
    assert err == ("error: examples/sites is not here, and no example sites were installed "
                   "with the package; name the site YAML to use: `reconciler demo PATH`\n")


def test_the_wheel_carries_every_example_site() -> None:
    """The package data globs of pyproject.toml (through the reconciler/examples link)
    take every YAML file under examples/sites, so the installed demo is the README's."""
    import tomllib

    package = REPOSITORY / "reconciler"
    globs = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["reconciler"]
    shipped = {path for pattern in globs for path in package.glob(pattern)}
    examples = set((package / "examples" / "sites").rglob("*.yaml"))
    assert examples and examples <= shipped
    assert (package / "examples").resolve() == REPOSITORY / "examples"


def test_the_demo_leaves_no_state_or_secrets_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], environment_kept: None) -> None:
    """Its state holds the simulators' credentials: removed when it ends, also on error."""
    import tempfile

    monkeypatch.chdir(REPOSITORY)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["demo", "--no-color"]) == 0
    assert list(tmp_path.iterdir()) == []

    from reconciler.cli import demo_run

    async def fails(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_run, "_demo", fails)
    assert cli.main(["demo", "--no-color"]) == 130
    assert list(tmp_path.iterdir()) == []
    capsys.readouterr()
