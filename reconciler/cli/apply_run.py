"""What `reconciler apply` does once `apply_cmd` has parsed its arguments: plan (or read a
saved plan and check it is current), confirm, and apply under the state directory's lock.

Loaded only when the command runs (`apply_cmd.run`), and the engine with it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.cli import common, exit_codes, problem_lines, saved_paths
from reconciler.engine import interrupted, plan_origin
from reconciler.engine.apply import ApplyReport, Outcome
from reconciler.engine.config import Settings
from reconciler.engine.reconcile import NotRecorded, PlanResult, Reconciler, desired_fingerprint
from reconciler.engine.state import StateDir, StateDirError, command_line
from reconciler.engine.unread import unread_sources
from reconciler.errors import ConfigError, Diagnostic, PlanError, ProviderError
from reconciler.plan import document, render, targeting
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.printable import echo, printable, readable
from reconciler.sources import bounded, json_text, utf8

_MARKS = {"done": "✓", "failed": "✗", "skipped": "-", "blocked": "!", "deferred": "…"}


def _plan_json(path: str, data: bytes) -> Any:
    """The JSON a saved plan holds, or a PlanError located at file:line:column: a plan
    copied in part (a CI artifact cut short, a paste) fails where its text stops."""
    text, problem = utf8.decode(data, path)
    if problem is not None:
        raise PlanError(f"{printable(problem.location())}: not a saved plan: {problem.message}")
    try:
        return json_text.loads(text)
    except json.JSONDecodeError as exc:
        line, column = utf8.position(text, exc.pos)
        cut = " (the file ends there: was it cut short?)" if exc.pos >= len(text.rstrip()) else ""
        raise PlanError(
            f"{printable(path)}:{line}:{column}: not a saved plan: not valid JSON "
            f"({exc.msg}){cut}; make the plan again with `reconciler plan --out`"
        ) from None
    except json_text.TooComplex as exc:  # no plan written by `plan --out` holds either
        raise PlanError(
            f"{printable(path)}: not a saved plan: it holds {exc}; make the plan again with "
            "`reconciler plan --out`"
        ) from None


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except OSError:  # a name too long, a directory not searchable: the loader says which
        return False


def _saved_plan(paths: list[str]) -> dict[str, Any] | None:
    if len(paths) != 1 or not paths[0].endswith(".json") or not _is_file(paths[0]):
        return None
    try:
        data = bounded.read_at_most(paths[0], document.MAX_PLAN_BYTES, "a saved plan")
    except bounded.FileTooLarge as exc:
        raise PlanError(f"{exc}, and is not read: {document.SPLIT_ADVICE}") from None
    except OSError as exc:
        raise PlanError(f"cannot read the saved plan {paths[0]}: {exc.strerror}") from None
    doc = _plan_json(paths[0], data)
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise PlanError(f"{paths[0]} is not a saved plan (no format_version)")
    if not document.is_compatible(doc):
        raise PlanError(
            f"{paths[0]} has plan format {echo(doc['format_version'])}; this reconciler "
            f"reads {document.FORMAT_VERSION}: make the plan again with `reconciler plan --out`"
        )
    problem = _shape_problem(doc)
    if problem:
        raise PlanError(f"{paths[0]} is not a valid saved plan: {problem}")
    return doc


def _shape_problem(doc: dict[str, Any]) -> str | None:
    """What of a saved plan's inputs and options is not as `plan --out` writes them: a
    file edited by hand or cut short is refused, not half-used (a string of paths would
    be read one character, one directory, at a time)."""
    inputs, options = doc.get("inputs"), doc.get("options")
    if not isinstance(inputs, dict):
        return "inputs must be an object (paths, desired_sha256, observed_sha256)"
    paths = inputs.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        return "inputs.paths must be a list of paths"
    for key in ("desired_sha256", "observed_sha256"):
        if not isinstance(inputs.get(key), str):
            return f"inputs.{key} must be a string (the fingerprint `plan --out` wrote)"
    directory = inputs.get("working_directory")
    if directory is not None and not (isinstance(directory, str) and Path(directory).is_absolute()):
        return "inputs.working_directory must be an absolute path (where `plan --out` ran)"
    for key, what in (("state_directory", "state"), ("secrets_directory", "secrets")):
        value = inputs.get(key)
        if value is not None and not (isinstance(value, str) and Path(value).is_absolute()):
            return f"inputs.{key} must be an absolute path (the {what} directory it used)"
    if not isinstance(options, dict):
        return "options must be an object (prune, targets, excludes)"
    if not isinstance(options.get("prune", False), bool):
        return "options.prune must be true or false"
    for key in ("targets", "excludes"):
        value = options.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"options.{key} must be a list of addresses or selectors"
    # The changes are compared with the ones its inputs give, and their addresses listed
    # when the plan is stale: each an object with its address.
    changes = doc.get("changes")
    if not isinstance(changes, list) or not all(
        isinstance(change, dict) and isinstance(change.get("address"), str) for change in changes
    ):
        return "changes must be a list of objects, each with its address (a string)"
    return None


def _progress(stream: Any) -> Any:
    started = time.monotonic()

    def show(outcome: Outcome) -> None:
        if outcome.status in ("blocked", "deferred"):
            return
        elapsed = time.monotonic() - started
        line = f"  {_MARKS[outcome.status]} {outcome.address} {outcome.action}"
        if outcome.status != "done":
            line += f" {outcome.status}: {outcome.message}"
        elif outcome.note is not None:
            line += f": {outcome.note}"
        # An id a page long in a message is cut, as the plan cuts it (`readable`).
        print(f"[{elapsed:6.1f}s]{readable(line)}", file=stream, flush=True)

    return show


def print_report(report: ApplyReport, stream: Any, settings: Settings | None = None) -> None:
    counts = report.counts()
    for status in ("failed", "skipped", "blocked"):
        for outcome in report.by_status(status):
            print(readable(f"{status}: {outcome.address}: {outcome.message}"), file=stream)
    # A write refused for its token (a release past the token's 24 h): which setting to
    # change, as a refused read says.
    failed = (o.error for o in report.by_status("failed"))
    for note in common.refused_notes(settings, failed) if settings else []:
        print(readable(note), file=stream)
    # Deferred changes share their site's reason (its gateway or cloud did not answer): one
    # line per site, not one per change of it.
    for first, more in common.first_of_each_site(report.by_status("deferred")):
        also = f" ({more} more of site {first.site})" if more else ""
        print(readable(f"deferred: {first.address}: {first.message}{also}"), file=stream)
    if not report.ok:
        verdict = "finished with errors"
    elif counts["deferred"]:
        # Not "complete": what could not be read waits for a run that can read it.
        verdict = "finished; the deferred changes wait for a run that can reach them"
    else:
        verdict = "complete"
    print(
        f"Apply {verdict}: {counts['done']} done, "
        f"{counts['failed']} failed, {counts['skipped']} skipped, {counts['blocked']} blocked, "
        f"{counts['deferred']} deferred ({report.seconds:.1f}s).",
        file=stream,
    )


# How many unread sources a message lists: enough to see which, not a thousand lines.
_LISTED = 10


def _cannot_check(plan_file: str, unread: list[str]) -> None:
    """Why a saved plan is not applied when part of the actual state could not be read: it
    cannot be told from a plan made against another state, so nothing is applied; the same
    file applies once everything answers, unless the actual state did change meanwhile."""
    print(
        "error: the saved plan cannot be checked against the actual state: what follows "
        "could not be read, so whether anything changed since the plan was made is not "
        "known; nothing was applied",
        file=sys.stderr,
    )
    for line in unread[:_LISTED]:
        print(printable(f"  {line}"), file=sys.stderr)
    if len(unread) > _LISTED:
        print(f"  and {len(unread) - _LISTED} more", file=sys.stderr)
    print(
        printable(
            f"Apply {plan_file} again once they answer: it is applied if nothing changed "
            "meanwhile, and refused if something did."
        ),
        file=sys.stderr,
    )


def _stale(plan_file: str, saved: dict[str, Any], result: PlanResult) -> str:
    """Why a saved plan whose actual state changed is not applied, and, when the changes
    it lists are no longer to be made (the state matches their "after"), that it may have
    been applied already: a saved plan applies once, and the second `apply plan.json` is
    the common way to get here."""
    listed = {
        entry.get("address")
        for entry in saved.get("changes", [])
        if isinstance(entry, dict) and entry.get("actions") not in (["no-op"], ["defer"])
        and not entry.get("blocked")
    }
    still = {c.address for c in result.plan.changes if c.is_change}
    made = len(listed - still)
    why = "the actual state changed since the plan was made"
    if listed and made == len(listed):
        why += (", and each change it lists is in place now: it may have been applied "
                "already (a saved plan applies once)")
    elif made:
        why += (f", and {made} of the {len(listed)} changes it lists are in place now: it "
                "may have been applied in part already (an apply that failed or was stopped)")
    return (f"error: the saved plan {plan_file} is stale: {why}; nothing was applied. Run "
            "`reconciler plan` again and review the new plan")


def _confirm(args: argparse.Namespace) -> bool:
    if args.auto_approve:
        return True
    if not sys.stdin.isatty():
        print(
            "error: not asking for confirmation without a terminal; pass --auto-approve",
            file=sys.stderr,
        )
        return False
    answer = input("\nApply these changes? Only 'yes' is accepted: ")
    return answer.strip() == "yes"


def _refuse_selection_with_saved_plan(args: argparse.Namespace) -> None:
    """A saved plan is applied as reviewed, with the selection it was made with: a
    `--target` here would silently apply something other than what was reviewed
    (Terraform refuses it too)."""
    given = [
        option
        for option, value in (
            ("--target", args.target),
            ("--exclude", args.exclude),
            ("--prune", args.prune),
        )
        if value
    ]
    if given:
        raise ConfigError(
            [
                Diagnostic(
                    "cannot be used with a saved plan, which is applied as it was made; "
                    f"pass {' and '.join(given)} to `reconciler plan ... --out FILE` instead",
                    path="/".join(given),
                )
            ],
            subject="arguments",
        )


def _check_saved_selection(plan_file: str, fleet: Any, options: PlanOptions) -> None:
    """A saved plan's targets and excludes are checked as `plan` checks them: one edited
    into the file that does not parse or matches nothing is refused, naming it."""
    targets, excludes = list(options.targets), list(options.excludes)
    found = targeting.pattern_problems(fleet, [*targets, *excludes])
    found = found or targeting.excluded_targets(fleet, targets, excludes)
    if found:
        raise PlanError(
            f"{plan_file} is not a valid saved plan: options.targets/options.excludes: "
            + "; ".join(found)
        )


def _origin_refusal(plan_file: str, saved: dict[str, Any], settings: Any, fleet: Any) -> bool:
    """A saved plan is applied where it was made, or not at all (`engine.plan_origin`):
    refused before anything is read, naming each endpoint or account that differs.
    Whether it was refused (and said so)."""
    found = plan_origin.problems(
        saved["inputs"].get("endpoints"), settings, fleet, str(saved["format_version"])
    )
    if not found:
        return False
    heading = (
        "was made against other endpoints or accounts than these settings name"
        if any(problem.recorded for problem in found)
        else "cannot be checked against these settings"
    )
    if all(problem.recorded for problem in found):
        advice = (
            "Make the plan again with these settings (`reconciler plan ... --out FILE`), or "
            "apply it with the settings it was made with."
        )
    else:
        # What the plan does not record, no settings give: only a plan that records it
        # (one made by this version) can be applied.
        advice = (
            "Make a new plan with this version (`reconciler plan ... --out FILE`), which "
            "records where it was made; no settings make this one applicable."
        )
    lines = [
        f"error: the saved plan {plan_file} {heading}; nothing was applied:",
        *(f"  {problem.text}" for problem in found),
        advice,
    ]
    print("\n".join(printable(line) for line in lines), file=sys.stderr)
    return True


@contextlib.contextmanager
def _stopped_by_signals(stop: asyncio.Event) -> Iterator[None]:
    """While applying, the first SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed, an
    ssh session lost) lets the writes in flight finish and starts nothing new, as the watch
    agent does: a write cut off half-way leaves its outcome unknown until the next run. A
    second one stops at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            main.cancel()
            return
        stop.set()  # first: after a SIGHUP, stderr may be a terminal gone
        with contextlib.suppress(OSError, ValueError):
            print(
                f"\n{signum.name}: stopping; the writes in flight finish and nothing new "
                "starts (send it again to stop at once)",
                file=sys.stderr,
            )

    signals = common.STOP_SIGNALS
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    try:
        saved = _saved_plan(args.paths)
        read_in: str | None = None  # where a saved plan's relative paths were read
        if saved:
            # Read where the plan was made, and refused when it declares something else.
            fleet, _, read_in = saved_paths.load(
                args.paths[0], saved, common.load, desired_fingerprint
            )
            paths = list(saved["inputs"]["paths"])
        else:
            paths = args.paths
            fleet = common.load(paths)
        settings = common.settings(args)
        common.warn_unknown_gateway_urls(settings, fleet, args)
        if saved:
            _refuse_selection_with_saved_plan(args)
            opts = saved.get("options", {})
            options = PlanOptions(
                audience=Audience.CLI,
                prune=bool(opts.get("prune")),
                targets=tuple(opts.get("targets", [])),
                excludes=tuple(opts.get("excludes", [])),
            )
            _check_saved_selection(args.paths[0], fleet, options)
            if _origin_refusal(args.paths[0], saved, settings, fleet):
                return exit_codes.EXIT_ERROR
            assert read_in is not None
            others = [
                saved_paths.other_state_dir(args.paths[0], saved, settings, read_in),
                saved_paths.other_secrets_dir(args.paths[0], saved, settings, read_in, fleet),
            ]
            for other in others:
                if other is not None:
                    print(printable(f"error: {other}"), file=sys.stderr)
            if any(others):
                return exit_codes.EXIT_ERROR
        else:
            options = common.plan_options(args, fleet)
    except ConfigError as error:
        problem_lines.print_diagnostics(error)
        return exit_codes.EXIT_ERROR
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_codes.EXIT_ERROR
    if read_in is None or not saved_paths.moves(settings, read_in):
        return _locked(args, fleet, settings, options, saved, paths)
    # A relative state or secrets directory is the one the plan was made with, where its
    # files are read: the apply works there, and says so.
    print(
        printable(
            f"note: applying in {read_in}, where the plan's files are read, with the state "
            f"and secrets directories there: {', '.join(saved_paths.relative_dirs(settings))}"
        ),
        file=sys.stderr,
    )
    with saved_paths.working_in(read_in):
        return _locked(args, fleet, saved_paths.for_elsewhere(settings), options, saved, paths)


