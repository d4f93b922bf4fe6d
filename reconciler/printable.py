"""Text from outside made safe to show: what a gateway, a cloud API or a device reports
(names, serials, error bodies) reaches plans, progress lines and logs, and a terminal must
not act on it.

Control characters (an escape sequence could clear the screen, move the cursor or recolour
what follows), bidirectional overrides (which reorder what a reader sees) and other
invisible characters are shown as escapes; every printable character, accented letters
included, is kept as it is.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

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


# How much of a value an error message echoes: enough to recognise it. A 1 MB string in a
# YAML field, or typed as a setting, is not printed whole in every message about it.
ECHO_LIMIT = 80


def echo(value: object, limit: int = ECHO_LIMIT, show: Callable[[object], str] = repr) -> str:
    """`repr(value)`, as an error message quotes what it was given, cut to its first `limit`
    characters with an ellipsis and the length of the whole when longer:
    `'AAAA…' (1,000,000 characters)`. `show`: how the value is written instead of `repr`
    (JSON, in a plan's field changes)."""
    text = show(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        # The closing quote kept: the value reads as a quoted string, cut.
        return f"{text[:limit]}…{text[0]} ({len(value):,} characters)"
    return f"{text[:limit]}… ({len(text):,} characters)"


def clipped(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` (a field path, a name from the input, shown unquoted) cut as `echo` cuts a
    value: its first `limit` characters, an ellipsis and the length of the whole."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


# How long a word of a message may be before it is cut: a path or URL fits, an id or name
# that is a page long does not. As a field change shows its values (`plan.render`).
WORD_LIMIT = 200
# A word is what stands between two spaces: the one blank `printable` keeps, where a
# newline or a tab is written `\n`, `\t` and joins what it separated into one word.
_LONG_WORD = re.compile(rf"[^ ]{{{WORD_LIMIT + 1},}}")
# What opens and closes a quoted word (`('abc'),`): the closing kept after the ellipsis,
# so that the word still reads as quoted and the sentence as it was; neither counted in
# the length said, which is then the value's.
_OPENING = re.compile(r"^[(\['\"`]{1,3}")
_CLOSING = re.compile(r"[)\]'\"`,;:.]{1,3}$")
# What follows a word cut already: the length of the whole. Escaped since (a plan's line
# shown again in the watch log), the word is longer than the limit, and cut again it would
# show two ellipses and two lengths, the second that of its escapes.
_CUT_NOTE = re.compile(r" \(\d[\d,]* characters\)")
# One character as a word counts it: an escape `printable` writes (`\x1b`, `\u202e`, `\n`)
# is the one character it stands for, so that a word is as long escaped as it was before.
_ESCAPED = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[nrt])")
_CHARACTER = re.compile(rf"{_ESCAPED.pattern}|.", re.DOTALL)


def _length(word: str) -> int:
    """How many characters `word` stands for, each escape counted as one."""
    if "\\" not in word:  # nearly every word: its length
        return len(word)
    return len(word) - sum(len(escape) - 1 for escape in _ESCAPED.findall(word))


def _start(word: str, limit: int) -> str:
    """The first `limit` characters of `word`, as `_length` counts them: never cut inside
    an escape."""
    if "\\" not in word:
        return word[:limit]
    ends = (match.end() for match in _CHARACTER.finditer(word))
    end = next(itertools.islice(ends, limit - 1, None), len(word)) if limit > 0 else 0
    return word[:end]


def clipped_words(text: str, limit: int = WORD_LIMIT) -> str:
    """`text` (a message of a plan, an unmanaged object's description) with each word
    longer than `limit` cut as `clipped` cuts: a 5,000-character id that a Site declares,
    or a name a cloud reports, quoted in a message, shows as its start and its length.
    The message is kept whole where machines read it (the JSON plan).

    A word is as long as the characters it stands for, each escape `printable` wrote
    counted as one, and a word cut already (its length follows it) is left as it is: the
    text cut and escaped, shown again (a plan's line in the watch log), is cut no more."""
    if len(text) <= limit:
        return text

    def cut(match: re.Match[str]) -> str:
        word = match[0]
        opening, closing = _OPENING.search(word), _CLOSING.search(word)
        head, tail = opening[0] if opening else "", closing[0] if closing else ""
        core = word[len(head):len(word) - len(tail)]
        length = _length(core)
        if length <= limit:
            return word  # short once its quotes are off, or its escapes counted as one
        if core.endswith("…") and (
            length == limit + 1 or _CUT_NOTE.match(match.string, match.end())
        ):
            # Cut already: a plan's text, cut and escaped when it was rendered, is cut
            # again as a line of the watch log.
            return word
        return f"{head}{_start(core, limit)}…{tail} ({length:,} characters)"

    pattern = _LONG_WORD if limit == WORD_LIMIT else re.compile(rf"[^ ]{{{limit + 1},}}")
    return pattern.sub(cut, text)


def readable(text: str) -> str:
    """`text` (a line of progress, a log line, an Event's message) as a person reads it:
    each word longer than WORD_LIMIT cut (`clipped_words`), then what a terminal would act
    on escaped (`printable`). Where machines read the same (JSON, status fields that are
    data) the text is kept whole."""
    return printable(clipped_words(text))


def clipped_path(path: str) -> str:
    """`path` (`spec.ders[0].type`) with each key longer than an echoed value cut
    (`clipped`): a key of the input is part of the path, and a 1 MB key is cut as a value
    is, wherever the path is shown (text, JSON)."""
    if len(path) <= ECHO_LIMIT:
        return path
    return ".".join(clipped(key) for key in path.split("."))


def quoted(text: str) -> str:
    """`text` between single quotes, as a message quotes a value, with what `printable`
    escapes escaped; unlike `repr`, a backslash stays one: text that holds escapes already
    (the bytes of a serial that are not UTF-8, `\\xff`) reads as it is, not as `\\\\xff`."""
    return f"'{printable(text)}'"
