"""The operator's cost, per reconcile, of the namespace's fleet at `--sites` Sites (each with
a Zap and `--devices-per-site` Devices): every reconcile reads the whole namespace, validated
and checked (`objects.build`). Times, per reconcile of one object:

- built from nothing, as the first reconcile of a namespace does (and as every reconcile
  did before the built fleet was kept: `operator.namespace_fleets`);
- built again after one object's spec changed (a label added, its document replaced in
  the index): the objects the index kept are not read again, the rules over them all are
  checked again, but a Device's own rules only where they read the object changed
  (`model.fleet.DeviceChecked`);
- built again after one object's status was written with what the index keeps (the
  spec fields it declares, as a reconcile that converged records them): the objects
  validate as they did, so what the rules found is kept too;
- built again after a Device's first status at its Zap endpoint (as its first reconcile
  that converged writes it), which makes it the holder of the endpoint: only the rules
  that read the holders are checked again;
- kept, the index unchanged (a drift check of every object, or an edit's reconcile after
  the first);
- kept after an object's status was indexed again with nothing the fleet reads changed
  (kopf keeps the equal document it holds).

The indexes are kopf's own, filled as its watch fills them; no Kubernetes, no simulator.
As in the operator's process, what a namespace's first build leaves alive is frozen
(`operator.heap`): a build from nothing includes that collection.
Pure CPU: figures are process time.

    .venv/bin/python benchmarks/operator_fleet.py [--sites 1000] [--devices-per-site 2]
        [--reconciles 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from kopf._core.engines.indexing import OperatorIndexer

from reconciler.model import zap_endpoints
from reconciler.model.kinds import KINDS
from reconciler.operator import handlers, heap, namespace_fleets, objects
from reconciler.operator.config import OperatorConfig
from reconciler.sim.generate import site_documents

NAMESPACE = "bench"


def _bodies(sites: int, per_site: int) -> list[dict[str, Any]]:
    """The fleet's objects as the API server returns them."""
    text = "---\n".join(site_documents(i, per_site, org="org-bench") for i in range(sites))
    bodies = [doc for doc in yaml.safe_load_all(text) if doc]
    for n, body in enumerate(bodies):
        created = f"{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}"
        body["metadata"] |= {
            "namespace": NAMESPACE,
            "uid": f"uid-{n}",
            "creationTimestamp": f"2026-01-01T{created}Z",
        }
    return bodies


def _index(indexers: dict[str, OperatorIndexer], body: Mapping[str, Any]) -> None:
    """What kopf does with a watch event: index the object (our index function)."""
    kind = str(body["kind"])
    key = (NAMESPACE, body["metadata"]["name"], body["metadata"]["uid"])
    indexers[handlers._index_id(kind)].replace(
        key, {NAMESPACE: objects.index_document(body, kind)}
    )


def _at_endpoint(device: Mapping[str, Any], gateway: Mapping[str, Any]) -> dict[str, Any]:
    """The status a reconcile that added `device` to its Zap `gateway` writes."""
    resource = objects.read(device).resource
    connection = getattr(resource.spec, "connection", None) if resource else None
    assert connection is not None, device["metadata"]["name"]
    return {"gateway": {
        "name": gateway["metadata"]["name"],
        "serial": gateway["spec"]["zap"]["serial"],
        "endpoint": zap_endpoints.of_connection(connection).described(),
        "site": gateway["spec"]["siteRef"],
    }}


