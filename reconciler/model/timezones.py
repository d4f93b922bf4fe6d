"""The IANA time zone names a Site's `timezone` may take.

They are read from the tzdata package (a dependency), not found through `ZoneInfo`: that
also takes any file of the host's own zoneinfo directory, so `localtime`, `posixrules`,
`posix/Europe/Stockholm` or `right/UTC` passed `validate` on a host with one and failed on
another (a container without it), and would have been sent to the clouds, which know no
such zone. The list is the same wherever the reconciler runs.
"""

from __future__ import annotations

import functools
from importlib import resources

# In the database, but the zone of no place: "the time zone is not set" (its abbreviation
# is "-00"); a site is somewhere.
_NO_PLACE = frozenset({"Factory"})


@functools.cache
def names() -> frozenset[str]:
    """Every IANA time zone name (`Europe/Stockholm`, `UTC`, links such as `US/Pacific`)."""
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listed.split()) - _NO_PLACE


@functools.cache
def _by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in names()}


def spelled(value: str) -> str | None:
    """The name `value` means when written in another case (`europe/stockholm`), or None."""
    return _by_folded_name().get(value.casefold())
