"""Names of the rendered objects: unique, and within the limits Kubernetes sets for each
kind, however long the release, fullnameOverride and shard names are."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_render import (
    CHART,
    NAMESPACE,
    RELEASE,
    WATCHED,
    Rendered,
    plain_env,
    run_helm,
    values_file,
)

from reconciler.operator import config as operator_config

Render = Callable[..., Rendered]

# RFC 1123 label: at most 63 characters. Kubernetes checks Deployment names as subdomains
# but advises labels (the name starts the pods' names and host names), and the chart gives
# each shard's kopf peering object its Deployment's name.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# RFC 1123 subdomain: at most 253 characters (ServiceAccount, Secret, custom resources).
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LIMITS = {"Deployment": 63, "ClusterKopfPeering": 63, "KopfPeering": 63}

LONG = "energy-reconciler-production-eu-north-cluster-0001-operator"  # 59 characters
TWINS = [{"name": "north", "selector": "s=n"}, {"name": "nordic", "selector": "s=o"}]
# The longest names the schema allows: a 63-character fullname, 32-character shard names
# that differ only in their last character.
LONGEST = "x" * 63
LONGEST_SHARDS = [{"name": "a" * 31 + "1", "selector": "s=1"},
                  {"name": "a" * 31 + "2", "selector": "s=2", "replicas": 3}]

CASES = {
    "long-cluster-wide": {"fullnameOverride": LONG, "shards": TWINS, "replicas": 2},
    "long-namespaced": {"fullnameOverride": LONG, "shards": TWINS, "replicas": 2,
                        "watchNamespaces": WATCHED},
    "longest": {"fullnameOverride": LONGEST, "shards": LONGEST_SHARDS,
                "peering": {"enabled": True}},
    "long-release-part": {"nameOverride": "n" * 59, "shards": TWINS, "replicas": 2},
}
cases = pytest.mark.parametrize("case", list(CASES))


def _labels(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield from (document["metadata"].get("labels") or {}).items()
    spec = document.get("spec") or {}
    if document["kind"] == "Deployment":
        yield from spec["selector"]["matchLabels"].items()
        yield from spec["template"]["metadata"]["labels"].items()


@cases
def test_names_are_unique_and_within_the_limit_of_their_kind(rendered: Render, case: str) -> None:
    out = rendered(CASES[case])
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
            for d in out.documents]
    assert len(keys) == len(set(keys)), sorted(keys)
    for kind, _, name in keys:
        limit = LIMITS.get(kind, 253)
        assert len(name) <= limit, f"{kind} {name}: {len(name)} > {limit}"
        assert (DNS_LABEL if limit == 63 else DNS_SUBDOMAIN).match(name), f"{kind} {name}"
    for document in out.documents:
        for key, value in _labels(document):
            assert len(value) <= 63 and LABEL_VALUE.match(value), f"label {key}={value}"


@cases
def test_each_shard_has_its_own_deployment_and_peering_object(rendered: Render, case: str) -> None:
    values = CASES[case]
    out = rendered(values)
    deployments = {d["metadata"]["name"]: d for d in out.of_kind("Deployment")}
    assert len(deployments) == len(values["shards"])
    peerings = {d["metadata"]["name"] for d in out.of_kind("ClusterKopfPeering")}
    if values.get("watchNamespaces"):
        assert peerings == set()
        assert {(d["metadata"]["namespace"], d["metadata"]["name"])
                for d in out.of_kind("KopfPeering")} == {
            (ns, name) for ns in values["watchNamespaces"] for name in deployments}
    else:
        assert peerings == set(deployments)
    for shard in values["shards"]:
        # The shard's name stays whole at the end of its Deployment's name.
        [name] = [n for n in deployments if n.endswith(f"-{shard['name']}")]
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        config = operator_config.load(plain_env(container))
        assert config.peering == name
        assert config.shard == shard["selector"]


@pytest.mark.parametrize("fullname", [
    pytest.param("f" * 57, id="fits-exactly"),
    pytest.param("f" * 58, id="one-too-long"),
    pytest.param("f" * 70, id="fullname-cut-at-63"),
    pytest.param("a" * 47 + "-" + "b" * 15, id="cut-before-a-dash"),
])
def test_a_name_is_shortened_with_a_hash_only_when_it_would_not_fit(
        rendered: Render, fullname: str) -> None:
    out = rendered({"fullnameOverride": fullname, "shards": [{"name": "north", "selector": "s=n"}]})
    [deployment] = out.of_kind("Deployment")
    name = deployment["metadata"]["name"]
    whole = f"{fullname[:63]}-north"  # the chart's fullname is cut at 63, as ever
    if len(whole) <= 63:
        assert name == whole
    else:
        digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
        assert name == f"{whole[:63 - len('-north') - 9].rstrip('-')}-{digest}-north"
        assert len(name) <= 63 and DNS_LABEL.match(name)


def test_notes_name_the_deployments(helm: Path, rendered: Render, tmp_path: Path) -> None:
    values = CASES["long-cluster-wide"]
    notes = run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
                     "--dry-run=client", "--values", str(values_file(values, tmp_path))).stdout
    notes = notes[notes.index("NOTES:"):]
    for deployment in rendered(values).of_kind("Deployment"):
        assert f"Deployment {deployment['metadata']['name']}:" in notes


@cases
def test_helm_lint_strict_passes_with_long_names(helm: Path, case: str, tmp_path: Path) -> None:
    done = run_helm(helm, "lint", str(CHART), "--strict", "--namespace", NAMESPACE,
                    "--values", str(values_file(CASES[case], tmp_path)))
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout
