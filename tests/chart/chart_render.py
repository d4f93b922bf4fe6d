"""Runs helm on charts/reconciler and gives the rendered manifests as dicts."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

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
        self.documents: list[dict[str, Any]] = [d for d in yaml.safe_load_all(text) if d]

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
