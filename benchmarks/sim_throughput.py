"""Benchmark of the Zap simulator: how many requests per second one simulator process serves.

Starts a child process (`--serve`) hosting `--gateways` ZapSimulators (default 50), each on
its own loopback port with an inverter, a P1 meter and a V2X charger installed, the way the
fleet benchmark polls them. The parent then drives `--requests` requests (default 20,000)
over `--concurrency` connections with aiohttp: mostly `GET /api/devices`, plus a share of
`POST /api/devices/{sn}/types` (`--write-share`, default 0.1), spread round-robin over the
gateways. It prints requests/s as measured by the client and checks the count against the
simulators' own request counters. The load generator runs in the parent so it does not
compete with the simulators for the child's CPU. Target: at least 2,000 requests/s.

    .venv/bin/python benchmarks/sim_throughput.py [--gateways N] [--requests N]
                                                  [--concurrency N] [--write-share F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

TARGET_RPS = 2000.0
INVERTER = {"type": "modbus_tcp", "ip": "192.168.1.60", "port": 502, "unit_id": 1,
            "profile": "sungrow"}
P1 = {"type": "p1_uart"}
CHARGER = {"type": "mqtt", "profile": "ambibox", "broker_host": "192.168.1.50"}


# -- the simulator process -----------------------------------------------------------------------


async def serve(gateways: int) -> None:
    """Start the simulators, print their URLs as one JSON line, run until stdin closes."""
    from reconciler.sim.lan import Lan
    from reconciler.sim.zap import ZapSimulator

    lan = Lan()
    sims = []
    for i in range(gateways):
        sim = ZapSimulator(serial=f"zap-{i:016x}", lan=lan)
        sim.install_device(INVERTER, sn=f"INV{i:08d}")
        sim.install_device(P1)
        sim.install_device(CHARGER)
        await sim.start()
        sims.append(sim)
    print(json.dumps({"urls": [s.url for s in sims],
                      "inverters": [f"INV{i:08d}" for i in range(gateways)]}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # the parent closes stdin when done
    for sim in sims:
        await sim.stop()


# -- the load generator --------------------------------------------------------------------------


async def drive(urls: list[str], inverters: list[str], requests: int, concurrency: int,
                write_share: float) -> tuple[float, dict[int, int]]:
    """Send `requests` requests; return elapsed seconds and a histogram of statuses."""
    statuses: dict[int, int] = {}
    counter = iter(range(requests))
    write_every = round(1 / write_share) if write_share > 0 else 0

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in counter:
            g = n % len(urls)
            if write_every and n % write_every == 0:
                body = {"ders": [{"type": "pv", "enabled": bool(n % 2)}]}
                request = session.post(f"{urls[g]}/api/devices/{inverters[g]}/types", json=body)
            else:
                request = session.get(f"{urls[g]}/api/devices")
            async with request as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, statuses


async def served(urls: list[str]) -> int:
    """Requests the simulators counted (admin endpoints excluded)."""
    async with aiohttp.ClientSession() as session:
        total = 0
        for url in urls:
            async with session.get(f"{url}/_sim/requests") as response:
                total += (await response.json())["total"]
        return total


async def load(args: argparse.Namespace, urls: list[str],
               inverters: list[str]) -> tuple[float, dict[int, int], int]:
    # A short warm-up so connection setup is not part of the figure.
    await drive(urls, inverters, min(1000, args.requests), args.concurrency, 0)
    elapsed, statuses = await drive(urls, inverters, args.requests, args.concurrency,
                                    args.write_share)
    return elapsed, statuses, await served(urls)


def benchmark(args: argparse.Namespace) -> int:
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", "--gateways",
         str(args.gateways)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        started = json.loads(child.stdout.readline())
        elapsed, statuses, total_served = asyncio.run(
            load(args, started["urls"], started["inverters"]))
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    rps = args.requests / elapsed
    print(f"gateways: {args.gateways}, requests: {args.requests}, "
          f"concurrency: {args.concurrency}, write share: {args.write_share:.0%}")
    print(f"statuses: {dict(sorted(statuses.items()))}; "
          f"served (incl. warm-up): {total_served}")
    print(f"elapsed: {elapsed:.2f} s, {rps:,.0f} requests/s "
          f"(target {TARGET_RPS:,.0f}: {'met' if rps >= TARGET_RPS else 'NOT met'})")
    ok = set(statuses) <= {200} and rps >= TARGET_RPS
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--write-share", type=float, default=0.1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.gateways))
        return 0
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
