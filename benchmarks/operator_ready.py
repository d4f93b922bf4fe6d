"""Time from creating a Device custom resource to its Ready condition, for 100 devices,
with the operator (kopf) running against kmock's Kubernetes emulator and the platform
simulators on loopback. Prints the median and 95th percentile, and, to tell the operator's
own cost from the emulator's, the time spent inside the engine per reconcile.

The emulator runs in a process of its own; the operator and the simulators share another.
kmock's request matching is CPU-heavy, so the emulator still bounds the wall-clock figures
on a small machine; the engine figures are the operator's own work.

    .venv/bin/python benchmarks/operator_ready.py [--sites 10] [--devices-per-site 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(_TESTS / "operator"), str(_TESTS)]  # the harness and the emulator setup

from harness import documents, operator, serve_emulator  # noqa: E402

from reconciler.operator.config import OperatorConfig  # noqa: E402
from reconciler.sim.generate import site_documents  # noqa: E402


class _Env:
    """Stands in for pytest's monkeypatch in the harness."""

    def setenv(self, key: str, value: str) -> None:
        import os

        os.environ[key] = value


ENGINE_SECONDS: list[float] = []


def _timed_reconcile() -> None:
    """Measure every call of the engine from the handlers."""
    from reconciler.operator import handlers

    original = handlers.reconcile_object

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            ENGINE_SECONDS.append(time.perf_counter() - started)

    handlers.reconcile_object = timed  # type: ignore[assignment]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def run(sites: int, per_site: int) -> None:
    _timed_reconcile()
    text = "---\n".join(site_documents(i, per_site, org="org-bench") for i in range(sites))
    docs = documents(text)
    devices = [d for d in docs if d["kind"] == "Device"]
    others = [d for d in docs if d["kind"] != "Device"]
    config = OperatorConfig(interval=300.0, retry_delay=0.5)
    # The emulator gets a process (and a core) of its own: its request matching is CPU-heavy
    # and would otherwise share the operator's event loop.
    receiver, sender = multiprocessing.Pipe(duplex=False)
    emulator = multiprocessing.get_context("spawn").Process(
        target=serve_emulator, args=(sender,), daemon=True
    )
    emulator.start()
    url = receiver.recv()
    with tempfile.TemporaryDirectory() as tmp:
        async with operator(
            text, Path(tmp), _Env(), config=config, watch_timeout=60, emulator_url=url
        ) as (cluster, _sims):
            for doc in others:
                await cluster.create(doc)
            for doc in others:
                await cluster.wait_condition(doc["kind"], doc["metadata"]["name"], timeout=120)
            created: dict[str, float] = {}
            ready: dict[str, float] = {}
            for doc in devices:
                created[doc["metadata"]["name"]] = time.monotonic()
                await cluster.create(doc)
            deadline = time.monotonic() + 300
            while len(ready) < len(devices) and time.monotonic() < deadline:
                for doc in devices:
                    name = doc["metadata"]["name"]
                    if name in ready:
                        continue
                    cond = await cluster.condition("Device", name, "Ready")
                    if cond and cond.get("status") == "True":
                        ready[name] = time.monotonic()
                await asyncio.sleep(0.05)
    emulator.terminate()
    latencies = sorted(ready[n] - created[n] for n in ready)
    if not latencies:
        print("no device became Ready")
        return
    print(f"devices: {len(devices)}  ready: {len(ready)}")
    print(
        f"create -> Ready: median {statistics.median(latencies):.2f} s, "
        f"p95 {_percentile(latencies, 0.95):.2f} s, max {latencies[-1]:.2f} s"
    )
    print(
        f"engine time per reconcile ({len(ENGINE_SECONDS)} reconciles): median "
        f"{statistics.median(ENGINE_SECONDS) * 1000:.0f} ms, "
        f"p95 {_percentile(ENGINE_SECONDS, 0.95) * 1000:.0f} ms"
    )


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--devices-per-site", type=int, default=10)
    args = parser.parse_args(argv)
    asyncio.run(run(args.sites, args.devices_per_site))


if __name__ == "__main__":
    main()
