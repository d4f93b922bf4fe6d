"""Files read as UTF-8 text, the one encoding YAML, TOML and JSON files are read in. Where a
file is not, the failure is located by line and column like any other problem, rather than
by byte offset."""

from __future__ import annotations

from reconciler.errors import Diagnostic

_UTF8_BOM = b"\xef\xbb\xbf"
_BOMS = {b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def decode(data: bytes, file: str) -> tuple[str, Diagnostic | None]:
    """The text of `data`, or "" and where it stops being UTF-8."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        # Columns count characters, as editors show them (the bytes before are valid UTF-8);
        # a byte order mark is no character of line 1.
        start_of_line = before[before.rfind(b"\n") + 1 :].removeprefix(_UTF8_BOM)
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
