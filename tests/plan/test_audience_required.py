"""Who a plan's advice is worded for has no default: `PlanOptions`, the planner's entry
points and each platform's planner take the audience from their caller (the CLI or the
operator, `plan.advice.Audience`). A caller that names none is caught by the type checker
and fails at run time, instead of the operator saying the CLI's `--prune` to its users."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.model.fleet import Fleet
from reconciler.plan.advice import Audience
from reconciler.plan.enapter import EnapterPlanner
from reconciler.plan.flatpeak import FlatpeakPlanner
from reconciler.plan.observed import Observed
from reconciler.plan.planner import PlanOptions, make_plan

ROOT = Path(__file__).resolve().parents[2]
MYPY = Path(sys.executable).parent / "mypy"

# An operator's plan written without its audience, each call on a line of its own, and
# the same calls with it.
WITHOUT = """\
    from reconciler.model.fleet import Fleet
    from reconciler.plan.enapter import EnapterPlanner
    from reconciler.plan.flatpeak import FlatpeakPlanner
    from reconciler.plan.observed import Observed
    from reconciler.plan.planner import PlanOptions, make_plan

    fleet = Fleet.of([])
    options = PlanOptions(whole_fleet=fleet, prune=False)
    plan = make_plan(fleet, Observed())
    flatpeak = FlatpeakPlanner(fleet, None, whole_fleet=fleet)
    enapter = EnapterPlanner(fleet, None, whole_fleet=fleet)
    """
WITH = """\
    from reconciler.model.fleet import Fleet
    from reconciler.plan.advice import Audience
    from reconciler.plan.enapter import EnapterPlanner
    from reconciler.plan.flatpeak import FlatpeakPlanner
    from reconciler.plan.observed import Observed
    from reconciler.plan.planner import PlanOptions, make_plan

    fleet = Fleet.of([])
    options = PlanOptions(whole_fleet=fleet, prune=False, audience=Audience.OPERATOR)
    plan = make_plan(fleet, Observed(), options)
    flatpeak = FlatpeakPlanner(fleet, None, whole_fleet=fleet, audience=Audience.OPERATOR)
    enapter = EnapterPlanner(fleet, None, whole_fleet=fleet, audience=Audience.OPERATOR)
    """


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    if not MYPY.exists():
        pytest.fail(f"{MYPY} is missing: install the dev extra (pip install -e '.[dev]')")
    path = tmp_path / "operator_plan.py"
    path.write_text(textwrap.dedent(source))
    return subprocess.run([str(MYPY), "--strict", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_a_plan_built_without_its_audience_is_a_type_error(tmp_path: Path) -> None:
    result = _mypy(tmp_path, WITHOUT)
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    lines = textwrap.dedent(WITHOUT).splitlines()
    flagged = {lines[int(e.split(":")[1]) - 1].split(" = ")[0] for e in errors}
    assert flagged == {"options", "plan", "flatpeak", "enapter"}, result.stdout
    assert all('"audience"' in e or '"options"' in e for e in errors), result.stdout


def test_the_same_plan_naming_its_audience_checks(tmp_path: Path) -> None:
    result = _mypy(tmp_path, WITH)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_plan_built_without_its_audience_fails_at_run_time() -> None:
    fleet = Fleet.of([])
    with pytest.raises(TypeError, match="audience"):
        PlanOptions(prune=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="options"):
        make_plan(fleet, Observed())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="audience"):
        FlatpeakPlanner(fleet, None)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="audience"):
        EnapterPlanner(fleet, None)  # type: ignore[call-arg]
    options = PlanOptions(audience=Audience.OPERATOR)
    assert make_plan(fleet, Observed(), options).options.audience is Audience.OPERATOR
