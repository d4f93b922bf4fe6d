"""The objects whose finalizer has done its work, by uid.

kopf keeps an object's finalizer while a drift check of it has not ended, and once the check
ends runs the object's deletion handler again, though the first run succeeded. That second
run would find nothing left to release, but would say again what the first said of the
object (that a Site's Novacore site stays, that a gateway is kept, that the last valid spec
was honoured): it returns at once instead. The uids of objects long gone are dropped, oldest
first, so the record stays bounded."""

from __future__ import annotations

from collections import OrderedDict

# Far more deletions than a drift check can span (one interval), and a few hundred KiB.
LIMIT = 10_000


class Finalized:
    """The uids of objects finalized by this process (the most recent `limit`)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._uids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, uid: object) -> bool:
        return uid in self._uids

    def add(self, uid: str) -> None:
        self._uids[uid] = None
        self._uids.move_to_end(uid)
        while len(self._uids) > self._limit:
            self._uids.popitem(last=False)
