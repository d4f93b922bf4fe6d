"""Which objects the watch agent, with `--prune`, keeps declared after the file that
declared them went: a folder refilled file by file (`rm -rf sites && cp -r new sites`, an
rsync over a slow link) is read, once the debounce has passed, with some of its files
still missing, and `--prune` would delete from the gateways and clouds every object they
declare, then create them again under new ids as the files arrive.

So a file that was in the last desired state and is gone now keeps what it declared (that
no file declares now) in the desired state until it has been gone for a whole
`--interval`: at the latest, the first interval run after it went removes them. Its
return within that time deletes nothing. An empty folder and emptied files are held by
`watch_emptied`; this is the partial folder. Without `--prune` nothing is held: what no
file declares is only reported, never deleted.

What it says goes to the log as the agent's other warnings: once when a file's objects
are held, once when they are let go, and once when the file is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.errors import ConfigError, Diagnostic
from reconciler.model.base import Resource
from reconciler.model.fleet import check_fleet
from reconciler.sources.loader import LoadResult

# The objects a line names before it counts the others.
_NAMED = 3


def _names(resources: list[Resource]) -> str:
    objects = [f"{r.KIND} {r.name}" for r in resources]
    shown = ", ".join(objects[:_NAMED])
    more = len(objects) - _NAMED
    return shown if more <= 0 else f"{shown} and {more} more"


@dataclass
class _Held:
    since: float  # when the file was first found gone (the clock's time)
    resources: list[Resource]


class VanishedFiles:
    """The last desired state's resources by file, and those of the files gone since."""

    def __init__(
        self, hold: float, hold_text: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.hold = hold  # seconds: --interval
        self.hold_text = hold_text  # as the user gave it: "5m"
        self.clock = clock
        self._declared: dict[str, list[Resource]] | None = None  # None: nothing loaded yet
        self._held: dict[str, _Held] = {}
        self._said: list[str] = []

    def resources(self, result: LoadResult) -> list[Resource]:
        """The resources of the desired state `result` (a load without problems) stands
        for: its own, and those of the files gone for less than `hold` that no file
        declares now. ConfigError when those do not fit the files as they are now (a
        reference to what an edit removed): nothing changes until they do, or until the
        file has been gone for `hold`."""
        now: dict[str, list[Resource]] = {}
        for resource, origin in zip(result.resources, result.origins, strict=True):
            now.setdefault(origin.file, []).append(resource)
        if self._declared is None:  # at start there is no earlier content to keep
            self._declared = now
            return list(result.resources)
        declared = {(r.KIND, r.name) for r in result.resources}
        for file in result.files:  # back: what it declares now is the desired state
            if self._held.pop(file, None) is not None:
                self._said.append(f"note: {file} is back; nothing it declared was removed")
        for file, held in list(self._held.items()):  # declared by other files now
            if all((r.KIND, r.name) in declared for r in held.resources):
                del self._held[file]
        for file, resources in self._declared.items():
            if file in result.files or file in self._held:
                continue
            kept = [r for r in resources if (r.KIND, r.name) not in declared]
            if kept:
                self._held[file] = _Held(self.clock(), kept)
                self._said.append(
                    f"warning: {file} is gone, and declared {_names(kept)}, which no other "
                    f"file declares: kept declared until it has been gone for --interval "
                    f"({self.hold_text}), then --prune removes them; a folder refilled file "
                    "by file is not taken for their removal"
                )
        for file, held in list(self._held.items()):
            if self.clock() - held.since >= self.hold:
                del self._held[file]
                self._said.append(
                    f"warning: {file} has been gone for {self.hold_text}: "
                    f"{_names(held.resources)} are no longer kept declared, and --prune "
                    "removes them"
                )
        kept = [r for held in self._held.values() for r in held.resources
                if (r.KIND, r.name) not in declared]
        self._declared = now | {file: held.resources for file, held in self._held.items()}
        if kept:
            self._refuse_misfits(list(result.resources), kept)
        return [*result.resources, *kept]

    def _refuse_misfits(self, resources: list[Resource], kept: list[Resource]) -> None:
        held_by = {(r.KIND, r.name): file for file, held in self._held.items()
                   for r in held.resources}
        problems = [
            Diagnostic(f"{p.kind} {p.name} (kept declared while the file is gone): "
                       f"{p.message}", file=held_by[(p.kind, p.name)])
            for p in check_fleet([*resources, *kept]) if (p.kind, p.name) in held_by
        ]
        if problems:
            raise ConfigError(problems)

    def said(self) -> list[str]:
        """What changed since last asked: `warning: ...` and `note: ...` lines."""
        lines, self._said = self._said, []
        return lines
