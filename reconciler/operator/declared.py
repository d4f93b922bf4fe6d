"""What an object's status remembers of the spec fields it declared
(`status.declaredFields`): the record the CLI keeps in the state directory's inventory of
the fields each resource declared at its last apply (`model.declared`), so that a field
deleted from the spec is set back to the platform's default or reported as no longer
managed (`plan.removed_fields`). Written only by a reconcile that converged (every change
of the object done or in sync): one that failed, waits or only reports keeps the record
of the last that did, so the next one still sees the field as removed. kopf's
last-handled-configuration annotation is no such record: kopf writes it after a handler
that only scheduled a retry too. Pure: `reconcile.py` plans and records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.engine.apply import Outcome
from reconciler.plan.actions import Change

# The status field (`model.status.ResourceStatus.declared_fields`).
DECLARED = "declaredFields"
# The event that says, once, that a removed field's value is left as it is.
EVENT_REASON = "NoLongerManaged"


def recorded(status: Mapping[str, Any] | None) -> frozenset[str] | None:
    """The fields a status records; None when it records none (an object reconciled before
    the record was kept, or never converged): then nothing is compared, as the CLI does
    with an inventory without the record."""
    entries = (status or {}).get(DECLARED)
    if not isinstance(entries, list):
        return None
    return frozenset(entry for entry in entries if isinstance(entry, str) and entry)


def converged(changes: Iterable[Change], outcomes: Iterable[Outcome]) -> bool:
    """Whether every change of an object is in sync or was done by this reconcile."""
    done = {o.address for o in outcomes if o.status == "done"}
    return all(not c.is_change or c.address in done for c in changes)


def notes(unmanaged: Iterable[Mapping[str, Any]], address: str) -> list[str]:
    """What a plan says of the fields of the object at `address` declared no more and left
    as they are on their platform (`plan.removed_fields.notes`)."""
    prefix = f"{address}.spec."
    return [
        str(entry["description"])
        for entry in unmanaged
        if entry.get("field") and str(entry.get("id", "")).startswith(prefix)
    ]
