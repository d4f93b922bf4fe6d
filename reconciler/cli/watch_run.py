"""What `reconciler watch` does once `watch_cmd` has parsed its arguments.

This module is glue: start-up checks, the state lock and signal handlers. The
loop itself (scheduling, debouncing, one run) lives in `reconciler.engine.watch`.

The state-directory lock is held for the agent's whole life, not per run: a second agent
or a manual `reconciler apply` on the same state directory is refused with the holder's
name for as long as the agent runs, so two writers never take turns on the same fleet.
`--plan-only` writes nothing and takes no lock (like `reconciler plan`).

Loaded only when the command runs (`watch_cmd.run`), and the engine with it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.cli import common, exit_codes, problem_lines
from reconciler.engine import durations, interrupted, watch, watch_emptied, watch_vanished
from reconciler.engine.config import Settings
from reconciler.engine.state import StateDir, StateDirError, command_line
from reconciler.errors import ConfigError, Diagnostic
from reconciler.model.fleet import Fleet
from reconciler.plan.planner import PlanOptions
from reconciler.printable import echo
from reconciler.sources import loader


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return exit_codes.EXIT_ERROR


def _unfinished(state: StateDir, log: watch.Log, plan_only: bool) -> list[dict[str, Any]]:
    """The writes an earlier run left unfinished, each named in the log (as `apply` does).
    With --plan-only no lock is taken: while another process holds it, the journal's open
    intents may be its writes in flight, so that process is named instead."""
    found = state.unfinished()
    if not found:
        return found
    holder = state.holder() if plan_only else None
    if holder is not None:
        log.emit(
            "note", interrupted.held_elsewhere(holder), locked_by=holder, unfinished=len(found)
        )
        return []
    log.emit(
        "note",
        "\n".join([interrupted.heading(found, plan_only=plan_only), *interrupted.lines(found)]),
        unfinished=len(found),
        writes=interrupted.writes(found),
    )
    return found


def _durations(args: argparse.Namespace) -> tuple[float, float]:
    """--interval and --debounce in seconds; ConfigError ("arguments") naming each option
    that is no duration, or an --interval of zero, as the other commands say a misused
    option."""
    problems: list[Diagnostic] = []
    seconds: dict[str, float] = {}
    for option, text in (("--interval", args.interval), ("--debounce", args.debounce)):
        try:
            seconds[option] = durations.parse_duration(text)
        except ValueError as error:
            problems.append(Diagnostic(str(error), path=option))
            continue
        if option == "--interval" and seconds[option] == 0:  # a debounce of 0 waits for none
            problems.append(
                Diagnostic(f"must be longer than zero (e.g. 30s or 5m), not {echo(text)}",
                           path=option)
            )
    if problems:
        raise ConfigError(problems, subject="arguments")
    return seconds["--interval"], seconds["--debounce"]


def run(args: argparse.Namespace) -> int:
    try:
        interval, debounce = _durations(args)
        missing = [p for p in args.paths if not Path(p).exists()]
        if missing:
            # As the loader says it for `plan` and `apply`.
            raise ConfigError(
                [Diagnostic("no such file or directory", file=p) for p in missing]
            )
    except ConfigError as error:
        problem_lines.print_diagnostics(error)
        return exit_codes.EXIT_ERROR

    emptied = watch_emptied.EmptiedFiles()
    # Only --prune deletes what no file declares any more: without it, nothing is held.
    vanished = (watch_vanished.VanishedObjects(interval, durations.format_duration(interval))
                if args.prune else None)

    withheld = vanished.withheld if vanished is not None else None

    def load() -> tuple[Fleet, PlanOptions]:
        result = loader.load_paths(args.paths)
        fleet = result.fleet()
        held = emptied.check(result)
        if held:
            raise ConfigError(held)
        if vanished is None:
            return fleet, common.plan_options(args, fleet)
        desired = vanished.resources(result)
        fleet = Fleet.of(desired.resources)
        options = common.plan_options(args, fleet)
        # An object kept but left out (it no longer fits the files) is not deleted.
        return fleet, options if desired.prune else dataclasses.replace(options, prune=False)

    try:
        settings = common.settings(args)
        urls = _UnknownGatewayUrls(settings, args)

        def check(fleet: Fleet) -> list[str]:
            return urls(fleet) + (vanished.said() if vanished is not None else [])

        # fail fast: an agent with nothing valid to reconcile is a start-up error
        for line in check(load()[0]):
            print(line, file=sys.stderr)
    except ConfigError as error:
        problem_lines.print_diagnostics(error)
        return exit_codes.EXIT_ERROR
    if args.plan_only:
        # As `plan` says it: the plans are made all the same, without what it remembers.
        common.warn_unusable_state_dir(settings, plans="the agent's plans do")
        return asyncio.run(_serve(args, settings, load, check, interval, debounce,
                                  withheld=withheld))
    state = StateDir(Path(settings.state_dir))
    command = command_line()

    def keep_lock() -> list[str]:
        cleared = state.keep_locked(command)
        if cleared is None:
            return []
        return [f"the state directory {settings.state_dir} was removed or replaced while the "
                "agent ran: its lock is taken again there; what it remembers of earlier "
                "applies is what the directory holds now", *cleared]

    try:
        with state.lock(command) as cleared:
            return asyncio.run(
                _serve(args, settings, load, check, interval, debounce, cleared, keep_lock,
                       withheld)
            )
    except StateDirError as error:
        return _fail(str(error))


class _UnknownGatewayUrls:
    """The warnings about gateway URL overrides that no declared gateway has (a mistyped
    serial leaves that gateway reached at its YAML url): at start, and after an edit that
    changes a serial so that an override no longer matches. Each mismatch is said once,
    not again at every run of the same desired state; fixed and then mistyped again, it
    is new again."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.warned: set[str] = set()

    def __call__(self, fleet: Fleet) -> list[str]:
        lines = common.gateway_url_warnings(self.settings, fleet, self.args, skip=self.warned)
        self.warned = set(common.unknown_gateway_serials(self.settings, fleet))
        return lines


