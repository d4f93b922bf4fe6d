"""`reconciler operator` stopped by SIGTERM (a rolling update, a node drained), as a separate
process: idle, it exits 0 at once, with no warning."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from harness import Cluster, emulated_cluster
from objects import HOME, declare
from process import operator_env, operator_process

from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

OBJECTS = (("Site", "home"), ("Gateway", "home-zap"), ("Device", "home-inverter"),
           ("Device", "home-battery"))
ORPHANED = "did not exit in time"
SIGNALLED = "Signal SIGTERM is received"


async def _ready(cluster: Cluster) -> None:
    """Every object Ready and its create handler done: what writes next is a drift check."""
    for kind, name in OBJECTS:
        await cluster.wait_condition(kind, name, "Ready", timeout=60)
        await cluster.wait_handled(kind, name, timeout=60)


async def _stopped(process: asyncio.subprocess.Process) -> tuple[int, float]:
    """SIGTERM, then the exit code and the seconds it took to exit."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(process.wait(), 60)
    return code, time.monotonic() - started


def _said_after_signal(text: str) -> list[str]:
    """The lines logged after the signal at WARNING or above."""
    after = text[text.index(SIGNALLED):].splitlines()
    return [line for line in after if " WARNING " in line or " ERROR " in line]


async def test_an_idle_operator_stops_at_once_on_sigterm(tmp_path: Path) -> None:
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", HOME)]).fleet())
    async with emulated_cluster() as cluster, sims:
        # No drift check comes during the test: every timer sleeps when the signal comes.
        env = operator_env(sims, cluster.url, tmp_path, RECONCILER_OPERATOR_INTERVAL="300")
        await declare(cluster)
        log = tmp_path / "operator.log"
        async with operator_process(env, log) as process:
            await _ready(cluster)
            code, took = await _stopped(process)
        text = log.read_text(errors="replace")
        assert code == 0
        assert ORPHANED not in text
        assert _said_after_signal(text) == []
        assert took < 5, f"stopped in {took:.1f}s"
