"""The chart installs exactly the generated CRDs, kopf's peering CRDs, and every example
site validates against the CRDs the chart installs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHART, REPO, Rendered
from kopf._cogs.structs import references
from kube_schema import CrdSet, load_all, validate_builtin

from reconciler.cli.main import main
from reconciler.model.base import API_GROUP

CHART_CRDS = CHART / "crds"
GENERATED = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
KOPF_PEERING = CHART_CRDS / "kopf-peering.yaml"
EXAMPLES = sorted((REPO / "examples" / "sites").rglob("*.yaml"))
REGENERATE = "regenerate with: reconciler crds --out charts/reconciler/crds"


def _documents(path: Path) -> list[dict[str, Any]]:
    return load_all(path.read_text(encoding="utf-8"))


def _chart_crds() -> list[dict[str, Any]]:
    return [d for p in sorted(CHART_CRDS.glob("*.yaml")) for d in _documents(p)]


def test_there_are_crds_for_the_four_kinds() -> None:
    assert len(GENERATED) == 4, GENERATED
    kinds = {d["spec"]["names"]["kind"] for n in GENERATED for d in _documents(REPO / "crds" / n)}
    assert kinds == {"Site", "Gateway", "Device", "DER"}


@pytest.mark.parametrize("name", GENERATED)
def test_chart_crd_is_identical_to_the_generated_one(name: str) -> None:
    copy = CHART_CRDS / name
    assert copy.is_file(), f"{copy} is missing; {REGENERATE}"
    assert copy.read_bytes() == (REPO / "crds" / name).read_bytes(), f"{copy} drifted; {REGENERATE}"


def test_chart_has_no_other_crds_of_ours() -> None:
    ours = sorted(p.name for p in CHART_CRDS.glob("*.yaml") if p != KOPF_PEERING)
    assert ours == GENERATED, f"stale CRD files in {CHART_CRDS}: {set(ours) - set(GENERATED)}"


def test_chart_crds_are_up_to_date_with_the_models(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["crds", "--check", "--out", str(CHART_CRDS)])
    assert code == 0, capsys.readouterr().err


def test_every_chart_crd_is_a_valid_customresourcedefinition() -> None:
    for crd in _chart_crds():
        assert validate_builtin(crd) == [], crd["metadata"]["name"]
        for version in crd["spec"]["versions"]:
            # Structural schemas (the API server refuses others) are typed at the root.
            assert version["schema"]["openAPIV3Schema"]["type"] == "object"


def test_our_crds_serve_namespaced_resources_of_our_group() -> None:
    ours = [d for d in _chart_crds() if d["spec"]["group"] == API_GROUP]
    assert {d["spec"]["names"]["plural"] for d in ours} == {"sites", "gateways", "devices", "ders"}
    for crd in ours:
        assert crd["spec"]["scope"] == "Namespaced"
        assert [v["name"] for v in crd["spec"]["versions"] if v["storage"]] == ["v1alpha1"]
        for version in crd["spec"]["versions"]:
            assert "status" in version.get("subresources", {}), "the operator patches /status"


def test_kopf_peering_crds_are_the_ones_kopf_looks_for() -> None:
    crds = {(d["spec"]["group"], d["spec"]["names"]["plural"]): d for d in _documents(KOPF_PEERING)}
    for selector, scope in [(references.CLUSTER_PEERINGS_K, "Cluster"),
                            (references.NAMESPACED_PEERINGS_K, "Namespaced")]:
        key = (selector.group, selector.any_name)  # a Selector keeps the plural as any_name
        assert key in crds, f"kopf watches {key}, which the chart does not install"
        crd = crds[key]
        assert crd["spec"]["scope"] == scope
        assert [v["name"] for v in crd["spec"]["versions"]] == [selector.version]
        assert crd["metadata"]["name"] == f"{selector.any_name}.{selector.group}"
        # kopf writes its keep-alives under .status of the object itself, not a subresource:
        # with a status subresource, its merge-patch of the main resource would drop them.
        version = crd["spec"]["versions"][0]
        assert "subresources" not in version
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True


@pytest.fixture(scope="module")
def crd_set() -> CrdSet:
    return CrdSet(_chart_crds())


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 5, EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO / "examples")))
def test_example_validates_against_the_crds_the_chart_installs(path: Path, crd_set: CrdSet) -> None:
    documents = _documents(path)
    assert documents, f"{path} holds no document"
    for document in documents:
        where = f"{path.name}: {document.get('kind')}/{document['metadata']['name']}"
        assert (document["apiVersion"], document["kind"]) in crd_set, where
        assert crd_set.validate(document) == [], where


def test_readme_kubectl_apply_of_the_examples_declares_every_example_document(
        kubectl: Path) -> None:
    """The README's `kubectl apply -f examples/sites/` reads what `reconciler validate`
    reads: kubectl reads a directory's subdirectories only with -R, and the example sites
    keep their files in some. kubectl collects the files offline (a `--local` label, the
    same file walk `apply` makes)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"`kubectl apply ([^`]*examples/sites/?)`", readme)
    assert commands, "no `kubectl apply ... examples/sites/` in the README"
    expected = {f"{d['kind'].lower()}.{API_GROUP}/{d['metadata']['name']}"
                for path in EXAMPLES for d in _documents(path)}
    for arguments in commands:
        done = subprocess.run(
            [str(kubectl), "label", "--local", *shlex.split(arguments), "readme=check",
             "-o", "name"],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "KUBECONFIG": os.devnull})
        assert done.returncode == 0, done.stderr
        missing = expected - set(done.stdout.split())
        assert not missing, f"`kubectl apply {arguments}` leaves out {sorted(missing)}"


