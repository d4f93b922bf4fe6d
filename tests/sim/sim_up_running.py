"""`reconciler sim up` run as a user runs it, in a process of its own, for as long as a
test needs the simulators it serves."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

RUNNING = "simulators running; Ctrl-C to stop\n"


@contextlib.contextmanager
def sim_up_running(*options: str, cwd: Path) -> Iterator[list[str]]:
    """`reconciler sim up OPTIONS` in `cwd`, once it said the simulators run (or ended: its
    last line is then ""); the lines it said until then. Stopped with Ctrl-C when the block
    ends, which it must end with exit code 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sim", "up", *options],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    said: list[str] = []
    try:
        while not said or said[-1] not in ("", RUNNING):
            said.append(process.stderr.readline())
        yield said
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0, "".join(said)
