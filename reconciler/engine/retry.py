"""Retries with exponential backoff and full jitter that honour Retry-After. Only
retryable errors (ProviderUnavailable) are retried; everything else fails at once, and so
does one whose Retry-After is longer than a run waits, or one retried only at the next run
(`retried_at_once`: a Modbus device that did not answer within its timeout).

Writes (an apply's changes) make `RECONCILER_RETRIES` attempts; reads that observe the
actual state make at most `READ_ATTEMPTS` of them (`read_policy`)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from reconciler.errors import ProviderError
from reconciler.printable import clipped

T = TypeVar("T")

# The longest a Retry-After is honoured once a run gave up on it: a day, as long as the
# platforms ask for (a quota spent for the day). The watch agent's next drift run, the
# operator's retry of an object and the servers left alone (`host_waits`) all wait that
# long at most: a date years ahead, or more digits than a date holds, is a wrong header,
# and kopf and the watch agent's log could not even say when that time is.
LONGEST_WAIT_S = 86400.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_s: float = 0.1
    max_s: float = 10.0
    # The longest Retry-After a run waits for. A server asking for longer (an outage
    # planned for the night, a day's quota spent) is not called again in this run: waiting
    # for it would park the run for hours, and calling sooner than it asked is hammering it.
    max_retry_after_s: float = 60.0

    def asked_to_wait(self, error: ProviderError) -> float | None:
        """The Retry-After of a retryable `error` when it is longer than a run waits (so
        the error was not retried), as the server asked it, however long; else None.
        Whoever waits for it waits `honoured(wait)`."""
        wait = error.retry_after
        if error.retryable and wait is not None and wait > self.max_retry_after_s:
            return wait
        return None

    def delay(self, attempt: int, error: ProviderError, rng: random.Random) -> float:
        backoff = rng.uniform(0, min(self.max_s, self.base_s * 2**attempt))
        if error.retry_after is not None:
            return max(min(error.retry_after, self.max_retry_after_s), backoff)
        return backoff


# Attempts of a read that observes the actual state, at most. A plan defers what it cannot
# read and says why, so it should not wait minutes on a cloud that is down (three timeouts
# are half a minute already); the next plan reads again. A write was asked for: it
# perseveres for every attempt RECONCILER_RETRIES allows.
READ_ATTEMPTS = 3


def read_policy(retries: int) -> RetryPolicy:
    """The policy of the reads that observe the actual state (those of a plan, and of the
    plan an apply, the watch agent or the operator makes first): `retries` attempts
    (RECONCILER_RETRIES), at most READ_ATTEMPTS."""
    return RetryPolicy(attempts=min(READ_ATTEMPTS, retries))


def honoured(wait: float) -> float:
    """How long a server's Retry-After of `wait` seconds is waited for: `LONGEST_WAIT_S` at
    most."""
    return min(wait, LONGEST_WAIT_S)


# Digits of a Retry-After said whole: the 15 a float (as the header is read) keeps of any
# number; the digits after them would be the float's, not the server's. A longer one (300
# digits, a wrong header) is cut as any value from outside is: its first digits, and how
# many there were.
_DIGITS_SAID = 15


def asked_seconds(wait: float) -> str:
    """A Retry-After in words, as the server asked it: a day asked for as an HTTP date
    reads "86400 s", not "86399.61 s"; 300 digits read as their first 15 and how many."""
    return f"{clipped(str(math.ceil(wait)), _DIGITS_SAID)} s"


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    rng: random.Random | None = None,
    on_retry: Callable[[int, ProviderError, float], None] | None = None,
    stop: asyncio.Event | None = None,
) -> T:
    """`call`, tried again after a retryable error as `policy` says. Once `stop` is set, a
    wait before the next attempt ends at once: that attempt then decides whether to start
    (an apply that is stopping starts none), instead of after the wait a server asked for,
    up to a minute of a run that was asked to end."""
    attempt = 0
    while True:
        try:
            return await call()
        except ProviderError as error:
            attempt += 1
            if not error.retryable or not error.retried_at_once:
                raise
            wait = policy.asked_to_wait(error)
            if wait is not None:
                # What the server said, however long: the waits that follow are capped.
                if error.args:
                    error.args = (
                        f"{error.args[0]} (not retried: the server asks to be called again in "
                        f"{asked_seconds(wait)} (Retry-After), later than the "
                        f"{policy.max_retry_after_s:g} s a run waits)",
                    )
                raise
            if attempt >= policy.attempts:
                if attempt > 1 and error.args:
                    # Why the failure took this long: said once, where it is given up.
                    error.args = (f"{error.args[0]} (gave up after {attempt} attempts)",)
                raise
            # Seeding a generator reads the OS's entropy: only for calls that do retry.
            rng = rng or random.Random()  # noqa: S311 - jitter, not security
            delay = policy.delay(attempt, error, rng)
            if on_retry is not None:
                on_retry(attempt, error, delay)
            await _pause(delay, stop)


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    """Sleep `seconds`, or until `stop` is set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    # Not `asyncio.wait_for`: on Python 3.11 a cancellation that lands as `stop` is set is
    # lost there (the wait returns, and the cancelled caller goes on to its next call).
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()