def test_a_misspelt_example_field_is_rejected(crd_set: CrdSet) -> None:
    document = _documents(EXAMPLES[0])[0]
    document["spec"]["displayNam"] = "typo"
    errors = crd_set.validate(document)
    assert any("displayNam" in e for e in errors), errors


# --- printer columns (`kubectl get`) --------------------------------------------------------

def _shown(kubectl: Path, documents: list[dict[str, Any]], json_path: str) -> dict[str, str]:
    """What a printer column of this JSONPath shows for each object, by name. kubectl
    evaluates the path offline (a `--local` label, printed with -o jsonpath) with client-go's
    JSONPath, the package the API server fills printer columns with; it prints every match
    where the column shows the first, so one value printed is one value shown."""
    template = f'{{.metadata.name}}{{"\\t"}}{{{json_path}}}{{"\\n"}}'
    done = subprocess.run(
        [str(kubectl), "label", "--local", "-f", "-", "printer-column=check", "-o",
         f"jsonpath={template}"],
        input=yaml.safe_dump_all(documents), capture_output=True, text=True, timeout=60,
        check=False, env={**os.environ, "KUBECONFIG": os.devnull})
    assert done.returncode == 0, done.stderr
    return dict(line.split("\t", 1) for line in done.stdout.splitlines())


def test_gateway_serial_column_shows_zap_and_enapter_gateways(
        kubectl: Path, rendered: Callable[..., Rendered]) -> None:
    [crd] = [d for d in rendered({}).of_kind("CustomResourceDefinition")
             if d["spec"]["names"]["kind"] == "Gateway"]
    [version] = crd["spec"]["versions"]
    [column] = [c for c in version["additionalPrinterColumns"] if c["name"] == "Serial"]
    gateways = [d for path in EXAMPLES for d in _documents(path) if d["kind"] == "Gateway"]
    expected = {g["metadata"]["name"]: g["spec"]["zap"]["serial"] if "zap" in g["spec"]
                else g["spec"]["enapter"]["hardwareId"] for g in gateways}
    assert {"zap", "enapter"} <= {p for g in gateways for p in g["spec"]}, "examples of both"
    assert _shown(kubectl, gateways, column["jsonPath"]) == expected
