"""`reconciler plan PATH...`: observe, compare and print the plan (text, JSON or
Markdown), optionally saved for `reconciler apply PLANFILE`.

The parser only; what the command does is in `plan_run`, loaded when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from reconciler.cli import selection_options
from reconciler.plan import markdown_limits
from reconciler.printable import echo

EXAMPLES = """\
examples:
  reconciler plan examples/sites
  reconciler plan examples/sites -o markdown > plan.md         # pull-request comment
  reconciler plan examples/sites -o markdown --markdown-limit 1000000   # GitLab's limit
  reconciler plan examples/sites -o json --detailed-exitcode   # CI gate
  reconciler plan examples/sites --out plan.json               # save for `apply plan.json`
  reconciler plan examples/sites --target device/home-solna-inverter --target region=skane

exit codes: 0 success (with --detailed-exitcode: no changes), 1 error (invalid input, blocked
changes, rejected credentials or a cloud certificate that does not verify; deferred sites
with --offline=fail), 2 changes present, deferred ones included (only with
--detailed-exitcode).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what apply would change (a dry run)",
        description="Compare the desired state under PATH with the gateways and clouds and "
        "print the changes that would make them match. Writes nothing outside.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML file or directory")
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json", "markdown"),
        default="text",
        help="output format (default: text)",
    )
    parser.add_argument("--out", metavar="FILE", help="also save the plan (JSON) for `apply FILE`")
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when changes are present, 0 when none (as terraform plan)",
    )
    parser.add_argument(
        "--markdown-limit",
        type=_markdown_limit,
        default=None,  # markdown_limits.DEFAULT_LIMIT; None tells that it was not given
        metavar="CHARS",
        help=f"with -o markdown: at most CHARS characters, {markdown_limits.MIN_LIMIT} or "
        "more (less leaves no room for the summary), or 0 for no limit, for a pull-request "
        "comment; past it, the sites that do not fit are left out and a note under the "
        f"summary says how many changes (default: {markdown_limits.DEFAULT_LIMIT}, under "
        "GitHub's 65536)",
    )
    parser.add_argument("--no-color", action="store_true", help="plain text output")
    selection_options.add_selection_arguments(parser)
    parser.set_defaults(run=run)


# What `--markdown-limit` takes, for its errors.
MARKDOWN_LIMIT_TAKES = (f"a number of characters, at least {markdown_limits.MIN_LIMIT}, "
                        "or 0 for no limit")


def _markdown_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value != 0 and value < markdown_limits.MIN_LIMIT:
        raise argparse.ArgumentTypeError(f"expected {MARKDOWN_LIMIT_TAKES}, not {echo(text)}")
    return value


def run(args: argparse.Namespace) -> int:
    """Loads `plan_run` and the engine with it only now: `--help`, `validate` and the
    other commands that need no engine start without them."""
    from reconciler.cli import plan_run

    return plan_run.run(args)
