"""A file that cannot be removed for a while, for the tests of what the reconciler does
when a config file it wrote cannot be removed (the CLI's, the operator's)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def unremovable(path: Path) -> Iterator[None]:
    """`path` cannot be removed inside the block: its directory is read-only, or, for root,
    whom that does not stop, the file is immutable (`chattr +i`)."""
    if os.geteuid() != 0:
        mode = path.parent.stat().st_mode
        path.parent.chmod(0o500)
        try:
            yield
        finally:
            path.parent.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)],
                                        capture_output=True).returncode != 0:
        pytest.skip("running as root where no file can be made immutable (chattr +i)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)
