"""PURE: Kubernetes-style conditions. A condition keeps its lastTransitionTime while its
status stays the same, so `kubectl wait --for=condition=Ready` and Argo health work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.printable import readable


@dataclass(frozen=True)
class Cond:
    type: str
    status: bool | None  # None = Unknown
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def stored(message: str) -> str:
    """A condition's message as it is stored."""
    # `kubectl describe` shows it on a terminal; it carries what gateways report.
    # A word a page long (an id) is cut with its length said, not at the end alone.
    return readable(message)[:1000]


def is_new(previous: list[dict[str, Any]] | None, cond: Cond) -> bool:
    """Whether `cond` says something else than the condition of its type in `previous`
    (another status, reason or message): worth an event, where the same again is not."""
    before = next(
        (c for c in previous or [] if isinstance(c, dict) and c.get("type") == cond.type), None
    )
    return before is None or (
        before.get("status"),
        before.get("reason"),
        before.get("message"),
    ) != (cond.status_text, cond.reason, stored(cond.message))


# Conditions that say what a reconcile found outside (the gateway answered, reported the
# declared serial, the gateway is claimed), as opposed to what it did (Ready, Synced).
OBSERVED = ("Reachable", "Verified", "Claimed")


def unobserved(previous: list[dict[str, Any]] | None, reason: str, message: str) -> list[Cond]:
    """The `OBSERVED` conditions `previous` holds, as Unknown: a reconcile that observed
    nothing (the spec is invalid) cannot vouch for what an older spec found, and a True
    kept from then would tell `kubectl wait` and dashboards what no one checked (the
    Kubernetes convention for a status not known now). The next reconcile that observes
    sets them again."""
    held = {c.get("type") for c in previous or [] if isinstance(c, dict)}
    return [Cond(t, None, reason, message) for t in OBSERVED if t in held]


def merge(
    previous: list[dict[str, Any]] | None, new: list[Cond], *, now: str, generation: int | None
) -> list[dict[str, Any]]:
    """New conditions, keeping transition times of unchanged statuses and any condition
    types not mentioned this time."""
    old = {c.get("type"): c for c in previous or [] if isinstance(c, dict)}
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in old.items() if isinstance(k, str)}
    for cond in new:
        before = old.get(cond.type)
        changed = before is None or before.get("status") != cond.status_text
        merged[cond.type] = {
            "type": cond.type,
            "status": cond.status_text,
            "reason": cond.reason,
            "message": stored(cond.message),
            "lastTransitionTime": now if changed else before.get("lastTransitionTime", now),  # type: ignore[union-attr]
            "observedGeneration": generation,
        }
    order = ["Ready", "Synced", "Reachable", "Verified", "Claimed"]
    return sorted(
        merged.values(),
        key=lambda c: (order.index(c["type"]) if c["type"] in order else 99, c["type"]),
    )
