"""Benchmark of what one HTTP call costs this process's CPU: the engine's client stack (httpx
clients over the aiohttp transport, behind the session's limits) against bare aiohttp.

A no-op plan of the fleet benchmark (`reconcile_fleet.py`) reads each gateway once, each
over a new connection, at 64 calls in flight; on a 2-core machine its wall time follows
this process's CPU, not the network. This script isolates the HTTP part of that CPU.
`--gateways` Zap simulators (default 1,000, each on its own loopback port) are served by
the child process of `sim_throughput.py`, so their CPU is not counted here. Two kinds of
call, each made by both stacks, `--gateways` calls a round, 64 in flight:

- new connection: `GET /api/devices` of every gateway once, as observation reads Zaps;
- kept alive: the same call to one gateway over and over, as observation reads the cloud
  (one host, pooled connections).

The stacks: bare aiohttp (one session, `TCPConnector(limit=64)`, the body decoded with
`json`), and the engine's (`Session.zap(gateway).devices()` as `reconciler plan` calls it:
one httpx client shared by the gateways, per-gateway and global limits, error mapping; for
the kept-alive calls a session client without per-host limits, as the cloud's).

It prints the CPU per call of each (best and median of `--rounds`), and what the bare
figures alone would make of the fleet's no-op plan (1,000 calls of each kind) against its
0.626 s floor (2,002 calls x 20 ms / 64 in flight), before any planning. Nothing is asserted.
The rounds run with the cyclic garbage collector paused, as a plan's reads do
(`reconcile.collector_paused`); `--collector` keeps it running (as an apply's writes do).

    .venv/bin/python benchmarks/client_cost.py [--gateways 1000] [--rounds 5] [--collector]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from reconciler.engine.config import Settings
from reconciler.engine.reconcile import collector_paused
from reconciler.engine.session import Session
from reconciler.model.gateway import Gateway
from reconciler.providers import transport

CONCURRENCY = 64


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def gateways_at(urls: list[str]) -> list[Gateway]:
    return [
        Gateway.model_validate({
            "apiVersion": "energy.reconciler.dev/v1alpha1", "kind": "Gateway",
            "metadata": {"name": f"gw-{i}"},
            "spec": {"siteRef": f"site-{i}", "zap": {"serial": f"zap-{i:016x}", "url": url}},
        })
        for i, url in enumerate(urls)
    ]


async def bare_kept_alive(url: str, calls: int) -> None:
    await bare([url] * calls)


async def engine_kept_alive(url: str, calls: int) -> None:
    session = Session(Settings(concurrency=CONCURRENCY))
    client = session.http_client(url)
    try:
        await asyncio.gather(*(transport.send_json(client, "GET", "/api/devices")
                               for _ in range(calls)))
    finally:
        await session.aclose()


async def bare(urls: list[str]) -> None:
    bound = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def read(url: str) -> object:
            async with bound, http.get(f"{url}/api/devices") as answer:
                return json.loads(await answer.read())

        await asyncio.gather(*(read(url) for url in urls))


async def engine(gateways: list[Gateway]) -> None:
    session = Session(Settings(concurrency=CONCURRENCY))
    try:
        await asyncio.gather(*(session.zap(gateway).devices() for gateway in gateways))
    finally:
        await session.aclose()


def rounds(label: str, run: Callable[[], Awaitable[None]], count: int, calls: int,
           collector: bool) -> float:
    per_call = []
    for _ in range(count):
        # As a plan makes its reads: with the cyclic collector paused (`collector_paused`),
        # unless told to keep it. Its collections, of whatever else the process holds,
        # were half a kept-alive call's CPU here, and the plan never pays for them.
        with contextlib.nullcontext() if collector else collector_paused():
            started = cpu_seconds()
            asyncio.run(run())  # type: ignore[arg-type]
            per_call.append((cpu_seconds() - started) / calls * 1000)
        gc.collect()  # the round's cycles, collected between rounds, not during the next
    best, median = min(per_call), statistics.median(per_call)
    print(f"  {label}: best {best:.3f} ms, median {median:.3f} ms of CPU per call")
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--collector", action="store_true",
                        help="keep the cyclic garbage collector running (a plan pauses it)")
    args = parser.parse_args()
    served = Path(__file__).resolve().with_name("sim_throughput.py")
    child = subprocess.Popen(
        [sys.executable, str(served), "--serve", "--gateways", str(args.gateways)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        urls: list[str] = json.loads(child.stdout.readline())["urls"]
        gateways = gateways_at(urls)
        calls = len(urls)
        print(f"{calls} calls a round, {CONCURRENCY} in flight, {args.rounds} rounds, the "
              f"garbage collector {'running' if args.collector else 'paused, as in a plan'}")
        print("new connection per call (a Zap each):")
        bare_new = rounds("bare aiohttp", lambda: bare(urls), args.rounds, calls, args.collector)
        engine_new = rounds("engine", lambda: engine(gateways), args.rounds, calls, args.collector)
        print("kept alive (one host):")
        bare_kept = rounds("bare aiohttp", lambda: bare_kept_alive(urls[0], calls),
                           args.rounds, calls, args.collector)
        engine_kept = rounds("engine", lambda: engine_kept_alive(urls[0], calls),
                             args.rounds, calls, args.collector)
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    print(f"the engine's stack adds {engine_new - bare_new:.3f} ms to a new-connection call "
          f"and {engine_kept - bare_kept:.3f} ms to a kept-alive one")
    floor = 2002 * 0.020 / CONCURRENCY
    bare_plan = 1000 * (bare_new + bare_kept) / 1000
    engine_plan = 1000 * (engine_new + engine_kept) / 1000
    print(f"a no-op plan's 1,000 + 1,000 calls take {bare_plan:.3f} s of CPU bare, "
          f"{bare_plan / floor:.2f}x its {floor:.3f} s floor before any planning, and "
          f"{engine_plan:.3f} s ({engine_plan / floor:.2f}x) with the engine's stack "
          "(target 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
