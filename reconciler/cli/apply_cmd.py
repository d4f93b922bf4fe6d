"""`reconciler apply PATH...` or `reconciler apply PLANFILE`: make the actual state match.

Asks for confirmation on a terminal unless `--auto-approve`; a saved plan is applied as
reviewed, and refused when the desired or the actual state changed since it was made.
One writer at a time: the state directory's lock is held for the whole run.

The parser only; what the command does is in `apply_run`, loaded when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from reconciler.cli import selection_options

EXAMPLES = """\
examples:
  reconciler apply examples/sites                  # shows the plan, asks before applying
  reconciler apply examples/sites --auto-approve   # no question (CI, scripts)
  reconciler plan examples/sites --out plan.json && reconciler apply plan.json

exit codes: 0 everything applied (or nothing to do), also when changes were deferred because
a gateway or cloud did not answer (the summary says so); 1 any change failed, was skipped or
blocked, the input was invalid, the state directory is locked or damaged, changes were
deferred with --offline=fail, or a saved plan is stale or cannot be checked (a gateway or
cloud it reads does not answer); 130 stopped at once by a second Ctrl-C.

Ctrl-C (or SIGTERM, or SIGHUP: a terminal closed) while applying lets the writes in flight
finish and starts nothing new; a second one stops at once.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="apply the changes (asks first on a terminal)",
        description="Plan and apply the changes that make the gateways and clouds match PATH, "
        "or apply a plan saved with `plan --out`.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH|PLANFILE",
        help="YAML files/directories, or one saved plan (JSON)",
    )
    parser.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="result format (default: text)",
    )
    parser.add_argument("--no-color", action="store_true", help="plain text output")
    selection_options.add_selection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Loads `apply_run` and the engine with it only now: `--help`, `validate` and the
    other commands that need no engine start without them."""
    from reconciler.cli import apply_run

    return apply_run.run(args)
