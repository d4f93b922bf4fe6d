"""Benchmark of the engine on a large simulated fleet: the no-op plan of 1,000 sites and a
fresh apply of 100, each measured against its round-trip floor, and peak memory.

A fleet of `--sites` sites, each with one Zap and `--devices` devices, is generated with
`reconciler.sim.generate.write_fleet` and served by a `SimFleet` (shared Modbus servers) in
a separate process, so the reconciler's process is measured alone; the two talk over a
pipe (the simulators' RECONCILER_* variables, latency changes, request counters). Every
simulated HTTP call gets `--latency-ms` of latency.

1. Fresh apply of the first `--apply-sites` sites: plan, then apply, `--apply-repeat` times
   against fresh simulators (best and median, as for the plans). Floor = the larger of
   (longest chain of dependent calls within a site x latency) and (calls x latency /
   concurrency).
2. The remaining sites are applied with the engine at zero latency (set-up, also timed).
3. No-op plan of the whole fleet: floor = calls x latency / concurrency (design.md).
4. Peak memory: ru_maxrss of this process, and the tracemalloc peak of one extra no-op
   plan (run untimed, since tracing slows everything down).

Phases 1 and 3 also print the CPU time of both processes and the wall time that CPU needs
at least on this machine's cores: when that exceeds the round-trip floor, the machine, not
the network, bounds the run.

Targets: no-op plan under 2 s and within 1.5x its floor; apply within 1.5x its floor;
peak memory under 250 MB. Figures are printed; nothing is asserted.

    .venv/bin/python benchmarks/reconcile_fleet.py [--sites 1000] [--devices 10]
        [--latency-ms 20] [--apply-sites 100] [--apply-repeat 3] [--repeat 3]
        [--profile FILE] [--skip-apply] [--sim-state FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from reconciler.cli import common
from reconciler.engine.config import Settings, load_settings
from reconciler.engine.reconcile import PlanResult, Reconciler
from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Action, Change
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.generate import write_fleet
from reconciler.sources.loader import load_fleet

# -- the simulator process -------------------------------------------------------------------


def serve(conn: Connection, paths: list[str], restore: str | None) -> None:
    asyncio.run(_serve(conn, paths, restore))


async def _serve(conn: Connection, paths: list[str], restore: str | None) -> None:
    from reconciler.sim.fleet import SimFleet

    # A restored world is the simulators' own persisted state (SimFleet.save), not a guess.
    sims = SimFleet(state_file=restore)
    sims.seed_fleet(load_fleet(paths), shared_modbus=True)
    await sims.start()
    sims.freeze_heap()
    conn.send(sims.env())
    loop = asyncio.get_running_loop()
    try:
        while True:
            command, argument = await loop.run_in_executor(None, conn.recv)
            if command == "latency":
                for server in sims.http_servers():
                    server.faults.latency_ms = float(argument)
                conn.send(None)
            elif command == "reset":
                sims.reset_counts()
                conn.send(None)
            elif command == "counts":
                conn.send((sims.requests(), sims.writes()))
            elif command == "cpu":
                conn.send(cpu_seconds())
            elif command == "save":
                sims.state_file = Path(argument)
                sims.save()
                conn.send(None)
            else:
                break
    finally:
        await sims.stop()
        conn.send("stopped")


class SimProcess:
    """The simulators in a child process, driven over a pipe."""

    def __init__(self, paths: list[str], restore: str | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, paths, restore), daemon=True)
        self.process.start()
        self.env: dict[str, str] = self.conn.recv()

    def ask(self, command: str, argument: Any = None) -> Any:
        self.conn.send((command, argument))
        return self.conn.recv()

    def latency(self, ms: float) -> None:
        self.ask("latency", ms)

    def reset(self) -> None:
        self.ask("reset")

    def counts(self) -> tuple[int, int]:
        return self.ask("counts")  # type: ignore[no-any-return]

    def cpu(self) -> float:
        """CPU seconds the simulator process has used so far."""
        return self.ask("cpu")  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.conn.send(("stop", None))
        self.conn.recv()
        self.process.join(timeout=30)


# -- floors ------------------------------------------------------------------------------------

# HTTP calls each executor makes on the success path (execute.py), where more than one: a
# claim reads the gateway's key, has it sign, claims. (The first site created in each
# organisation lists its sites first: one call more, once per apply, left out here.)
CALLS = {("Gateway", "claim"): 3, ("Gateway", "transfer"): 3}


def calls_of(change: Change) -> int:
    return CALLS.get((change.kind, change.action.value), 1)


def longest_chain(changes: list[Change]) -> int:
    """Calls on the longest chain of dependent changes (per site; the maximum)."""
    by_address = {c.address: c for c in changes}
    memo: dict[str, int] = {}

    def depth(change: Change) -> int:
        if change.address not in memo:
            parents = [by_address[d] for d in change.depends_on if d in by_address]
            memo[change.address] = calls_of(change) + max((depth(p) for p in parents), default=0)
        return memo[change.address]

    runnable = [c for c in changes if c.is_change and not c.blocked
                and c.action is not Action.DEFER]
    return max((depth(c) for c in runnable), default=0)


# -- measurements -------------------------------------------------------------------------------


def timed(label: str, call: Callable[[], Any],
          profile: cProfile.Profile | None = None) -> tuple[Any, float]:
    cpu = cpu_seconds()
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    try:
        result = call()
    finally:
        if profile is not None:
            profile.disable()
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.3f} s (CPU of this process {cpu_seconds() - cpu:.3f} s)",
          flush=True)
    return result, seconds


async def plan_once(fleet: Fleet, settings: Settings) -> PlanResult:
    # As `reconciler plan` and `apply` run it: one run per process (collector_paused).
    async with Reconciler(fleet, settings, short_lived=True) as engine:
        return await engine.plan(PlanOptions(audience=Audience.CLI))


async def plan_and_apply(fleet: Fleet, settings: Settings,
                         between: Callable[[], Any] = lambda: None,
                         ) -> tuple[PlanResult, Any, float, float, float]:
    """(plan result, apply report, plan seconds, apply seconds, apply CPU seconds)."""
    async with Reconciler(fleet, settings, short_lived=True) as engine:
        started = time.perf_counter()
        result = await engine.plan(PlanOptions(audience=Audience.CLI))
        planned = time.perf_counter() - started
        between()  # a short blocking call to the simulator process (counters)
        cpu = cpu_seconds()
        started = time.perf_counter()
        report = await engine.apply(result)
        applied = time.perf_counter() - started
        return result, report, planned, applied, cpu_seconds() - cpu


def print_cpu_bound(ours: float, simulators: float, label: str = "") -> None:
    """The CPU both processes need, and the wall time it takes at least on this machine's
    cores: where that exceeds the round-trip floor, the machine, not the network, bounds
    the run."""
    cores = os.cpu_count() or 1
    print(f"  {label}CPU: this process {ours:.3f} s, simulators {simulators:.3f} s; on "
          f"{cores} cores that is at least {(ours + simulators) / cores:.3f} s of wall time")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc), to tell the phases' peaks apart."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def set_up(paths: list[str], env: dict[str, str]) -> None:
    """Apply the whole fleet (run in a child process, so that this process's peak memory
    is that of the measured phases only)."""
    fleet = load_fleet(paths)
    settings = load_settings(os.environ | env)
    _, report, planned, applied, _ = asyncio.run(plan_and_apply(fleet, settings))
    print(f"  plan {planned:.1f} s, apply {applied:.1f} s: {report.counts()}", flush=True)


def measure_apply(args: argparse.Namespace, paths: list[str], state_dir: Path) -> None:
    subset = load_fleet(paths)
    latency_s = args.latency_ms / 1000
    print(f"\n1. fresh apply of {len(subset.sites)} sites (fresh simulators for each of "
          f"{args.apply_repeat} runs)", flush=True)
    walls, floors = [], []
    for run in range(args.apply_repeat):
        wall, floor = apply_once(args, paths, subset, state_dir / f"run-{run + 1}", latency_s)
        walls.append(wall)
        floors.append(floor)
    if not all(floors):
        print("  ratio: none without latency: the time is this process's own work", flush=True)
        return
    ratios = [wall / floor for wall, floor in zip(walls, floors, strict=True)]
    print(f"  ratio: best {min(ratios):.2f} x, median {statistics.median(ratios):.2f} x floor "
          "(target <= 1.5)", flush=True)


def apply_once(args: argparse.Namespace, paths: list[str], subset: Fleet, state_dir: Path,
               latency_s: float) -> tuple[float, float]:
    """One plan and apply against fresh simulators; prints its figures, returns (apply
    seconds, floor seconds)."""
    sims = SimProcess(paths)
    try:
        settings = load_settings(os.environ | sims.env | {"RECONCILER_STATE_DIR": str(state_dir)})
        concurrency = settings.concurrency
        sims.latency(args.latency_ms)
        sims.reset()
        observed_calls: list[int] = []
        sim_cpu: list[float] = []

        def count_observation() -> None:
            observed_calls.append(sims.counts()[0])
            sims.reset()
            sim_cpu.append(sims.cpu())

        result, report, planned, applied, apply_cpu = asyncio.run(
            plan_and_apply(subset, settings, count_observation))
        apply_calls, writes = sims.counts()
        sim_cpu.append(sims.cpu())
    finally:
        sims.stop()
    chain = max(longest_chain([c for c in result.plan.changes if c.site == s])
                for s in subset.sites)
    floor = max(chain * latency_s, apply_calls * latency_s / concurrency)
    counts = report.counts()
    print(f"  plan (observe): {planned:.3f} s, {observed_calls[0]} calls; concurrency "
          f"{concurrency}, per gateway {settings.gateway_concurrency} in flight and "
          f"{settings.gateway_rate:g}/s")
    print(f"  apply: {applied:.3f} s (CPU of this process {apply_cpu:.3f} s), "
          f"{apply_calls} calls ({writes} writes), {counts['done']} changes done, "
          f"{counts['failed']} failed")
    print_cpu_bound(apply_cpu, sim_cpu[1] - sim_cpu[0])
    print(f"  floor: max(chain {chain} calls x {args.latency_ms:g} ms = "
          f"{chain * latency_s:.3f} s, {apply_calls} x {args.latency_ms:g} ms / "
          f"{concurrency} = {apply_calls * latency_s / concurrency:.3f} s) = {floor:.3f} s"
          + (f"; ratio {applied / floor:.2f} x" if floor else ""), flush=True)
    return applied, floor


def measure_noop(args: argparse.Namespace, fleet: Fleet, sims: SimProcess,
                 settings: Settings) -> None:
    latency_s = args.latency_ms / 1000
    print(f"\n3. no-op plan of {len(fleet.sites)} sites", flush=True)
    sims.latency(args.latency_ms)
    profile = cProfile.Profile() if args.profile else None
    walls, calls, cpus, sim_cpus = [], 0, [], []
    for run in range(args.repeat):
        sims.reset()
        cpu, sim_cpu = cpu_seconds(), sims.cpu()
        noop, wall = timed(f"run {run + 1}", lambda: asyncio.run(plan_once(fleet, settings)),
                           profile)
        cpus.append(cpu_seconds() - cpu)
        sim_cpus.append(sims.cpu() - sim_cpu)
        calls, writes = sims.counts()
        walls.append(wall)
        if noop.plan.has_changes or writes:
            print(f"  WARNING: {len(noop.plan.pending)} changes, {writes} writes")
        # Dropped before the next run: `reconciler plan` holds one plan per process, and
        # the last one kept through the next (40 MB for 1,000 sites) raised the peak below
        # by as much, a peak no command reaches.
        del noop
    floor = calls * latency_s / settings.concurrency
    best, median = min(walls), statistics.median(walls)
    print(f"  calls: {calls} (expected {len(fleet.sites)} sites + {len(fleet.gateways)} "
          f"gateways + 2 per organisation)")
    print(f"  wall: best {best:.3f} s, median {median:.3f} s (target < 2 s)")
    print_cpu_bound(statistics.median(cpus), statistics.median(sim_cpus), "median ")
    print(f"  floor: {calls} x {args.latency_ms:g} ms / {settings.concurrency} = {floor:.3f} s")
    if floor:
        print(f"  ratio: best {best / floor:.2f} x, median {median / floor:.2f} x floor "
              "(target <= 1.5)", flush=True)
    else:
        print("  ratio: none without latency: the time is this process's own work", flush=True)
    if profile is not None:
        profile.dump_stats(args.profile)
        print(f"  profile written to {args.profile}")

    print("\n4. memory")
    print(f"  peak RSS of this process (ru_maxrss): {rss_mb():.0f} MB (target < 250 MB); "
          f"resident now {current_rss_mb():.0f} MB")
    tracemalloc.start()
    asyncio.run(plan_once(fleet, settings))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  tracemalloc peak of one no-op plan: {peak / 2**20:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--apply-sites", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="no-op plans to time")
    parser.add_argument("--apply-repeat", type=int, default=3,
                        help="fresh applies to time (each against fresh simulators)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the no-op plans")
    parser.add_argument("--skip-apply", action="store_true", help="skip the fresh apply (1.)")
    parser.add_argument("--sim-state", metavar="FILE",
                        help="keep the converged simulators' state in FILE and reuse it on the "
                             "next run instead of the set-up apply (same --sites/--devices)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="reconcile-fleet-") as tmp:
        files = [str(p) for p in write_fleet(Path(tmp) / "sites", args.sites, args.devices)]
        per_file = 10  # write_fleet's default sites_per_file
        print(f"fleet: {args.sites} sites x (1 gateway + {args.devices} devices), "
              f"latency {args.latency_ms:g} ms per call", flush=True)
        if not args.skip_apply:
            measure_apply(args, files[:math.ceil(args.apply_sites / per_file)],
                          Path(tmp) / "state-apply")

        cached = args.sim_state is not None and Path(args.sim_state).is_file()
        print(f"\n2. set-up: {'restore ' + args.sim_state if cached else 'apply the whole fleet'}"
              " (simulators in a separate process, at zero latency)", flush=True)
        sims = SimProcess(files, restore=args.sim_state if cached else None)
        try:
            env = sims.env | {"RECONCILER_STATE_DIR": str(Path(tmp) / "state")}
            if not cached:
                context = multiprocessing.get_context("spawn")
                child = context.Process(target=set_up, args=(files, env))
                child.start()
                child.join()
                if args.sim_state:
                    sims.ask("save", args.sim_state)
            # As `reconciler plan` loads it (common.load also takes the fleet out of the
            # garbage collector's sight for the rest of the run).
            (fleet, _) = timed("load the desired state", lambda: common.load(files))
            print(f"  memory after loading: {current_rss_mb():.0f} MB resident, "
                  f"peak so far {rss_mb():.0f} MB")
            settings = load_settings(os.environ | env)
            measure_noop(args, fleet, sims, settings)
        finally:
            sims.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
