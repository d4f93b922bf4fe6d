"""`--target` / `--exclude`: choose resources by address (`device/inv-1`) or by label
selector (`region=north`, `tier!=test`, `customer`). A target brings what it holds (a site
its gateways and devices, a device its DERs) and what those depend on (a device its gateway
and site), so `--target site/x` plans the whole site and `--target device/y` plans the device
with what it needs; an exclusion takes along everything that depends on it."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.base import Resource
from reconciler.model.fleet import Fleet


def _matches_selector(resource: Resource, selector: str) -> bool:
    labels = resource.metadata.labels
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.strip().rstrip("=")) != value.strip().lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _matches(resource: Resource, pattern: str) -> bool:
    if "/" in pattern and "=" not in pattern:
        kind, _, name = pattern.partition("/")
        return resource.KIND.lower() == kind.lower() and resource.name == name
    return _matches_selector(resource, pattern)


def _key(resource: Resource) -> tuple[str, str]:
    return (resource.KIND, resource.name)


def _dependencies(fleet: Fleet, resource: Resource) -> list[Resource]:
    spec = resource.spec
    out: list[Resource] = []
    # An Enapter Lua device also needs its runtime, a LINK slave its master.
    enapter = getattr(spec, "enapter", None)
    refs = (
        ("Site", getattr(spec, "site_ref", None)),
        ("Gateway", getattr(spec, "gateway_ref", None)),
        ("Device", getattr(spec, "device_ref", None)),
        ("Device", getattr(enapter, "runtime_ref", None)),
        ("Device", getattr(enapter, "master_ref", None)),
    )
    for kind, ref in refs:
        if ref and ref in fleet.table(kind):
            out.append(fleet.table(kind)[ref])
    return out


Key = tuple[str, str]
Graph = dict[Key, list[Resource]]


def _graphs(fleet: Fleet) -> tuple[Graph, Graph]:
    """(what each resource depends on, what depends on each resource), built once."""
    depends: Graph = {}
    dependents: Graph = {}
    for resource in fleet.resources():
        depends[_key(resource)] = _dependencies(fleet, resource)
        for parent in depends[_key(resource)]:
            dependents.setdefault(_key(parent), []).append(resource)
    return depends, dependents


def _closure(start: Iterable[Resource], edges: Graph) -> set[Key]:
    seen: set[Key] = set()
    stack = list(start)
    while stack:
        resource = stack.pop()
        if _key(resource) in seen:
            continue
        seen.add(_key(resource))
        stack += edges.get(_key(resource), [])
    return seen


def select(fleet: Fleet, targets: list[str], excludes: list[str]) -> set[tuple[str, str]] | None:
    """(kind, name) of the resources to plan, or None for all of them."""
    if not targets and not excludes:
        return None
    resources = list(fleet.resources())
    by_key = {_key(r): r for r in resources}
    depends, dependents = _graphs(fleet)
    if targets:
        chosen = [r for r in resources if any(_matches(r, t) for t in targets)]
        held = _closure(chosen, dependents)
        selected = _closure((by_key[k] for k in held), depends)
    else:
        selected = set(by_key)
    if excludes:
        dropped = [r for r in resources if any(_matches(r, e) for e in excludes)]
        selected -= _closure(dropped, dependents)
    return selected


def unknown_targets(fleet: Fleet, patterns: list[str]) -> list[str]:
    """Patterns that match no resource (reported to the user, not silently ignored)."""
    resources = list(fleet.resources())
    return [p for p in patterns if not any(_matches(r, p) for r in resources)]