def _per_reconcile_ms(call: Callable[[Mapping[str, Any]], Any],
                      bodies: list[dict[str, Any]], reconciles: int) -> list[float]:
    step = max(1, len(bodies) // reconciles)
    times = []
    for body in bodies[::step][:reconciles]:
        started = time.process_time()
        call(body)
        times.append((time.process_time() - started) * 1000)
    return times


def _say(label: str, times: list[float]) -> None:
    print(f"  {label:<52} median {statistics.median(times):7.2f} ms, "
          f"max {max(times):7.2f} ms ({len(times)} reconciles)")


def run(sites: int, per_site: int, reconciles: int) -> None:
    bodies = _bodies(sites, per_site)
    indexers = {handlers._index_id(kind): OperatorIndexer() for kind in KINDS}
    for body in bodies:
        _index(indexers, body)
    indexes = {name: indexer.index for name, indexer in indexers.items()}
    # As the operator's process runs: what a namespace's first build leaves alive is
    # frozen, out of later full garbage collections (`operator.heap`).
    runtime = handlers.Runtime(OperatorConfig(), settle_heap=True)
    print(f"{sites} Sites, {len(bodies)} objects in the namespace")

    def before(body: Mapping[str, Any]) -> Any:
        # What each reconcile did before the built fleet was kept.
        return objects.build(handlers._namespace_bodies(NAMESPACE, indexes, body))

    def afresh(body: Mapping[str, Any]) -> Any:
        runtime.fleets.forget_others(())
        return handlers._namespace_fleet(runtime, NAMESPACE, indexes, body)

    def one_changed(body: Mapping[str, Any]) -> Any:
        # The edited object's own reconcile, its event indexed first (as kopf does).
        metadata = body["metadata"]
        edited = body | {"metadata": metadata | {"labels": {"bench": "edited"}}}
        _index(indexers, edited)
        return handlers._namespace_fleet(runtime, NAMESPACE, indexes, edited)

    def status_written(body: Mapping[str, Any]) -> Any:
        written = body | {"status": {"declaredFields": ["spec.displayName"]}}
        _index(indexers, written)
        return handlers._namespace_fleet(runtime, NAMESPACE, indexes, written)

    gateways = {b["metadata"]["name"]: b for b in bodies if b["kind"] == "Gateway"}
    zap_statuses = {
        device["metadata"]["name"]: _at_endpoint(device, gateways[device["spec"]["gatewayRef"]])
        for device in bodies if device["kind"] == "Device"
    }
    zap_devices = [b for b in bodies if b["metadata"]["name"] in zap_statuses]

    def holder_written(body: Mapping[str, Any]) -> Any:
        written = body | {"status": zap_statuses[body["metadata"]["name"]]}
        _index(indexers, written)
        return handlers._namespace_fleet(runtime, NAMESPACE, indexes, written)

    def kept(body: Mapping[str, Any]) -> Any:
        return handlers._namespace_fleet(runtime, NAMESPACE, indexes, body)

    def status_again(body: Mapping[str, Any]) -> Any:
        _index(indexers, body | {"status": {"observedGeneration": 2}})
        return handlers._namespace_fleet(runtime, NAMESPACE, indexes, body)

    _say("every reconcile building it (before)", _per_reconcile_ms(before, bodies, reconciles))
    _say("built from nothing (a namespace's first reconcile)",
         _per_reconcile_ms(afresh, bodies, reconciles))
    runtime.fleets = namespace_fleets.NamespaceFleets(heap.settle)
    kept(bodies[0])  # the first reconcile builds it
    for label, change, changed in (
        ("built again (one object's spec changed)", one_changed, bodies),
        ("built again (one object's status written)", status_written, bodies),
        ("built again (a status making a Device a holder)", holder_written, zap_devices),
    ):
        _say(label, _per_reconcile_ms(change, changed, reconciles))
        for body in bodies:  # as it was, for the reconciles below
            _index(indexers, body)
        kept(bodies[0])
    _say("kept (the index unchanged)", _per_reconcile_ms(kept, bodies, reconciles))
    _say("kept (its status indexed again, fleet unchanged)",
         _per_reconcile_ms(status_again, bodies, reconciles))
    fleets = runtime.fleets
    print(f"  builds {fleets.builds}, reused {fleets.reused}, "
          f"documents read {fleets.documents_read}, rules checked {fleets.full_checks} "
          f"times, those reading the holders alone {fleets.holder_checks} times")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--devices-per-site", type=int, default=2)
    parser.add_argument("--reconciles", type=int, default=200)
    args = parser.parse_args()
    run(args.sites, args.devices_per_site, args.reconciles)


if __name__ == "__main__":
    main()
