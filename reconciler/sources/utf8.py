"""Files read as UTF-8 text, the one encoding YAML, TOML and JSON files are read in. Where a
file is not, the failure is located by line and column like any other problem, rather than
by byte offset."""

from __future__ import annotations

import re

from reconciler.errors import Diagnostic

_UTF8_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(rb"\r\n|[\r\n]")
# What editors end a line at. YAML 1.1 also ends one at U+0085, U+2028 and U+2029, and JSON
# parsers count \n alone; neither is what a user sees.
TEXT_LINE_BREAK = re.compile("\r\n|[\r\n]")
_BOMS = {b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def decode(data: bytes, file: str) -> tuple[str, Diagnostic | None]:
    """The text of `data`, or "" and where it stops being UTF-8. A UTF-8 byte order mark
    (Windows editors write one) is no character of the text: tomllib and json would
    refuse it at 1:1."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), None
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        # Lines end where an editor ends them (\n, \r\n, \r); columns count characters (the
        # bytes before are valid UTF-8), and a byte order mark is no character of line 1.
        breaks = list(_LINE_BREAK.finditer(before))
        line = len(breaks) + 1
        start_of_line = before[breaks[-1].end() if breaks else 0 :].removeprefix(_UTF8_BOM)
        column = len(start_of_line.decode("utf-8")) + 1
        encoding = _BOMS.get(data[:2])
        hint = f"it looks like {encoding}; " if encoding else ""
        return "", Diagnostic(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded; {hint}save the "
            "file as UTF-8",
            file=file,
            line=line,
            column=column,
        )


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset, in the lines an editor shows."""
    line, start = 1, 0
    for match in TEXT_LINE_BREAK.finditer(text, 0, offset):
        line, start = line + 1, match.end()
    return line, offset - start + 1
