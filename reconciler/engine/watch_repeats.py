"""What the watch agent says about the changes that come back at every run without being
made: those it defers (their gateway or cloud did not answer, or asked to be called later:
`… ADDRESS defer deferred: REASON`), and those that failed, are blocked (a password not
given) or were skipped after a failed one (`✗`, `!` and `-` lines).

Their counts are in every run line (`deferred=N`, `failed=N blocked=N skipped=N`); the
changes themselves are listed when the set of them, or a reason, differs from the one last
listed, not at every interval run: with a fleet offline for a night, or a cloud refusing a
name for a week, an agent re-checking every 5 minutes would otherwise repeat the same
dozens of lines at every run, and the line that says something new (a gateway back,
another failure) would drown in them. A change is new or changed, and its listing is
made again, when its address, action, status or message differs: as a Kubernetes
condition, whose transition is what a log records. A listing is whole, so the last one in
the log is what is deferred (or not made) now; once none is, one line says so.

A run that cannot plan at all (a refused read token, a state directory another writer
locked) ends in an error, said the same way (`RunErrorReport`): in full, with its note,
when it differs from the error last said; every run line says `result=error`, and once a
run goes through again (it planned, and applied what it planned), one line says that the
error is gone. An error of the apply after a plan (its journal cannot be written) is no
error gone at the plan and back at the apply: it is said once as well.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.engine.apply import Outcome

# `Log.emit` of the watch agent: (event, text, **JSON fields).
Emit = Callable[..., None]

# The statuses of a change not made, in the order a listing's heading counts them.
NOT_MADE = ("failed", "blocked", "skipped")


def _changes(count: int) -> str:
    return "1 change" if count == 1 else f"{count} changes"


class _Listing:
    """The outcomes of one kind last listed, and the listing of a run whose set differs."""

    event = ""
    none_left = ""

    def __init__(self) -> None:
        # (address, action, status, reason) of each change last listed.
        self._listed: frozenset[tuple[str, str, str, str]] = frozenset()

    def heading(self, outcomes: list[Outcome]) -> str:
        raise NotImplementedError

    def fields(self, outcomes: list[Outcome]) -> dict[str, int]:
        return {"count": len(outcomes)}

    def report(
        self, emit: Emit, run: int, outcomes: list[Outcome], show: Callable[[Outcome], None]
    ) -> bool:
        """List `outcomes`, this run's (`show` writes one as the other outcome lines are
        written), if they or their reasons differ from the last listed; whether it did."""
        current = frozenset((o.address, o.action, o.status, o.message) for o in outcomes)
        if current == self._listed:
            return False
        self._listed = current
        if not outcomes:
            emit(self.event, f"run={run} {self.none_left}", run=run,
                 **self.fields(outcomes))
            return True
        emit(self.event, f"run={run} {self.heading(outcomes)}", run=run,
             **self.fields(outcomes))
        for outcome in outcomes:
            show(outcome)
        return True


class DeferredReport(_Listing):
    """The changes deferred: a `deferred` event with their `count`."""

    event = "deferred"
    none_left = "no changes deferred any more"

    def heading(self, outcomes: list[Outcome]) -> str:
        return (f"{_changes(len(outcomes))} deferred, tried again at every run; listed again "
                "when they or their reasons change:")


class NotMadeReport(_Listing):
    """The changes failed, blocked or skipped: a `failing` event with their `count`, and
    the count of each status."""

    event = "failing"
    none_left = "no changes failed, blocked or skipped any more"

    def heading(self, outcomes: list[Outcome]) -> str:
        counts = self.fields(outcomes)
        parts = ", ".join(f"{counts[status]} {status}" for status in NOT_MADE if counts[status])
        return (f"{_changes(len(outcomes))} not made ({parts}), planned again at every run; "
                "listed again when they or their reasons change:")

    def fields(self, outcomes: list[Outcome]) -> dict[str, int]:
        return {"count": len(outcomes),
                **{status: sum(o.status == status for o in outcomes) for status in NOT_MADE}}


class RunErrorReport:
    """The error that ended the last runs (one that could not plan, or an unexpected one):
    an `error` event (with the `note` on which credential to change, if any) when it
    differs from the one last said, and a `recovered` event, with the run that said it
    (`error_since`), once a run goes through again."""

    def __init__(self) -> None:
        # (type, text) of the error last said, and the run that said it.
        self._said: tuple[str, str] | None = None
        self._since = 0

    def report(self, emit: Emit, run: int, text: str, *, message: str, kind: str,
               note: str | None) -> None:
        """Say this run's error, `text` as the text log has it, unless it is the one
        last said."""
        if self._said == (kind, text):
            return
        self._said, self._since = (kind, text), run
        emit("error", f"run={run} {text}", run=run, message=message, type=kind)
        if note is not None:
            emit("note", f"run={run} note: {note}", run=run, message=note)

    def went_through(self, emit: Emit, run: int) -> None:
        """This run went to its end (it planned, and applied what it planned, or only
        planned): the error last said, if any, is gone."""
        if self._said is None:
            return
        self._said = None
        emit("recovered", f"run={run} no error any more (last said at run={self._since})",
             run=run, error_since=self._since)
