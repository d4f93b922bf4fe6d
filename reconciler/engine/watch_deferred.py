"""What the watch agent says about the changes it defers (their gateway or cloud did not
answer, or asked to be called later): the `… ADDRESS defer deferred: REASON` lines.

Their count is in every run line (`deferred=N`); the changes themselves are listed when
the set of them, or a reason, differs from the one last listed, not at every interval
run: with a fleet offline for a night, an agent re-checking every 5 minutes would
otherwise repeat the same dozens of lines at every run, and the line that says something
new (a gateway back, another gone) would drown in them. A listing is whole, so the last
one in the log is what is deferred now; once none is, one line says so.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.engine.apply import Outcome

# `Log.emit` of the watch agent: (event, text, **JSON fields).
Emit = Callable[..., None]


def _changes(count: int) -> str:
    return "1 change" if count == 1 else f"{count} changes"


class DeferredReport:
    """The deferred changes last listed, and the listing of a run whose set differs."""

    def __init__(self) -> None:
        # (address, action, reason) of each change last listed.
        self._listed: frozenset[tuple[str, str, str]] = frozenset()

    def report(
        self, emit: Emit, run: int, deferred: list[Outcome], show: Callable[[Outcome], None]
    ) -> None:
        """List `deferred`, this run's deferred outcomes (`show` writes one as the other
        outcome lines are written), if they or their reasons differ from the last listed."""
        current = frozenset((o.address, o.action, o.message) for o in deferred)
        if current == self._listed:
            return
        self._listed = current
        if not deferred:
            emit("deferred", f"run={run} no changes deferred any more", run=run, count=0)
            return
        count = len(deferred)
        emit(
            "deferred",
            f"run={run} {_changes(count)} deferred, tried again at every run; listed again "
            "when they or their reasons change:",
            run=run,
            count=count,
        )
        for outcome in deferred:
            show(outcome)
