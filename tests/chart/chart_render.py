"""Runs helm on charts/reconciler and gives the rendered manifests as dicts."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kube_schema import load_all

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "reconciler"
RELEASE = "rec"
NAMESPACE = "reconciler-system"


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def values_file(values: Mapping[str, Any], directory: Path) -> Path:
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(dict(values)))
    return path


def template(helm: Path, values: Mapping[str, Any] | None = None, *,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with these values (and the CRDs)."""
    with tempfile.TemporaryDirectory() as scratch:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"]
        if values:
            args += ["--values", str(values_file(values, Path(scratch)))]
        return run_helm(helm, *args, check=check)


class Rendered:
    """The documents of one `helm template`, with lookups by kind."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.documents = load_all(text)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def containers(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(deployment, container) pairs."""
        return [(d, c) for d in self.of_kind("Deployment")
                for c in d["spec"]["template"]["spec"]["containers"]]


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's env entries by name (fails on duplicates)."""
    entries: dict[str, dict[str, Any]] = {}
    for entry in container.get("env", []):
        assert entry["name"] not in entries, f"env {entry['name']} is set twice"
        entries[entry["name"]] = entry
    return entries


def plain_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The env entries that have a literal value."""
    return {name: entry["value"] for name, entry in env_of(container).items() if "value" in entry}


def render(helm: Path, values: Mapping[str, Any] | None = None) -> Rendered:
    return Rendered(template(helm, values).stdout)


def cache_key(values: Mapping[str, Any] | None) -> str:
    return json.dumps(values or {}, sort_keys=True)


CREDENTIALS = {"existingSecret": "reconciler-credentials"}
WATCHED = ["fleet-north", "fleet-south"]
SHARDS = [{"name": "north", "selector": "energy.reconciler.dev/shard=north"},
          {"name": "south", "selector": "energy.reconciler.dev/shard=south,tier", "replicas": 2}]

# The value sets every rendering test runs on, by id.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": WATCHED, "credentials": CREDENTIALS},
    "shards": {"shards": SHARDS, "credentials": CREDENTIALS},
    "peering": {"replicas": 2, "credentials": CREDENTIALS},
    "peering-namespaced": {"replicas": 2, "watchNamespaces": WATCHED},
    "shards-namespaced": {"shards": SHARDS, "watchNamespaces": WATCHED},
    "credential-files": {"credentials": {**CREDENTIALS, "mountAsFiles": True}},
    "observe": {"mode": "observe", "reconcileInterval": 60, "retryDelay": 5,
                "watchFailureLimit": 45, "shard": {"selector": "fleet=pilot"}},
    "everything": {
        "replicas": 1, "peering": {"enabled": True}, "verbose": True,
        "image": {"repository": "registry.example/reconciler", "tag": "1.2.3",
                  "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "pull"}],
        "credentials": CREDENTIALS,
        "endpoints": {"novacore": "https://novacore.example", "enapter": "https://enapter.example",
                      "flatpeak": "https://flatpeak.example"},
        "gatewayUrls": {"zap-0042": "http://10.8.0.42", "zap-0043": "http://10.8.0.43:8080"},
        "limits": {"concurrency": 32, "gatewayConcurrency": 2, "gatewayRate": 5.5,
                   "timeout": 20, "retries": 3},
        "caBundle": {"configMap": "corporate-ca", "key": "bundle.pem"},
        "passwordEnv": ["MQTT_PASSWORD"],
        "extraEnv": [{"name": "MQTT_PASSWORD",
                      "valueFrom": {"secretKeyRef": {"name": "mqtt", "key": "password"}}}],
        "readinessProbe": {"enabled": True},
        "serviceAccount": {"annotations": {"example.dev/role": "reconciler"}},
        "podAnnotations": {"example.dev/scrape": "false"}, "podLabels": {"team": "energy"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops",
                         "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    },
}


def shards_of(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Deployments a value set should give: (name suffix, selector, replicas)."""
    replicas = values.get("replicas", 1)
    if values.get("shards"):
        return [{"suffix": f"-{s['name']}", "selector": s["selector"],
                 "replicas": s.get("replicas", replicas)} for s in values["shards"]]
    return [{"suffix": "", "selector": (values.get("shard") or {}).get("selector", ""),
             "replicas": replicas}]


def peering_on(values: Mapping[str, Any]) -> bool:
    return bool((values.get("peering") or {}).get("enabled")) or any(
        s["replicas"] > 1 for s in shards_of(values))
