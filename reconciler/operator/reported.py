"""What each object's Ready condition said at its last reconcile in this process, so that a
Warning says a problem once. The status an object's handler is given cannot tell alone: the
drift timer and the create or update handler of one object run concurrently, and each may
be given the status from before the other's status patch, so both would find the problem
new and say it. This record is updated as soon as a result is known, before anything is
awaited, so the second of two such runs finds it already said. Kept in memory: after a
restart, the status decides (`conditions.is_new`). The same holds for the one-off messages
an object's reconcile posts as events (`first_time`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.operator import unmanaged
from reconciler.operator.conditions import Cond, is_new, stored

Key = tuple[str, str, str]  # namespace, kind, name


class Reported:
    """The Ready condition last reported per object by this operator process."""

    def __init__(self) -> None:
        # Per object: the generation of the spec last reported of, and what Ready said.
        self._last: dict[Key, tuple[int | None, tuple[str, str, str]]] = {}
        # Messages said once per object, with the generation they are said of, if any
        # (`first_time`).
        self._said: dict[Key, set[tuple[int | None, str]]] = {}
        # The unmanaged objects last reported per object (`unmanaged_changed`).
        self._unmanaged: dict[Key, unmanaged.Said] = {}

    def is_news(
        self, key: Key, status: Mapping[str, Any], ready: Cond, generation: int | None = None
    ) -> bool:
        """Whether `ready`, of the spec of `generation`, says something else than the
        object's Ready said before (as last reported here, else as its status has it);
        records it as said. Of a spec older than the last reported of, it is no news and
        not recorded: a drift check begun before an edit, ending after the edit's reconcile,
        has its status write refused (`status_writes`); recorded, its Ready would have the
        next reconcile of the new spec say that one's problem again."""
        said = (ready.status_text, ready.reason, stored(ready.message))
        before = self._last.get(key)
        if before is not None and _older(generation, before[0]):
            return False
        self._last[key] = (generation, said)
        if before is not None:
            return before[1] != said
        return is_new(status.get("conditions"), ready)

    def first_time(self, key: Key, message: str, generation: int | None = None) -> bool:
        """Whether this process has not said `message` of the object yet (of the spec of
        `generation`, when given); records it as said. For what a reconcile says as it
        changes the status (a swapped-out serial kept and forgotten, a field's value left
        as it is): a second reconcile that starts before that status reaches it would say
        it again. One said of a spec is said again of a later one (a field declared
        again, then deleted again)."""
        said = self._said.setdefault(key, set())
        if (generation, message) in said:
            return False
        said.add((generation, message))
        return True

    def unmanaged_changed(
        self, key: Key, status: Mapping[str, Any], entries: list[unmanaged.Entry]
    ) -> bool:
        """Whether `entries`, the unmanaged objects found under the object now, differ from
        those last reported (here, else in its `status.unmanaged`); records them as
        reported. The set is said when it changes, not at every drift check."""
        now = unmanaged.said(entries)
        before = self._unmanaged.get(key)
        self._unmanaged[key] = now
        if before is None:
            before = unmanaged.recorded(status)
        return before != now

    def forget(self, key: Key) -> None:
        self._last.pop(key, None)
        self._said.pop(key, None)
        self._unmanaged.pop(key, None)


def _older(generation: int | None, than: int | None) -> bool:
    return generation is not None and than is not None and generation < than
