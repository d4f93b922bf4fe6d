"""The offline schema checker the chart tests rely on rejects what an API server would."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kube_schema import CrdSet, validate_builtin

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "op", "namespace": "ns", "labels": {"app": "op"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "op"}},
        "template": {
            "metadata": {"labels": {"app": "op"}},
            "spec": {"containers": [{
                "name": "operator", "image": "reconciler:0.1.0",
                "env": [{"name": "A", "value": "1"}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
            }]},
        },
    },
}


def _container(document: dict[str, Any]) -> dict[str, Any]:
    return document["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _unknown_field(d: dict[str, Any]) -> None:
    _container(d)["securityContex"] = {"runAsNonRoot": True}


def _int_env_value(d: dict[str, Any]) -> None:
    _container(d)["env"][0]["value"] = 300


def _missing_container_name(d: dict[str, Any]) -> None:
    del _container(d)["name"]


def _list_where_map(d: dict[str, Any]) -> None:
    d["metadata"]["labels"] = ["app=op"]


def _bool_where_int(d: dict[str, Any]) -> None:
    d["spec"]["replicas"] = True


def test_a_valid_deployment_passes() -> None:
    assert validate_builtin(DEPLOYMENT) == []


@pytest.mark.parametrize(("mutate", "expected"), [
    pytest.param(_unknown_field, "securityContex: unknown field", id="unknown-field"),
    pytest.param(_int_env_value, "env[0].value: expected str", id="env-value-not-a-string"),
    pytest.param(_missing_container_name, "containers[0].name: required field",
                 id="missing-required"),
    pytest.param(_list_where_map, "labels: expected a map", id="list-instead-of-map"),
    pytest.param(_bool_where_int, "replicas: expected int", id="bool-instead-of-int"),
])
def test_an_invalid_deployment_is_rejected(mutate: Any, expected: str) -> None:
    document = copy.deepcopy(DEPLOYMENT)
    mutate(document)
    errors = validate_builtin(document)
    assert any(expected in e for e in errors), errors


def test_an_unknown_kind_has_no_model() -> None:
    with pytest.raises(LookupError):
        validate_builtin({"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {}})


CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev", "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "required": ["size"],
                         "properties": {"size": {"type": "integer", "minimum": 1}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }}}],
    },
}


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({"size": 2}, None, id="valid"),
    pytest.param({"size": 2, "colour": "red"}, "Additional properties", id="unknown-field"),
    pytest.param({"size": 0}, "less than the minimum", id="below-minimum"),
    pytest.param({}, "'size' is a required property", id="missing-required"),
])
def test_custom_resources_are_checked_strictly(spec: dict[str, Any], expected: str | None) -> None:
    assert validate_builtin(CRD) == []
    crds = CrdSet([CRD])
    errors = crds.validate({"apiVersion": "example.dev/v1", "kind": "Widget",
                            "metadata": {"name": "w"}, "spec": spec, "status": {"any": 1}})
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors
