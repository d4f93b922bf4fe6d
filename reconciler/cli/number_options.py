"""The numeric options of a command (`sim up --latency-ms`, `--error-rate`, `--sites`...)
and the range each may take: every value given is checked at once, and each one that is no
number, or one out of its range, is named with the range, as `watch` names a bad duration
(`error: --latency-ms: must be ...`, `invalid arguments: N problems`, exit 1).

argparse's own `type=float` would take `nan`, `inf` and `-5` for a latency and start the
simulators with them; its `type=int` would take `--sites -2` and write no site at all."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from reconciler.errors import ConfigError, Diagnostic
from reconciler.printable import echo


@dataclass(frozen=True)
class NumberOption:
    """An option taking a number from `low` to `high` (None: no upper bound), a whole one
    when `whole`; `what` names its unit in the error (`milliseconds`), `why` says why the
    range ends where it does, when that is not plain."""

    option: str
    low: float
    high: float | None
    whole: bool = False
    what: str = ""
    why: str = ""

    @property
    def dest(self) -> str:
        return self.option.removeprefix("--").replace("-", "_")

    def expected(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        unit = f" of {self.what}" if self.what else ""
        bounds = (f"from {_shown(self.low)} to {_shown(self.high)}" if self.high is not None
                  else f"of {_shown(self.low)} or more")
        return f"{kind}{unit} {bounds}{f' ({self.why})' if self.why else ''}"

    def parse(self, text: str) -> float | int:
        """The value of `text`; ValueError saying what the option takes."""
        try:
            value: float | int = int(text) if self.whole else float(text)
        except ValueError:
            raise ValueError(f"must be {self.expected()}, not {echo(text)}") from None
        if (not math.isfinite(value) or value < self.low
                or (self.high is not None and value > self.high)):
            raise ValueError(f"must be {self.expected()}, not {echo(text)}")
        return value


def _shown(bound: float) -> str:
    """3600000, not 3.6e+06: as the user would type it."""
    return str(int(bound)) if bound == int(bound) else str(bound)


def parse_all(args: argparse.Namespace, options: tuple[NumberOption, ...]) -> None:
    """Replace each option's text in `args` (argparse leaves it a string; None when not
    given and without default) by its number; ConfigError ("arguments") naming every one
    that is no number or out of its range."""
    problems: list[Diagnostic] = []
    for option in options:
        text = getattr(args, option.dest)
        if text is None or not isinstance(text, str):
            continue
        try:
            setattr(args, option.dest, option.parse(text))
        except ValueError as error:
            problems.append(Diagnostic(str(error), path=option.option))
    if problems:
        raise ConfigError(problems, subject="arguments")
