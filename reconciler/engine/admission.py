"""Which requests of a change still go out once an apply is asked to stop, and when a
write's journal intent is written.

An attempt at a change that has sent no write when the stop comes sends nothing more, and
is reported as not started. One that has sent a write is in flight and finishes, every
write of it (a gateway claim that the Zap signed is also claimed in Novacore; a device
deleted to be replaced is added again): stopping half-way would leave it half-done.

Decided the moment a request holds its slot under the HTTP limits (`limits.BEFORE_SEND`),
just before it goes out, not when the change began: with few slots, most changes of a
large apply wait there, and a write waiting for its slot when the stop came has not
started, whatever its change had read before. The journal's intent of a write is written
at that same moment, so the journal never holds an intent for a request that was not
sent, and a run stopped or killed reports only the writes it really had in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import httpx

from reconciler.engine.limits import BEFORE_SEND

# Requests that change nothing: the ones a write may make before its own (Flatpeak's login
# comes first when its token expired), which do not start the change.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotStarted(Exception):
    """A request was not sent: the apply is stopping and the attempt had sent no write."""

    def __init__(self) -> None:
        super().__init__("not started: stopping")


class Write:
    """One write of a change (one `Executors._write`): `on_open` (its journal intent) is
    called once, when its first request that may change something is let out."""

    def __init__(self, on_open: Callable[[], None]) -> None:
        self._on_open = on_open
        self.opened = False  # let out, its intent journaled: it has an outcome to record

    def open(self) -> None:
        if not self.opened:
            self.opened = True
            self._on_open()


class Attempt:
    """One attempt at one change, in the task that makes it."""

    def __init__(self, stop: asyncio.Event | None) -> None:
        self.stop = stop
        self.started = False  # a write of it was sent: it is in flight and finishes

    def admit(self, request: httpx.Request | None) -> None:
        """Let a request of this attempt out (None: a write made other than over HTTP), or
        raise NotStarted. Reads are held back too: nothing would use what they answer."""
        if not self.started and self.stop is not None and self.stop.is_set():
            raise NotStarted
        write = _WRITE.get()
        if write is not None and (request is None or request.method not in _READS):
            self.started = True
            write.open()


_ATTEMPT: ContextVar[Attempt | None] = ContextVar("attempt", default=None)
_WRITE: ContextVar[Write | None] = ContextVar("write", default=None)


@contextlib.contextmanager
def attempt(stop: asyncio.Event | None) -> Iterator[None]:
    """Make one attempt at a change within this block; once `stop` is set, a request of it
    goes out only if the attempt had sent a write before."""
    current = Attempt(stop)
    attempt_token = _ATTEMPT.set(current)
    send_token = BEFORE_SEND.set(current.admit)
    try:
        yield
    finally:
        BEFORE_SEND.reset(send_token)
        _ATTEMPT.reset(attempt_token)


@contextlib.contextmanager
def writing(on_open: Callable[[], None], *, over_http: bool = True) -> Iterator[Write]:
    """Make one write within this block; `on_open` is called just before it goes out.
    `over_http=False`: the write is made otherwise (a local file, a Kubernetes Secret), so
    it is let out at once. Outside an attempt (no stop to honour) it is let out at once too."""
    write = Write(on_open)
    token = _WRITE.set(write)
    try:
        current = _ATTEMPT.get()
        if current is None:
            write.open()
        elif not over_http:
            current.admit(None)
        yield write
    finally:
        _WRITE.reset(token)
