"""Apply a plan: run each change once its dependencies succeeded, all sites and all
independent devices concurrently (the HTTP limits bound the calls in flight), each change
retried whole with backoff. A failure skips only what depends on it; the report says what
was done, what failed and why, and what was skipped, blocked or deferred.

A `stop` event asks an apply to wind down cooperatively (`reconciler apply` and the watch
agent set it on SIGINT and SIGTERM): changes in flight finish, no change or retry starts
after it is set. A change is in flight once a write of it was sent; one whose writes still
wait for a slot under the HTTP limits has not started (`engine.admission`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.engine import admission
from reconciler.engine.execute import Executors
from reconciler.engine.fanout import all_of, unexpected
from reconciler.engine.retry import RetryPolicy, retrying
from reconciler.engine.state import StateNotWritten
from reconciler.errors import ProviderError, ReconcilerError
from reconciler.plan.actions import Action, Change
from reconciler.plan.planner import Plan
from reconciler.providers.transport import AskedToWait


@dataclass
class Outcome:
    address: str
    action: str
    status: str  # done | failed | skipped | blocked | deferred
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    site: str = ""
    retryable: bool = False  # for failures: whether trying again later may succeed
    # For a failure not retried because the server asked to be called again later than a
    # run waits: the seconds it asked for (Retry-After), however many. The watch agent and
    # the operator call it again no sooner, nor later than a day (`retry.honoured`).
    retry_after: float | None = None
    # The platform's error behind a failure, for what to do about it (a token refused:
    # `Settings.refused_hint`); not reported, its message is.
    error: ProviderError | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "error"}

    @property
    def config_file(self) -> str | None:
        """What became of a config file written earlier for an Enapter device (removed,
        left alone: `engine.enapter`): credentials on disk, the one local effect of a
        change someone must know of, which the progress lines of `apply` and `watch` show
        as the JSON report does."""
        said = self.detail.get("config_file")
        return said if isinstance(said, str) else None

    @property
    def note(self) -> str | None:
        """What the progress line of a change done adds: what became of a config file
        (`config_file`) or of the operator's config Secret (once its device was deleted),
        or what the platform did beyond what was planned (a claim Novacore took for a
        transfer: `engine.execute`)."""
        said = self.detail.get("config_secret") or self.detail.get("note")
        return self.config_file or (said if isinstance(said, str) else None)


def _held_outcome(change: Change, dependency: str, held: dict[str, str]) -> Outcome:
    """The outcome of `change`, not run as it goes after `dependency`, which is not run
    (blocked, or deferred): the same, recorded in `held` for the changes after it."""
    state = held[change.address] = held[dependency]
    if state == "blocked":
        return Outcome(change.address, change.action.value, "blocked",
                       f"would {change.action.value}; blocked by {dependency}",
                       site=change.site)
    return Outcome(change.address, Action.DEFER.value, "deferred",
                   f"would {change.action.value}; deferred: it goes after {dependency}, "
                   "deferred", site=change.site)


def _not_again(errors: list[ProviderError]) -> str:
    """Why a change that failed is not tried again once stopping, in words true of it: one
    whose every call was held (`not sent: ... not to be called before TIME`), its server
    having asked to wait, was never tried at all, and the apply ends before that time."""
    if all(isinstance(error.__cause__, AskedToWait) for error in errors):
        return "not tried: stopping before then"
    return "not retried: stopping"


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def by_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def ok(self) -> bool:
        return not any(o.status in ("failed", "skipped", "blocked") for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("done", "failed", "skipped", "blocked", "deferred")}
        for outcome in self.outcomes:
            out[outcome.status] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "outcomes": [o.as_dict() for o in self.outcomes],
        }


Progress = Callable[[Outcome], None]


async def apply_plan(
    plan: Plan,
    executors: Executors,
    *,
    policy: RetryPolicy | None = None,
    progress: Progress | None = None,
    seed: int | None = None,
    stop: asyncio.Event | None = None,
) -> ApplyReport:
    policy = policy or RetryPolicy()
    rng = random.Random(seed)  # noqa: S311 - jitter only
    started = time.monotonic()
    report = ApplyReport()

    def record(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        if progress is not None:
            progress(outcome)

    runnable: list[Change] = []
    # The changes not run, and why (blocked, deferred): a change that goes after one of
    # them is not run either, and is said so (`_held_outcome`), whatever its planner did
    # not see of the chain (a dependency in another site, or left out by a selection); run
    # as though that one were done, it could take away what it was to put in place first.
    held: dict[str, str] = {}
    for change in plan.changes:
        if not change.is_change:
            continue
        if change.blocked or change.action is Action.DEFER:
            held[change.address] = "blocked" if change.blocked else "deferred"
        if change.blocked:
            record(
                Outcome(
                    change.address, change.action.value, "blocked", change.message, site=change.site
                )
            )
        elif change.action is Action.DEFER:
            record(
                Outcome(
                    change.address,
                    change.action.value,
                    "deferred",
                    change.message,
                    site=change.site,
                )
            )
        else:
            runnable.append(change)
    finished: dict[str, asyncio.Future[bool]] = {
        c.address: asyncio.get_running_loop().create_future() for c in runnable
    }

    async def run(change: Change) -> None:
        ok = False
        try:
            # A change after a held one waits too, whatever its other dependencies do:
            # looked for before waiting for them, and again once they ended (one of them
            # held further up the chain), before any failure among them.
            succeeded: dict[str, bool] = {}
            held_by = next((d for d in change.depends_on if d in held), None)
            if held_by is None:
                for dependency in change.depends_on:
                    if dependency in finished:
                        succeeded[dependency] = await asyncio.shield(finished[dependency])
                held_by = next((d for d in change.depends_on if d in held), None)
            if held_by is not None:
                record(_held_outcome(change, held_by, held))
                return
            failed = next((d for d in change.depends_on if not succeeded.get(d, True)), None)
            if failed is not None:
                record(
                    Outcome(
                        change.address,
                        change.action.value,
                        "skipped",
                        f"not attempted: {failed} did not succeed",
                        site=change.site,
                    )
                )
                return
            errors: list[ProviderError] = []

            async def attempt() -> dict[str, Any]:
                # Once stopping, no attempt starts, and one under way sends no write unless
                # it sent one before the stop (admission decides when a request holds its
                # slot: it may have waited for it long after the attempt began).
                if stop is not None and stop.is_set():
                    raise admission.NotStarted
                with admission.attempt(stop):
                    return await executors.run(change)

            try:
                detail = await retrying(
                    attempt,
                    policy,
                    rng,
                    on_retry=lambda _n, error, _s: errors.append(error),
                    stop=stop,
                )
            except admission.NotStarted:
                if errors:  # a retry not made: the change failed, and may succeed later
                    status, message = "failed", f"{errors[-1]} ({_not_again(errors)})"
                else:
                    status, message = "skipped", "not started: stopping"
                record(
                    Outcome(
                        change.address,
                        change.action.value,
                        status,
                        message,
                        site=change.site,
                        retryable=bool(errors),
                    )
                )
                return
            except ProviderError as exc:
                record(
                    Outcome(
                        change.address,
                        change.action.value,
                        "failed",
                        str(exc),
                        site=change.site,
                        retryable=exc.retryable,
                        retry_after=policy.asked_to_wait(exc),
                        error=exc,
                    )
                )
                return
            except ReconcilerError as exc:
                # Raised on purpose, its message whole: a file of this host's that could not
                # be written (a state file, a config file: a full disk) or removed, which is
                # no answer of a platform, and which a later run tries again (`retryable`);
                # not this run, which would repeat the change's platform writes made before.
                # A state file's says who tries again as its reader knows it: the operator's
                # next reconcile comes by itself (the state directory knows no reader).
                said = exc.to(executors.audience) if isinstance(exc, StateNotWritten) else exc
                record(
                    Outcome(change.address, change.action.value, "failed", str(said),
                            site=change.site, retryable=exc.retryable)
                )
                return
            except Exception as exc:  # one change's failure must not stop the fleet
                # E.g. an answer without the documented shape: fail this change only.
                record(
                    Outcome(
                        change.address,
                        change.action.value,
                        "failed",
                        unexpected(exc),
                        site=change.site,
                    )
                )
                return
            ok = True
            record(
                Outcome(
                    change.address,
                    change.action.value,
                    "done",
                    change.message,
                    detail,
                    site=change.site,
                )
            )
        finally:
            if not finished[change.address].done():
                finished[change.address].set_result(ok)

    # Anything that still escapes a change (the progress output gone) cancels the others:
    # none goes on writing after the apply has ended (`engine.fanout`).
    await all_of(*(run(c) for c in runnable))
    report.seconds = time.monotonic() - started
    order = {c.address: i for i, c in enumerate(plan.changes)}
    report.outcomes.sort(key=lambda o: order.get(o.address, 0))
    return report
