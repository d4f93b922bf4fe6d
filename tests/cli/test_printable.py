"""What reaches a terminal from outside: printable text as written, everything a terminal
would act on or hide as an escape."""

from __future__ import annotations

import pytest

from reconciler.printable import printable


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
