"""`reconciler operator` as a separate process against the emulated API server and the
simulators of this test's process: what a pod is, to be killed at any moment (SIGKILL
leaves nothing to clean up, as a node lost or an OOM kill does) and started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from harness import write_kubeconfig

from reconciler.sim.fleet import SimFleet

ROOT = Path(__file__).resolve().parents[2]


def operator_env(sims: SimFleet, server: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an operator process pointed at `server` and `sims`: the tests'
    short intervals, and no RECONCILER_* variable of this process's own."""
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, server)
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("RECONCILER_", "KUBERNETES_", "KUBECONFIG"))}
    return environ | sims.env() | {
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": str(ROOT),
        "RECONCILER_STATE_DIR": str(tmp_path / "state"),
        "RECONCILER_RETRIES": "2",
        "RECONCILER_OPERATOR_INTERVAL": "1",
        "RECONCILER_OPERATOR_RETRY_DELAY": "0.5",
        # One key for every process: a fingerprint in status stays valid across restarts.
        "RECONCILER_OPERATOR_CREDENTIAL_KEY": "a" * 64,
    } | extra


@contextlib.asynccontextmanager
async def operator_process(
    env: dict[str, str],
    log: Path,
    serving: Sequence[str] = ("-A",),
    preexec_fn: Callable[[], None] | None = None,
    launcher: Sequence[str] = ("-m", "reconciler"),
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`reconciler operator -A` (or with the arguments `serving` says which namespaces to
    serve with) running with `env`, its output in `log`; SIGKILLed at the end unless the
    test ended it. `preexec_fn` runs in the child before it starts (`denied`). `launcher`:
    the interpreter's arguments that run the reconciler (`killed_writes`' scripts, say)."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, *launcher, "operator", *serving, "--verbose",
            env=env, stdout=out, stderr=out, cwd=str(ROOT), preexec_fn=preexec_fn,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()
