"""The watch agent: keep a fleet reconciled with YAML files on disk, as a local agent.

Owned here, for `reconciler watch` (cli/watch_cmd.py, cli/watch_run.py), which add only
argument parsing, the state lock and signal handlers:

* `Agent` decides *when* to run: once at start, once after each burst of file changes has
  gone quiet (`debounce`), and every `interval` in between to correct drift. One run at a
  time; changes made during a run cause exactly one more run after it. A stop request
  ends the loop after the run in flight.
* `Cycle` decides *what* a run does: load the desired state (an invalid edit is reported
  with file:line and changes nothing: the last valid state stays in force), observe and
  plan, then apply (or only plan), and report one `RunSummary`. A `check` of each state
  loaded may add warnings (a gateway URL override that a serial edit left unmatched). A
  run that cannot reach a gateway or a cloud defers those sites; any error ends that run
  only, never the agent. The changes deferred, and those failed, blocked or skipped, are
  listed when they or their reasons change, not at every run, and so is the error of a
  run that could not plan (`watch_repeats`). A server
  that asked to be called again later than a run waits (Retry-After), failing a change or
  a read, holds the next drift run back until then (a file change still runs at once,
  calling every other server: the runs share what each server asked, `host_waits`). On
  stop, a plan in progress (reads only) is cancelled and an apply finishes the changes
  in flight but starts no new one (`apply_plan(stop=...)`).
  Each run reads the credentials given as files again (`Settings.renewed`): a token
  rotated in its file is used from the next run on, and a refused one says so.
* `filewatch.watch_files` turns changes of the desired-state files into `Agent.notify`.
* `Log` writes every event as one line: text (`<time> run=3 trigger=change ...`) or JSON.

Nothing here prints settings: credentials never reach the log.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO

from reconciler import diagnostic_cap
from reconciler.engine.apply import Outcome
from reconciler.engine.config import Settings
from reconciler.engine.fanout import ended, unless_stopped
from reconciler.engine.filewatch import watch_files
from reconciler.engine.host_waits import HostWaits
from reconciler.engine.reconcile import PlanResult, Reconciler
from reconciler.engine.retry import asked_seconds, honoured
from reconciler.engine.state import StateDir
from reconciler.engine.unread import asked_to_wait
from reconciler.engine.watch_clock import Clock, LoopClock
from reconciler.engine.watch_repeats import (
    NOT_MADE,
    DeferredReport,
    NotMadeReport,
    RunErrorReport,
)
from reconciler.engine.watch_unmanaged import UnmanagedReport
from reconciler.errors import ConfigError, Diagnostic, ReconcilerError
from reconciler.model.fleet import Fleet
from reconciler.plan import render
from reconciler.plan.advice import Audience
from reconciler.plan.planner import Plan, PlanOptions
from reconciler.printable import echo, readable

# -- log --------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Log:
    """One line per event on `stream`, flushed at once (the agent's output is a log that
    is tailed or piped). `fmt="json"` writes `{"ts", "event", ...fields}` objects.

    Once the stream is gone (its reader exited: `| head`, a log collector stopped) or
    cannot be written (a full disk), the log is `closed`, writes nothing more and calls
    `on_closed` once, with what became of it ("was closed"): an agent nobody hears stops,
    as a command writing into a closed pipe does, rather than run on unheard. A write
    failing there must not fail, half-way, the run it reports on."""

    def __init__(
        self,
        stream: TextIO,
        fmt: str = "text",
        clock: Callable[[], str] = _now,
        on_closed: Callable[[str], None] | None = None,
    ) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {echo(fmt)}")
        self.stream = stream
        self.fmt = fmt
        self.clock = clock
        self.on_closed = on_closed
        self.closed = False

    def emit(self, event: str, text: str | Sequence[str], **fields: Any) -> None:
        """Write `text` (text format) or `fields` (JSON format) for `event`. `text` is one
        line per line it holds, or a list of lines, each one line whatever it holds: text
        from outside goes in as it is, to be cut and escaped here, in that order (escaped
        first, a word's length said would count the escapes)."""
        if self.closed:
            return
        ts = self.clock()
        if self.fmt == "json":
            line = json.dumps({"ts": ts, "event": event, **fields}, default=str)
        else:
            # An id a page long is cut, as the plan cuts it; the JSON format keeps it whole.
            parts = text.splitlines() if isinstance(text, str) else list(text)
            line = "\n".join(f"{ts} {readable(part)}" for part in parts or [""])
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self._close("was closed")
        except ValueError:
            # A stream closed in this process; anything else (a character its encoding
            # lacks) costs that line only.
            if self.stream.closed:
                self._close("was closed")
        except OSError as error:  # ENOSPC, EIO, EDQUOT: the next line would fail as well
            self._close(f"cannot be written ({error.strerror or error})")

    def _close(self, why: str) -> None:
        self.closed = True
        if self.on_closed is not None:
            self.on_closed(why)


# -- one run ------------------------------------------------------------------------------------


class Trigger(enum.StrEnum):
    START = "start"
    CHANGE = "change"
    INTERVAL = "interval"


@dataclass
class RunSummary:
    """What one run did. `result` is one of: applied (everything done, deferred sites
    aside), deferred (nothing could be done: targets unreachable), no-changes, planned
    (--plan-only with changes pending), failed (a change failed, was skipped or blocked),
    invalid (the desired state did not load), error (the run could not plan), stopped.
    `unmanaged` counts the objects found that nothing declares: no-changes with some means
    that the declared objects match, not that everything does (`watch_unmanaged`)."""

    run: int
    trigger: Trigger
    result: str
    changes: int = 0
    done: int = 0
    failed: int = 0
    deferred: int = 0
    blocked: int = 0
    skipped: int = 0
    unmanaged: int = 0
    duration: float = 0.0
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "trigger": str(self.trigger),
            "result": self.result,
            "changes": self.changes,
            "done": self.done,
            "failed": self.failed,
            "deferred": self.deferred,
            "blocked": self.blocked,
            "skipped": self.skipped,
            "unmanaged": self.unmanaged,
            "duration": round(self.duration, 3),
            "files": self.files,
        }

    def text(self) -> str:
        return (
            f"run={self.run} trigger={self.trigger} changes={self.changes} done={self.done} "
            f"failed={self.failed} deferred={self.deferred} blocked={self.blocked} "
            f"skipped={self.skipped} unmanaged={self.unmanaged} duration={self.duration:.1f}s "
            f"result={self.result}"
        )


