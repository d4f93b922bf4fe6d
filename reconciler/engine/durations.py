"""Durations as `watch --interval` and `--debounce` take them (`30`, `500ms`, `1m30s`) and
as the agent says them. A module of its own, with nothing of the engine: the CLI's parser
names the forms in its usage errors without loading the watch loop."""

from __future__ import annotations

import re

from reconciler.printable import echo

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# What a duration may be, as the errors say it.
DURATION_FORMS = "seconds (30) or units (500ms, 30s, 5m, 1h, 1m30s)"


def parse_duration(text: str) -> float:
    """Seconds in `text`: a plain number of seconds (`2`, `0.5`) or Go-style units
    (`500ms`, `30s`, `5m`, `1h`, `1m30s`). Raises ValueError naming the accepted forms."""
    raw = text.strip().lower()
    forms = f"use {DURATION_FORMS}"
    if re.match(r"-\s*[\d.]", raw):
        raise ValueError(f"invalid duration {echo(text)}: a duration cannot be negative; {forms}")
    try:
        seconds = float(raw)
    except ValueError:
        parts = _DURATION_PART.findall(raw)
        if not raw or "".join(n + u for n, u in parts) != raw:
            raise ValueError(f"invalid duration {echo(text)}: {forms}") from None
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds != seconds or seconds == float("inf"):
        raise ValueError(f"invalid duration {echo(text)}: must be a finite number; {forms}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
