"""`reconciler` command: builds the argument parser from the command modules and runs
the chosen command. Exit codes: 0 success / no changes, 1 error, 2 changes present
(`plan --detailed-exitcode`), 130 interrupted."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn, TextIO

from reconciler import __version__
from reconciler.cli import (
    apply_cmd,
    demo_cmd,
    exit_codes,
    library_logs,
    operator_cmd,
    output_guard,
    plan_cmd,
    schema_cmd,
    sim_cmd,
    validate_cmd,
    watch_cmd,
)
from reconciler.engine import durations

# Each command module offers `register(subparsers)`, which adds its parser and sets
# `run` (a callable taking the parsed namespace and returning an exit code).
COMMANDS: list[ModuleType] = [
    validate_cmd,
    plan_cmd,
    apply_cmd,
    watch_cmd,
    demo_cmd,
    sim_cmd,
    operator_cmd,
    schema_cmd,
]

DESCRIPTION = """\
Declarative reconciler for energy sites. Declare Sites, Gateways, Devices and DERs
in YAML; the reconciler compares them with the gateways and clouds and makes them match.
"""

EPILOG = """\
examples:
  reconciler validate examples/sites
  reconciler validate -o json site.yaml
  reconciler plan examples/sites -o markdown --detailed-exitcode
  reconciler apply examples/sites --auto-approve
  reconciler schema > site-schema.json
  reconciler crds --out crds/

Run `reconciler COMMAND --help` for the options and examples of each command.
"""


# What the value of each option that takes a number or a duration is, by the option (no two
# commands share one of these names): said when the option is given without a value.
_VALUE_TAKEN = {
    **{option: f"a duration, {durations.DURATION_FORMS}" for option in watch_cmd.DURATION_OPTIONS},
    **{number.option: number.expected() for number in sim_cmd.NUMBER_OPTIONS},
    "--markdown-limit": plan_cmd.MARKDOWN_LIMIT_TAKES,
}


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which CI would read as "changes present" from
    `plan --detailed-exitcode`; usage errors exit 1 like every other error."""

    def error(self, message: str) -> NoReturn:
        option = message.removeprefix("argument ").removesuffix(": expected one argument")
        if option != message and option in _VALUE_TAKEN:
            # Given no value (last on the line, or followed by another option): what the
            # value would be, as when one given is not taken.
            message += f": {_VALUE_TAKEN[option]}"
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Records in the namespace the innermost parser that took part (`plan`, `sim up`):
        its parse ends first, inside its parent's. An option it does not know is then said
        with its usage, which lists the options it has, not with the top level's."""
        parsed, extras = super().parse_known_args(args, namespace)
        if getattr(parsed, _COMMAND_PARSER, None) is None:
            setattr(parsed, _COMMAND_PARSER, self)
        return parsed, extras


# The namespace attribute naming the parser of the command given.
_COMMAND_PARSER = "command_parser"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="reconciler",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def _line_buffered(stream: TextIO) -> None:
    """Each line written to `stream` leaves at once, whatever it is connected to. Python
    buffers a pipe or a file in blocks, so a CI log or `| tee` would show an apply's plan
    and progress only once a buffer filled or the process ended; a line per write is
    cheap next to the network calls between them."""
    reconfigure = getattr(stream, "reconfigure", None)  # absent on some replaced streams
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):  # a closed or detached stream
            reconfigure(line_buffering=True)


def _escape_unencodable(stream: TextIO) -> None:
    """A character the stream's encoding lacks (`⇒` on a Latin-1 or cp1252 console, a
    name in Cyrillic) is written as an escape (`\u21d2`) instead of stopping the command
    with a traceback half-way through its output. Standard error does so already."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="backslashreplace")


# The options whose value may start with `-` (`--debounce -1s`, `--latency-ms -1e3`), to be
# refused by their own checks, which say what is valid.
_DASH_VALUE_OPTIONS = (*watch_cmd.DURATION_OPTIONS,
                       *(number.option for number in sim_cmd.NUMBER_OPTIONS))


def _dash_values(argv: Sequence[str]) -> list[str]:
    """`--debounce -1s` as `--debounce=-1s`, for each option whose value may be given so:
    argparse takes a word starting with `-` for an option, unless it is a plain negative
    number, and says "expected one argument", as though none were given; joined, the value
    reaches the option's own check, which says what is valid."""
    joined: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            joined += [word, *words]
            break
        if word in _DASH_VALUE_OPTIONS:
            value = next(words, None)
            if value is not None and value.startswith("-") and not value.startswith("--"):
                joined.append(f"{word}={value}")
                continue
            joined += [word] if value is None else [word, value]
            continue
        joined.append(word)
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    _line_buffered(sys.stdout)
    _escape_unencodable(sys.stdout)
    library_logs.quiet()
    parser = build_parser()
    args, extras = parser.parse_known_args(
        _dash_values(sys.argv[1:] if argv is None else argv))
    if extras:
        getattr(args, _COMMAND_PARSER).error(f"unrecognized arguments: {' '.join(extras)}")
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 1
    if run is watch_cmd.run:  # it stops itself when its output fails (`engine.watch.Log`)
        return _run(run, args)
    guard = output_guard.GuardedOutput(sys.stdout)
    sys.stdout = guard
    try:
        code = _run(run, args)
    finally:
        sys.stdout = guard.stream
    if guard.failure is None:
        return code
    if guard.failure:  # a reader gone (`| head`) wanted no more, and needs no word
        print(f"error: standard output cannot be written ({guard.failure}): what it shows "
              "is incomplete", file=sys.stderr)
    if code in (exit_codes.EXIT_OK, exit_codes.EXIT_CHANGES):
        return exit_codes.EXIT_ERROR
    return code


def _run(run: Any, args: argparse.Namespace) -> int:
    try:
        return int(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exit_codes.EXIT_INTERRUPTED
    except BrokenPipeError:
        return 1
