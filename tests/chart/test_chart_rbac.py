"""The chart's RBAC is exactly what the operator needs, and no more."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chart_rbac import (
    CRD_DISCOVERY,
    NAMESPACE_DISCOVERY,
    Grant,
    application,
    grants,
    our_resources,
    peering,
)
from chart_render import SCENARIOS, WATCHED, Rendered, peering_on

Render = Callable[..., Rendered]
ALLOWED_VERBS = {"get", "list", "watch", "patch", "create"}


def _expected(scenario: str) -> set[Grant]:
    values = SCENARIOS[scenario]
    peers = peering_on(values)
    if values.get("watchNamespaces"):
        expected = CRD_DISCOVERY | NAMESPACE_DISCOVERY
        for namespace in values["watchNamespaces"]:
            expected |= application(namespace)
            if peers:
                expected |= peering(namespace, "kopfpeerings")
        return expected
    expected = CRD_DISCOVERY | application("*")
    if peers:
        expected |= peering("*", "clusterkopfpeerings")
    return expected


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_grants_are_exactly_what_the_operator_needs(rendered: Render, scenario: str) -> None:
    granted = grants(rendered(SCENARIOS[scenario]))
    expected = _expected(scenario)
    assert granted - expected == set(), "granted but not needed"
    assert expected - granted == set(), "needed but not granted"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_wildcards_and_no_writes_beyond_patch(rendered: Render, scenario: str) -> None:
    out = rendered(SCENARIOS[scenario])
    for role in out.of_kind("ClusterRole") + out.of_kind("Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
            assert set(rule["verbs"]) <= ALLOWED_VERBS, rule
            if "create" in rule["verbs"]:
                assert rule["resources"] == ["events"], "the operator creates nothing but Events"
    for _, _, resource, verb in grants(out):
        assert verb in ALLOWED_VERBS
        assert not resource.startswith(("pods", "deployments", "roles", "clusterroles")), resource


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_secrets_are_readable_only_where_objects_are_served(
    rendered: Render, scenario: str
) -> None:
    values = SCENARIOS[scenario]
    out = rendered(values)
    secrets = {
        (scope, verb)
        for scope, group, resource, verb in grants(out)
        if (group, resource) == ("", "secrets")
    }
    watched = values.get("watchNamespaces")
    if watched:
        assert secrets == {(ns, "get") for ns in watched}
        for role in out.of_kind("ClusterRole"):
            assert all("secrets" not in r["resources"] for r in role["rules"])
        assert {r["metadata"]["namespace"] for r in out.of_kind("Role")} == set(watched)
    else:
        assert secrets == {("*", "get")}
        assert out.of_kind("Role") == [] and out.of_kind("RoleBinding") == []


def test_namespaced_mode_binds_roles_in_each_watched_namespace(rendered: Render) -> None:
    out = rendered(SCENARIOS["namespaced"])
    assert sorted(r["metadata"]["namespace"] for r in out.of_kind("RoleBinding")) == WATCHED
    for binding in out.of_kind("RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"


def test_namespace_discovery_can_be_turned_off(rendered: Render) -> None:
    values = {**SCENARIOS["namespaced"], "rbac": {"namespaceDiscovery": False}}
    granted = grants(rendered(values))
    assert not granted & NAMESPACE_DISCOVERY
    assert granted & CRD_DISCOVERY == CRD_DISCOVERY


def test_rules_cover_every_kind_the_operator_handles() -> None:
    plurals = {plural for _, plural in our_resources()}
    assert plurals == {"sites", "gateways", "devices", "ders"}
    assert all(("*", g, p, "watch") in application("*") for g, p in our_resources())


@pytest.mark.parametrize(
    "watched", [[], ["fleet-north", "fleet-south"]], ids=["cluster", "namespaced"]
)
def test_config_secrets_are_writable_only_when_asked_for(
    rendered: Render, watched: list[str]
) -> None:
    values: dict[str, object] = {"rbac": {"writeConfigSecrets": True}}
    if watched:
        values["watchNamespaces"] = watched
    out = rendered(values)
    secrets = {
        (scope, verb)
        for scope, group, resource, verb in grants(out)
        if (group, resource) == ("", "secrets")
    }
    scopes = watched or ["*"]
    # Create, replace (update) and delete (a released Device's) one by one: never list,
    # watch or patch Secrets.
    verbs = ("get", "create", "update", "delete")
    assert secrets == {(scope, verb) for scope in scopes for verb in verbs}
