"""`reconciler demo`: the whole loop against built-in simulators, in a few seconds.
Starts simulators for the example fleet, shows the plan, applies it, shows that the next
plan is empty (with zero writes), makes drift behind the reconciler's back, and corrects it."""

# The parser only (the docstring above is its description); what the command does is in
# `demo_run`, loaded when it runs.

from __future__ import annotations

import argparse
from typing import Any

EXAMPLES = """\
examples:
  reconciler demo                      # the examples in examples/sites (or installed)
  reconciler demo path/to/my/sites     # your own fleet, against simulators
"""


DEFAULT_FLEET = "examples/sites"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="plan, apply, drift and correct a fleet against built-in simulators",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        default=[DEFAULT_FLEET],
        metavar="PATH",
        help=f"site YAML (default: {DEFAULT_FLEET})",
    )
    parser.add_argument("--no-color", action="store_true", help="plain text output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Loads `demo_run` and the engine with it only now: `--help`, `validate` and the
    other commands that need no engine start without them."""
    from reconciler.cli import demo_run

    return demo_run.run(args)
