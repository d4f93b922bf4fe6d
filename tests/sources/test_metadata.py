"""metadata is what `kubectl apply` checks too: names are RFC 1123 subdomains, a namespace
is an RFC 1123 label, label and annotation keys and label values follow the Kubernetes
rules, and a key YAML would turn into a boolean, null, number or date is refused. Each
problem is located at the key or value that breaks the rule."""

from __future__ import annotations

import pytest

from reconciler.sources import loader

SITE = """apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata:
  name: home
METADATA
spec:
  displayName: Home
  timezone: Europe/Stockholm
"""
KEY_RULE = "optionally after a DNS-subdomain prefix and '/'"


def load(metadata: str) -> list[str]:
    text = SITE.replace("METADATA\n", metadata)
    return [str(d) for d in loader.load_texts([("s.yaml", text)]).diagnostics]


@pytest.mark.parametrize(
    "metadata",
    [
        "  labels:\n    region: north\n    example.com/tier: gold\n    empty: ''\n",
        "  labels:\n    a: " + "v" * 63 + "\n    " + "k" * 63 + ": x\n",
        "  labels:\n    " + "p" * 253 + "/name: x\n",
        "  annotations:\n    energy.reconciler.dev/paused: 'true'\n    owner: ops@example.com\n",
        "  namespace: fleet-north\n",
        "  labels:\n    'on': x\n    'yes': 'no'\n",
    ],
    ids=["labels", "longest-name-and-value", "longest-prefix", "annotations", "namespace",
         "quoted-yaml-words"],
)
def test_valid_metadata_is_accepted(metadata: str) -> None:
    assert load(metadata) == []


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ("  labels:\n    bad key: x\n",
         "s.yaml:6:5: metadata.labels.bad key: invalid key 'bad key': expected a name of "
         "at most 63 letters"),
        ("  labels:\n    -x: y\n", "s.yaml:6:5: metadata.labels.-x: invalid key '-x'"),
        ("  labels:\n    " + "k" * 64 + ": x\n", "s.yaml:6:5: metadata.labels.kkk"),
        ("  labels:\n    Example.com/tier: x\n",
         "s.yaml:6:5: metadata.labels.Example.com/tier: invalid key"),
        ("  labels:\n    a/b/c: x\n", "s.yaml:6:5: metadata.labels.a/b/c: invalid key 'a/b/c': "),
        ("  labels:\n    region: north pole\n",
         "s.yaml:6:13: metadata.labels.region: invalid label value 'north pole': expected at "
         "most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or "
         "digit, or ''"),
        ("  labels:\n    region: " + "v" * 64 + "\n", "s.yaml:6:13: metadata.labels.region: "
         "invalid label value"),
        ("  labels:\n    region: -north\n", "s.yaml:6:13: metadata.labels.region: invalid"),
        ("  annotations:\n    owner/: x\n",
         "s.yaml:6:5: metadata.annotations.owner/: invalid key 'owner/'"),
        ("  namespace: Fleet_North\n", "s.yaml:5:14: metadata.namespace: String should match"),
        ("  namespace: fleet.north\n", "s.yaml:5:14: metadata.namespace: String should match"),
        ("  labels:\n    on: x\n",
         "s.yaml:6:5: metadata.labels.on: the key 'on' reads as a boolean in YAML; put it in "
         "quotes"),
        ("  labels:\n    ~: x\n",
         "s.yaml:6:5: metadata.labels.~: the key '~' reads as null in YAML"),
        ("  labels:\n    0x10: x\n",
         "s.yaml:6:5: metadata.labels.0x10: the key '0x10' reads as a number in YAML"),
        ("  annotations:\n    2024-01-01: x\n",
         "s.yaml:6:5: metadata.annotations.2024-01-01: the key '2024-01-01' reads as a date in "
         "YAML; put it in quotes"),
    ],
)
def test_invalid_metadata_is_located(metadata: str, expected: str) -> None:
    (problem,) = load(metadata)
    assert problem.startswith(expected), problem
    assert "[key]" not in problem


def test_label_key_messages_say_what_is_valid() -> None:
    (problem,) = load("  labels:\n    bad key: x\n")
    assert KEY_RULE in problem and "'example.com/tier'" in problem


@pytest.mark.parametrize("name", ["a..b", "a.-b", "a-.b", ".a", "a."])
def test_each_part_of_a_dotted_name_starts_and_ends_with_a_letter_or_digit(name: str) -> None:
    text = SITE.replace("METADATA\n", "").replace("name: home", f"name: '{name}'")
    (problem,) = [str(d) for d in loader.load_texts([("s.yaml", text)]).diagnostics]
    assert problem.startswith("s.yaml:4:9: metadata.name: ")
    assert "each part between dots starts and ends with a letter or digit" in problem
