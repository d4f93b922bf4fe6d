"""A kind's watch that fails is listed again after a backoff; one that keeps failing stops
the operator with one error line, so that Kubernetes restarts it.

What kopf 1.45 does when the API server refuses a watch (`kopf/_cogs/clients`): a 410 Gone
in the stream makes it list the kind again, and so do a dropped connection and a timeout;
a 429 is retried as the server asks, then listed again. A 5xx or a 403 is retried inside the
request (`networking.error_backoffs`: 54 s in all), then raised; any other 4xx (a 404 while
a CRD is deleted and created again, a 400, a 410 answering the watch request itself) is
raised at once; an ERROR event other than 410 in the stream raises `WatchingError`. Raised
out of a resource's watcher task (no watcher task that ended is started again), the error
fails kopf's orchestrator: the whole operator stops, every kind, the handlers in flight
cancelled after 5 s, its liveness endpoint at once, and the process exits 1 after three
tracebacks.

Here, as client-go's reflector does, a failed list or watch of a kind is listed again (not
resumed: nothing written meanwhile is missed) after a backoff that doubles from 1 s to
30 s, whatever the error: which one is transient cannot be told from its status (a 404
while a CRD is re-created, a 403 while an upgrade replaces the RBAC, a 500 while the API
server restarts). A 410 answering the watch request lists again at once, as the event does.
The other kinds and the handlers in flight go on meanwhile. A kind whose watch keeps failing
for longer than the limit (`RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT`, 300 s) stops the
operator through kopf's stop flag (the handlers in flight end first, as on SIGTERM, but
without kopf's failsafe that kills a process whose handlers hang at the stop: its liveness
endpoint is gone with the operator, so the probe restarts it), which then exits 1 with one
line saying which kind and its last error (for a 403, that the ServiceAccount lacks the
permission). Exiting rather than failing the liveness probe:
a restart is what Kubernetes does for either, but an exit works whether a probe is
configured or not, `kubectl logs --previous` ends with the reason, and a pod that keeps
failing shows CrashLoopBackOff; kopf's probe fails only by a probe handler raising, which
aiohttp logs with a traceback at every probe.

The limit counts from the first failed request: kopf's list and watch requests are retried
inside the request for `REQUEST_RETRIES` only (7 s, a blip of the API server), not kopf's
54 s, after which the backoff here takes over; a failure kopf retried counts from its first
attempt; and the last wait is cut short to list again when the limit is reached. So a kind
failing with a 5xx stops the operator about `limit` seconds after it began failing, not a
minute or more later. kopf's other requests (patches, Events) keep its own retries.

Failures less than `STREAK_GAP` apart are one streak: a persistent error fails again within
the longest backoff plus kopf's retries of the request; a kind that went that long
without failing is watched again, and its backoff starts over. So it does once its watch
worked: it delivered an event after the list, or was open `WATCHED` seconds (longer than
kopf's retries of a refused request take), so that a kind whose watch is cut now and then
while it works is not taken for one that keeps failing. A list alone does not: a
ServiceAccount allowed to list a kind but not to watch it lists it at every attempt.

Both are timed by the requests kopf makes (its `api.request`, wrapped for the watcher task
of each kind), not by when a failure was raised: a failure counts from when its request
began, kopf's retries and each attempt's wait for an answer included, and the gap before
it is measured to then; a watch was open from when the first watch request after the list
was answered until it failed, or until the request that failed began (kopf asks for the
watch again each time the API server ends it). A request that is answered an error only
after a long wait (a proxy's 504 after 60 s, for every attempt) is then a failure all that
while, not a watch that stayed open, nor a gap between two failures.

An API server that cannot be reached is a failure too, counted and waited for as the others
(kopf retries the request as for a 5xx first). kopf takes a list that could not connect for
an empty stream, and retries a watch that could not connect inside its own loop, at once,
for ever, neither raising: the first is told here by the list's end that never came
(`Bookmark.LISTED`); for the second, kopf's streaming request (`api.stream`, which only the
watch uses) is wrapped too, so that an error of connecting, after kopf's retries of it,
leaves kopf's loop (`_Unreachable`). An error once the stream is open (a connection cut)
is left to kopf, which watches on from the last version, as before."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf
from kopf._cogs.clients import api, errors, watching

from reconciler.printable import clipped, printable

logger = logging.getLogger(__name__)

GONE = 410
TOO_MANY_REQUESTS = 429
FIRST_BACKOFF = 1.0
LONGEST_BACKOFF = 30.0
# kopf's waits between attempts of a list or watch request answered a 5xx or a 403,
# instead of its 54 s: a longer failure is listed again with the backoff here, and counted
# towards the limit from its first attempt. Not shorter: kopf retries a watch that cannot
# connect (an API server down) inside its own loop, logging each attempt at ERROR, with
# these waits and no backoff of ours between: 4 attempts in 7 s, against 9 in 54 s before.
REQUEST_RETRIES = (1.0, 2.0, 4.0)
# More than the longest backoff plus kopf's retries of a request.
STREAK_GAP = 120.0
# A watch open this long after its list worked, though it delivered nothing: a refused
# watch request fails within kopf's retries of it (`REQUEST_RETRIES`, 7 s, plus its
# attempts).
WATCHED = 60.0
DEFAULT_LIMIT = 300.0
# The record of an operator's watches, on its kopf settings (the wrapper is per process).
_ATTRIBUTE = "reconciler_watches"
_MESSAGE_LIMIT = 200


# The errors of connecting to the API server (refused, no route, no answer to the connect):
# raised before a stream is open. `ConnectionTimeoutError` is aiohttp 3.10's.
_CONNECTING: tuple[type[BaseException], ...] = tuple(
    error for error in (aiohttp.ClientConnectorError,
                        getattr(aiohttp, "ConnectionTimeoutError", None))
    if isinstance(error, type) and issubclass(error, BaseException)
)


@dataclass
class _Requests:
    """The list and watch requests of one list-and-watch of a kind, made by kopf in the
    watcher task of the kind (loop times)."""

    # When the request made last (the one being made, if any) began: its first attempt.
    began: float | None = None
    # When the first watch request after the list was answered (the stream open).
    watching: float | None = None


# The list-and-watch running in each watcher task: kopf's requests are told apart by it
# (the tasks a watcher starts for the objects inherit nothing from here).
_IN_TASK: weakref.WeakKeyDictionary[asyncio.Task[Any], _Requests] = (
    weakref.WeakKeyDictionary())


class _Unreachable(Exception):
    """A watch request that could not connect to the API server, after kopf's retries of
    it: raised past kopf's watch loop, which catches the connection's own errors."""


@dataclass
class _Streak:
    started: float
    last: float
    failures: int = 0


@dataclass
class Watches:
    """The failures of one operator's watches, and the flag that stops it once one kind
    has kept failing for longer than `limit` seconds (`failure` then says why)."""

    limit: float = DEFAULT_LIMIT
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    failure: str | None = None
    _streaks: dict[str, _Streak] = field(default_factory=dict)

    def failed(self, kind: str, error: str, began: float | None = None) -> float:
        """Record a failure of the watch of `kind`, whose request began at loop time
        `began` (kopf's retries of it included; None: at once); how long to wait before
        listing again."""
        now = asyncio.get_running_loop().time()
        began = now if began is None else min(began, now)
        streak = self._streaks.get(kind)
        if streak is None or began - streak.last > STREAK_GAP:
            streak = self._streaks[kind] = _Streak(started=began, last=now)
        streak.failures += 1
        streak.last = now
        failing = now - streak.started
        # Listed again at the limit at the latest: a kind still failing then stops the
        # operator about the limit after it began failing, not a backoff later.
        delay = min(LONGEST_BACKOFF, FIRST_BACKOFF * 2.0 ** (streak.failures - 1),
                    max(0.0, self.limit - failing))
        if failing >= self.limit and self.failure is None:
            times = f"{streak.failures} time{'' if streak.failures == 1 else 's'}"
            self.failure = (f"the watch of {kind} has failed for {failing:.0f} s, {times}; "
                            f"last: {error}; stopping the operator so that it is restarted")
            logger.error(self.failure)
            self.stop.set()
        else:
            logger.warning("The watch of %s failed (%s): listing it again in %g s",
                           kind, error, delay)
        return delay

    def watched(self, kind: str) -> None:
        """The watch of `kind` worked: a failure from now on starts a new streak."""
        self._streaks.pop(kind, None)


def track(settings: kopf.OperatorSettings, limit: float = DEFAULT_LIMIT) -> Watches:
    """The record of the watches of the operator run with `settings`; pass its `stop` as
    kopf's `stop_flag` for a kind failing longer than `limit` to stop the operator."""
    watches = Watches(limit=limit)
    setattr(settings, _ATTRIBUTE, watches)
    return watches


def end_with_cleanup(registry: kopf.OperatorRegistry, watches: Watches) -> None:
    """Set `watches.stop` in kopf's cleanup activity, once every other task of the operator
    stopped. kopf waits for its stop flag in a task of its own that it does not cancel when
    a signal (SIGTERM) stops the operator instead: left waiting, that task is one of the
    tasks kopf gives 5 s to end before it exits, so every stop would take 5 s more."""

    @kopf.on.cleanup(registry=registry, id="stop-flag")
    def end_stop_flag_wait(**_: Any) -> None:
        watches.stop.set()


def install() -> None:
    """Wrap kopf's list-and-watch of a kind (once per process: every operator in it shares
    kopf; each has its own record, `track`)."""
    original = getattr(watching, "continuous_watch", None)
    if original is None:
        # A kopf that moved its list-and-watch: run as kopf does.
        logger.warning("kopf has no list-and-watch to wrap: a failed watch stops the operator")
        return
    if getattr(original, "lists_again", False):
        return
    _install_stream()
    timed = _install_request()

    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        listed: float | None = None  # when the list ended
        worked = False
        settings = _quickly_retried(kwargs["settings"])
        loop = asyncio.get_running_loop()
        requests = _Requests()
        task = asyncio.current_task()
        if task is not None:
            _IN_TASK[task] = requests
        try:
            async for item in original(**(kwargs | {"settings": settings})):
                if item is watching.Bookmark.LISTED:
                    listed = loop.time() if listed is None else listed
                elif listed is not None and not worked:
                    # An event of the watch, after the list: it works.
                    worked = True
                    _watches(kwargs).watched(_kind(kwargs))
                yield item
        except (errors.APIError, watching.WatchingError, _Unreachable) as failure:
            if isinstance(failure, errors.APIError) and failure.status == TOO_MANY_REQUESTS:
                raise  # kopf lists again itself, once its retries as asked are over
            now = loop.time()
            # A request that failed (not a stream, which an ERROR event ends) failed from its
            # first attempt: kopf retried it meanwhile, and waited for each answer.
            if isinstance(failure, errors.APIError | _Unreachable):
                began = _began(requests, timed, now, kopf_retried=_kopf_retried(failure))
            else:
                began = now
            open_since = requests.watching if timed else listed
            if open_since is not None and not worked and began - open_since >= WATCHED:
                _watches(kwargs).watched(_kind(kwargs))
            await _failed(kwargs, failure, listed=listed is not None, began=began)
            return
        if listed is None and not settings.watching.initial_streaming:
            # kopf ends the stream so when its list could not connect, or got no answer in
            # time, after its retries of the request.
            now = loop.time()
            await _backoff(kwargs, "the API server could not be reached to list it "
                           "(no connection, or no answer in time)",
                           _began(requests, timed, now, kopf_retried=True))

    continuous_watch.lists_again = True  # type: ignore[attr-defined]
    watching.continuous_watch = continuous_watch


def _kopf_retried(failure: BaseException) -> bool:
    """Whether kopf retried the request that failed so before it raised (`api.request`)."""
    return isinstance(failure, _Unreachable | errors.APIServerError | errors.APIForbiddenError)


def _began(requests: _Requests, timed: bool, now: float, *, kopf_retried: bool) -> float:
    """When the request that failed last began: as timed, or (kopf's requests not timed
    here) at least kopf's retries of it before now."""
    if timed and requests.began is not None:
        return requests.began
    return now - (sum(REQUEST_RETRIES) if kopf_retried else 0.0)


def _install_request() -> bool:
    """Wrap kopf's request (every list, watch and write of its API client goes through it)
    so that those of a list-and-watch are timed (`_Requests`); whether it is."""
    original = getattr(api, "request", None)
    if original is None:
        logger.warning("kopf has no request to wrap: a failure of a watch is timed from "
                       "when it was raised")
        return False
    if getattr(original, "timed", False):
        return True

    async def request(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        requests = None if task is None else _IN_TASK.get(task)
        if requests is None:
            return await original(*args, **kwargs)
        loop = asyncio.get_running_loop()
        requests.began = loop.time()
        response = await original(*args, **kwargs)
        if requests.watching is None and "watch=true" in str(kwargs.get("url", "")):
            requests.watching = loop.time()
        return response

    request.timed = True  # type: ignore[attr-defined]
    api.request = request
    return True


def _install_stream() -> None:
    """Wrap kopf's streaming request, which its watch alone makes, so that one that could
    not connect leaves kopf's watch loop (`_Unreachable`)."""
    original = getattr(api, "stream", None)
    if original is None:
        logger.warning("kopf has no streaming request to wrap: an API server that cannot "
                       "be reached is not counted towards the watch failure limit")
        return
    if getattr(original, "leaves_the_loop", False):
        return

    async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for item in original(*args, **kwargs):
                yield item
        except _CONNECTING as error:
            raise _Unreachable(_said(str(error) or type(error).__name__)) from None

    stream.leaves_the_loop = True  # type: ignore[attr-defined]
    api.stream = stream


async def _failed(
    kwargs: dict[str, Any],
    failure: errors.APIError | watching.WatchingError | _Unreachable,
    *,
    listed: bool,
    began: float,
) -> None:
    """Wait as the failure of the list or the watch (`listed`: the list was served), which
    began at loop time `began`, asks, before kopf lists the kind again."""
    if isinstance(failure, _Unreachable):
        await _backoff(kwargs, f"the API server could not be reached to watch it: {failure}",
                       began)
        return
    if not isinstance(failure, errors.APIError):
        await _backoff(kwargs, _said(str(failure)), began)
        return
    if failure.status == GONE and listed:
        logger.debug("The watch of %s was answered 410 Gone: listing again", _kind(kwargs))
        return  # kopf's infinite watch lists again, as after a 410 event
    # A list answered 410 (it asks for no version) would be listed again at once, over and
    # over: it waits as any other error does.
    said = f": {_said(failure.message)}" if failure.message else ""
    if isinstance(failure, errors.APIForbiddenError):
        said += (f" (the operator's ServiceAccount may not list or watch "
                 f"{_kind(kwargs)}: its Role or ClusterRole lacks the rule)")
    await _backoff(kwargs, f"HTTP {failure.status}{said}", began)


def _quickly_retried(settings: kopf.OperatorSettings) -> kopf.OperatorSettings:
    """`settings` for one list-and-watch: kopf's retries of its requests are
    `REQUEST_RETRIES` (a copy: every other request keeps the operator's retries)."""
    networking = dataclasses.replace(settings.networking, error_backoffs=REQUEST_RETRIES)
    return dataclasses.replace(settings, networking=networking)


def _watches(kwargs: dict[str, Any]) -> Watches:
    watches = getattr(kwargs.get("settings"), _ATTRIBUTE, None)
    if not isinstance(watches, Watches):  # not configured here: the default limit, no stop
        watches = track(kwargs["settings"])
    return watches


async def _backoff(kwargs: dict[str, Any], error: str, began: float) -> None:
    await asyncio.sleep(_watches(kwargs).failed(_kind(kwargs), error, began))


def _kind(kwargs: dict[str, Any]) -> str:
    namespace = kwargs.get("namespace")
    where = "every namespace" if namespace is None else f"namespace {namespace}"
    return f"{kwargs.get('resource')} in {where}"


def _said(message: str) -> str:
    """What the server said, as a log line quotes it: one line, its start when long."""
    return clipped(printable(message), _MESSAGE_LIMIT)
