"""The temporary Enapter config files that killed runs left in the state directory, each
holding a device's credentials, as the operator removes them
(`engine.enapter_files.clear`). The CLI's `apply` and `watch` remove them before each
apply; the operator applies no plan that way, and a killed operator (a lost node, an OOM
kill) left its own, which no CLI apply would ever remove in a cluster. So the first
reconcile of each namespace in this process removes them, before it plans and writes,
and so does each next one of the namespace for as long as one could not be removed, or
the inventory could not be read or written (saying so in the log, as `watch` does).

Per namespace: the config files a namespace's Devices declare are known to its reconciles
only, and the temporary files with no record are looked for beside them. The pending
records are the state directory's, of every namespace: the first reconcile removes those.

Called with the owner's lock held (`owner_locks`), in the event loop and with no await in
between: no other reconcile of this process reads or writes the inventory meanwhile. The
temporary files this process is writing now (another reconcile's write in flight) are
never taken for leftovers: their records are this process's own, and each is locked by
its writer (`enapter_files.hold`), as are those of any other process writing there."""

from __future__ import annotations

import logging

from reconciler.engine import enapter_files
from reconciler.engine.config import Settings
from reconciler.engine.state import StateDirError, StateNotWritten
from reconciler.model.fleet import Fleet
from reconciler.plan.advice import Audience

log = logging.getLogger(__name__)


class Leftovers:
    """The namespaces whose leftovers this process removed (all it found)."""

    def __init__(self) -> None:
        self._cleared: set[str] = set()

    def clear(self, namespace: str, settings: Settings, fleet: Fleet) -> None:
        """Remove the leftovers of the state directory, and those beside the config files
        `fleet` (the namespace's) declares, unless that was done already; each file
        removed, or that could not be, said in the log."""
        if namespace in self._cleared:
            return
        try:
            cleared = enapter_files.clear(settings, fleet, Audience.OPERATOR)
        except StateNotWritten as error:
            said = error.to(Audience.OPERATOR)
            log.warning("clearing the temporary config files killed runs left: %s", said)
            return
        except StateDirError as error:
            log.warning("temporary config files left by killed runs were not looked for "
                        "(the next reconcile tries again): %s", error)
            return
        for line in cleared.said:
            if line in cleared.unremoved:
                log.warning("%s", line)
            else:
                log.info("%s", line)
        if not cleared.unremoved:
            self._cleared.add(namespace)
