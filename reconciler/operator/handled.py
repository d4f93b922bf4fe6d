"""The spec (kopf's essence of the object) that each object's create, update or resume
handler reconciled last in this process, by uid.

kopf runs a handler for each event whose record of the last handled essence differs from
the object's; after a handler's run it records the essence with a patch, and waits for that
patch's event only `consistency_timeout` seconds. An older event of the object (a drift
check's status write made while the handler ran) handled after that, on a loaded machine or
API server, still holds the previous record, and kopf runs the handler again for the essence
it has just reconciled: again and again while those events come, each run waiting for the
object's lock behind the drift checks and planning anew, while the object's next edit waits
in kopf's queue behind them. Such a run returns at once instead: the drift checks go on
comparing the object with what is outside. The uids of objects long gone are dropped,
oldest first, so the record stays bounded."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

# As many objects as `finalized` keeps deletions, a fingerprint (64 characters) each.
LIMIT = 10_000


def fingerprint(essence: Mapping[str, Any] | None) -> str:
    """A digest of kopf's essence of the object (its spec, labels and annotations but
    kopf's own): what kopf compares to decide whether a handler runs."""
    text = json.dumps(essence, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Handled:
    """The essence each object's handler reconciled last (the most recent `limit` objects)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._essences: OrderedDict[str, str] = OrderedDict()
        self._limit = limit

    def already(self, uid: str | None, essence: Mapping[str, Any] | None) -> bool:
        """Whether the object's handler reconciled `essence` last, in this process."""
        return uid is not None and self._essences.get(uid) == fingerprint(essence)

    def record(self, uid: str | None, essence: Mapping[str, Any] | None) -> None:
        """The object's handler reconciled `essence` (and returned: kopf records it done)."""
        if uid is None:
            return
        self._essences[uid] = fingerprint(essence)
        self._essences.move_to_end(uid)
        while len(self._essences) > self._limit:
            self._essences.popitem(last=False)

    def forget(self, uid: str | None) -> None:
        """The object is deleted (its finalizer ran): nothing of it is kept."""
        if uid is not None:
            self._essences.pop(uid, None)
