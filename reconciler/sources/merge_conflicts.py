"""Git's merge-conflict markers left in a desired-state file: a `git pull` or `git merge`
that stopped on a conflict writes both sides into the file between `<<<<<<<`, `=======`
and `>>>>>>>` lines. YAML reads such a file as a syntax error somewhere after the marker
(`could not find expected ':'`), which names neither the conflict nor its line; this says
where each one starts and what to do."""

from __future__ import annotations

import re

from reconciler.errors import Diagnostic
from reconciler.sources import utf8

# As git writes them: seven characters at the start of a line, then a space and the side's
# name, or nothing. A line of a YAML resource never starts so (a key, `-`, `#` or `---`),
# nor does one of a block scalar, which is indented.
_START = re.compile(r"^<<<<<<<(?=[ \r\n]|\Z)", re.MULTILINE)
_END = re.compile(r"^>>>>>>>(?=[ \r\n]|\Z)", re.MULTILINE)


def find(text: str, file: str) -> list[Diagnostic]:
    """A diagnostic at the `<<<<<<<` line of each conflict `text` holds (one ended by a
    `>>>>>>>` line after it)."""
    found: list[Diagnostic] = []
    searched = 0
    while (start := _START.search(text, searched)) is not None:
        end = _END.search(text, start.end())
        if end is None:
            break
        line, column = utf8.position(text, start.start())
        last, _ = utf8.position(text, end.start())
        found.append(Diagnostic(
            f"unresolved merge conflict (lines {line}-{last}, between git's `<<<<<<<` and "
            "`>>>>>>>` lines): keep the side you want and remove the marker lines",
            file=file, line=line, column=column))
        searched = end.end()
    return found
