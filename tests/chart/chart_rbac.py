"""What the chart's RBAC lets the operator's ServiceAccount do, resolved through the
rendered bindings, as a set of (scope, apiGroup, resource, verb): scope is "*" for a
ClusterRoleBinding and the namespace for a RoleBinding."""

from __future__ import annotations

from typing import Any

from chart_render import NAMESPACE, RELEASE, Rendered

from reconciler.model.kinds import KINDS
from reconciler.operator import objects

SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": f"{RELEASE}-reconciler",
                   "namespace": NAMESPACE}
Grant = tuple[str, str, str, str]


def grants(out: Rendered) -> set[Grant]:
    roles: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
    for role in out.of_kind("ClusterRole"):
        roles["ClusterRole", None, role["metadata"]["name"]] = role["rules"]
    for role in out.of_kind("Role"):
        roles["Role", role["metadata"]["namespace"], role["metadata"]["name"]] = role["rules"]
    bound = set()
    result: set[Grant] = set()
    for binding in out.of_kind("ClusterRoleBinding") + out.of_kind("RoleBinding"):
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        key = (ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])
        assert key in roles, f"{binding['kind']} {binding['metadata']['name']} binds missing {key}"
        assert binding["subjects"] == [SERVICE_ACCOUNT], binding["subjects"]
        bound.add(key)
        scope = "*" if binding["kind"] == "ClusterRoleBinding" else namespace
        for rule in roles[key]:
            assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no names, no URLs
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        result.add((scope, group, resource, verb))
    assert bound == set(roles), f"roles bound to nobody: {set(roles) - bound}"
    return result


def allowed(granted: set[Grant], namespace: str | None, group: str, resource: str,
            verb: str) -> bool:
    """Would this request pass? (A cluster-wide grant covers every namespace.)"""
    return ("*", group, resource, verb) in granted or (
        namespace is not None and (namespace, group, resource, verb) in granted)


def our_resources() -> list[tuple[str, str]]:
    """(apiGroup, plural) of every kind the operator handles."""
    return [objects.resource_ref(kind)[::2] for kind in KINDS]


def application(scope: str) -> set[Grant]:
    """What the operator needs wherever it serves objects."""
    verbs = ("get", "list", "watch", "patch")
    needed = {(scope, g, p, v) for g, p in our_resources() for v in verbs}
    needed |= {(scope, g, f"{p}/status", v) for g, p in our_resources() for v in ("get", "patch")}
    needed |= {(scope, "", "events", "create"), (scope, "", "secrets", "get")}
    return needed


def peering(scope: str, plural: str) -> set[Grant]:
    return {(scope, "kopf.dev", plural, v) for v in ("get", "list", "watch", "patch")}


CRD_DISCOVERY = {("*", "apiextensions.k8s.io", "customresourcedefinitions", v)
                 for v in ("list", "watch")}
NAMESPACE_DISCOVERY = {("*", "", "namespaces", v) for v in ("list", "watch")}
