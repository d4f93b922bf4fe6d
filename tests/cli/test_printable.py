"""What reaches a terminal from outside: printable text as written, everything a terminal
would act on or hide as an escape."""

from __future__ import annotations

import pytest

from reconciler.printable import clipped_words, printable, readable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Townhouse, Malmö", "Townhouse, Malmö"),
        ("東京 ☀ 😀", "東京 ☀ 😀"),
        ("clear\x1b[2Jscreen", "clear\\x1b[2Jscreen"),
        ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),
        ("abc\u202edef", "abc\\u202edef"),  # right-to-left override
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("two\nlines\tand\rreturn", "two\\nlines\\tand\\rreturn"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("nbsp\u00a0", "nbsp\\xa0"),
    ],
)
def test_printable_keeps_what_is_printable_and_escapes_the_rest(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_escaped_text_is_left_as_it_is_when_shown_again() -> None:
    once = printable("a\x1bb")
    assert printable(once) == once


# -- words cut once ---------------------------------------------------------------------------

LIMIT = 200  # printable.WORD_LIMIT, as a reader meets it


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # Cut, then escaped: four times the limit long, and still cut once.
        ("id=" + "\x1b" * 300, "id=" + "\\x1b" * 197 + "… (303 characters)"),
        ("('" + "\u202e" * 500 + "'),", "('" + "\\u202e" * LIMIT + "…'), (500 characters)"),
        # Short enough, but longer than the limit once escaped: kept whole.
        ("x" * 150 + "\x1b" * 20, "x" * 150 + "\\x1b" * 20),
        # A newline is written `\n`, which makes one word of two: cut as that word.
        ("a" * 150 + "\n" + "b" * 150, "a" * 150 + "\\n" + "b" * 49 + "… (301 characters)"),
        # Cut between two characters, not inside an escape.
        ("y" * 199 + "\x1b" * 5, "y" * 199 + "\\x1b… (204 characters)"),
    ],
)
def test_a_word_is_cut_once_as_the_text_is_shown_and_shown_again(text: str, shown: str) -> None:
    once = readable(text)
    assert once == shown
    assert readable(once) == once  # a plan's line, shown again in the watch log
    assert clipped_words(once) == once


def test_a_word_cut_with_a_shorter_limit_is_not_cut_again() -> None:
    once = printable(clipped_words("\x07" * 300, 50))
    assert once == "\\x07" * 50 + "… (300 characters)"
    assert clipped_words(once, 50) == once
    assert clipped_words(once) == once


def test_a_long_word_beside_a_word_cut_already_is_cut() -> None:
    cut = readable("\x1b" * 300)
    text = f"{cut} and {'z' * 300}"
    assert readable(text) == f"{cut} and {'z' * LIMIT}… (300 characters)"
