"""What kopf says of a create, update or resume handler that waited for its object's lock
and is run again (`handlers.HANDLER_LOCK_WAIT`): the handler raises kopf's TemporaryError
with `waiting_message`, which kopf logs at ERROR ("Handler '...' failed temporarily: ...")
and posts as an Event of type Error, every few seconds while another reconcile of the
object writes. Waiting for it is normal: `LockWaitLines`, a filter on kopf's object logger,
says it at INFO as a wait and posts no Event of it. Any other line of kopf's is left as it
is, a failure of a handler still logged at ERROR."""

from __future__ import annotations

import logging
import re

# The logger kopf logs a handler's outcome with (`kopf._core.actions.loggers`); the
# handler posting its lines as Events is one of its handlers, so a filter of the logger
# itself acts before it.
KOPF_OBJECT_LOGGER = "kopf.objects"

_WAITING = "waiting for another reconcile of"
# kopf's line for a TemporaryError (`kopf._core.actions.execution.execute_handler_once`).
_LINE = re.compile(
    rf"(?P<handler>Handler '[^']*') failed temporarily: (?P<why>{_WAITING} \w+ '[^']*' "
    r"to end its writes)"
)


def waiting_message(kind: str, name: str) -> str:
    """The TemporaryError's message of a handler that did not get the lock of its owner
    `kind`/`name` in time."""
    return f"{_WAITING} {kind} {name!r} to end its writes"


class LockWaitLines(logging.Filter):
    """Lowers kopf's "failed temporarily" line of a handler waiting for its object's lock
    to an INFO line saying what it waits for, posted as no Event; lets every other line
    through unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.ERROR or record.args or not isinstance(record.msg, str):
            return True
        match = _LINE.fullmatch(record.msg)
        if match is None:
            return True
        record.msg = f"{match['handler']} is {match['why']} (it is run again at once)"
        record.levelno = logging.INFO
        record.levelname = logging.getLevelName(logging.INFO)
        # kopf's Event poster skips a record so marked (`kopf._core.engines.posting`).
        record.k8s_skip = True
        # The record was made at ERROR: dropped if INFO is not shown (`--quiet`).
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def install() -> None:
    """Filter kopf's object logger with `LockWaitLines`, once however many operators are
    configured in the process."""
    logger = logging.getLogger(KOPF_OBJECT_LOGGER)
    if not any(isinstance(f, LockWaitLines) for f in logger.filters):
        logger.addFilter(LockWaitLines())
