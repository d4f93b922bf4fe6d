"""The plan document: a versioned JSON form of a plan that renderers, CI tools and
`reconciler apply PLANFILE` read. Compatibility follows Terraform's rules: a minor
`format_version` bump only adds keys; consumers ignore keys they do not know.

Replace is encoded as `["delete", "create"]` so generic plan commenters keep working.

1.1 added `device` to an unmanaged object that is part of a declared Device (a DER its
Novacore device has and it does not declare).
1.2 added `inputs.endpoints`: the cloud URLs a saved plan was made against, and
fingerprints of the identity and account it acted as (`engine.plan_origin`); and
`gateway` to an unmanaged Novacore device bound to a declared gateway of its site.
1.3 added `inputs.working_directory`: the directory `plan` ran in, against which `apply
PLANFILE` reads the relative `inputs.paths` while it holds the same files.
1.4 added `prunable` to every unmanaged object: whether `apply --prune` removes it (a
plan made with --prune lists only what it leaves).
1.5 added `deferred_actions` to every change: for a `defer` made of a planned change, the
`actions` it would take once its target can be read; null for any other change, and for
a deferral of what is not known (an object not read, or one not planned until it is).
It also added `summary.outside_selection`: the changes a --target or --exclude left out.
And it added `field` to an unmanaged entry that is a field a spec declared at the last
apply and declares no more, left as it is on its platform (`plan.removed_fields`).
1.6 added `inputs.state_directory`: the absolute path of the state directory `plan` used,
whose memory of earlier applies the plan rests on; `apply PLANFILE` refuses another.
It also added `inputs.secrets_directory`: the absolute path of the secrets directory the
plan read `passwordFrom.secretKeyRef` passwords from; `apply PLANFILE` of a fleet that
reads one refuses another.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reconciler import __version__
from reconciler.plan.actions import Action, Change
from reconciler.plan.planner import Plan

FORMAT_VERSION = "1.6"

# The most a saved plan may hold: `apply PLANFILE` reads no larger one, and `plan --out`
# writes none. A plan of the benchmark's generated fleet of 1,000 sites (`sim up --sites
# 1000`), all of it to create, takes 31 MB, and reading it 135 MB of memory: 128 MiB holds
# such a plan of some 4,000 sites and bounds what reading a file that is no plan at all
# costs. A larger fleet is planned and applied a part at a time (--target, --exclude).
MAX_PLAN_BYTES = 128 * 2**20

# What to do with a plan past MAX_PLAN_BYTES, said where one is refused (written or read).
SPLIT_ADVICE = "plan a part of the fleet at a time (--target, --exclude) to save smaller plans"


def actions_of(change: Change) -> list[str]:
    return _encoded(change.action)


def _encoded(action: Action) -> list[str]:
    if action is Action.REPLACE:
        return ["delete", "create"]
    return [action.value]


def deferred_actions_of(change: Change) -> list[str] | None:
    """What a deferral would do once it can, encoded as `actions` is; None when it is not
    known, or the change is no deferral."""
    if change.action is not Action.DEFER or change.deferred_action is None:
        return None
    return _encoded(change.deferred_action)


def change_entry(change: Change) -> dict[str, Any]:
    return {
        "address": change.address,
        "kind": change.kind,
        "name": change.name,
        "component": change.component,
        "site": change.site,
        "actions": actions_of(change),
        "deferred_actions": deferred_actions_of(change),
        "reason": change.reason.value,
        "message": change.message,
        "blocked": change.blocked,
        "external_id": change.external_id,
        "before": _keys_sorted(change.before),
        "after": _keys_sorted(change.after),
        "diff": [
            {"op": d.op, "path": d.path, "old": _keys_sorted(d.old), "new": _keys_sorted(d.new)}
            for d in change.diff
        ],
        "depends_on": list(change.depends_on),
    }


def _keys_sorted(value: Any) -> Any:
    """`value` with the keys of every object in it sorted. What a platform reported comes in
    the order it answered; sorted, the same state is the same bytes (as Terraform's JSON
    plan, whose attributes are sorted), whatever order an API version lists fields in."""
    if isinstance(value, dict):
        return {key: _keys_sorted(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [_keys_sorted(item) for item in value]
    return value


def fingerprint(data: Any) -> str:
    """Stable SHA-256 of JSON-compatible data (sorted keys)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def to_document(plan: Plan, *, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan as a JSON-compatible document."""
    return {
        "format_version": FORMAT_VERSION,
        "reconciler_version": __version__,
        "inputs": inputs or {},
        "options": {
            "prune": plan.options.prune,
            "targets": list(plan.options.targets),
            "excludes": list(plan.options.excludes),
        },
        "changes": [change_entry(c) for c in plan.changes],
        "unmanaged": list(plan.unmanaged),
        "summary": plan.summary(),
    }


# The keys of a change entry (`change_entry`) added since 1.0, with the format that added
# each: a plan saved by an older reconciler holds its changes without them.
_CHANGE_KEYS_ADDED = {"deferred_actions": (1, 5)}


def _version(text: str) -> tuple[int, int] | None:
    major, _, minor = text.partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def predates(format_version: str, since: str) -> bool:
    """Whether a plan of `format_version` was written before format `since` added
    something (a version that does not read as MAJOR.MINOR is no older)."""
    saved, added = _version(format_version), _version(since)
    return saved is not None and added is not None and saved < added


def changes_as_of(changes: list[dict[str, Any]], format_version: str) -> list[dict[str, Any]]:
    """`changes` (entries of this format) as a plan of `format_version` of the same major
    version holds them: without the keys a later minor version added. A saved plan made
    by an older reconciler is compared with what its inputs give now in its own terms, so
    that a key it could not hold does not make it look edited."""
    saved = _version(format_version)
    added = [key for key, since in _CHANGE_KEYS_ADDED.items() if saved is None or saved < since]
    if not added:
        return changes
    return [{k: v for k, v in change.items() if k not in added} for change in changes]


def is_compatible(document: dict[str, Any]) -> bool:
    version = str(document.get("format_version", ""))
    return version.split(".")[0] == FORMAT_VERSION.split(".")[0]
