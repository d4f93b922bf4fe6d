"""`reconciler validate PATH...`: load and check the desired state, print its problems.

A pre-commit hook or a CI step runs it on every commit: it loads the models and the YAML
reader when it runs, and never the engine (no client, no provider), so that it, and
`--help` of every command, start in a fraction of the time a plan does."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from reconciler.cli import problem_lines

EXAMPLES = """\
examples:
  reconciler validate examples/sites            # every *.yaml/*.yml below, recursively
  reconciler validate home.yaml gateways/       # files and directories together
  reconciler validate -o json examples/sites    # machine-readable result

exit codes: 0 valid, 1 invalid (each problem is listed with file:line:column: the first 20
of a file and 100 in all, then how many more each file has; -o json lists the same).
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
    # Imported here, not with the parser: the models and the YAML reader take most of the
    # time `validate` needs, and `--help` needs neither.
    import json
    from collections import Counter

    from reconciler import diagnostic_cap
    from reconciler.model.kinds import KINDS
    from reconciler.sources import loader

    result = loader.load_paths(args.paths)
    if args.output == "json":
        document = {
            "valid": result.ok,
            "files": len(result.files),
            "resources": len(result.resources),
            "diagnostics": [d.as_dict() for d in result.diagnostics],
            # As many as the text shows (see diagnostic_cap), with the count of the others.
            "problems": diagnostic_cap.total(result.diagnostics, result.omitted),
            "omitted": [{"file": file, "problems": count}
                        for file, count in result.omitted.items()],
        }
        print(json.dumps(document, indent=2))
    elif result.ok:
        counts = Counter(resource.KIND for resource in result.resources)
        summary = ", ".join(_count(counts[kind], kind) for kind in KINDS if counts[kind])
        print(f"valid: {_count(len(result.files), 'file')}, {summary or 'no resources'}")
    else:
        problem_lines.print_problems(result.diagnostics, result.omitted, "invalid", sys.stderr)
    return 0 if result.ok else 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
