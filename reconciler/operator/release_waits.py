"""The Gateways being deleted whose release (`deletionPolicy: Release`) could not be done
at their finalizer's last attempt, until it tries again: a credential refused, a write that
failed, a serial swapped out that waits for devices to move off it, a Device's reconcile
that did not end in time. Between two attempts nothing is being released, so the Devices
under such a Gateway (and their stand-alone DERs) reconcile as usual, correcting drift,
instead of waiting for as long as the release is blocked, which may be for ever. Each
attempt takes its Gateway out of this record before it looks for the Devices under it
(`owner_locks`): a Device reconcile that begins then writes nothing under it. The record
is of this process: after a restart, the Devices wait until the finalizer's next attempt
says again that it is blocked. Keyed by uid, so a Gateway created again under the name is
not taken for the one whose release was blocked; bounded, oldest first, as `finalized`."""

from __future__ import annotations

from collections import OrderedDict

# Far more Gateways than are being deleted at once.
LIMIT = 10_000

Key = tuple[str, str, str]  # namespace, Gateway name, uid


class BlockedReleases:
    """The Gateways whose release waits between two attempts of their finalizer."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._keys: OrderedDict[Key, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def blocked(self, key: Key) -> None:
        """The attempt ended without releasing the Gateway: nothing is released until the
        next one."""
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)

    def attempting(self, key: Key) -> None:
        """An attempt begins (or the Gateway went): its Devices wait again."""
        self._keys.pop(key, None)
