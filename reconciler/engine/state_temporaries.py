"""The temporary files of the state directory's own files that a killed run left.

The inventory and the credential ledger (its key and its fingerprints) are written whole
to `NAME.tmp` beside them, then renamed over NAME (`state.atomic_write`). A run killed
between the two leaves `NAME.tmp`, which the next write of NAME replaces; the ledger's may
not be written again for a long time, and holds what the ledger holds. The lock's holder
is the one process that writes them (`StateDir.lock`), so when it takes the lock, any such
file is a leftover, and it removes them (`clear`); a plan, which takes no lock and writes
nothing, only names them (`found_lines`).

Only those exact names, and only a regular file of this user, as every writer made it
(`O_CREAT | O_EXCL | O_NOFOLLOW`): a link, a directory or another user's file under such a
name is nobody's leftover here, and is left alone (a link is never followed). The lock's
own temporary name (the probe that checks the directory is writable) is removed by that
check, and holds nothing. The journal is appended to and moved by rename: it has no
temporary file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reconciler.state_files import CREDENTIALS, CREDENTIALS_KEY, INVENTORY, TEMPORARY_SUFFIX

# The state files written whole through a temporary file, and what each holds, as a note
# names it (never what the file holds).
WRITTEN_WHOLE = {
    INVENTORY: "the inventory",
    CREDENTIALS_KEY: "the credential ledger's key",
    CREDENTIALS: "the credential ledger",
}


def _found(directory: Path) -> list[tuple[Path, str]]:
    """The leftovers in `directory`: (path, what it is a temporary file of)."""
    out = []
    for name, what in WRITTEN_WHOLE.items():
        path = directory / (name + TEMPORARY_SUFFIX)
        try:
            found = os.lstat(path)
        except OSError:
            continue  # none (the usual case), or not to be looked at: nothing to say
        if stat.S_ISREG(found.st_mode) and found.st_uid == os.geteuid():
            out.append((path, what))
    return out


def _left(what: str) -> str:
    return f"a temporary file of {what} left by an interrupted run"


def found_lines(directory: Path) -> list[str]:
    """What a plan says of the leftovers in `directory`: one line each."""
    return [
        f"{path} is {_left(what)}; the next apply removes it"
        for path, what in _found(directory)
    ]


def clear(directory: Path) -> list[str]:
    """Remove the leftovers in `directory` (the caller holds its lock); one line for each,
    saying it was removed, or why it could not be (the next write of its file replaces
    it then)."""
    said = []
    for path, what in _found(directory):
        try:
            path.unlink()  # the link itself, were it one now: unlink follows none
        except FileNotFoundError:
            continue
        except OSError as exc:
            said.append(
                f"{path}, {_left(what)}, could not be removed: {exc.strerror or exc}; the "
                f"next write of {path.name.removesuffix(TEMPORARY_SUFFIX)} replaces it"
            )
            continue
        said.append(f"removed {path}, {_left(what)}")
    return said