class ReconcilerLike(Protocol):
    """What a run needs of `Reconciler` (tests substitute a fake)."""

    async def __aenter__(self) -> ReconcilerLike: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def plan(
        self, options: PlanOptions, *, paths: list[str] | None = None
    ) -> PlanResult: ...

    async def apply(
        self,
        result: PlanResult,
        *,
        progress: Callable[[Outcome], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> Any: ...

    def remember(self, plan: Plan) -> None: ...

    def clear_leftovers(self, audience: Audience) -> list[str]: ...


# Loads the desired state and the plan options for it; raises ConfigError with every problem.
DesiredLoader = Callable[[], tuple[Fleet, PlanOptions]]
# Warnings about a desired state just loaded (`warning: ...` lines, or `note: ...`), given
# at every load: it says each once, not again while the desired state does not change.
DesiredCheck = Callable[[Fleet], list[str]]
ReconcilerFactory = Callable[[Fleet, Settings], ReconcilerLike]

_MARKS = {"done": "✓", "failed": "✗", "skipped": "-", "blocked": "!", "deferred": "…"}


class Cycle:
    """One reconcile run at a time over the desired state `load` returns."""

    def __init__(
        self,
        load: DesiredLoader,
        settings: Settings,
        *,
        paths: list[str],
        log: Log,
        stop: asyncio.Event,
        plan_only: bool = False,
        offline: str = "defer",
        factory: ReconcilerFactory | None = None,
        interrupted: list[dict[str, Any]] | None = None,
        check: DesiredCheck | None = None,
        keep_lock: Callable[[], list[str]] | None = None,
        withheld: Callable[[], str | None] | None = None,
    ) -> None:
        self.load = load
        self.check = check
        # Why the plans of the desired state last loaded remove nothing, --prune given
        # (`watch_vanished.VanishedObjects.withheld`): said with the unmanaged objects.
        self.withheld = withheld
        # Before a run that may write: the state-directory lock is still held where the
        # directory is now, else taken again there (what that says is logged), or a
        # StateDirError ends the run (`StateDir.keep_locked`).
        self.keep_lock = keep_lock
        # Journal intents left unfinished before the agent started (StateDir.unfinished).
        self.interrupted = list(interrupted or [])
        self.settings = settings
        self.paths = paths
        self.log = log
        self.stop = stop
        self.plan_only = plan_only
        self.offline = offline
        # The servers that asked, by Retry-After, to be called later: kept across runs, so
        # a run (a file change's) does not call one sooner than it asked, and the next drift
        # run, held until then, agrees with it (`host_waits`).
        self.waits = HostWaits()
        self.factory = factory or functools.partial(Reconciler, waits=self.waits)
        self.runs = 0
        self.desired: tuple[Fleet, PlanOptions] | None = None
        self.invalid_since: int | None = None  # run that first found the files invalid
        self._last_plan_text = ""
        # The plan's warnings last said: said again only once they change, as the plan is.
        self._last_warnings: list[str] = []
        self._unmanaged = UnmanagedReport()
        self._deferred = DeferredReport()
        self._not_made = NotMadeReport()
        # The error that ended the last runs: said when it changes, as the listings are.
        self._error = RunErrorReport()
        # When the next run may start (time.monotonic()): a change failed because its
        # server asked to be called again later than a run waits (Retry-After), and the
        # next run would call it again sooner, against its word (`Agent`).
        self.not_before: float | None = None

    async def __call__(self, trigger: Trigger, files: Iterable[str] = ()) -> RunSummary:
        self.runs += 1
        self.not_before = None
        summary = RunSummary(self.runs, trigger, "error", files=sorted(files))
        started = time.monotonic()
        try:
            await self._run(summary)
        except asyncio.CancelledError:
            raise
        except ReconcilerError as error:  # e.g. credentials rejected: this run only
            self._error.report(
                self.log.emit, summary.run, f"error: {error}", message=str(error),
                kind=type(error).__name__,
                note=self.settings.refused_hint(error, when="at the next run"))
        except Exception as error:  # an agent outlives the failure of one run
            kind = type(error).__name__
            self._error.report(self.log.emit, summary.run, f"unexpected error: {kind}: {error}",
                               message=str(error), kind=kind, note=None)
        summary.duration = time.monotonic() - started
        self.log.emit("run", summary.text(), **summary.as_dict())
        return summary

    def _load(self, summary: RunSummary) -> tuple[Fleet, PlanOptions] | None:
        """The desired state to reconcile in this run, or None when there is none."""
        try:
            self.desired = self.load()
        except ConfigError as error:
            first = self.invalid_since is None
            if first or summary.trigger is not Trigger.INTERVAL:
                self.invalid_since = self.invalid_since or summary.run
                self._diagnostics(summary.run, error.diagnostics, error.omitted)
            if self.desired is None or summary.trigger is not Trigger.INTERVAL:
                # An edit that does not load changes nothing, not even a partial fleet.
                summary.result = "invalid"
                return None
            self.log.emit(
                "stale",
                f"run={summary.run} the files are invalid since run="
                f"{self.invalid_since}; reconciling the last valid desired state",
                run=summary.run,
                invalid_since=self.invalid_since,
            )
            return self.desired
        if self.invalid_since is not None:
            self.log.emit(
                "valid", f"run={summary.run} the desired state is valid again", run=summary.run
            )
            self.invalid_since = None
        for line in self.check(self.desired[0]) if self.check is not None else []:
            event = "note" if line.startswith("note: ") else "warning"
            self.log.emit(
                event,
                f"run={summary.run} {line}",
                run=summary.run,
                message=line.removeprefix(f"{event}: "),
            )
        return self.desired

    def _diagnostics(
        self, run: int, diagnostics: list[Diagnostic], omitted: dict[str | None, int]
    ) -> None:
        count = diagnostic_cap.total(diagnostics, omitted)
        self.log.emit(
            "invalid",
            f"run={run} invalid desired state ({diagnostic_cap.summary(diagnostics, omitted)}"
            "); nothing changed, the last valid state stays in force",
            run=run,
            problems=count,
        )
        for diagnostic in diagnostics:
            self.log.emit("diagnostic", f"  error: {diagnostic}", run=run, **diagnostic.as_dict())
        omissions = diagnostic_cap.omissions(omitted)
        for omission in omissions:
            self.log.emit("omitted", f"  {omission.text()}", run=run, file=omission.file,
                          files=omission.files, problems=omission.problems)
        if omissions:
            rule = diagnostic_cap.RULE
            self.log.emit("note", f"  {rule}", run=run, message=rule.removeprefix("note: "))

    async def _run(self, summary: RunSummary) -> None:
        if summary.files:
            self.log.emit(
                "change",
                f"run={summary.run} changed: {', '.join(summary.files)}",
                run=summary.run,
                files=summary.files,
            )
        desired = self._load(summary)
        if desired is None:
            return
        fleet, options = desired
        if not self.plan_only and self.keep_lock is not None:
            for line in self.keep_lock():
                self.log.emit("note", f"run={summary.run} note: {line}", run=summary.run,
                              message=line)
        # A token file that cannot be read now ends this run only (ConfigError, naming it).
        settings = self.settings.renewed()
        async with self.factory(fleet, settings) as reconciler:
            if not self.plan_only:
                # As `apply` says each: a file that held a device's credentials is gone.
                for line in reconciler.clear_leftovers(options.audience):
                    self.log.emit("note", f"run={summary.run} note: {line}", run=summary.run,
                                  message=line)
            result = await self._plan(reconciler, options)
            if result is None:
                summary.result = "stopped"
                return
            if result.warnings != self._last_warnings:
                for line in result.warnings:
                    self.log.emit("warning", f"run={summary.run} warning: {line}",
                                  run=summary.run, message=line)
                self._last_warnings = result.warnings
            plan = result.plan
            waits = [asked_to_wait(result.observed)]
            summary.changes = len(plan.pending)
            summary.deferred = len(plan.deferred)
            summary.blocked = len(plan.blocked)
            summary.unmanaged = self._unmanaged.report(
                self.log.emit, summary.run, plan,
                withheld=self.withheld() if self.withheld is not None else None,
            )
            if self.plan_only or not plan.has_changes:
                if not self.plan_only:
                    reconciler.remember(plan)
                    self._settle()
                    # Nothing to do is nothing deferred nor failing: a listing before
                    # it is over.
                    for listing in (self._deferred, self._not_made):
                        listing.report(self.log.emit, summary.run, [],
                                       self._progress(summary.run))
                self._show_plan(summary.run, result)
                summary.result = "planned" if plan.has_changes else "no-changes"
                self._hold_for_retry_after(summary.run, waits)
                self._error.went_through(self.log.emit, summary.run)
                return
            held: list[Outcome] = []
            try:
                report = await reconciler.apply(
                    result, progress=self._progress(summary.run, held), stop=self.stop
                )
            finally:  # what an apply cut short by an error did is said all the same
                listed = self._list_held(summary.run, held)
            self._settle()
        failed = [o for o in report.outcomes if o.status == "failed"]
        # A write refused for its token (a run's reads went through, then the token
        # expired): which setting to change, as a refused read says; with the failures'
        # listing, so not again while they stay the same.
        hints = (self.settings.refused_hint(o.error, when="at the next run") for o in failed)
        for hint in dict.fromkeys(h for h in hints if h is not None) if listed else ():
            self.log.emit("note", f"run={summary.run} note: {hint}", run=summary.run,
                          message=hint)
        waits += [o.retry_after for o in failed]
        self._hold_for_retry_after(summary.run, waits)
        counts = report.counts()
        summary.done, summary.failed = counts["done"], counts["failed"]
        summary.skipped, summary.blocked = counts["skipped"], counts["blocked"]
        summary.deferred = counts["deferred"]
        if self.stop.is_set() and not report.ok:
            summary.result = "stopped"
        elif not report.ok or (self.offline == "fail" and summary.deferred):
            summary.result = "failed"
        elif summary.done == 0 and summary.deferred:
            summary.result = "deferred"
        else:
            summary.result = "applied"
        # Only now: an apply (its journal, its record) fails after a plan made, and an
        # error said gone at the plan would be said again at every run.
        self._error.went_through(self.log.emit, summary.run)

    def _list_held(self, run: int, held: list[Outcome]) -> bool:
        """List the changes of this run not done (deferred; failed, blocked or skipped)
        where they differ from those last listed (`watch_repeats`); whether the failed,
        blocked or skipped ones were."""
        show = self._progress(run)
        self._deferred.report(self.log.emit, run, [o for o in held if o.status == "deferred"],
                              show)
        return self._not_made.report(self.log.emit, run,
                                     [o for o in held if o.status in NOT_MADE], show)

    def _hold_for_retry_after(self, run: int, waits: list[float | None]) -> None:
        """Hold the next run back until the longest Retry-After that a server which was
        not read, or which failed a change, asked for (a day at most); and say when that
        run starts."""
        asked = [w for w in waits if w is not None]
        if not asked:
            self.not_before = None
            return
        longest = max(asked)
        wait = honoured(longest)
        self.not_before = time.monotonic() + wait
        at = datetime.now(UTC) + timedelta(seconds=wait)
        when = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        # What the server asked, as the failure's "(not retried ...)" says it, and how long
        # the agent waits when that is less.
        capped = "; waited for a day at most" if wait < longest else ""
        text = (f"run={run} the next drift run starts at {when}, not before: a server asked "
                f"to be called again in {asked_seconds(longest)} (Retry-After{capped}); a "
                "file change still runs at once")
        # An integer while a float holds it exactly; beyond, the float (1e+307), not its
        # 300 digits.
        said: float = math.ceil(longest) if longest < 2**53 else longest
        self.log.emit("held", text, run=run, next_run=when, retry_after=said)

    def _settle(self) -> None:
        """After a run that observed and applied: the writes interrupted before the agent
        started are not reported again, and a long journal starts afresh."""
        StateDir(Path(self.settings.state_dir)).settle(self.interrupted)
        self.interrupted = []

    async def _plan(self, reconciler: ReconcilerLike, options: PlanOptions) -> PlanResult | None:
        """Observe and plan; None when a stop request came first (a plan only reads, so
        it is safe to cancel)."""
        if self.stop.is_set():
            return None
        return await unless_stopped(reconciler.plan(options, paths=self.paths), self.stop)

    def _show_plan(self, run: int, result: PlanResult) -> None:
        """Print the plan when it has changes and differs from the last one printed."""
        doc = result.document()
        # Without the unmanaged objects: they are listed apart, when they change.
        text = render.render_text(doc | {"unmanaged": []}) if result.plan.has_changes else ""
        if text == self._last_plan_text:
            return
        self._last_plan_text = text
        if not text:
            return
        if self.log.fmt == "json":
            for entry in doc["changes"]:
                if entry["actions"] != ["no-op"]:
                    self.log.emit(
                        "planned",
                        "",
                        run=run,
                        address=entry["address"],
                        actions=entry["actions"],
                        reason=entry.get("reason"),
                        message=entry.get("message", ""),
                        # As the text plan's [BLOCKED]: a blocked change is not made until
                        # its cause (the message) is fixed, which its reason alone hides.
                        blocked=entry["blocked"],
                        # As the JSON plan's: what a deferred change does once its target
                        # answers (null for any other).
                        deferred_actions=entry["deferred_actions"],
                    )
        else:
            self.log.emit("plan", text.rstrip("\n"))

    def _progress(
        self, run: int, held: list[Outcome] | None = None
    ) -> Callable[[Outcome], None]:
        """Log each outcome as it comes; those of changes not done go to `held` instead,
        said once the run knows them all, if they differ from the last said
        (`watch_repeats`)."""

        def show(outcome: Outcome) -> None:
            if held is not None and outcome.status != "done":
                held.append(outcome)
                return
            line = f"  {_MARKS.get(outcome.status, '?')} {outcome.address} {outcome.action}"
            if outcome.status != "done":
                line += f" {outcome.status}: {outcome.message}"
            elif outcome.note is not None:
                line += f": {outcome.note}"  # as `reconciler apply` shows it
            said = {} if outcome.config_file is None else {"config_file": outcome.config_file}
            self.log.emit(
                "outcome",
                line,
                run=run,
                address=outcome.address,
                action=outcome.action,
                status=outcome.status,
                message=outcome.message,
                **said,
            )

        return show


# -- when to run --------------------------------------------------------------------------------

Runner = Callable[[Trigger, frozenset[str]], Awaitable[object]]


class Agent:
    """Schedules runs: at start, after changes went quiet, and every `interval`.

    Runs are awaited one after the other, so they never overlap. `notify()` during a run
    only sets a flag, so any number of changes during a run make one more run after it.
    A burst of changes is one run once no change came for `debounce` seconds (capped at
    `max_wait`, so a file rewritten every half second still gets reconciled).
    """

    def __init__(
        self,
        run: Runner,
        *,
        interval: float,
        debounce: float,
        stop: asyncio.Event,
        max_wait: float | None = None,
        not_before: Callable[[], float | None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("the interval must be longer than zero")
        self.run = run
        self.interval = interval
        self.debounce = debounce
        self.max_wait = max_wait if max_wait is not None else max(10 * debounce, 10.0)
        self.stop = stop
        # When the next run may start at the earliest (time.monotonic(), as the loop's
        # clock): the run's servers asked not to be called before then (`Cycle`).
        self.not_before = not_before or (lambda: None)
        # Real time but in tests, which move time themselves (`watch_clock`).
        self.clock: Clock = clock or LoopClock()
        self._changed = asyncio.Event()
        self._files: set[str] = set()

    def notify(self, files: Iterable[str] = ()) -> None:
        """A desired-state file changed (called by the file watcher)."""
        self._files.update(files)
        self._changed.set()

    async def serve(self) -> None:
        """Run until `stop` is set; the run in flight then finishes (see `Cycle`)."""
        trigger: Trigger | None = Trigger.START
        while trigger is not None and not self.stop.is_set():
            files, self._files = frozenset(self._files), set()
            await self.run(trigger, files if trigger is Trigger.CHANGE else frozenset())
            trigger = await self._next_trigger()

    async def _next_trigger(self) -> Trigger | None:
        # Only the runs the agent starts by itself wait (`_next_wanted`): an edit someone
        # made is applied at once, its run calling every server but the one that asked to
        # wait (`Cycle.waits`). Holding it too would let one cloud's quota, spent for the
        # day, stop every gateway's changes for as long.
        return await self._next_wanted()

    async def _next_wanted(self) -> Trigger | None:
        clock = self.clock
        if not self._changed.is_set():
            deadline = clock.now() + self.interval
            held = self.not_before()
            if held is not None:
                deadline = max(deadline, clock.now() + held - time.monotonic())
            while not (self._changed.is_set() or self.stop.is_set()):
                remaining = deadline - clock.now()
                if remaining <= 0:
                    return Trigger.INTERVAL
                await clock.wait((self._changed, self.stop), remaining)
        if self.stop.is_set():
            return None
        # Quiet period: wait until no change came for `debounce` seconds.
        deadline = clock.now() + self.max_wait
        while True:
            self._changed.clear()
            quiet = min(self.debounce, max(0.0, deadline - clock.now()))
            if quiet > 0:
                await clock.wait((self._changed, self.stop), quiet)
            if self.stop.is_set():
                return None
            if not self._changed.is_set() or clock.now() >= deadline:
                return Trigger.CHANGE


# -- the whole agent ------------------------------------------------------------------------------


async def run_agent(
    cycle: Cycle, *, paths: list[str], interval: float, debounce: float, stop: asyncio.Event
) -> None:
    """Watch `paths` and run `cycle` as `Agent` schedules it until `stop` is set."""
    agent = Agent(cycle, interval=interval, debounce=debounce, stop=stop,
                  not_before=lambda: cycle.not_before)

    def failed(text: str) -> None:
        cycle.log.emit("error", text, message=text)

    watcher = asyncio.ensure_future(watch_files(paths, agent.notify, stop, failed))
    try:
        await agent.serve()
    finally:
        stop.set()  # ends the file watch as well
        try:
            # Not `asyncio.wait_for`: on Python 3.11 a cancellation that lands as the
            # watcher ends is lost there (the wait returns the watcher's end, and the
            # cancelled agent returns as if it had only stopped).
            await asyncio.wait({watcher}, timeout=2.0)
        finally:
            if not watcher.done():
                watcher.cancel()
            await ended(watcher)
