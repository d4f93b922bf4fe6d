"""The bound on the problems one load of the desired state reports: the first `PER_FILE` of
each file and `TOTAL` in all, in the order they were found. The others are counted per
file, not kept, and said in one line per file after those shown.

A file of garbage (300,000 documents of `kind: Site` alone) would otherwise print 900,000
lines, and hold as many diagnostics in memory: nobody reads past the first screens, and
the first problems are the ones to fix (later ones often follow from them). Compilers bound
their output likewise (javac shows 100 errors, clang 20). The cap is per file as well, so
that one broken file does not hide the problems of the others."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.errors import Diagnostic
from reconciler.printable import printable

PER_FILE = 20
TOTAL = 100
# Files named one by one in the lines about problems not shown; the others are summed up.
_FILES_NAMED = 10


@dataclass
class Collected:
    """Diagnostics as found, up to the cap, and how many more each file had."""

    kept: list[Diagnostic] = field(default_factory=list)
    omitted: dict[str | None, int] = field(default_factory=dict)
    _kept_of: dict[str | None, int] = field(default_factory=dict)

    def room(self, file: str | None) -> int:
        """How many more problems of `file` are kept; the others are only counted, and
        need not be located or even built."""
        return max(0, min(TOTAL - len(self.kept), PER_FILE - self._kept_of.get(file, 0)))

    def keeps(self, file: str | None) -> bool:
        """Whether the next problem of `file` is kept."""
        return self.room(file) > 0

    def add(self, diagnostic: Diagnostic) -> None:
        if self.keeps(diagnostic.file):
            self.kept.append(diagnostic)
            self._kept_of[diagnostic.file] = self._kept_of.get(diagnostic.file, 0) + 1
        else:
            self.count(diagnostic.file)

    def extend(self, diagnostics: list[Diagnostic]) -> None:
        for diagnostic in diagnostics:
            self.add(diagnostic)

    def count(self, file: str | None, problems: int = 1) -> None:
        """`problems` more problems of `file`, not kept."""
        if problems:
            self.omitted[file] = self.omitted.get(file, 0) + problems


def total(kept: list[Diagnostic], omitted: Mapping[str | None, int]) -> int:
    return len(kept) + sum(omitted.values())


def _problems(count: int) -> str:
    return f"{count} problem{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class Omission:
    """Problems not shown: of one file, or summed up over `files` files (`file` None)."""

    file: str | None
    problems: int
    files: int = 1

    def text(self) -> str:
        more = f"{self.problems} more {'problem' if self.problems == 1 else 'problems'}"
        if self.files > 1:
            return f"note: {self.files} more files: {more} not shown"
        return f"note: {printable(self.file) + ': ' if self.file else ''}{more} not shown"


def omissions(omitted: Mapping[str | None, int]) -> list[Omission]:
    """What is not shown, file by file for the first files, then summed up."""
    items = list(omitted.items())
    named = [Omission(file, count) for file, count in items[:_FILES_NAMED]]
    rest = items[_FILES_NAMED:]
    if rest:
        named.append(Omission(None, sum(n for _, n in rest), files=len(rest)))
    return named


RULE = (f"note: the first {PER_FILE} problems of a file and {TOTAL} in all are shown; fix "
        "these first")


def omitted_lines(omitted: Mapping[str | None, int]) -> list[str]:
    """`note:` lines saying how many problems of each file are not shown, and why."""
    lines = [omission.text() for omission in omissions(omitted)]
    return [*lines, RULE] if lines else []


def summary(kept: list[Diagnostic], omitted: Mapping[str | None, int]) -> str:
    """`N problems`, and how many of them are shown when some are not."""
    text = _problems(total(kept, omitted))
    return f"{text}, {len(kept)} shown" if omitted else text