async def _serve(
    args: argparse.Namespace,
    settings: Settings,
    load: watch.DesiredLoader,
    check: watch.DesiredCheck,
    interval: float,
    debounce: float,
    cleared: list[str] | None = None,
    keep_lock: Callable[[], list[str]] | None = None,
    withheld: Callable[[], str | None] | None = None,
) -> int:
    """The agent until it is stopped; `cleared`: what taking the lock said of the
    temporary state files that killed runs left (`StateDir.lock`), logged once started;
    `keep_lock`: before each run that may write, the lock held where the state directory
    is now (`StateDir.keep_locked`); `withheld`: why the plans of the desired state last
    loaded remove nothing, --prune given (`watch_vanished`)."""
    stop = asyncio.Event()

    def stdout_gone(why: str) -> None:
        _say(f"error: stdout {why}: stopping; the changes in flight finish, nothing new "
             "starts")
        stop.set()

    log = watch.Log(sys.stdout, args.log_format, on_closed=stdout_gone)
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        if not stop.is_set():
            log.emit(
                "stopping",
                f"{signum.name}: stopping; the changes in flight finish, nothing new starts",
                signal=signum.name,
            )
        stop.set()

    for signum in common.STOP_SIGNALS:
        loop.add_signal_handler(signum, request_stop, signum)
    mode = "plan-only" if args.plan_only else "apply"
    log.emit(
        "start",
        f"watching {' '.join(args.paths)} (mode {mode}, interval "
        f"{durations.format_duration(interval)}, debounce {durations.format_duration(debounce)}, "
        f"state {settings.state_dir})",
        paths=args.paths,
        mode=mode,
        interval=interval,
        debounce=debounce,
        state_dir=settings.state_dir,
    )
    for line in cleared or []:
        log.emit("note", f"note: {line}", message=line)
    unfinished = _unfinished(StateDir(Path(settings.state_dir)), log, args.plan_only)
    cycle = watch.Cycle(
        load,
        settings,
        paths=[str(Path(p)) for p in args.paths],
        log=log,
        stop=stop,
        plan_only=args.plan_only,
        offline=args.offline,
        interrupted=unfinished,
        check=check,
        keep_lock=keep_lock,
        withheld=withheld,
    )
    try:
        await watch.run_agent(
            cycle, paths=args.paths, interval=interval, debounce=debounce, stop=stop
        )
    finally:
        for signum in common.STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    log.emit(
        "stopped",
        f"stopped after {cycle.runs} run{'s' if cycle.runs != 1 else ''}",
        runs=cycle.runs,
    )
    if log.closed:
        _discard_stdout()
        return exit_codes.EXIT_ERROR
    return exit_codes.EXIT_OK


def _say(message: str) -> None:
    """`message` on stderr, unless stderr is gone too."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


def _discard_stdout() -> None:
    """Point stdout at /dev/null: what it still buffers would otherwise fail again when
    Python flushes it at exit, printing "Exception ignored ... BrokenPipeError"."""
    with contextlib.suppress(OSError, ValueError):  # not a file (a test's StringIO)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
