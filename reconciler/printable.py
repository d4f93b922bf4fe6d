"""Text from outside made safe to show: what a gateway, a cloud API or a device reports
(names, serials, error bodies) reaches plans, progress lines and logs, and a terminal must
not act on it.

Control characters (an escape sequence could clear the screen, move the cursor or recolour
what follows), bidirectional overrides (which reorder what a reader sees) and other
invisible characters are shown as escapes; every printable character, accented letters
included, is kept as it is.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with each character that `str.isprintable` rejects (all but the plain space
    among control, format, separator and unassigned characters) written as an escape:
    `\\x1b`, `\\u202e`, `\\n`. One message then stays one line."""
    if text.isprintable():  # nearly all text: one scan in C
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)
