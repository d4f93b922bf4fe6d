"""Benchmark of the desired-state loader: generate a large fleet as YAML, load and check it.

Generates 10,000 documents (per site: a Site, a Zap Gateway, an inverter with three inline
DERs, a P1 meter and a V2X charger) spread over ~100 files in a temporary directory, loads
them with `reconciler.sources.loader.load_paths` and prints the wall time, documents per
second and peak memory. Target: under 2 s for 10,000 documents.

    .venv/bin/python benchmarks/load_documents.py [--documents N] [--files N] [--repeat N]
                                                  [--tracemalloc] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from reconciler.sources import loader

DOCS_PER_SITE = 5
TARGET_SECONDS = 2.0

SITE_TEMPLATE = """\
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata:
  name: site-{i:05d}
  labels:
    region: region-{region}
spec:
  displayName: Site {i}
  timezone: Europe/Stockholm
  location:
    name: Town {i}
    latitude: {lat:.4f}
    longitude: {lon:.4f}
  novacore:
    orgId: org-{org:04x}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Gateway
metadata:
  name: site-{i:05d}-zap
spec:
  siteRef: site-{i:05d}
  zap:
    serial: zap-{i:016x}
    url: http://192.168.{a}.{b}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata:
  name: site-{i:05d}-inverter
spec:
  gatewayRef: site-{i:05d}-zap
  hardwareId: A22{i:08d}
  deviceType: inverter
  manufacturer: Sungrow
  model: SH10RT
  connection:
    modbusTcp:
      host: 192.168.{a}.{c}
      profile: sungrow
  verification:
    checkSerial: true
  ders:
    - name: pv
      type: solar
    - name: battery
      type: battery
    - name: meter
      type: meter
      publish: false
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata:
  name: site-{i:05d}-p1
spec:
  gatewayRef: site-{i:05d}-zap
  hardwareId: E00430{i:011d}
  deviceType: energy_meter
  connection:
    p1Uart: {{}}
  ders:
    - name: grid
      type: meter
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata:
  name: site-{i:05d}-charger
spec:
  gatewayRef: site-{i:05d}-zap
  hardwareId: ambibox_192.168.{a}.{d}
  deviceType: v2x_charger
  connection:
    mqtt:
      profile: ambibox
      brokerHost: 192.168.{a}.{d}
      passwordFrom:
        env: AMBIBOX_PASSWORD
  ders:
    - name: ev-port
      type: ev_charger_port
"""


def site_documents(i: int) -> str:
    return SITE_TEMPLATE.format(
        i=i, region=i % 7, lat=55 + (i % 1000) / 100, lon=11 + (i % 900) / 100, org=i % 50,
        a=i % 250, b=10 + i % 40, c=60 + i % 40, d=110 + i % 40,
    )


def generate(directory: Path, documents: int, files: int) -> int:
    """Write about `documents` documents over `files` files (nested two levels deep), or
    over more where a file would hold more than the loader reads (`MAX_FILE_BYTES`)."""
    sites = max(1, documents // DOCS_PER_SITE)
    per_file = max(1, -(-sites // files))
    start, written = 0, 0
    while start < sites:
        texts, size = [], 0
        for i in range(start, min(start + per_file, sites)):
            text = site_documents(i)
            size += len(text.encode()) + len("---\n")
            if texts and size > loader.MAX_FILE_BYTES:
                break
            texts.append(text)
        group = directory / f"region-{written % 10}"
        group.mkdir(exist_ok=True)
        (group / f"sites-{start:05d}.yaml").write_text("---\n".join(texts), encoding="utf-8")
        start, written = start + len(texts), written + 1
    return sites * DOCS_PER_SITE


def load(directory: Path) -> loader.LoadResult:
    result = loader.load_paths([directory])
    if not result.ok:
        for diagnostic in result.diagnostics[:10]:
            print(f"error: {diagnostic}", file=sys.stderr)
        raise SystemExit("the generated fleet is invalid")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also measure the peak of Python allocations (slower run)")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        directory = Path(tmp)
        count = generate(directory, args.documents, args.files)
        files = sum(1 for _ in directory.rglob("*.yaml"))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times, cpu_times, collections = [], [], []
        for _ in range(args.repeat):
            gc.collect()  # each run starts from the same heap: the previous result is gone
            start, cpu_start = time.perf_counter(), time.process_time()
            result = load(directory)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
            # The loader pauses the cyclic collector; its first pass over the new objects
            # comes after the load returns. Measure it too, so that no cost is hidden.
            start = time.perf_counter()
            gc.collect()
            collections.append(time.perf_counter() - start)
            loaded = len(result.resources)
            del result
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert loaded == count, (loaded, count)
        best = min(times)
        print(f"loaded {count} documents from {files} files")
        print(f"wall time: best {best:.3f} s, runs {', '.join(f'{t:.3f}' for t in times)}")
        # CPU time is the steadier figure on a shared machine (wall time includes waiting).
        print(f"cpu time: best {min(cpu_times):.3f} s")
        print(f"throughput: {count / best:,.0f} documents/s")
        print(f"deferred garbage collection after a load: {min(collections):.3f} s")
        # ru_maxrss is in KiB on Linux
        print(f"peak RSS: {rss_after / 1024:.1f} MiB (+{(rss_after - rss_before) / 1024:.1f} MiB "
              "while loading)")
        if args.tracemalloc:
            tracemalloc.start()
            load(directory)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"peak Python allocations (tracemalloc): {peak / 2**20:.1f} MiB")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(load, directory)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        verdict = "OK" if best < TARGET_SECONDS else "SLOWER THAN TARGET"
        print(f"target: < {TARGET_SECONDS:.1f} s for 10,000 documents: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
