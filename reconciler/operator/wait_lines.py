"""What kopf says of a handler that waits, and is run again: kopf logs every
TemporaryError at ERROR ("Handler '...' failed temporarily: ...") and, when set to post its
lines as Events, posts it as an Event of type Error, at every retry. Two of ours are waits,
not failures, and `WaitLines`, a filter on kopf's object logger, says them at INFO as waits,
posted as no Event (and so is a handler cut short by the operator's stop):

- a create, update or resume handler that did not get its object's lock in time
  (`handlers.HANDLER_LOCK_WAIT`, `waiting_message`): another reconcile of the object
  writes, and the handler is run again at once, every few seconds while it does;
- an object waiting for another (`WaitingForDependency`: a Gateway not declared, a Device
  refused, paused or being deleted), run again every `retry_delay`: its Ready condition
  says why, and the object it waits for has its own failure said at ERROR if it failed;
- a create, update or resume handler cut short by the operator's stop (`stopping_message`):
  its status says what was not started, and the next operator runs it again.

A finalizer that waited a whole `handlers.LOCK_WAIT` for a reconcile of its object to end
its writes (`finalizer_waiting_message`) is a wait too, but one that long may be stuck: it
is said at WARNING (a Warning Event, when kopf is set to post its lines), saying what it
waited for and that it is tried again. Any other line of kopf's is left as it is: a failure
of a handler is still logged at ERROR."""

from __future__ import annotations

import logging
import re

# The logger kopf logs a handler's outcome with (`kopf._core.actions.loggers`); the
# handler posting its lines as Events is one of its handlers, so a filter of the logger
# itself acts before it.
KOPF_OBJECT_LOGGER = "kopf.objects"

_WAITING = "waiting for another reconcile of"
_STOPPING = "cut short by the operator's stop"
_FINALIZER = "waited {seconds:g} s for a reconcile of this object{under} to end its writes"
# kopf's line for a TemporaryError (`kopf._core.actions.execution.execute_handler_once`)
# of a handler or a timer (the drift check), waiting for its object's lock, or for another
# object: `reconcile`'s "waiting: Gateway 'x' is not declared" and "waiting for
# gateway/x[novacore] (claim): ..." (a change of another object that this one's follow).
# kopf writes the message whole: one line, or several. And a handler's cut short by the
# operator's stop (`stopping_message`).
_LINE = re.compile(
    rf"(?P<handler>(?:Handler|Timer) '[^']*') failed temporarily: "
    rf"(?:(?P<lock>{_WAITING} \w+ '[^']*' to end its writes)"
    r"|(?P<dependency>waiting(?:: | for [a-z]+/\S+ \().*)"
    rf"|(?P<stopping>{_STOPPING}: .*)"
    r"|(?P<finalizer>waited \d+(?:\.\d+)? s for a reconcile of this object"
    r"(?:, or of a Device under it,)? to end its writes))",
    re.DOTALL,
)


def waiting_message(kind: str, name: str) -> str:
    """The TemporaryError's message of a handler that did not get the lock of its owner
    `kind`/`name` in time."""
    return f"{_WAITING} {kind} {name!r} to end its writes"


def finalizer_waiting_message(kind: str, seconds: float) -> str:
    """The TemporaryError's message of a finalizer that waited `seconds` for a reconcile of
    its object (a Gateway's, or of a Device under it) to end its writes."""
    under = ", or of a Device under it," if kind == "Gateway" else ""
    return _FINALIZER.format(seconds=seconds, under=under)


def stopping_message(what: str) -> str:
    """The TemporaryError's message of a handler cut short by the operator's stop: `what`
    it did not do."""
    return f"{_STOPPING}: {what}"


class WaitLines(logging.Filter):
    """Lowers kopf's "failed temporarily" line of a handler that waits (for its object's
    lock, or for another object) to an INFO line saying what it waits for, posted as no
    Event; lets every other line through unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.ERROR or record.args or not isinstance(record.msg, str):
            return True
        match = _LINE.fullmatch(record.msg)
        if match is None:
            return True
        if match["lock"] is not None:
            record.msg = f"{match['handler']} is {match['lock']} (it is run again at once)"
        elif match["stopping"] is not None:
            record.msg = (f"{match['handler']} is {match['stopping']} (the next operator "
                          "runs it again)")
        elif match["finalizer"] is not None:
            # Not skipped: posted (where kopf posts its lines) as a Warning, as it may be stuck.
            record.msg = (f"{match['handler']} {match['finalizer']}: the object is kept, and "
                          "the finalizer tried again in a moment (a reconcile's writes are "
                          "bounded by the platforms' timeouts and retries; one that takes "
                          "this long may be stuck)")
            return said_at(record, logging.WARNING)
        else:
            record.msg = f"{match['handler']} is {match['dependency']} (it is run again later)"
        # kopf's Event poster skips a record so marked (`kopf._core.engines.posting`).
        record.k8s_skip = True
        return said_at_info(record)


def said_at_info(record: logging.LogRecord) -> bool:
    """Turn `record`, made at a higher level, into an INFO one; whether it is still shown
    (not when INFO is not: `--quiet`). For a logging filter to return."""
    return said_at(record, logging.INFO)


def said_at(record: logging.LogRecord, level: int) -> bool:
    """Turn `record`, made at a higher level, into one at `level`; whether it is still
    shown. For a logging filter to return."""
    record.levelno = level
    record.levelname = logging.getLevelName(level)
    return logging.getLogger(record.name).isEnabledFor(level)


def install() -> None:
    """Filter kopf's object logger with `WaitLines`, once however many operators are
    configured in the process."""
    logger = logging.getLogger(KOPF_OBJECT_LOGGER)
    if not any(isinstance(f, WaitLines) for f in logger.filters):
        logger.addFilter(WaitLines())
