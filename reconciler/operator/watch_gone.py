"""A watch request answered with 410 Gone starts the listing again, as a 410 in the stream.

When the version a watch would go on from is too old (etcd compacted it; the API server or
its watch cache restarted), the API server says 410 Gone: in the stream, as an ERROR event,
or as the answer to the watch request itself (client-go's reflector takes both alike: it
lists again). kopf 1.45 lists again on the event only. The answer is raised out of the
resource's watcher task, which ends for good: the operator stays up, its liveness probe
answers, and it never hears of that kind's objects again, created or edited. `install`
turns the answer into the event kopf already handles."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import errors, watching

logger = logging.getLogger(__name__)

GONE = 410
# kopf reads only the event's type and the code of its object.
_GONE_EVENT = {
    "type": "ERROR",
    "object": {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": GONE,
               "reason": "Expired", "message": "the watch request was answered 410 Gone"},
}


def install() -> None:
    """Wrap kopf's watch request (once per process: every operator in it shares kopf)."""
    original = getattr(watching, "watch_objs", None)
    if original is None:
        # A kopf that moved its watch request: run as kopf does (a test pins this).
        logger.warning("kopf has no watch request to wrap: a watch answered 410 Gone ends it")
        return
    if getattr(original, "answers_gone", False):
        return

    async def watch_objs(**kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for raw_input in original(**kwargs):
                yield raw_input
        except errors.APIClientError as error:
            if error.status != GONE:
                raise
            logger.debug("The watch of %s was answered 410 Gone: listing again",
                         kwargs.get("resource"))
            yield _GONE_EVENT

    watch_objs.answers_gone = True  # type: ignore[attr-defined]
    watching.watch_objs = watch_objs
