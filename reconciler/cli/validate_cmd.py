"""`reconciler validate PATH...`: load and check the desired state, print every problem."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

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
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text",
                        help="output format (default: text)")
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
        counts: dict[str, int] = {}
        for resource in result.resources:
            counts[resource.KIND] = counts.get(resource.KIND, 0) + 1
        summary = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items())
        print(f"valid: {len(result.files)} files, {summary or 'no resources'}")
    else:
        for diagnostic in result.diagnostics:
            print(f"error: {diagnostic}", file=sys.stderr)
        count = len(result.diagnostics)
        print(f"invalid: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    return 0 if result.ok else 1
