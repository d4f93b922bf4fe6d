"""Which desired-state files the watch agent takes for files still being written: one that
declares nothing now, though in the last valid desired state it declared objects that no
file declares now.

A shell redirection (`generate-devices > sites/devices.yaml`) empties the file at once and
fills it when the command's output comes, often seconds later; an editor that saves in
place empties it too, for less time. Read in between, once the debounce has passed, the
file declares nothing (or only the comments at its top), and with `--prune` the agent
would delete from the gateways and clouds every object it declared, then create them again
under new ids once the file is written. So such a file is an invalid edit: it changes
nothing, and the last valid desired state stays in force until the file declares something
again. Removing a file is what removes its objects. `reconciler apply` asks no such thing:
its user sees the plan before it is applied.
"""

from __future__ import annotations

from reconciler.errors import Diagnostic
from reconciler.sources.loader import LoadResult

# The objects a message names before it counts the others.
_NAMED = 3


def _declared(result: LoadResult) -> dict[str, list[str]]:
    """The objects each file declares, as `Kind name`, by file."""
    found: dict[str, list[str]] = {}
    for resource, origin in zip(result.resources, result.origins, strict=True):
        found.setdefault(origin.file, []).append(f"{resource.KIND} {resource.name}")
    return found


def _names(objects: list[str]) -> str:
    shown = ", ".join(objects[:_NAMED])
    more = len(objects) - _NAMED
    return shown if more <= 0 else f"{shown} and {more} more"


class EmptiedFiles:
    """Remembers what each file declared in the last desired state that loaded and held."""

    def __init__(self) -> None:
        self._declared: dict[str, list[str]] | None = None  # None: nothing loaded yet

    def check(self, result: LoadResult) -> list[Diagnostic]:
        """The files of `result` (a load without problems) held as still being written;
        when there are none, `result` is the last valid desired state from then on."""
        now = _declared(result)
        if self._declared is None:  # at start there is no earlier content to keep
            self._declared = now
            return []
        still = {name for names in now.values() for name in names}
        problems = []
        for file in result.files:
            gone = [name for name in self._declared.get(file, []) if name not in still]
            if file not in now and gone:
                problems.append(Diagnostic(
                    f"declares nothing now, and declared {_names(gone)}, which no other "
                    "file declares: a file emptied is taken for one still being written "
                    "(`command > file` empties it first), not for their removal; to "
                    "remove them, delete the file",
                    file=file,
                ))
        if not problems:
            self._declared = now
        return problems
