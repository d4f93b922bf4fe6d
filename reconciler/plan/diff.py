"""Field-level comparison of declared values with observed ones.

Only fields the desired side declares are compared (kopf's and provider-http's
containment rule): a value the API adds or defaults is never drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.plan.actions import FieldDiff


def declared_diff(
    declared: Mapping[str, Any], observed: Mapping[str, Any] | None, *, prefix: str = ""
) -> list[FieldDiff]:
    """Differences for every key `declared` sets. Missing observed keys count as absent,
    except where `observed` is None (the object does not exist: everything is added)."""
    if observed is None:
        return [
            FieldDiff("add", f"{prefix}{key}", None, new)
            for key, new in declared.items()
            if new is not None
        ]
    diffs: list[FieldDiff] = []
    _diff_into(diffs, declared, observed, prefix, missing_is_added=True)
    return diffs


def compared_only_where_reported(
    declared: Mapping[str, Any], observed: Mapping[str, Any]
) -> list[FieldDiff]:
    """Like `declared_diff`, but a key the API does not report at all is not compared
    (some APIs echo only part of what they were given)."""
    diffs: list[FieldDiff] = []
    _diff_into(diffs, declared, observed, "", missing_is_added=False)
    return diffs


def _diff_into(
    diffs: list[FieldDiff],
    declared: Mapping[str, Any],
    observed: Mapping[str, Any],
    prefix: str,
    *,
    missing_is_added: bool,
) -> None:
    """Append the differences of `declared` from `observed` to `diffs`; a key `observed`
    lacks is an "add" where `missing_is_added`, else not compared (at every depth)."""
    for key, new in declared.items():
        if new is None:
            continue
        if key not in observed:
            if missing_is_added:
                diffs.append(FieldDiff("add", f"{prefix}{key}", None, new))
            continue
        old = observed[key]
        # Most declared values are in sync: one equality test settles them (equal dicts
        # hold no difference at any depth), and no path is formatted for them.
        if old == new:
            continue
        # Declared and observed values are JSON-shaped (dicts, lists, scalars); checking for
        # `dict` rather than the `Mapping` ABC keeps a fleet-wide plan's 40,000 diffs cheap.
        if isinstance(new, dict) and isinstance(old, dict):
            _diff_into(diffs, new, old, f"{prefix}{key}.", missing_is_added=missing_is_added)
        else:
            diffs.append(FieldDiff("change", f"{prefix}{key}", old, new))
