"""Faults a simulator can inject, deterministic for a given seed and request order:
added latency (fixed plus jitter, before a request is carried out, and a delay of a
write's answer after it), a rate of 5xx answers, 429 with Retry-After (or any Retry-After
text with every fault's answer), writes whose answer is lost after they took effect,
answers of a shape the platform does not document, and offline modes (connection refused,
or accepted and never answered)."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class Offline(StrEnum):
    ONLINE = "online"
    REFUSE = "refuse"  # the port is closed: connection refused
    HANG = "hang"  # connections are accepted and never answered


@dataclass
class FaultConfig:
    """What to inject. Rates are fractions of requests in [0, 1]."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # Added after a write was carried out, before it is answered: it takes effect at once
    # and its answer is still on its way (a client killed meanwhile never sees it).
    answer_delay_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    throttle_rate: float = 0.0
    retry_after_s: float = 1.0
    # Sent as it is as the Retry-After of every fault's answer (the 5xx ones too), in place
    # of `retry_after_s`: an HTTP date, a day in seconds, or text no client can read.
    retry_after: str = ""
    offline: Offline = Offline.ONLINE
    # Answer the next N requests with `error_status` (then behave normally): a storm.
    fail_next: int = 0
    # Answer the next N requests with 429: a throttling storm.
    throttle_next: int = 0
    # Carry out the next N writes, then answer them with `error_status` all the same: the
    # answer is lost on its way back (a proxy timing out after the backend acted)...
    lose_next: int = 0
    # ...or a fraction of all writes.
    lose_rate: float = 0.0
    # Answer the next N requests with 200 and `garble_body` as their JSON (a write is
    # carried out first): valid JSON of a shape the platform does not document, as from a
    # platform that changed its API or a proxy answering in its place.
    garble_next: int = 0
    garble_body: Any = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["offline"] = str(self.offline)
        return data

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update (from the admin API): all of it, or, when a key is unknown
        or a value of the wrong type or out of its range (`RANGES`), none of it (ValueError
        says which)."""
        names = {f.name for f in fields(self)}
        converted: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(names))}")
            current = getattr(self, key)
            try:
                if key == "offline":
                    converted[key] = Offline(value)
                elif isinstance(current, (int, float)):
                    converted[key] = type(current)(value)
                elif isinstance(current, str) and not isinstance(value, str):
                    raise TypeError(key)
                else:
                    converted[key] = value
            except (TypeError, ValueError):
                raise ValueError(f"{key}: {value!r} is not a valid value") from None
            if key in RANGES:
                _check_range(key, converted[key])
        for key, value in converted.items():
            setattr(self, key, value)


# The numbers a fault may be, (lowest, highest or None), as `update` checks them: a
# negative latency, a rate above 1 or a storm of -3 requests is no fault at all.
RANGES: dict[str, tuple[float, float | None]] = {
    "latency_ms": (0, None),
    "jitter_ms": (0, None),
    "answer_delay_ms": (0, None),
    "error_rate": (0, 1),
    "error_status": (400, 599),  # an answer in place of the handler's is an error
    "throttle_rate": (0, 1),
    "retry_after_s": (0, None),
    "fail_next": (0, None),
    "throttle_next": (0, None),
    "lose_next": (0, None),
    "lose_rate": (0, 1),
    "garble_next": (0, None),
}


def _check_range(key: str, value: float) -> None:
    low, high = RANGES[key]
    if math.isfinite(value) and low <= value and (high is None or value <= high):
        return
    bounds = f"from {low:g} to {high:g}" if high is not None else f"{low:g} or more"
    raise ValueError(f"{key}: must be a number {bounds}, not {value!r}")


@dataclass
class Decision:
    """What the fault layer decided for one request."""

    delay_s: float = 0.0
    answer_delay_s: float = 0.0  # after a write's handler ran, before answering
    status: int | None = None  # an error status to answer with instead of the handler
    retry_after_s: float | None = None
    hang: bool = False
    lose_answer: bool = False  # run the handler, then answer `status` instead of its answer
    garbled: bool = False  # run the handler, then answer `garble_body` instead of its answer


@dataclass
class FaultInjector:
    """Draws decisions from a seeded random stream, one per request."""

    config: FaultConfig = field(default_factory=FaultConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - reproducible faults

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._random = random.Random(seed)  # noqa: S311 - reproducible faults, not security

    def decide(self, *, write: bool = False) -> Decision:
        config = self.config
        decision = Decision()
        if config.offline is Offline.HANG:
            decision.hang = True
            return decision
        delay = config.latency_ms
        if config.jitter_ms:
            delay += self._random.uniform(0, config.jitter_ms)
        decision.delay_s = delay / 1000.0
        if write:
            decision.answer_delay_s = config.answer_delay_ms / 1000.0
        if write and config.lose_next > 0:
            config.lose_next -= 1
            decision.status, decision.lose_answer = config.error_status, True
        elif write and config.lose_rate and self._random.random() < config.lose_rate:
            decision.status, decision.lose_answer = config.error_status, True
        elif config.garble_next > 0:
            config.garble_next -= 1
            decision.garbled = True
        elif config.fail_next > 0:
            config.fail_next -= 1
            decision.status = config.error_status
        elif config.throttle_next > 0:
            config.throttle_next -= 1
            decision.status, decision.retry_after_s = 429, config.retry_after_s
        elif config.error_rate and self._random.random() < config.error_rate:
            decision.status = config.error_status
        elif config.throttle_rate and self._random.random() < config.throttle_rate:
            decision.status, decision.retry_after_s = 429, config.retry_after_s
        return decision
