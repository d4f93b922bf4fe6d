"""The options that choose part of a fleet (`--target`, `--exclude`, `--prune`, `--offline`,
`--config`), which `plan`, `apply` and `watch` share. Only the parser's side: what they
select is worked out when the command runs (`common.plan_options`)."""

from __future__ import annotations

import argparse


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="ADDR|SELECTOR",
        help="only this resource (kind/name) or label selector (kubectl syntax: key=value, "
        "key!=value, 'key in (a,b)', key, !key), with what it holds (a site: its gateways "
        "and devices) and depends on; repeatable",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="ADDR|SELECTOR",
        help="leave out this resource or selector, and what depends on it; repeatable",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="also remove (plan: show as removals) objects found in managed sites that are "
        "not declared (gateways only when their deletionPolicy is Release)",
    )
    parser.add_argument(
        "--offline",
        choices=("defer", "fail"),
        default="defer",
        help="unreachable gateway or cloud: defer its site (default) or fail",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (see README)")
