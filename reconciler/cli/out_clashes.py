"""Whether the file `plan --out` would write is one the reconciler reads or keeps.

The plan is written whole over whatever the name holds. Named as a file of the desired
state (`plan sites --out sites/home.yaml`, a slip of the completion), it replaced the
user's YAML with the plan's JSON; named as one of the state directory's own files
(`--out .reconciler/inventory.json`), it replaced the memory of earlier applies, which
nothing can rebuild. Either is refused before the plan is made, naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.sources import loader
from reconciler.state_files import state_file_in


def clash(out: str, paths: list[str], state_dir: str) -> str | None:
    """Why `out` may not be written (it is a desired-state file under `paths`, or a file
    of the state directory `state_dir`), or None. The plan is renamed over the name
    (`atomic_write`): a link there is replaced, not what it points to, so names are
    compared as themselves, links not followed past the directory that holds them."""
    try:
        written = os.lstat(out)
    except OSError:
        written = None  # not there yet: no file read is it
    if written is not None:
        files, _ = loader.discover(paths)
        for file in files:
            try:
                if os.path.samestat(written, os.lstat(file)):
                    return (f"it is a file of the desired state ({file}), which the plan would "
                            "replace")
            except OSError:
                continue  # the loader said why it cannot be read
    where = Path(out)
    try:
        inside = (where.parent.resolve() / where.name).relative_to(Path(state_dir).resolve())
    except (OSError, ValueError):  # a loop of links; or not under the state directory
        return None
    kept = state_file_in(inside.parts)
    if kept is not None:
        return (f"it is the state directory's {kept}, which holds what earlier applies did "
                "and would be replaced by the plan")
    return None
