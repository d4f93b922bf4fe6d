"""Operator settings, from environment variables (the Helm chart sets them).

| variable | meaning | default |
|---|---|---|
| RECONCILER_OPERATOR_INTERVAL | seconds between drift checks of each object | 300 |
| RECONCILER_OPERATOR_MODE | `apply`, or `observe` (plan into status, never write) | apply |
| RECONCILER_OPERATOR_SHARD | label selector `key=value,key2` this replica serves | (all) |
| RECONCILER_OPERATOR_RETRY_DELAY | seconds before a waiting object is retried | 15 |
| RECONCILER_OPERATOR_NAMESPACES | comma-separated namespaces to serve | (all) |
| RECONCILER_OPERATOR_PEERING | kopf peering object name (several replicas) | (standalone) |
| RECONCILER_OPERATOR_PRIORITY | kopf peering priority of this replica | older is higher |
| RECONCILER_OPERATOR_CREDENTIAL_KEY | key of the password fingerprints in status | random |
| RECONCILER_OPERATOR_PASSWORD_ENV | variables `passwordFrom.env` may name (`A,B`) | (none) |
| RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT | seconds a watch may keep failing before exit 1 | 300 |

The three durations (interval, retry delay, watch failure limit) are each at most a day
(`MOST_SECONDS`). A longer one is a unit mistaken (milliseconds for seconds) or a wish to turn
the thing off, and each misleads: an object waiting on a gateway left unretried for days, a
drift left uncorrected as long, a watch failing unseen for as long instead of the restart that
would mend it; and past some 2.5e11 s (year 9999) kopf cannot even say when to retry an
object, failing its handler with an OverflowError traceback, so that it is never retried.

With peering, kopf pauses every operator that sees a peer of the same or higher priority,
so replicas need distinct priorities. By default the one started first has the highest:
minus the microseconds since the epoch when the process started. A replica that starts
while another runs (a pod added, restarted, or of a new version) stands by, and takes over
only once the running one stops (kopf drops its record then) or stops sending keep-alives.
A random priority (kopf's advice) let a newcomer that drew a higher one pause the running
operator at once: kopf has no per-object locks and a pause ends no reconcile in flight, so
the newcomer applied the same objects beside the writes still landing.

The credential key (the chart generates one into a Secret and keeps it across upgrades)
keys the fingerprints of the MQTT passwords sent to devices (`engine.credentials`); every
replica needs the same one. Without it each process makes its own, and a password changed
while the operator restarts goes unnoticed.

A Device's `passwordFrom.env` reads the operator pod's environment, which holds the cloud
tokens: whoever may create a Device in any namespace served could have a variable sent to a
broker of their own. So the operator reads only the variables its installer lists in
RECONCILER_OPERATOR_PASSWORD_ENV (`operator.secrets`), and none of the reconciler's own
settings may be listed (`model.env_names`).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import kopf

from reconciler.model.env_names import NAME_PATTERN, OWN_RULE, is_own_setting
from reconciler.printable import echo

PREFIX = "RECONCILER_OPERATOR_"
T = TypeVar("T")


@dataclass(frozen=True)
class OperatorConfig:
    interval: float = 300.0
    mode: str = "apply"
    shard: str = ""
    retry_delay: float = 15.0
    namespaces: tuple[str, ...] = ()
    peering: str = ""
    priority: int = 0
    credential_key: str = field(default="", repr=False)
    password_env: frozenset[str] = frozenset()
    # Seconds a kind's list and watch may keep failing before the operator stops
    # (`operator.watch_errors`).
    watch_failure_limit: float = 300.0

    @property
    def observe_only(self) -> bool:
        return self.mode == "observe"

    def label_filter(self) -> dict[str, str | object]:
        """The shard selector (checked by `_shard`) as kopf's `labels=` filter."""
        out: dict[str, str | object] = {}
        for term in _shard_terms(self.shard):
            match = re.fullmatch(SHARD_TERM, term)
            assert match is not None, term  # `load` refuses any other selector
            key, value = match.group("key"), match.group("value")
            out[key] = kopf.PRESENT if value is None else value
        return out


