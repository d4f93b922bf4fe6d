"""PURE: recognising a site renamed in git (or in the cloud) by what it holds.

A Site without `siteId` is found by its display name. When no remote site has that name,
the site an earlier apply put it in is the same site under the name it had before, where
the CLI's state directory remembers one (`novacore_sites.applied_site`). Failing that, so is
the site no declared Site claims that holds this Site's objects and nothing else.
Renaming it keeps its id, devices and history, where creating a site would duplicate it.
Only a site whose every object this Site declares qualifies, so a site that also holds
others is never taken over; two that qualify, or one whose contents cannot be read, are
not guessed between. Each platform's
planner says what "holds" and "declares" mean for it (Novacore devices by hardware id,
Enapter devices by hardware id or slug).

Looking costs one read per unclaimed site, made only while a Site matches no site by name.
An organisation shared with many sites nobody declares would make that thousands of reads
on every plan until the Site is created, so above `SEARCH_LIMIT` unclaimed sites there is
no search and the plan says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from reconciler.plan.observed import Unreachable
from reconciler.printable import echo

SEARCH_LIMIT = 200
RENAMED_MESSAGE = (
    "renamed: site {id} holds this Site's devices and nothing else, so it is renamed rather "
    "than created again; set `siteId` to pin it"
)
REMEMBERED_MESSAGE = (
    "renamed: an earlier apply put this Site in site {id} (the state directory remembers "
    "it), so it is renamed rather than created again; set `siteId` to pin it"
)


class RemoteSite(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


SiteT = TypeVar("SiteT", bound=RemoteSite)
HeldT = TypeVar("HeldT")


@dataclass(frozen=True)
class Rename(Generic[SiteT]):
    """What `find_renamed` found: the site the Site was called before (None: none), or
    why it cannot tell."""

    site: SiteT | None = None
    problem: str | None = None
    # The problem is a site whose contents could not be read (try again), not ambiguity.
    unreachable: bool = False
    # Unclaimed sites not searched, there being more than SEARCH_LIMIT.
    skipped: int = 0

    def not_found(self, message: str) -> str:
        """The message of a create: `message`, and that no search was made when so."""
        if not self.skipped:
            return message
        return (
            f"{message}; the {self.skipped} sites no Site claims were not searched for the "
            f"one it was renamed from (more than {SEARCH_LIMIT}): set `siteId` if it was"
        )


def find_renamed(
    candidates: Sequence[SiteT],
    contents: Mapping[str, Sequence[HeldT] | Unreachable],
    declared: Callable[[HeldT], bool],
) -> Rename[SiteT]:
    """Among `candidates` (the unclaimed sites), the one whose contents (by site id) are
    not empty and all `declared` by the Site."""
    if len(candidates) > SEARCH_LIMIT:
        return Rename(skipped=len(candidates))
    found: list[SiteT] = []
    for candidate in candidates:
        held = contents.get(candidate.id)
        if isinstance(held, Unreachable):
            return Rename(
                problem=f"devices of site {candidate.id}: {held.reason}", unreachable=True
            )
        if held and all(declared(item) for item in held):
            found.append(candidate)
    if len(found) > 1:
        names = ", ".join(f"{c.id} ({echo(c.name)})" for c in found)
        return Rename(
            problem=f"this Site's devices are in several sites ({names}); set `siteId` to "
            "the one it is"
        )
    return Rename(site=found[0] if found else None)
