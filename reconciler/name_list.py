"""Lists of declared names in messages: a reference to a name nobody declares says which
are declared, the first few of them and how many more (a fleet of 1,000 sites is not a
thousand names in each error), and the one most likely meant, which is what a typo needs."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from functools import lru_cache

# How many names a message lists: enough to see what the names look like.
LISTED = 10


def listed(names: Iterable[str], quote: Callable[[str], str] = str, *, none: str = "none") -> str:
    """The first `LISTED` of `names` in sorted order, each `quote`d, then `and N more`;
    `none` when there are none."""
    items = sorted(names)
    if not items:
        return none
    shown = ", ".join(quote(item) for item in items[:LISTED])
    more = len(items) - LISTED
    return f"{shown}, and {more:,} more" if more > 0 else shown


def closest(name: str, names: Iterable[str]) -> str | None:
    """The name of `names` that `name` most likely meant: the same in another letter case,
    else a close spelling; None when none is close. The one answer to "did you mean" for
    every kind of name (declared resources, targets and labels, gateway serials), so a
    name typed in the wrong case suggests the right one wherever it is typed."""
    return _closest(name, tuple(sorted(set(names))))


# Many references to one missing name (the Site of 1,000 gateways renamed) search once.
@lru_cache(maxsize=64)
def _closest(name: str, names: tuple[str, ...]) -> str | None:
    folded = name.casefold()
    for candidate in names:
        if candidate.casefold() == folded:
            return candidate
    found = difflib.get_close_matches(name, names, n=1)
    return found[0] if found else None
