"""What the watch agent says about objects found that nothing declares (a plan's
`unmanaged` list: a Device deleted from git, a Site whose file left the tree, a gateway
claimed but declared nowhere).

Their count is in every run line (`unmanaged=N`); the objects themselves are listed when
the set differs from the one last listed, not at every interval run: an agent that
re-checks every 5 minutes would otherwise repeat the same list hundreds of times a day,
and the line that says something new would drown in it. Worded as `reconciler plan`
words it: with no change pending, the declared objects match the actual state and the
unmanaged ones are said in the same breath, never "the actual state matches".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.plan.planner import Plan
from reconciler.plan.render import objects, what_prune_does

# `Log.emit` of the watch agent: (event, text, **JSON fields).
Emit = Callable[..., None]


class UnmanagedReport:
    """The unmanaged objects last listed, and the listing of a run whose set differs."""

    def __init__(self) -> None:
        self._listed: list[dict[str, Any]] = []
        self._withheld: str | None = None

    def _current(self, plan: Plan) -> list[dict[str, Any]]:
        """This run's unmanaged objects. A deferred site could not be observed, so what was
        listed for it is not known to be gone: it is kept until the site is seen again
        (otherwise every outage of a gateway would list its objects as gone, then back)."""
        found = list(plan.unmanaged)
        deferred = plan.deferred
        if deferred:
            sites = {change.site for change in deferred}
            seen = {entry["description"] for entry in found}
            found += [
                entry
                for entry in self._listed
                if entry["description"] not in seen
                # Objects of no declared site (claimed gateways, sites of retired Sites)
                # are read from the cloud that a deferral may be waiting for.
                and (entry.get("site") in sites or "site" not in entry)
            ]
        return found

    def report(self, emit: Emit, run: int, plan: Plan, withheld: str | None = None) -> int:
        """List this run's unmanaged objects if they differ from the last listed, or what
        this run does with them does; their count. `withheld`: why this run removes none of
        them, --prune given (`watch_vanished.VanishedObjects.withheld`): said in place of
        what --prune does, which it does not do now."""
        current = self._current(plan)
        count = len(current)
        same = {e["description"] for e in current} == {e["description"] for e in self._listed}
        # What is said of none changes with nothing to say it of.
        changed = withheld != self._withheld and bool(current)
        self._withheld = withheld
        if same and not changed:
            return count
        self._listed = current
        if count == 0:
            head = "no objects found that nothing declares any more"
        else:
            hint = (f"this run removes none of them: {withheld}" if withheld is not None
                    else what_prune_does(current, "--prune"))
            head = f"{objects(count)} found that nothing declares ({hint}):"
            if not plan.has_changes:
                head = f"No changes. The declared objects match the actual state; {head}"
        lines = [f"run={run} {head}"]
        # One line each, as the cloud reported it: the log cuts a long word and then escapes
        # (`Log.emit`), so the length it says is the description's, not its escapes'.
        lines += [f"  ! unmanaged: {entry['description']}" for entry in current]
        emit("unmanaged", lines, run=run, count=count, objects=current, withheld=withheld)
        return count
