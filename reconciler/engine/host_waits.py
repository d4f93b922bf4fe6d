"""The servers that asked, by the Retry-After of a 429 or 5xx answer, not to be called
before a time, and the refusal to call one of them sooner.

One reconcile that honours a Retry-After is not enough: the operator runs a reconcile per
object, each with its own session, and every other object's would call a throttled cloud
at once, a hundred calls right after it asked for quiet. So the record is kept by whoever
outlives a run (the operator's `Runtime`, the watch agent's `Cycle`) and handed to each
session; a CLI run keeps its own, shared by every site of that run. A call to a server
held is not sent: it fails at once as the 429 did (`transport.AskedToWait`, retryable,
after the time left), and the retries, the deferred reads and the delays of the operator
and of the watch agent take it as they take a 429.

Kept per origin (scheme, host and port): the other servers, each gateway among them, are
called as usual. The longest wait asked is kept, for a day at most (`retry.LONGEST_WAIT_S`,
as the other waits): a wrong header (a date a year ahead) keeps a server quiet no longer,
and a server still out of quota then says so again to the one call it gets."""

from __future__ import annotations

import datetime
import math
import time

import httpx

from reconciler.engine.retry import LONGEST_WAIT_S, asked_seconds
from reconciler.providers.transport import AskedToWait, retry_after_seconds

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: httpx.URL) -> str:
    """`scheme://host:port` of `url`: what a server's Retry-After holds (no path, no
    credentials, no query: it is said in messages)."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = url.port or _DEFAULT_PORTS.get(url.scheme)
    return f"{url.scheme}://{host}:{port}" if port else f"{url.scheme}://{host}"


def _asks_to_wait(response: httpx.Response) -> float | None:
    """The seconds an answer asks to be left alone for: a Retry-After on an answer the
    engine retries (429, 5xx), as `transport.error_for` reads it."""
    status = response.status_code
    if status != 429 and status < 500:
        return None
    wait = retry_after_seconds(response.headers.get("Retry-After"))
    return wait if wait else None


class HostWaits:
    """Per origin, when (time.monotonic(), and UTC for messages) it may be called again, and
    what the server asked for in words when that was longer than `longest`."""

    def __init__(self, longest: float = LONGEST_WAIT_S) -> None:
        self.longest = longest
        self._until: dict[str, tuple[float, datetime.datetime, str]] = {}
        self._soonest = math.inf  # the earliest time in `_until`: none passed before it

    def held(self) -> int:
        """How many servers the record holds (some may have passed, till the next check).
        Not `__len__`: an empty record would be false, and taken for none by `waits or ...`."""
        return len(self._until)

    def heard(self, url: httpx.URL, response: httpx.Response) -> None:
        """Keep what `response`, from `url`, asked for, if it asked to wait."""
        wait = _asks_to_wait(response)
        if wait is None:
            return
        asked = asked_seconds(wait) if wait > self.longest else ""
        wait = min(wait, self.longest)
        key = origin(url)
        until = time.monotonic() + wait
        kept = self._until.get(key)
        if kept is None or until > kept[0]:
            self._until[key] = (until, datetime.datetime.now(datetime.UTC)
                                + datetime.timedelta(seconds=wait), asked)
            self._soonest = min(self._soonest, until)

    def check(self, url: httpx.URL) -> None:
        """Raise `AskedToWait` when the server of `url` asked not to be called yet."""
        if not self._until:
            return  # the usual case, twice per call: no origin to spell out
        now = time.monotonic()
        self._forget_passed(now)
        kept = self._until.get(key := origin(url))
        if kept is not None:
            raise AskedToWait(key, kept[0] - now, kept[1], kept[2])

    def _forget_passed(self, now: float) -> None:
        """Drop the waits that have passed, whichever server they are of: a gateway that
        asked once and is never called again (removed, or moved to another address) is
        not kept by an agent or an operator that runs for months, and an empty record is
        checked for nothing."""
        if now < self._soonest:
            return
        self._until = {key: kept for key, kept in self._until.items() if kept[0] > now}
        self._soonest = min((kept[0] for kept in self._until.values()), default=math.inf)