class OperatorConfigError(ValueError):
    """Every problem of the operator's variables, each naming its variable and what would
    be valid: all are said at once, as the engine's settings are, not one per restart."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# The longest interval, retry delay and watch failure limit (the module's docstring); the
# chart's values.schema.json has the same maximum.
MOST_SECONDS = 86_400.0


def _seconds(env: Mapping[str, str], name: str, default: str) -> float:
    value = env.get(PREFIX + name) or default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MOST_SECONDS:  # NaN compares false: refused too
        raise ValueError(
            f"{PREFIX}{name} must be a number of seconds greater than 0 and at most "
            f"{MOST_SECONDS:,.0f} (a day), not {echo(value)}"
        )
    return seconds


def _priority(env: Mapping[str, str]) -> int:
    value = env.get(PREFIX + "PRIORITY")
    if not value:
        return -(time.time_ns() // 1000)  # older is higher (the module's docstring)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{PREFIX}PRIORITY must be a whole number, not {echo(value)}") from None


def _password_env(env: Mapping[str, str]) -> frozenset[str]:
    value = env.get(PREFIX + "PASSWORD_ENV", "")
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    for name in sorted(names):
        if not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(
                f"{PREFIX}PASSWORD_ENV must be names of environment variables (letters, "
                f"digits and '_', not starting with a digit) separated by commas, not {echo(name)}"
            )
        if is_own_setting(name):
            raise ValueError(
                f"{PREFIX}PASSWORD_ENV may not list {name}: {OWN_RULE}, which no Device may "
                "read; list only variables that hold MQTT passwords"
            )
    return names


# The terms of a shard selector the operator matches objects by: `key=value` (`==` too) and
# `key` (the label present), label keys and values as Kubernetes has them. The API server
# knows more (`!=`, `in`, `notin`, `!key`), but kopf's filter of the handlers takes only
# these: a selector with another term would have the operator serve nothing, saying nothing.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = rf"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}"
SHARD_TERM = rf"\s*(?P<key>{_LABEL_KEY})\s*(==?\s*(?P<value>({_LABEL_NAME})?)\s*)?"


def _shard_terms(selector: str) -> list[str]:
    """The terms of a selector; an empty one (`a,,b`, `a,`) is refused, as the API server
    refuses it."""
    return selector.split(",") if selector.strip() else []


def _shard(env: Mapping[str, str]) -> str:
    selector = env.get(PREFIX + "SHARD", "")
    for term in _shard_terms(selector):
        if not re.fullmatch(SHARD_TERM, term):
            raise ValueError(
                f"{PREFIX}SHARD must be a label selector of `key=value` and `key` terms "
                f"separated by commas (the operator matches no other: not `!=`, `in`, "
                f"`notin` nor `!key`), not {echo(selector)}: {echo(term.strip())}"
            )
    return selector


def _mode(env: Mapping[str, str]) -> str:
    mode = env.get(PREFIX + "MODE") or "apply"
    if mode not in ("apply", "observe"):
        raise ValueError(f"{PREFIX}MODE must be 'apply' or 'observe', not {echo(mode)}")
    return mode


def load(environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """The operator's settings. An empty variable counts as unset, as the engine's do.
    OperatorConfigError (a ValueError) lists every variable that is not valid, each named
    with what would be."""
    env = os.environ if environ is None else environ
    namespaces = tuple(
        n.strip() for n in env.get(PREFIX + "NAMESPACES", "").split(",") if n.strip()
    )
    problems: list[str] = []
    config = OperatorConfig(
        interval=_checked(problems, lambda: _seconds(env, "INTERVAL", "300"), 300.0),
        mode=_checked(problems, lambda: _mode(env), "apply"),
        shard=_checked(problems, lambda: _shard(env), ""),
        retry_delay=_checked(problems, lambda: _seconds(env, "RETRY_DELAY", "15"), 15.0),
        namespaces=namespaces,
        peering=env.get(PREFIX + "PEERING", ""),
        priority=_checked(problems, lambda: _priority(env), 0),
        credential_key=env.get(PREFIX + "CREDENTIAL_KEY", ""),
        password_env=_checked(problems, lambda: _password_env(env), frozenset()),
        watch_failure_limit=_checked(
            problems, lambda: _seconds(env, "WATCH_FAILURE_LIMIT", "300"), 300.0
        ),
    )
    if problems:
        raise OperatorConfigError(problems)
    return config


def _checked(problems: list[str], read: Callable[[], T], fallback: T) -> T:
    """What `read` gives; or, when it raises ValueError, `fallback`, its message added to
    `problems`: the variables after it are checked too."""
    try:
        return read()
    except ValueError as exc:
        problems.append(str(exc))
        return fallback
