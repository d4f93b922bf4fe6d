"""The closed set of plan actions and the `Change` record the planner emits.

Generic verbs (create, update, delete, replace, no-op) follow Terraform; the domain verbs
(claim, transfer, release, verify, defer) are what energy hardware needs and no general
tool has. A `reason` explains a change to people; the engine never branches on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    NO_OP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"
    CLAIM = "claim"
    TRANSFER = "transfer"
    RELEASE = "release"
    VERIFY = "verify"
    DEFER = "defer"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def is_write(self) -> bool:
        """Whether applying the action changes something outside."""
        return self not in (Action.NO_OP, Action.VERIFY, Action.DEFER)

    @property
    def past_tense(self) -> str:
        return _PAST[self]


_SYMBOLS = {
    Action.NO_OP: " ",
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.DELETE: "-",
    Action.REPLACE: "-/+",
    Action.CLAIM: "⇒",
    Action.TRANSFER: "⇄",
    Action.RELEASE: "⇐",
    Action.VERIFY: "?",
    Action.DEFER: "…",
}
_PAST = {
    Action.NO_OP: "unchanged",
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.DELETE: "deleted",
    Action.REPLACE: "replaced",
    Action.CLAIM: "claimed",
    Action.TRANSFER: "transferred",
    Action.RELEASE: "released",
    Action.VERIFY: "verified",
    Action.DEFER: "deferred",
}


class Reason(StrEnum):
    """Why a change is planned. For people and for filtering; never drives apply."""

    NOT_FOUND = "not_found"
    DRIFT = "drift"
    CANNOT_UPDATE = "cannot_update"
    SECRET_CHANGED = "secret_changed"  # noqa: S105 - a reason, not a secret
    SECRET_MISSING = "secret_missing"  # noqa: S105 - a reason, not a secret
    NOT_DECLARED = "not_declared"
    FIELD_REMOVED = "field_removed"  # declared at the last apply, set back to its default
    MOVED = "moved"  # declared behind another gateway or in another site than it is
    OWNED_BY_OTHER_ORG = "owned_by_other_org"
    TRANSFER_NOT_ALLOWED = "transfer_not_allowed"
    DELETION_POLICY = "deletion_policy"
    IDENTITY_CHECK = "identity_check"
    IDENTITY_MISMATCH = "identity_mismatch"
    TARGET_UNREACHABLE = "target_unreachable"
    NO_ACCESS = "no_access"  # the token may not read the Novacore organisation declared
    NOT_THE_API = "not_the_api"  # a cloud's URL setting is not its API's (a listing is a 404)
    DEPENDENCY_BLOCKED = "dependency_blocked"
    IN_SYNC = "in_sync"


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One declared field that differs: `op` is add, remove or change."""

    op: str
    path: str
    old: Any = None
    new: Any = None


@dataclass(slots=True)  # a fleet-wide plan holds tens of thousands of these
class Change:
    """One planned action on one component of one resource.

    `address` is `<kind>/<name>[<component>]`, e.g. `device/inv-1[novacore]`. `before` and
    `after` hold only declared fields (and never secret values). `blocked` changes are
    shown but not applied: `message` says what the user must do. A deferral made of a
    planned change (`defer`) keeps that change's action in `deferred_action`: what it
    would do once its target can be read, for code to branch on where `message` only
    says it to people.
    """

    address: str
    kind: str
    name: str
    component: str
    action: Action
    reason: Reason
    message: str = ""
    site: str = ""
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    # Sequences, shared empty by default: most changes of a large plan are no-ops with
    # neither, and 60,000 empty lists were a fifth of what the collector then scans.
    diff: Sequence[FieldDiff] = ()
    external_id: str | None = None
    depends_on: Sequence[str] = ()
    blocked: bool = False
    deferred_action: Action | None = None

    @classmethod
    def new(
        cls, kind: str, name: str, component: str, action: Action, reason: Reason, **fields: Any
    ) -> Change:
        """A change with its address made from kind, name and component."""
        return cls(
            address=address_of(kind, name, component),
            kind=kind,
            name=name,
            component=component,
            action=action,
            reason=reason,
            **fields,
        )

    @property
    def is_change(self) -> bool:
        """Whether the change is something to do (not a no-op)."""
        return self.action is not _NO_OP


def defer(change: Change, why: str, *, unread: bool) -> None:
    """Turn a planned change into a deferral; `why` says what could not be read. A change
    of an object that was itself not read (`unread`) says nothing of what it would do and
    shows no field changes: what is there is not known ("would create" would be a guess,
    and alarming about what may well be there).

    A change blocked already (a password not given) stays blocked for that cause, which
    reaching the target would not lift: its message keeps saying it, first, as the error
    that fails the plan, and the deferral follows; one waiting on a blocked change keeps
    that reason (`cli.common.plan_problems` counts those apart). A change planned as a
    deferral already is said the same way, its cause kept as well."""
    cause = change.message if change.blocked else None
    if unread:
        change.message = f"its state is not known; deferred: {why}"
        change.diff = ()
        change.deferred_action = None
    elif change.action is Action.DEFER:
        # Planned as a deferral from the start, there is no action it "would" take; one
        # deferred again keeps the action it was planned with, and says it.
        would = change.deferred_action
        change.message = f"would {would.value}; deferred: {why}" if would else f"deferred: {why}"
    else:
        change.message = f"would {change.action.value}; deferred: {why}"
        change.deferred_action = change.action
    if cause is not None:
        change.message = f"{cause}; {change.message}"
    change.action = Action.DEFER
    if change.reason is not Reason.DEPENDENCY_BLOCKED or not change.blocked:
        change.reason = Reason.TARGET_UNREACHABLE


# Enum members held in module names for what every change of a plan asks: reading a
# member off its class (`Action.NO_OP`) goes through the enum machinery each time, which
# a fleet-wide plan does hundreds of thousands of times.
_NO_OP = Action.NO_OP
_DRIFT = (Action.UPDATE, Reason.DRIFT)
_IN_SYNC = (Action.NO_OP, Reason.IN_SYNC)


def update_or_in_sync(diff: list[FieldDiff]) -> tuple[Action, Reason]:
    """What a compared object needs: an update for drift, else nothing."""
    return _DRIFT if diff else _IN_SYNC


def address_of(kind: str, name: str, component: str) -> str:
    return f"{kind.lower()}/{name}[{component}]"
