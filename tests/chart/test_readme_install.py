"""The README's install and upgrade steps, as a new user runs them: the chart its `helm
install` renders puts every object in a namespace the steps before it created (the API
server refuses an object in a namespace that does not exist, and `helm install` fails with
it), and the new CRDs go in before `helm upgrade`, which never upgrades them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from chart_render import REPO, Rendered, run_helm

# What the README leaves to the reader, and a stand-in a render accepts.
PLACEHOLDERS = {"<your registry>": "registry.example"}


def _install_block() -> list[list[str]]:
    """The commands of the README's ```sh block holding `helm install`, each as argv."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "helm install" in b]
    assert len(blocks) == 1, f"expected one README block with `helm install`, found {len(blocks)}"
    text = blocks[0].replace("\\\n", " ")
    for placeholder, stand_in in PLACEHOLDERS.items():
        text = text.replace(placeholder, stand_in)
    return [argv for line in text.splitlines() if (argv := shlex.split(line, comments=True))]


def test_the_readme_install_creates_every_namespace_the_chart_writes_to(helm: Path) -> None:
    created: set[str] = set()
    installs = []
    for argv in _install_block():
        if argv[:3] == ["kubectl", "create", "namespace"]:
            created.add(argv[3])
        elif argv[:2] == ["helm", "install"]:
            installs.append(argv)
    assert len(installs) == 1, installs
    # `helm template` with the same arguments renders what `helm install` would create.
    out = Rendered(run_helm(helm, "template", *installs[0][2:]).stdout)
    namespaces = {d["metadata"]["namespace"] for d in out.documents
                  if d["metadata"].get("namespace")}
    assert namespaces, "the chart rendered no namespaced object"
    missing = sorted(namespaces - created)
    assert not missing, (f"the README's `helm install` puts objects in {missing}, which "
                         "no `kubectl create namespace` before it creates")


def _sentence_with(text: str, needle: str) -> str:
    """The sentence that ends with `needle`, from the full stop before it, on one line."""
    flat = " ".join(text.split())
    at = flat.index(needle)
    return flat[flat.rfind(". ", 0, at) + 2:at + len(needle)]


def test_the_crds_are_applied_before_helm_upgrade_not_after(helm: Path) -> None:
    """Helm never upgrades CRDs. The new chart's CRDs go in first: a new operator started
    by `helm upgrade` against the old CRDs would have the status fields they lack dropped
    by the API server (structural schemas prune unknown fields), `lastValidSpec` and the
    records deletions and swaps read among them."""
    notes = run_helm(helm, "install", "rec", str(REPO / "charts" / "reconciler"),
                     "--dry-run=client", "--namespace", "reconciler-system").stdout
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for where, text in (("NOTES.txt", notes[notes.index("NOTES:"):]), ("README.md", readme)):
        sentence = _sentence_with(text, "kubectl apply -f charts/reconciler/crds/")
        assert "before `helm upgrade`" in sentence, f"{where}: {sentence}"
        assert "after upgrading" not in sentence.lower(), f"{where}: {sentence}"
