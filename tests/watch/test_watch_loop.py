"""The watch agent's logic in-process, without files or simulators: durations, when runs
happen (debounce, interval, no overlap, one more run after a change during a run, stop),
what a run reports (invalid edits, errors, stop), the log formats, and the cooperative
stop of `apply_plan`. (Which files are watched: test_watch_paths.py.)"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from manual_clock import ManualClock

from reconciler.engine import durations, watch
from reconciler.engine.apply import apply_plan
from reconciler.engine.config import Settings
from reconciler.engine.retry import RetryPolicy
from reconciler.engine.state import StateDir
from reconciler.errors import (
    ConfigError,
    Diagnostic,
    ProviderAuthError,
    ProviderRejected,
    ProviderUnavailable,
)
from reconciler.model.fleet import Fleet
from reconciler.plan import document
from reconciler.plan.actions import Action, Change, Reason
from reconciler.plan.advice import Audience
from reconciler.plan.observed import Observed
from reconciler.plan.planner import Plan, PlanOptions

# The options of a plan for the CLI's user (its advice names the CLI's flags).
CLI = PlanOptions(audience=Audience.CLI)

# -- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    pytest.param("2", 2.0, id="plain-seconds"),
    pytest.param("0.5", 0.5, id="fractional-seconds"),
    pytest.param("500ms", 0.5, id="milliseconds"),
    pytest.param("30s", 30.0, id="seconds-unit"),
    pytest.param("5m", 300.0, id="minutes"),
    pytest.param("1h", 3600.0, id="hours"),
    pytest.param("1m30s", 90.0, id="compound"),
    pytest.param(" 5M ", 300.0, id="case-and-spaces"),
])
def test_durations_parse(text: str, seconds: float) -> None:
    assert durations.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "m", "-1", "1d", "5m-", "nan", "inf"])
def test_invalid_durations_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        durations.parse_duration(text)


# -- scheduling ---------------------------------------------------------------------------------


class Recorder:
    """A fake run: records triggers and overlap; can notify mid-run."""

    def __init__(self) -> None:
        self.calls: list[tuple[watch.Trigger, frozenset[str]]] = []
        self.active = 0
        self.max_active = 0
        self.during: Callable[[], None] | None = None

    async def __call__(self, trigger: watch.Trigger, files: frozenset[str]) -> None:
        self.calls.append((trigger, files))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.during is not None:
                during, self.during = self.during, None
                during()
            # A run hands the loop over, as a real one does: a second run started now
            # would overlap it.
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            self.active -= 1

    @property
    def triggers(self) -> list[str]:
        return [str(t) for t, _ in self.calls]


class Scheduling:
    """An agent serving `runs` on a clock the test moves (`ManualClock`): `later(s)` moves
    time on and returns once the agent waits again, and `stop()` ends it."""

    def __init__(self, runs: Recorder, **options: float) -> None:
        self.clock = ManualClock()
        self.agent = watch.Agent(runs, stop=asyncio.Event(), clock=self.clock, **options)
        self.task = asyncio.ensure_future(self.agent.serve())

    async def settled(self) -> None:
        await self.clock.settled(self.task)

    async def later(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.settled()

    async def notify(self, *files: str) -> None:
        self.agent.notify(files)
        await self.settled()

    async def stop(self) -> None:
        """Stop the agent without moving time: it must end at once, not after a wait."""
        self.agent.stop.set()
        await self.settled()
        assert self.task.done(), "still waiting after the stop"
        await self.task


async def test_runs_at_start_then_on_every_interval() -> None:
    runs = Recorder()
    agent = Scheduling(runs, interval=8, debounce=1)
    await agent.settled()
    assert runs.triggers == ["start"]
    await agent.later(7.5)
    assert runs.triggers == ["start"], "the interval has not passed"
    await agent.later(0.5)
    assert runs.triggers == ["start", "interval"]
    for _ in range(3):
        await agent.later(7.5)
        await agent.later(0.5)
    assert runs.triggers == ["start"] + ["interval"] * 4
    assert agent.clock.now() == 32
    await agent.stop()


async def test_a_burst_of_changes_is_one_run_after_the_quiet_period() -> None:
    runs = Recorder()
    agent = Scheduling(runs, interval=60, debounce=1)
    await agent.settled()
    for index in range(5):
        await agent.notify(f"sites/{index}.yaml")
        await agent.later(0.5)
    assert runs.triggers == ["start"], "each change starts the quiet period again"
    await agent.later(0.25)
    assert runs.triggers == ["start"], "still inside the quiet period"
    await agent.later(0.25)
    assert runs.triggers == ["start", "change"]
    assert runs.calls[1][1] == {f"sites/{i}.yaml" for i in range(5)}
    await agent.later(59.5)
    assert runs.triggers == ["start", "change"], "the interval counts from the last run"
    await agent.later(0.5)
    assert runs.triggers == ["start", "change", "interval"]
    await agent.stop()


async def test_changes_that_never_pause_still_run_after_max_wait() -> None:
    runs = Recorder()
    agent = Scheduling(runs, interval=60, debounce=1, max_wait=3)
    await agent.settled()
    for _ in range(6):
        await agent.notify("sites/a.yaml")
        assert runs.triggers == ["start"], f"no change run before max_wait, at {agent.clock.now()}"
        await agent.later(0.5)
    assert runs.triggers == ["start", "change"], "a change run once max_wait has passed"
    assert agent.clock.now() == 3
    await agent.stop()


async def test_changes_during_a_run_make_exactly_one_more_run_and_runs_never_overlap() -> None:
    runs = Recorder()

    def edit_three_times() -> None:
        for name in ("a", "b", "c"):
            agent.agent.notify({f"sites/{name}.yaml"})

    runs.during = edit_three_times
    agent = Scheduling(runs, interval=60, debounce=1)
    await agent.settled()
    assert runs.triggers == ["start"], "the changes wait for the quiet period"
    await agent.later(1)
    assert runs.triggers == ["start", "change"]
    assert runs.max_active == 1
    assert runs.calls[1][1] == {"sites/a.yaml", "sites/b.yaml", "sites/c.yaml"}
    await agent.later(30)
    assert runs.triggers == ["start", "change"], "one more run, not one per change"
    await agent.stop()


async def test_stop_while_waiting_returns_at_once() -> None:
    runs = Recorder()
    agent = Scheduling(runs, interval=60, debounce=5)
    await agent.settled()
    await agent.notify("sites/a.yaml")  # inside a long quiet period
    await agent.stop()
    assert runs.triggers == ["start"]
    assert agent.clock.now() == 0

    waiting = Scheduling(Recorder(), interval=60, debounce=5)
    await waiting.settled()  # waiting for the interval
    await waiting.stop()


async def test_a_run_held_by_a_server_waits_past_the_interval_but_a_change_does_not() -> None:
    """The start run met a server asking (Retry-After) not to be called for 100 s: the
    next drift run waits until then, not an interval; a file change still runs once its
    quiet period is over. (A hold is read after each run, in time.monotonic().)"""
    runs = Recorder()
    holds = [time.monotonic() + 100]
    agent = Scheduling(runs, interval=8, debounce=1)
    agent.agent.not_before = lambda: holds.pop(0) if holds else None
    await agent.settled()
    await agent.later(90)
    assert runs.triggers == ["start"], "held past the interval"
    await agent.later(10)
    assert runs.triggers == ["start", "interval"]
    await agent.later(8)
    assert runs.triggers == ["start", "interval", "interval"], "no hold asked since"
    await agent.stop()

    runs = Recorder()
    holds = [time.monotonic() + 100]
    agent = Scheduling(runs, interval=8, debounce=1)
    agent.agent.not_before = lambda: holds.pop(0) if holds else None
    await agent.settled()
    await agent.later(20)
    await agent.notify("sites/a.yaml")
    await agent.later(1)
    assert runs.triggers == ["start", "change"]
    await agent.stop()


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        watch.Agent(Recorder(), interval=0, debounce=1, stop=asyncio.Event())


# -- one run ------------------------------------------------------------------------------------


def change(name: str, depends_on: list[str] | None = None) -> Change:
    return Change(address=f"device/{name}[zap]", kind="Device", name=name, component="zap",
                  action=Action.CREATE, reason=Reason.NOT_FOUND, depends_on=depends_on or [])


class FakeResult:
    """A plan result with `pending` device creations, `unmanaged` objects and the changes
    of the `deferred` sites."""

    def __init__(self, pending: int, unmanaged: list[dict[str, Any]] | None = None,
                 deferred: tuple[str, ...] = ()) -> None:
        changes = [change(f"d{i}") for i in range(pending)]
        changes += [Change(address=f"site/{site}[novacore]", kind="Site", name=site,
                           component="novacore", action=Action.DEFER,
                           reason=Reason.TARGET_UNREACHABLE, site=site) for site in deferred]
        self.plan = Plan(changes, list(unmanaged or []), CLI)
        self.observed = Observed()  # everything read: no server asked to wait
        self.warnings: list[str] = []

    def document(self) -> dict[str, Any]:
        return document.to_document(self.plan)


class FakeReport:
    def __init__(self, done: int) -> None:
        self.done = done
        self.outcomes: list[Any] = []
        self.ok = True

    def counts(self) -> dict[str, int]:
        return {"done": self.done, "failed": 0, "skipped": 0, "blocked": 0, "deferred": 0}


class FakeReconciler:
    """Plans `pending` changes (or raises `error`); `plan_forever` makes planning never end
    (`planning` is set once it started)."""

    def __init__(self, pending: int = 1, error: Exception | None = None,
                 plan_forever: bool = False) -> None:
        self.pending = pending
        self.error = error
        self.plan_forever = plan_forever
        self.planning = asyncio.Event()
        self.fleets: list[Fleet] = []
        self.applied = 0
        self.remembered = 0
        self.unmanaged: list[dict[str, Any]] = []
        self.deferred: tuple[str, ...] = ()

    def __call__(self, fleet: Fleet, settings: Settings) -> FakeReconciler:
        self.fleets.append(fleet)
        return self

    async def __aenter__(self) -> FakeReconciler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def plan(self, options: PlanOptions | None = None, *,
                   paths: list[str] | None = None) -> Any:
        self.planning.set()
        if self.plan_forever:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return FakeResult(self.pending, self.unmanaged, self.deferred)

    async def apply(self, result: Any, *, progress: Any = None, stop: Any = None) -> Any:
        self.applied += 1
        return FakeReport(len(result.plan.pending))

    def remember(self, plan: Any) -> None:
        self.remembered += 1

    def clear_leftovers(self, audience: Any) -> list[str]:
        return []


def make_cycle(load: watch.DesiredLoader, fake: FakeReconciler, fmt: str = "text",
               plan_only: bool = False) -> tuple[watch.Cycle, io.StringIO]:
    out = io.StringIO()
    cycle = watch.Cycle(load, Settings(), paths=["sites"], log=watch.Log(out, fmt),
                        stop=asyncio.Event(), plan_only=plan_only, factory=fake)
    return cycle, out


INVALID = ConfigError([Diagnostic("spec.deviceType: not allowed", file="sites/d.yaml", line=12,
                                  column=15)])


async def test_an_invalid_edit_changes_nothing_and_the_last_valid_state_is_reconciled() -> None:
    good = (Fleet.of([]), CLI)
    answers: list[Any] = [good, INVALID, INVALID, INVALID, good]

    def load() -> tuple[Fleet, PlanOptions]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    fake = FakeReconciler(pending=1)
    cycle, out = make_cycle(load, fake)
    results = [(await cycle(trigger)).result for trigger in (
        watch.Trigger.START, watch.Trigger.CHANGE, watch.Trigger.INTERVAL,
        watch.Trigger.INTERVAL, watch.Trigger.CHANGE)]
    assert results == ["applied", "invalid", "applied", "applied", "applied"]
    assert fake.fleets == [good[0]] * 4, "the invalid edit was never planned"
    log = out.getvalue()
    assert log.count("error: sites/d.yaml:12:15: spec.deviceType: not allowed") == 1, \
        "reported once, not on every interval"
    assert log.count("reconciling the last valid desired state") == 2
    assert "run=5 the desired state is valid again" in log


async def test_an_error_ends_the_run_not_the_agent() -> None:
    fake = FakeReconciler(error=ProviderAuthError("token rejected (401)"))
    cycle, out = make_cycle(lambda: (Fleet.of([]), CLI), fake)
    assert (await cycle(watch.Trigger.START)).result == "error"
    fake.error = RuntimeError("a bug")
    assert (await cycle(watch.Trigger.INTERVAL)).result == "error"
    fake.error = None
    assert (await cycle(watch.Trigger.INTERVAL)).result == "applied"
    assert "run=1 error: token rejected (401)" in out.getvalue()
    assert "run=2 unexpected error: RuntimeError: a bug" in out.getvalue()


async def test_a_stop_during_planning_cancels_the_plan_and_applies_nothing() -> None:
    fake = FakeReconciler(pending=3, plan_forever=True)
    cycle, _ = make_cycle(lambda: (Fleet.of([]), CLI), fake)
    running = asyncio.ensure_future(cycle(watch.Trigger.START))
    await fake.planning.wait()
    cycle.stop.set()
    # A plan that never ends: the run ends only by being cancelled (the bound is for a bug).
    summary = await asyncio.wait_for(running, 60)
    assert summary.result == "stopped" and fake.applied == 0


async def test_a_cancel_landing_as_the_file_watcher_ends_is_not_lost(tmp_path: Path) -> None:
    """The agent stopped (`run_agent`), it waits for its file watcher (watchfiles, on a
    real directory) to end; a cancellation landing as the watcher ends (the CLI's second
    signal, its caller's shutdown) cancels the agent. Lost, the agent would return as if it
    had only stopped, and its caller go on as if never cancelled."""
    fake = FakeReconciler(pending=0)
    cycle, _ = make_cycle(lambda: (Fleet.of([]), CLI), fake)
    stop = asyncio.Event()
    before = asyncio.all_tasks()
    agent = asyncio.create_task(watch.run_agent(
        cycle, paths=[str(tmp_path)], interval=3600, debounce=0.05, stop=stop))

    def watchers() -> list[asyncio.Task[Any]]:
        return [task for task in asyncio.all_tasks() - before
                if task.get_coro().__qualname__ == "watch_files"]  # type: ignore[union-attr]

    await fake.planning.wait()  # its first run under way: the agent serves, and watches
    [watcher] = watchers()
    # The cancellation lands in the very step the watcher ends in: the agent, its run
    # over at the stop, is then waiting for the watcher (which ends a watchfiles step
    # after the stop, in its thread).
    watcher.add_done_callback(lambda _: agent.cancel())
    stop.set()
    with pytest.raises(asyncio.CancelledError):
        await agent
    assert watcher.done() and not watcher.cancelled(), "the watcher ended by the stop"


async def test_plan_only_never_applies() -> None:
    fake = FakeReconciler(pending=2)
    cycle, _ = make_cycle(lambda: (Fleet.of([]), CLI), fake, plan_only=True)
    summary = await cycle(watch.Trigger.START)
    assert (summary.result, summary.changes, fake.applied) == ("planned", 2, 0)
    assert fake.remembered == 0, "plan-only writes nothing, not even the gateway inventory"


async def test_writes_interrupted_before_the_agent_started_are_settled_by_its_first_run(
        tmp_path: Path) -> None:
    state_dir = StateDir(tmp_path)
    journal = state_dir.journal()
    journal.intent("device/d[zap]", "zap.add_device")
    journal.close()
    interrupted = state_dir.unfinished()
    cycle = watch.Cycle(lambda: (Fleet.of([]), CLI), Settings(state_dir=str(tmp_path)),
                        paths=["sites"], log=watch.Log(io.StringIO(), "text"),
                        stop=asyncio.Event(), factory=FakeReconciler(pending=1),
                        interrupted=interrupted)
    await cycle(watch.Trigger.START)
    assert interrupted and state_dir.unfinished() == []


async def test_a_run_with_nothing_to_do_still_remembers_the_gateways() -> None:
    # A deletionPolicy changed in git alone changes nothing remote (see Reconciler).
    fake = FakeReconciler(pending=0)
    cycle, _ = make_cycle(lambda: (Fleet.of([]), CLI), fake)
    summary = await cycle(watch.Trigger.START)
    assert (summary.result, fake.applied, fake.remembered) == ("no-changes", 0, 1)


async def test_json_log_lines_carry_the_summary() -> None:
    cycle, out = make_cycle(lambda: (Fleet.of([]), CLI), FakeReconciler(pending=2),
                            fmt="json")
    await cycle(watch.Trigger.CHANGE, ["sites/a.yaml"])
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["change", "run"]
    run = events[-1]
    assert {k: run[k] for k in ("run", "trigger", "changes", "done", "result", "files")} == {
        "run": 1, "trigger": "change", "changes": 2, "done": 2, "result": "applied",
        "files": ["sites/a.yaml"]}


def untimed(out: io.StringIO) -> list[str]:
    """The text log's lines without their timestamps."""
    return [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]


def undeclared(name: str, site: str | None = "solna") -> dict[str, Any]:
    entry = {"platform": "zap", "id": name,
             "description": f"device {name} on gateway zap-1 is not declared", "prunable": True}
    return entry | ({"site": site} if site else {})


async def test_unmanaged_objects_are_counted_in_every_run_and_listed_when_they_change() -> None:
    fake = FakeReconciler(pending=0)
    cycle, out = make_cycle(lambda: (Fleet.of([]), CLI), fake)
    fake.unmanaged = [undeclared("p1"), undeclared("meter")]
    first, again = [await cycle(watch.Trigger.INTERVAL) for _ in range(2)]
    fake.unmanaged = [undeclared("p1")]
    fewer = await cycle(watch.Trigger.CHANGE)
    fake.unmanaged = []
    none = await cycle(watch.Trigger.CHANGE)
    assert [(s.result, s.unmanaged) for s in (first, again, fewer, none)] == [
        ("no-changes", 2), ("no-changes", 2), ("no-changes", 1), ("no-changes", 0)]
    log = untimed(out)
    assert log[0] == ("run=1 No changes. The declared objects match the actual state; "
                      "2 objects found that nothing declares (--prune removes them):")
    assert log[1:3] == ["  ! unmanaged: device p1 on gateway zap-1 is not declared",
                        "  ! unmanaged: device meter on gateway zap-1 is not declared"]
    assert log[3].startswith("run=1 trigger=interval ") and " unmanaged=2 " in log[3]
    assert log[4].startswith("run=2 trigger=interval "), "an unchanged set is not listed again"
    assert log[5].startswith("run=3 No changes. ") and "; 1 object found" in log[5]
    assert log[6] == "  ! unmanaged: device p1 on gateway zap-1 is not declared"
    assert log[8] == "run=4 no objects found that nothing declares any more"
    assert "The actual state matches" not in out.getvalue()


async def test_unmanaged_objects_beside_changes_and_in_json() -> None:
    fake = FakeReconciler(pending=1)
    fake.unmanaged = [undeclared("p1\x1b[2J")]
    cycle, out = make_cycle(lambda: (Fleet.of([]), CLI), fake, fmt="json")
    summary = await cycle(watch.Trigger.START)
    assert (summary.result, summary.unmanaged) == ("applied", 1)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    [listed] = [e for e in events if e["event"] == "unmanaged"]
    assert (listed["run"], listed["count"], listed["objects"]) == (1, 1, fake.unmanaged)
    assert events[-1]["event"] == "run" and events[-1]["unmanaged"] == 1

    cycle, out = make_cycle(lambda: (Fleet.of([]), CLI), fake, plan_only=True)
    await cycle(watch.Trigger.START)
    text = "\n".join(untimed(out))
    assert text.startswith("run=1 1 object found that nothing declares (--prune removes "
                           "it):\n  ! unmanaged: device p1\\x1b[2J "), text
    assert text.count("! unmanaged:") == 1, "listed once, not again in the plan"


async def test_unmanaged_objects_of_a_deferred_site_are_not_listed_as_gone() -> None:
    fake = FakeReconciler(pending=0)
    cycle, out = make_cycle(lambda: (Fleet.of([]), CLI), fake)
    fake.unmanaged = [undeclared("p1"), undeclared("old-zap", site=None),
                      undeclared("x", site="lund")]
    await cycle(watch.Trigger.START)
    fake.unmanaged, fake.deferred = [undeclared("x", site="lund")], ("solna",)
    unseen = await cycle(watch.Trigger.INTERVAL)
    assert unseen.unmanaged == 3
    fake.unmanaged, fake.deferred = [undeclared("p1")], ()
    seen = await cycle(watch.Trigger.INTERVAL)
    assert seen.unmanaged == 1
    log = "\n".join(untimed(out))
    assert log.count("found that nothing declares") == 2, log
    assert "run=3 No changes. The declared objects match the actual state; 1 object" in log


def test_text_summary_line_format() -> None:
    summary = watch.RunSummary(3, watch.Trigger.CHANGE, "applied", changes=2, done=2,
                               duration=0.43)
    assert summary.text() == ("run=3 trigger=change changes=2 done=2 failed=0 deferred=0 "
                              "blocked=0 skipped=0 unmanaged=0 duration=0.4s "
                              "result=applied")
    log = io.StringIO()
    watch.Log(log, clock=lambda: "2026-01-05T09:12:03.412Z").emit("run", summary.text())
    assert log.getvalue() == f"2026-01-05T09:12:03.412Z {summary.text()}\n"


class GoneAfter(io.StringIO):
    """A stream whose reader goes away after `lines` lines; counts the writes tried."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines
        self.tried = 0

    def write(self, text: str) -> int:
        self.tried += 1
        if self.left == 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= 1
        return super().write(text)


def test_a_log_whose_reader_went_away_says_so_once_and_writes_no_more() -> None:
    stream = GoneAfter(lines=1)
    closed: list[bool] = []
    log = watch.Log(stream, on_closed=lambda why: closed.append(why == "was closed"))
    for run in range(1, 4):
        log.emit("run", f"run={run}")
    assert closed == [True] and log.closed
    assert stream.tried == 2 and stream.getvalue().endswith(" run=1\n")


def test_a_line_the_stream_cannot_encode_costs_that_line_only() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii", write_through=True)
    log = watch.Log(stream, on_closed=lambda why: pytest.fail(f"not closed: {why}"))
    log.emit("outcome", "  ✓ device/a update")
    log.emit("run", "run=1")
    assert not log.closed
    stream.seek(0)
    assert stream.read().endswith(" run=1\n")


# -- the cooperative stop of apply_plan --------------------------------------------------------


class StoppingExecutors:
    """Executors whose flaky change asks the apply to stop while it is in flight, then fails
    with a retryable error (once: tried again, it would succeed). A change in `in_flight`
    stays in flight until the stop is asked for, then succeeds: it is under way when the
    stop comes by construction, not because two sleeps happened to end in the same turn
    of the event loop (on a loaded machine one ends a turn before the other, and what
    follows the first is then rightly started before the stop)."""

    def __init__(self, stop: asyncio.Event, fail_first: set[str],
                 in_flight: frozenset[str] = frozenset()) -> None:
        self.stop = stop
        self.fail_first = fail_first
        self.in_flight = in_flight
        self.started: list[str] = []

    async def run(self, change: Change) -> dict[str, Any]:
        self.started.append(change.address)
        if change.name in self.in_flight:
            await self.stop.wait()
            return {}
        await asyncio.sleep(0)
        if change.name in self.fail_first:
            self.stop.set()
            self.fail_first.discard(change.name)
            raise ProviderUnavailable("503", address=change.address)
        return {}


class RecordingExecutors:
    """Executors that do every change at once, recording which were run; those named in
    `failing` are refused (not retried)."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.started: list[str] = []
        self.failing = failing

    async def run(self, change: Change) -> dict[str, Any]:
        self.started.append(change.address)
        if change.name in self.failing:
            raise ProviderRejected("422 refused", address=change.address)
        return {}


async def test_a_change_after_one_deferred_or_blocked_waits_down_the_chain() -> None:
    """A change whose dependency is not run (deferred, or blocked) is not run either, nor
    one after it, as though the dependency were done: each is deferred, saying which
    change it goes after; a change depending on nothing held runs."""
    deferred = change("offline")
    deferred.action = Action.DEFER
    blocked = change("no-password")
    blocked.blocked = True
    after_deferred = change("copy-off-old-zap", depends_on=[deferred.address])
    further = change("release-old-gateway", depends_on=[after_deferred.address])
    after_blocked = change("novacore", depends_on=[blocked.address])
    free = change("free")
    plan = Plan([deferred, blocked, after_deferred, further, after_blocked, free], [],
                CLI)
    executors = RecordingExecutors()
    report = await apply_plan(plan, executors)  # type: ignore[arg-type]
    status = {o.address: (o.status, o.message) for o in report.outcomes}
    assert executors.started == [free.address]
    assert status[after_deferred.address] == (
        "deferred", f"would create; deferred: it goes after {deferred.address}, deferred")
    assert status[further.address] == (
        "deferred", f"would create; deferred: it goes after {after_deferred.address}, deferred")
    assert status[after_blocked.address] == (
        "blocked", f"would create; blocked by {blocked.address}")
    assert status[free.address][0] == "done"


@pytest.mark.parametrize("failed_first", [True, False])
async def test_a_change_after_a_failed_and_a_deferred_one_is_deferred_whatever_their_order(
        failed_first: bool) -> None:
    deferred = change("offline")
    deferred.action = Action.DEFER
    fails = change("refused")
    pair = [fails.address, deferred.address]
    after = change("after", depends_on=pair if failed_first else pair[::-1])
    executors = RecordingExecutors(failing=frozenset({"refused"}))
    report = await apply_plan(Plan([deferred, fails, after], [], CLI),
                              executors)  # type: ignore[arg-type]
    status = {o.address: (o.status, o.message) for o in report.outcomes}
    assert status[fails.address][0] == "failed"
    assert status[after.address] == (
        "deferred", f"would create; deferred: it goes after {deferred.address}, deferred")
    assert after.address not in executors.started


async def test_apply_finishes_changes_in_flight_and_starts_nothing_after_stop() -> None:
    first, flaky = change("first"), change("flaky")
    dependent = change("dependent", depends_on=[first.address])
    plan = Plan([first, flaky, dependent], [], CLI)
    stop = asyncio.Event()
    executors = StoppingExecutors(stop, fail_first={"flaky"}, in_flight=frozenset({"first"}))
    report = await apply_plan(plan, executors,  # type: ignore[arg-type]
                              policy=RetryPolicy(attempts=3, base_s=0.001), stop=stop)
    status = {o.address: (o.status, o.message) for o in report.outcomes}
    assert status[first.address][0] == "done"
    assert status[dependent.address] == ("skipped", "not started: stopping")
    assert status[flaky.address][0] == "failed"
    assert status[flaky.address][1].endswith("(not retried: stopping)")
    assert executors.started.count(flaky.address) == 1
    assert dependent.address not in executors.started
