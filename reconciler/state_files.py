"""The names of the files the state directory holds (`engine.state.StateDir`), in one
place: `StateDir` writes them under these names, and a device's `configOutput.file` may
name none of them (`model.fleet` refuses it, `engine.enapter` again at write time), since
a config written over one destroys what it holds: the inventory, the credential ledger,
the journal or the lock.

A module of its own, importing nothing, because the model needs the names and the
engine's state module imports the model."""

from __future__ import annotations

from collections.abc import Sequence

LOCK = "lock"
JOURNAL = "journal.jsonl"
JOURNAL_ROTATED = JOURNAL + ".1"  # a settled journal past its size limit (`StateDir.settle`)
INVENTORY = "inventory.json"
CREDENTIALS_KEY = "credentials.key"
CREDENTIALS = "credentials.json"
# `atomic_write` writes `NAME.tmp`, then renames it over NAME: a file of that name is lost.
TEMPORARY_SUFFIX = ".tmp"

STATE_FILES = (LOCK, JOURNAL, JOURNAL_ROTATED, INVENTORY, CREDENTIALS_KEY, CREDENTIALS)

# Compared case-folded: on a case-insensitive file system (macOS) `Inventory.json` is the
# inventory, and refusing it elsewhere costs nothing.
_RESERVED = {
    name.casefold(): name for base in STATE_FILES for name in (base, base + TEMPORARY_SUFFIX)
}


def state_file_in(parts: Sequence[str]) -> str | None:
    """The state directory's own file that a path under it (`parts`, relative to it,
    normalised) is, or runs through as if it were a directory; None when it is neither."""
    return _RESERVED.get(parts[0].casefold()) if parts else None
