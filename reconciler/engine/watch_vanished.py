"""Which objects the watch agent, with `--prune`, keeps declared after the files stopped
declaring them: a folder refilled file by file (`rm -rf sites && cp -r new sites`, an
rsync over a slow link) is read, once the debounce has passed, with some of its files
still missing, and a file being written (an editor, `git checkout`, a copy) with only its
first documents there; `--prune` would delete from the gateways and clouds every object
the missing files and documents declare, then create them again under new ids as they
arrive. As Argo CD and Flux prune only what a complete source no longer declares, the
agent waits for the files to settle.

So an object that was in the last desired state and that no file declares now (its file
gone, or still there without it) is kept in the desired state until it has been undeclared
for a whole `--interval`: at the latest, the first interval run after that removes it. Its
return within that time deletes nothing. An empty folder and emptied files are held by
`watch_emptied`; this is the partial folder and the partial file. Without `--prune` nothing
is held: what no file declares is only reported, never deleted.

Objects kept must fit the files as they are now: one that does not (a reference to what
an edit removed) makes the desired state invalid until it does, or until it is let go.

What it says goes to the log as the agent's other warnings: once when objects are kept,
once when they are let go, and once when they are declared again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.errors import ConfigError, Diagnostic
from reconciler.model.base import Resource
from reconciler.model.fleet import check_fleet
from reconciler.sources.loader import LoadResult

Key = tuple[str, str]  # (kind, name)

# The objects a line names before it counts the others.
_NAMED = 3


def _key(resource: Resource) -> Key:
    return (resource.KIND, resource.name)


def _names(resources: list[Resource]) -> str:
    objects = [f"{r.KIND} {r.name}" for r in resources]
    shown = ", ".join(objects[:_NAMED])
    more = len(objects) - _NAMED
    return shown if more <= 0 else f"{shown} and {more} more"


@dataclass
class _Held:
    since: float  # when it was first found undeclared (the clock's time)
    file: str  # the file that declared it
    resource: Resource


class VanishedObjects:
    """The last desired state's resources, and those undeclared since, kept for `hold`."""

    def __init__(
        self, hold: float, hold_text: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.hold = hold  # seconds: --interval
        self.hold_text = hold_text  # as the user gave it: "5m"
        self.clock = clock
        # By (kind, name): the file that declared it and the resource; None: nothing
        # loaded yet.
        self._declared: dict[Key, tuple[str, Resource]] | None = None
        self._held: dict[Key, _Held] = {}
        self._gone: set[str] = set()  # files gone whose objects are kept
        self._said: list[str] = []

    def resources(self, result: LoadResult) -> list[Resource]:
        """The resources of the desired state `result` (a load without problems) stands
        for: its own, and those undeclared for less than `hold`. ConfigError when those
        do not fit the files as they are now (a reference to what an edit removed):
        nothing changes until they do, or until they are let go."""
        now = {_key(r): (origin.file, r)
               for r, origin in zip(result.resources, result.origins, strict=True)}
        if self._declared is None:  # at start there is no earlier content to keep
            self._declared = now
            return list(result.resources)
        files = set(result.files)
        self._release_declared(now, files)
        self._hold_undeclared(self._declared, now, files)
        self._let_go(files)
        self._declared = now | {key: (held.file, held.resource)
                                for key, held in self._held.items()}
        kept = [held.resource for held in self._held.values()]
        if kept:
            self._refuse_misfits(list(result.resources), kept)
        return [*result.resources, *kept]

    def _release_declared(self, now: dict[Key, tuple[str, Resource]], files: set[str]) -> None:
        """Objects kept that a file declares again: the desired state is the files'."""
        again: dict[str, list[Resource]] = {}  # by file, what it declares again
        for key, held in list(self._held.items()):
            if key in now:
                del self._held[key]
                if now[key][0] == held.file:  # moved to another file: nothing to say
                    again.setdefault(held.file, []).append(held.resource)
        for file in sorted(self._gone & files):
            self._gone.discard(file)
            again.pop(file, None)
            still = [held.resource for held in self._held.values() if held.file == file]
            if still:
                self._said.append(
                    f"note: {file} is back without {_names(still)}: kept declared until "
                    f"they have been undeclared for --interval ({self.hold_text}), then "
                    "--prune removes them"
                )
            else:
                self._said.append(f"note: {file} is back; nothing it declared was removed")
        for file, resources in again.items():
            self._said.append(
                f"note: {file} declares {_names(resources)} again; nothing was removed"
            )

    def _hold_undeclared(self, last: dict[Key, tuple[str, Resource]],
                         now: dict[Key, tuple[str, Resource]], files: set[str]) -> None:
        """Objects of the `last` desired state that no file declares `now`: kept from
        now on."""
        found: dict[str, list[Resource]] = {}
        for key, (file, resource) in last.items():
            if key in now or key in self._held:
                continue
            self._held[key] = _Held(self.clock(), file, resource)
            found.setdefault(file, []).append(resource)
        for file, resources in found.items():
            if file not in files:
                self._gone.add(file)
                self._said.append(
                    f"warning: {file} is gone, and declared {_names(resources)}, which no "
                    f"other file declares: kept declared until it has been gone for "
                    f"--interval ({self.hold_text}), then --prune removes them; a folder "
                    "refilled file by file is not taken for their removal"
                )
            else:
                self._said.append(
                    f"warning: {file} no longer declares {_names(resources)}, which no "
                    f"other file declares: kept declared until they have been undeclared "
                    f"for --interval ({self.hold_text}), then --prune removes them; a file "
                    "read while it is being written is not taken for their removal"
                )

    def _let_go(self, files: set[str]) -> None:
        """Objects undeclared for `hold`: out of the desired state, for --prune to remove."""
        expired: dict[str, list[Resource]] = {}
        for key, held in list(self._held.items()):
            if self.clock() - held.since >= self.hold:
                del self._held[key]
                expired.setdefault(held.file, []).append(held.resource)
        for file, resources in expired.items():
            if file in files:
                self._said.append(
                    f"warning: {file} has not declared {_names(resources)} for "
                    f"{self.hold_text}: they are no longer kept declared, and --prune "
                    "removes them"
                )
            else:
                self._said.append(
                    f"warning: {file} has been gone for {self.hold_text}: "
                    f"{_names(resources)} are no longer kept declared, and --prune "
                    "removes them"
                )
        # A file whose objects are all let go (or declared elsewhere) is no longer
        # waited for: its return much later is a new file, not one "back".
        self._gone &= {held.file for held in self._held.values()}

    def _refuse_misfits(self, resources: list[Resource], kept: list[Resource]) -> None:
        problems = [
            Diagnostic(f"{p.kind} {p.name} (kept declared while no file declares it): "
                       f"{p.message}", file=self._held[(p.kind, p.name)].file)
            for p in check_fleet([*resources, *kept]) if (p.kind, p.name) in self._held
        ]
        if problems:
            raise ConfigError(problems)

    def said(self) -> list[str]:
        """What changed since last asked: `warning: ...` and `note: ...` lines."""
        lines, self._said = self._said, []
        return lines

