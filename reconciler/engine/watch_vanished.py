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

An object kept that no longer fits the files as they are now (a Device naming a Gateway
renamed since, one whose serial a declared object took) is left out of the desired state
rather than making the files invalid: they are valid without it. It is not deleted either
(it may be the old name of what the files declare now, or wait for a file that is being
written): while one is left out, the agent's plans are made without `--prune`, until it
fits again, is declared again or is let go.

What it says goes to the log as the agent's other warnings: once when objects are kept,
once when they are let go, once when they are declared again, and once when one is left
out (and when none is any more). While one is, the listing of the objects found that
nothing declares says that the run removes none of them, and why (`withheld`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.model.base import Resource
from reconciler.model.fleet import Problem, check_fleet
from reconciler.model.kinds import KINDS
from reconciler.sources.field_help import render_path
from reconciler.sources.loader import LoadResult

Key = tuple[str, str]  # (kind, name)

# The objects a line names before it counts the others.
_NAMED = 3
# Kinds in dependency order: an object kept is tried after those it may reference.
_RANK = {kind: rank for rank, kind in enumerate(KINDS)}


def _key(resource: Resource) -> Key:
    return (resource.KIND, resource.name)


def _names(resources: list[Resource]) -> str:
    return _listed([_key(r) for r in resources])


def _listed(keys: list[Key]) -> str:
    objects = [f"{kind} {name}" for kind, name in keys]
    shown = ", ".join(objects[:_NAMED])
    more = len(objects) - _NAMED
    return shown if more <= 0 else f"{shown} and {more} more"


@dataclass
class _Held:
    since: float  # when it was first found undeclared (the clock's time)
    file: str  # the file that declared it
    resource: Resource


@dataclass(frozen=True)
class Desired:
    """What a load stands for: the resources to reconcile, and whether `--prune` may
    delete what they do not declare (not while an object kept is left out)."""

    resources: list[Resource]
    prune: bool


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
        self._left_out: dict[Key, str] = {}  # objects kept that do not fit: the line said
        self._said: list[str] = []

    def resources(self, result: LoadResult) -> Desired:
        """The desired state `result` (a load without problems) stands for: its own
        resources, and those undeclared for less than `hold` that fit with them."""
        now = {_key(r): (origin.file, r)
               for r, origin in zip(result.resources, result.origins, strict=True)}
        if self._declared is None:  # at start there is no earlier content to keep
            self._declared = now
            return Desired(list(result.resources), prune=True)
        files = set(result.files)
        self._release_declared(now, files)
        self._hold_undeclared(self._declared, now, files)
        self._let_go(files)
        self._declared = now | {key: (held.file, held.resource)
                                for key, held in self._held.items()}
        fit, left_out = _fitting(list(result.resources),
                                 [held.resource for held in self._held.values()])
        self._say_left_out(left_out, files)
        return Desired([*result.resources, *fit], prune=not left_out)

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

    def _say_left_out(self, left_out: dict[Key, str], files: set[str]) -> None:
        lines: dict[Key, str] = {}
        for key, why in left_out.items():
            file = self._held[key].file
            because = f"{file} no longer declares it" if file in files else f"{file} is gone"
            lines[key] = (
                f"warning: {key[0]} {key[1]}, kept declared since {because}, does not fit "
                f"the files as they are now ({why}): it is left out of the desired state, "
                "and --prune removes nothing until it fits again, is declared again or is "
                f"let go (--interval, {self.hold_text}, after it went)"
            )
        self._said += [line for key, line in lines.items() if self._left_out.get(key) != line]
        if self._left_out and not lines:
            self._said.append("note: no object kept declared is left out any more: --prune "
                              "removes again what no file declares")
        self._left_out = lines

    def withheld(self) -> str | None:
        """Why the plans of the last desired state remove nothing that no file declares,
        --prune given: the objects kept that are left out of it (`resources`); None when
        none is, and they prune. What the listing of the unmanaged objects says in place
        of what --prune does with them (`watch_unmanaged`)."""
        if not self._left_out:
            return None
        one = len(self._left_out) == 1
        return (
            f"{_listed(list(self._left_out))}, kept declared, "
            f"{'does' if one else 'do'} not fit the files as they are now, and --prune "
            f"removes nothing until {'it fits' if one else 'they fit'} again, "
            f"{'is' if one else 'are'} declared again or {'is' if one else 'are'} let go"
        )

    def said(self) -> list[str]:
        """What changed since last asked: `warning: ...` and `note: ...` lines."""
        lines, self._said = self._said, []
        return lines


def _fitting(declared: list[Resource], held: list[Resource]) -> tuple[list[Resource],
                                                                          dict[Key, str]]:
    """The objects of `held` that fit with `declared` (which fit on their own), and why
    each of the others does not. Those a problem names are left out first, until none is
    named (one check per round: a gateway, then the devices naming it); a problem left
    that names a declared object only, each is tried after the kinds it may reference,
    with those that fit before it."""
    fit = list(held)
    left_out: dict[Key, str] = {}
    while fit and (problems := check_fleet([*declared, *fit])):
        named = {(p.kind, p.name) for p in problems} & {_key(r) for r in fit}
        if not named:
            return _one_by_one(declared, fit, left_out)
        left_out |= {_key(r): _why(r, problems) for r in fit if _key(r) in named}
        fit = [r for r in fit if _key(r) not in named]
    return fit, left_out


def _one_by_one(declared: list[Resource], held: list[Resource],
                left_out: dict[Key, str]) -> tuple[list[Resource], dict[Key, str]]:
    fit: list[Resource] = []
    for resource in sorted(held, key=lambda r: _RANK.get(r.KIND, len(_RANK))):
        problems = check_fleet([*declared, *fit, resource])
        if problems:
            left_out[_key(resource)] = _why(resource, problems)
        else:
            fit.append(resource)
    return fit, left_out


def _why(resource: Resource, problems: list[Problem]) -> str:
    """The problem that `resource` brings, as the loader says it: its own first."""
    own = [p for p in problems if (p.kind, p.name) == _key(resource)]
    problem = (own or problems)[0]
    where = render_path(problem.path)
    text = f"{where}: {problem.message}" if where else problem.message
    return text if own else f"{problem.kind} {problem.name}: {text}"
