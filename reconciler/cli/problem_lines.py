"""Problems as the commands print them: one `error: file:line:column: path: message` line
each, a `note:` per file with more than are shown, and a count. Apart from the rest of the
shared pieces (`common`), which load the engine: `validate` and `schema` print problems
without it."""

from __future__ import annotations

import sys
from typing import TextIO

from reconciler import diagnostic_cap
from reconciler.errors import ConfigError, Diagnostic
from reconciler.printable import clipped_path, printable


def error_line(diagnostic: Diagnostic) -> str:
    """`error: file:line:column: path: message`. File names and field paths come from the
    input (a key may hold an escape sequence, a file name a newline): escaped, so the
    terminal shows them and does not act on them, and each diagnostic stays one line."""
    file = None if diagnostic.file is None else printable(diagnostic.file)
    # A key of the input is part of the path: a 1 MB key is cut, as a value is.
    return f"error: {diagnostic.shown(file, printable(clipped_path(diagnostic.path)))}"


def print_diagnostics(error: ConfigError, stream: TextIO | None = None) -> None:
    # Looked up at call time, not bound as a default: sys.stderr may be replaced (tests,
    # contextlib.redirect_stderr) after this module is imported.
    stream = stream or sys.stderr
    print_problems(error.diagnostics, error.omitted, f"invalid {error.subject}", stream)


def print_problems(
    diagnostics: list[Diagnostic], omitted: dict[str | None, int], head: str, stream: TextIO
) -> None:
    """The `error:` line of each diagnostic, one `note:` line per file with problems past
    the cap, and `HEAD: N problems` (saying how many are shown when not all are)."""
    # One write: a line each would be a system call each on an unbuffered stderr.
    lines = [error_line(diagnostic) for diagnostic in diagnostics]
    lines += diagnostic_cap.omitted_lines(omitted)
    lines.append(f"{head}: {diagnostic_cap.summary(diagnostics, omitted)}")
    print("\n".join(lines), file=stream)
