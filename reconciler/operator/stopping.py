"""The operator's stop (SIGTERM) as its create, update and resume handlers, and its
finalizers, see it.

kopf stops a drift check (a timer) with a flag of its own, and waits for it
(`handlers._stop_when_leaving`), but tells a handler nothing: once its watches end, it
gives the handlers' workers `settings.queueing.exit_timeout` (2 s), then cancels them,
cutting a write in flight. `OperatorStop` is set the moment kopf begins to stop, by a task
run among kopf's own (`run`): a handler's reconcile or a finalizer's release honours it (no
change starts, the changes in flight land, `engine.admission`), and when one runs at the
stop, kopf's wait is made as long as a drift check's, counted from the stop; it ends as
soon as every worker has ended, so the stop lasts as long as the writes in flight take.

Not when none runs: a worker sleeping until a retry of its object is due (an object
waiting for another) sees the stop only when it wakes, so kopf's whole wait would be
waited, at every stop. For the same reason a stop while a handler writes lasts the whole
wait if another object's retry is pending meanwhile. kopf then says, at WARNING, that it
left those objects' streams unprocessed; with no handler of ours running, that is all they
are (the next operator retries them), and `SleepingStreams` says it at INFO."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import kopf

from reconciler.operator import wait_lines


class OperatorStop:
    """Set once kopf begins to stop the operator (a signal, or its stop flag). `wait`: how
    long a handler's reconcile running then is waited for, counted from the stop."""

    def __init__(self, wait: float) -> None:
        self.event = asyncio.Event()
        self.wait = wait
        self._running = 0

    @property
    def handlers_running(self) -> bool:
        return self._running > 0

    @contextlib.contextmanager
    def handling(self) -> Iterator[asyncio.Event]:
        """Run a handler's reconcile within this block, honouring the event given."""
        self._running += 1
        try:
            yield self.event
        finally:
            self._running -= 1

    async def watch(self, settings: kopf.OperatorSettings) -> None:
        """Wait until cancelled, then set the stop: run as one of kopf's root tasks, which
        kopf cancels all at once as it begins to stop, before its watches end and it waits
        for the handlers' workers (`settings.queueing.exit_timeout`, read then)."""
        try:
            await asyncio.Future()
        except asyncio.CancelledError:
            self.event.set()
            if self._running:
                queueing = settings.queueing
                queueing.exit_timeout = max(queueing.exit_timeout, self.wait)
            raise


# kopf's logger of its per-object queues, which says at the stop what it left unprocessed.
KOPF_QUEUEING_LOGGER = "kopf._core.reactor.queueing"
_UNPROCESSED = "Unprocessed streams left for "


class SleepingStreams(logging.Filter):
    """Lowers kopf's WARNING "Unprocessed streams left for [...]" at the stop to INFO when
    no handler of ours runs: the workers left are then those sleeping until their object's
    retry is due (an object waiting for another), or kopf's own bookkeeping after a
    handler (a status patch), which the next operator takes up."""

    def __init__(self, stop: OperatorStop) -> None:
        super().__init__()
        self._stop = stop

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.WARNING
            and isinstance(record.msg, str)
            and record.msg.startswith(_UNPROCESSED)
            and not record.args
            and not self._stop.handlers_running
        ):
            objects = record.msg.removeprefix(_UNPROCESSED).rstrip(".")
            record.msg = (f"Objects left for the next operator at the stop (waiting for a "
                          f"retry, or for kopf's own writes): {objects}")
            return wait_lines.said_at_info(record)
        return True


async def run(stop: OperatorStop, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    """`kopf.operator(settings=settings, **kwargs)`, which is `kopf.spawn_tasks` and
    `kopf.run_tasks`, with `stop.watch` among kopf's root tasks: kopf handles the signals,
    logs and times its stop as it does for `kopf.operator`."""
    current = asyncio.current_task()
    existing = {task for task in asyncio.all_tasks() if task is not current}
    sleeping = SleepingStreams(stop)
    logging.getLogger(KOPF_QUEUEING_LOGGER).addFilter(sleeping)
    try:
        tasks = [*await kopf.spawn_tasks(settings=settings, **kwargs)]
        tasks.append(asyncio.create_task(stop.watch(settings), name="operator stop"))
        await kopf.run_tasks(tasks, ignored=existing)
    finally:
        logging.getLogger(KOPF_QUEUEING_LOGGER).removeFilter(sleeping)
