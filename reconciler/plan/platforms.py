"""Registry of planners for platforms beyond Sourceful (Enapter, Flatpeak). Each is a pure
function `(fleet, observed, prune, whole fleet or None, audience) -> (changes, unmanaged)`
reading its own section of `Observed.extra` (see `planner.PlanOptions.whole_fleet`), its
advice worded for the audience (`plan.advice`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.model.fleet import Fleet
from reconciler.plan import enapter, flatpeak
from reconciler.plan.actions import Change
from reconciler.plan.advice import Audience
from reconciler.plan.observed import Observed

PlatformPlanner = Callable[
    [Fleet, Observed, bool, Fleet | None, Audience], tuple[list[Change], list[dict[str, Any]]]
]

PLANNERS: list[PlatformPlanner] = [enapter.plan_enapter, flatpeak.plan_flatpeak]
