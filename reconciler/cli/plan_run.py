"""What `reconciler plan` does once `plan_cmd` has parsed its arguments: observe, compare
and print the plan, and save it with `--out`.

Loaded only when the command runs (`plan_cmd.run`), and the engine with it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any, TextIO

from reconciler.cli import common, exit_codes, out_clashes, problem_lines
from reconciler.engine.config import Settings
from reconciler.engine.reconcile import Reconciler
from reconciler.engine.state import StateDir, StateDirError, atomic_write
from reconciler.errors import ConfigError, Diagnostic, ProviderError
from reconciler.plan import document, markdown, markdown_limits, render
from reconciler.plan.advice import Audience
from reconciler.printable import printable, readable
from reconciler.sources import bounded


def _refuse_markdown_limit_without_markdown(args: argparse.Namespace) -> None:
    """`--markdown-limit` shapes the Markdown only: given with another output it would be
    ignored, and the user left to think the output was cut to it."""
    if args.markdown_limit is None or args.output == "markdown":
        return
    raise ConfigError(
        [
            Diagnostic(
                f"applies to -o markdown only, and the output is {args.output}; add "
                "-o markdown, or leave the option out",
                path="--markdown-limit",
            )
        ],
        subject="arguments",
    )


def _utf8(stream: TextIO) -> None:
    """The Markdown is for a comment or a file that a forge reads as UTF-8, whatever the
    encoding of the locale the plan runs in (cp1252 on Windows, a Latin-1 locale)."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(encoding="utf-8")


def _refuse_stdout() -> None:
    """`--out -` is refused rather than taken as a file named "-" or as standard output:
    standard output already carries the plan as shown (`-o`), and two documents on one
    stream could not be told apart. Terraform's `plan -out` names a file only, too. The
    saved plan on standard output is `-o json`: the same document, which `apply` reads."""
    raise ConfigError(
        [
            Diagnostic(
                "the saved plan is written to a file, not standard output; name a file "
                "(--out plan.json), or use `-o json > plan.json`, the same document",
                path="--out",
            )
        ],
        subject="arguments",
    )


# Said when --out names a FIFO, device or standard output (`common.unreplaceable`): a plan
# is saved for `apply FILE`, which reads a regular file only, and standard output carries
# the plan as shown already.
_OUT_ADVICE = ("a saved plan is a file of its own, for `reconciler apply FILE`: name one "
               "(--out plan.json), or use `-o json > plan.json`, the same document")


def _save(path: str, doc: dict[str, Any]) -> str | None:
    """Save the plan `doc` at `path`, whole or not at all; why it is not saved, if so. A
    plan larger than `apply` reads (MAX_PLAN_BYTES) is not written: a file `apply` then
    refused would be no saved plan."""
    text = common.json_dump(doc) + "\n"
    size = len(text.encode("utf-8"))  # the bytes of the file, as `apply` counts them
    if size > document.MAX_PLAN_BYTES:
        return (f"the plan is {bounded.measure(size)}, more than the "
                f"{bounded.amount(document.MAX_PLAN_BYTES)} a saved plan may hold "
                f"(`reconciler apply` reads no larger one), so it is not saved to {path}: "
                f"{document.SPLIT_ADVICE}")
    special = common.unreplaceable(path)  # again: planning a fleet takes a while
    if special is not None:
        return f"cannot save the plan to {path}: {special}; {_OUT_ADVICE}"
    try:
        atomic_write(Path(path), text)
    except OSError as exc:
        return f"cannot save the plan to {path}: {exc.strerror}"
    return None


def _refuse_out_over_what_is_read(out: str, paths: list[str], settings: Settings) -> None:
    """`--out` naming a desired-state file or a state file: refused, naming it
    (`out_clashes`)."""
    problem = out_clashes.clash(out, paths, settings.state_dir)
    if problem is not None:
        raise out_clashes.refusal("--out", out, problem, "--out plan.json")


def _note_applying(settings: Settings) -> None:
    """A plan takes no lock; while an apply or watch holds it, the plan may list changes
    that process is making at this moment, and says so."""
    holder = StateDir(Path(settings.state_dir)).holder()
    if holder is not None:
        print(printable(f"note: another process is applying: the state directory is locked "
                        f"by {holder}; this plan may list changes it is making now"),
              file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        _refuse_markdown_limit_without_markdown(args)
        fleet = common.load(args.paths)
        options = common.plan_options(args, fleet)
        settings = common.settings(args)
        common.warn_unknown_gateway_urls(settings, fleet, args)
        common.warn_unusable_state_dir(settings)
        _note_applying(settings)
        if args.out == "-":
            _refuse_stdout()
        if args.out:
            common.check_writable(args.out, "--out", _OUT_ADVICE)  # before the plan
            _refuse_out_over_what_is_read(args.out, args.paths, settings)
    except ConfigError as error:
        problem_lines.print_diagnostics(error)
        return exit_codes.EXIT_ERROR

    async def make() -> tuple[Any, list[str]]:
        # One run, then the process exits: what the plan leaves alive is not scanned.
        async with Reconciler(fleet, settings, short_lived=True) as reconciler:
            # Said, not removed: a plan writes nothing.
            leftovers = [*reconciler.state.temporaries(), *reconciler.leftovers(Audience.CLI)]
            paths = [str(Path(p)) for p in args.paths]
            return await reconciler.plan(options, paths=paths), leftovers

    try:
        result, leftovers = asyncio.run(make())
    except (ProviderError, StateDirError) as error:
        # A refused call names its path, which may hold an id a page long: cut, as the
        # plan's messages are. A path of the state directory is said whole.
        said = f"error: {error}"
        print(readable(said) if isinstance(error, ProviderError) else said, file=sys.stderr)
        for note in common.refused_notes(settings, [error]):
            print(printable(note), file=sys.stderr)
        return exit_codes.EXIT_ERROR
    for line in leftovers:
        print(printable(f"note: {line}"), file=sys.stderr)
    for line in result.warnings:
        print(readable(f"warning: {line}"), file=sys.stderr)
    # Fingerprints are for machines (JSON, a saved plan); a rendering for people skips them.
    doc = result.document(with_inputs=args.output == "json" or bool(args.out))
    if args.output == "json":
        print(common.json_dump(doc))
    elif args.output == "markdown":
        given = args.markdown_limit
        limit = markdown_limits.DEFAULT_LIMIT if given is None else given or None  # 0: no limit
        _utf8(sys.stdout)
        sys.stdout.write(markdown.render_markdown(doc, limit=limit))
    else:
        sys.stdout.write(render.render_text(doc, color=common.use_color(sys.stdout, args.no_color)))
    problems = common.plan_problems(result.plan, args.offline)
    if args.out:
        unsaved = _save(args.out, doc)
        if unsaved is not None:
            print(f"error: {unsaved}", file=sys.stderr)
            return exit_codes.EXIT_ERROR
        # Saved either way (a CI job keeps it as an artifact), but offered to apply only
        # when nothing stands in its way.
        advice = (
            "it has errors (below): fix them and plan again"
            if problems
            else f"apply it with: reconciler apply {args.out}"
        )
        print(f"Saved the plan to {args.out}; {advice}", file=sys.stderr)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return exit_codes.EXIT_ERROR
    if args.detailed_exitcode and result.plan.has_changes:
        return exit_codes.EXIT_CHANGES
    return exit_codes.EXIT_OK