def _locked(
    args: argparse.Namespace,
    fleet: Any,
    settings: Settings,
    options: PlanOptions,
    saved: dict[str, Any] | None,
    paths: list[str],
) -> int:
    """The apply, holding the state directory's lock."""
    state = StateDir(Path(settings.state_dir))
    try:
        with state.lock(command_line()) as cleared:
            return asyncio.run(_apply(args, fleet, settings, options, saved, paths, cleared))
    except asyncio.CancelledError:  # a second signal while applying
        print("interrupted; the next run observes again what the cut-off writes did",
              file=sys.stderr)
        return exit_codes.EXIT_INTERRUPTED
    except StateDirError as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_codes.EXIT_ERROR


async def _apply(
    args: argparse.Namespace,
    fleet: Any,
    settings: Any,
    options: PlanOptions,
    saved: dict[str, Any] | None,
    paths: list[str],
    cleared: list[str],
) -> int:
    """The apply; `cleared`: what taking the lock said of the temporary state files that
    killed runs left (`StateDir.lock`)."""
    out = sys.stdout if args.output == "text" else sys.stderr
    # One run, then the process exits: what the plan leaves alive is not scanned.
    async with Reconciler(fleet, settings, short_lived=True) as reconciler:
        unfinished = reconciler.state.unfinished()
        if unfinished:
            print(f"note: {interrupted.heading(unfinished)}", file=out)
            for line in interrupted.lines(unfinished):
                print(line, file=out)
        for line in [*cleared, *reconciler.clear_leftovers(Audience.CLI)]:
            print(printable(f"note: {line}"), file=out)
        try:
            result: PlanResult = await reconciler.plan(options, paths=paths)
        except ProviderError as error:
            # As `plan` says it: an id a page long in the refused call's path cut.
            print(readable(f"error: {error}"), file=sys.stderr)
            for note in common.refused_notes(settings, [error]):
                print(printable(note), file=sys.stderr)
            return exit_codes.EXIT_ERROR
        for line in result.warnings:
            print(readable(f"warning: {line}"), file=sys.stderr)
        if saved and result.inputs["observed_sha256"] != saved["inputs"].get("observed_sha256"):
            unread = unread_sources(result.observed, settings)
            if unread:
                # Not "changed": what did not answer may well be as it was.
                _cannot_check(args.paths[0], unread)
            else:
                print(printable(_stale(args.paths[0], saved, result)), file=sys.stderr)
            return exit_codes.EXIT_ERROR
        doc = result.document()
        if saved and json.loads(
            json.dumps(document.changes_as_of(doc["changes"], str(saved["format_version"])))
        ) != saved.get("changes"):
            # Same inputs give the same changes: different ones were edited into the file,
            # and applying what its inputs give instead would apply what nobody reviewed.
            # Compared as the plan's format writes them: one made by an older reconciler
            # lacks the keys added since (`deferred_actions` before 1.5).
            print(
                "error: the saved plan's changes are not the ones its inputs give (was the "
                "file edited?); make the plan again with `reconciler plan --out`",
                file=sys.stderr,
            )
            return exit_codes.EXIT_ERROR
        # A saved plan was shown when it was made; with nothing to do, the plan's "No
        # changes" line is shown all the same, so the run does not end in silence.
        if not saved or not result.plan.has_changes:
            out.write(render.render_text(doc, color=common.use_color(out, args.no_color)))
        if not result.plan.has_changes:
            unwritten: StateDirError | None = None
            try:
                reconciler.remember(result.plan)
                # Observed again: nothing left to do for them.
                reconciler.state.settle(unfinished)
            except StateDirError as error:
                unwritten = error
            if args.output == "json":
                # The same keys as a report of applied changes, all counts zero; printed
                # whatever the state directory says, as after changes (`NotRecorded`): a
                # CI reading stdout gets its report either way.
                print(common.json_dump(ApplyReport().as_dict()))
            if unwritten is not None:
                print(printable(f"error: {unwritten}"), file=sys.stderr)
                return exit_codes.EXIT_ERROR
            return exit_codes.EXIT_OK
        offline_problems = common.plan_problems(result.plan, args.offline)
        if offline_problems and args.offline == "fail" and result.plan.deferred:
            for problem in offline_problems:
                print(f"error: {problem}", file=sys.stderr)
            return exit_codes.EXIT_ERROR
        if not saved and not _confirm(args):
            print("Apply cancelled.", file=sys.stderr)
            return exit_codes.EXIT_ERROR
        stop = asyncio.Event()
        unrecorded: NotRecorded | None = None
        with _stopped_by_signals(stop):
            try:
                report = await reconciler.apply(result, progress=_progress(out), stop=stop)
            except NotRecorded as error:
                # What was done and what failed first, then why it is not recorded: the
                # user must learn what changed out there either way.
                report, unrecorded = error.report, error
        if unrecorded is None:
            reconciler.state.settle(unfinished)
    print_report(report, out, settings)
    if args.output == "json":
        print(common.json_dump(report.as_dict()))
    if unrecorded is not None:
        print(printable(f"error: {unrecorded}"), file=sys.stderr)
        return exit_codes.EXIT_ERROR
    return exit_codes.EXIT_OK if report.ok else exit_codes.EXIT_ERROR
