"""The Enapter replaces this process has under way: a device deleted to be provisioned
again (`engine.enapter`), from before its delete is sent until the device is provisioned
again and has taken over the config files written for the one deleted
(`enapter_files.adopt`), or the replace failed.

Such a delete is no interrupted one, whatever the inventory's marks say meanwhile
(`enapter_files.mark_deleting`): the files are the replace's to remove, once the device is
provisioned again, and `enapter_files.interrupted_deletes` leaves them out. The operator
reconciles a Device and its Site at once, each under a lock of its own: without this, a
Site's reconcile between the delete and the provisioning (one answered slowly, or retried)
took the replace for one that had stopped, removed the files itself (or failed to, and
said so), and the replace, provisioned meanwhile, took them over as well. A replace that
fails leaves them marked, for the next plan of its Site to remove (an interrupted one
now); a process killed has none under way. The CLI applies one plan at a time under the
writer lock, so it plans with none under way.

Kept per state directory, as the records are: another directory's device ids are not
this one's devices."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator

from reconciler.engine.config import Settings

# (state directory, Enapter device id) -> the replaces of that device under way: one at a
# time in practice (a Device's reconciles take its lock), counted all the same.
_under_way: Counter[tuple[str, str]] = Counter()


def _directory(settings: Settings) -> str:
    """The state directory of `settings`, one spelling for every way it may be given."""
    return os.path.realpath(settings.state_dir)


@contextlib.contextmanager
def replacing(settings: Settings, device_id: str) -> Iterator[None]:
    """The replace of Enapter device `device_id` is under way within the block."""
    key = (_directory(settings), device_id)
    _under_way[key] += 1
    try:
        yield
    finally:
        _under_way[key] -= 1
        if _under_way[key] <= 0:
            del _under_way[key]


def under_way(settings: Settings) -> frozenset[str]:
    """The Enapter device ids whose replace this process has under way in the state
    directory of `settings`."""
    directory = _directory(settings)
    return frozenset(device for where, device in _under_way if where == directory)
