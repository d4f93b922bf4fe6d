"""`reconciler validate PATH...`: load and check the desired state, print every problem."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from reconciler.cli import common
from reconciler.model.kinds import KINDS
from reconciler.sources import loader

EXAMPLES = """\
examples:
  reconciler validate examples/sites            # every *.yaml/*.yml below, recursively
  reconciler validate home.yaml gateways/       # files and directories together
  reconciler validate -o json examples/sites    # machine-readable result

exit codes: 0 valid, 1 invalid (every problem is listed with file:line:column).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check site YAML: schema, references and domain rules",
        description="Load every document under PATH and check it, reporting all problems.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML file or directory")
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="output format (default: text)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = loader.load_paths(args.paths)
    if args.output == "json":
        document = {
            "valid": result.ok,
            "files": len(result.files),
            "resources": len(result.resources),
            "diagnostics": [d.as_dict() for d in result.diagnostics],
        }
        print(json.dumps(document, indent=2))
    elif result.ok:
        counts = Counter(resource.KIND for resource in result.resources)
        summary = ", ".join(_count(counts[kind], kind) for kind in KINDS if counts[kind])
        print(f"valid: {_count(len(result.files), 'file')}, {summary or 'no resources'}")
    else:
        for diagnostic in result.diagnostics:
            print(common.error_line(diagnostic), file=sys.stderr)
        count = len(result.diagnostics)
        print(f"invalid: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    return 0 if result.ok else 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
