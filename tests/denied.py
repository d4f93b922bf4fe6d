"""A child process that a directory's mode stops as it stops anyone else, root included,
for the tests of what the reconciler does when a directory it writes in cannot be written
(a read-only mount, a directory's permissions)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

import pytest

_CAP_SETPCAP = 8
_PR_CAPBSET_DROP = 24
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: what lets root write and look into any directory.
_BYPASSES = (1, 2)


def _drop_bypasses() -> None:
    """In a child about to exec: drop the capabilities that bypass a directory's mode from
    its bounding set, so that the program it runs has none of them."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in _BYPASSES:
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            os._exit(99)


def _effective_capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def denied_as_anyone() -> Callable[[], None] | None:
    """The `preexec_fn` of a child that a directory's mode must stop: none for a user other
    than root; for root, one that drops what bypasses it. Skips the test when root cannot
    drop it (no CAP_SETPCAP)."""
    if os.geteuid() != 0:
        return None
    if not _effective_capabilities() & (1 << _CAP_SETPCAP):
        pytest.skip("running as root without CAP_SETPCAP: no way to be denied")
    return _drop_bypasses
