"""`reconciler watch PATH...`: the local agent. Reconciles once at start, again after each
edit of the files under PATH, and every `--interval` in between to correct drift.

The parser only; what the command does is in `watch_run`, loaded when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from reconciler.cli import selection_options

EXAMPLES = """\
examples:
  reconciler watch examples/sites                         # apply on every save, re-check every 5m
  reconciler watch examples/sites --interval 30s --debounce 2s
  reconciler watch examples/sites --plan-only             # only show what would change
  reconciler watch examples/sites --log-format json       # one JSON object per line

Each run logs one summary line on stdout, e.g.
  2026-01-05T09:12:03.412Z run=3 trigger=change changes=2 done=2 failed=0 deferred=0 \
blocked=0 skipped=0 unmanaged=0 duration=0.4s result=applied
Objects found that nothing declares are counted (unmanaged=N) and listed, as `reconciler
plan` lists them, whenever that set changes.

An edit that does not validate is reported with file:line:column and changes nothing; the
last valid desired state stays in force and is still reconciled on the interval. A file
that declares nothing now (emptied while being written, as `command > file` does) is held
the same way: delete a file to remove what it declared. With --prune, what no file
declares any more (a file gone, or documents gone from a file) is kept until it has been
undeclared for --interval (a folder refilled file by file, or a file read while it is
being written, is not taken for their removal), then removed; one kept that no longer
fits the files is left out, and --prune removes nothing meanwhile (the listing of the
objects nothing declares says so).
Unreachable gateways or clouds defer their sites; the agent keeps going. The deferred
changes are counted (deferred=N) in every summary line and listed when they or their
reasons change; so are the changes failed, blocked or skipped (failed=N blocked=N
skipped=N).
SIGINT/SIGTERM/SIGHUP: the changes in flight finish, nothing new starts, the lock is
released.

exit codes: 0 stopped by SIGINT/SIGTERM/SIGHUP, 1 start-up error (invalid desired state or
arguments, unreadable settings, state directory locked by another process) or stdout
closed (`| head` exited) or not writable (a full disk): the agent then stops as on SIGTERM.
"""


# The options that take a duration; `main` passes a value such as `-1s` on to them, to be
# refused with what is valid, rather than taken by argparse for an option.
DURATION_OPTIONS = ("--interval", "--debounce")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="local agent: apply on every change, correct drift on an interval",
        description="Watch the YAML under PATH; on each change validate, plan and apply it, "
        "and re-observe every --interval to correct drift.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML file or directory")
    parser.add_argument(
        "--interval",
        default="5m",
        metavar="DURATION",
        help="re-observe and correct drift this often (default 5m; e.g. 30s, 1h, or plain seconds)",
    )
    parser.add_argument(
        "--debounce",
        default="1s",
        metavar="DURATION",
        help="run once no file changed for this long (default 1s)",
    )
    parser.add_argument(
        "--plan-only",
        action="store_true",
        help="never apply: log the plan when it changes (takes no lock)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="stdout log format (default: text)",
    )
    selection_options.add_selection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Loads `watch_run` and the engine with it only now: `--help`, `validate` and the
    other commands that need no engine start without them."""
    from reconciler.cli import watch_run

    return watch_run.run(args)
