"""Property-based robustness of the loader (`reconciler.sources.loader.load_texts`): thousands
of mutated and malformed documents, built from the example sites (keys deleted, values of the
wrong type, junk keys, random text spliced in, truncation, random bytes read as latin-1, deep
nesting). Each must either load or fail with diagnostics that name the file and a line;
no exception may escape."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import Diagnostic
from reconciler.sources import loader

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILES = sorted((ROOT / "examples" / "sites").rglob("*.yaml"))
INVALID_FILES = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
EXAMPLE_TEXTS = [p.read_text(encoding="utf-8") for p in EXAMPLE_FILES]
CORPUS = EXAMPLE_TEXTS + [p.read_text(encoding="utf-8") for p in INVALID_FILES]
EXAMPLE_DOCUMENTS = [doc for text in EXAMPLE_TEXTS for doc in yaml.safe_load_all(text) if doc]

FUZZ = settings(
    max_examples=1_000,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),  # reproducible in CI, exploring locally
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

junk_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.text(max_size=30) | st.sampled_from(["", "~", "-", "0x", "@", "*a", "&a"]))
junk_values = st.recursive(
    junk_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)
yaml_snippets = st.sampled_from([
    ":", "- ", "---\n", "...\n", "[", "]", "{", "}", "&a ", "*a", "<<: *a\n", "!!python/object ",
    "!tag ", "? ", "|\n", ">-\n", "\t", "'", '"', "#", "%YAML 1.1\n", "\ufeff", "\x00", "\x85",
    "\u2028", "kind: Site\n", "apiVersion: energy.reconciler.dev/v1alpha1\n", "  ", "\n",
])


def check(texts: list[tuple[str, str]]) -> None:
    """The property: loading never raises, and every diagnostic is located."""
    result = loader.load_texts(texts)
    names = {name for name, _ in texts}
    for diagnostic in result.diagnostics:
        assert_located(diagnostic, names)
    if result.ok:
        fleet = result.fleet()
        assert len(fleet) <= len(result.resources)
    else:
        assert result.diagnostics


def assert_located(diagnostic: Diagnostic, names: set[str]) -> None:
    assert diagnostic.file in names, diagnostic
    assert diagnostic.line is not None and diagnostic.line >= 1, diagnostic
    assert diagnostic.column is not None and diagnostic.column >= 1, diagnostic
    assert diagnostic.message.strip(), diagnostic
    assert str(diagnostic).startswith(f"{diagnostic.file}:{diagnostic.line}:"), diagnostic


@st.composite
def text_mutations(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["truncate", "delete", "insert", "snippet", "replace",
                                          "duplicate-line"]))
        if operation == "truncate":
            text = text[:position]
        elif operation == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 40)):]
        elif operation == "insert":
            text = text[:position] + draw(st.text(max_size=20)) + text[position:]
        elif operation == "snippet":
            text = text[:position] + draw(yaml_snippets) + text[position:]
        elif operation == "replace" and text:
            position = min(position, len(text) - 1)
            text = text[:position] + draw(st.characters()) + text[position + 1:]
        elif operation == "duplicate-line":
            lines = text.splitlines(keepends=True)
            if lines:
                index = draw(st.integers(0, len(lines) - 1))
                lines.insert(index, lines[index])
                text = "".join(lines)
    return text


def _mutate(node: Any, draw: st.DrawFn) -> Any:
    """Walk down a random path of the document and change what is found there."""
    if isinstance(node, dict) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node, key=str)))
        operation = draw(st.sampled_from(["descend", "descend", "delete", "replace", "junk-key"]))
        if operation == "descend":
            node[key] = _mutate(node[key], draw)
        elif operation == "delete":
            del node[key]
        elif operation == "replace":
            node[key] = draw(junk_values)
        else:
            node[draw(st.text(min_size=1, max_size=12))] = draw(junk_values)
        return node
    if isinstance(node, list) and node and draw(st.booleans()):
        index = draw(st.integers(0, len(node) - 1))
        operation = draw(st.sampled_from(["descend", "delete", "replace", "append"]))
        if operation == "descend":
            node[index] = _mutate(node[index], draw)
        elif operation == "delete":
            del node[index]
        elif operation == "replace":
            node[index] = draw(junk_values)
        else:
            node.append(copy.deepcopy(node[index]))
        return node
    return draw(junk_values)


@st.composite
def structural_mutations(draw: st.DrawFn) -> str:
    count = draw(st.integers(1, 5))
    documents = [copy.deepcopy(draw(st.sampled_from(EXAMPLE_DOCUMENTS))) for _ in range(count)]
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, count - 1))
        documents[index] = _mutate(documents[index], draw)
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True)


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3_000))
    style = draw(st.sampled_from(["flow-list", "flow-map", "block", "compact", "mixed"]))
    if style == "flow-list":
        return "[" * depth + "x" + "]" * draw(st.integers(0, depth))
    if style == "flow-map":
        return "{a: " * depth + "x" + "}" * draw(st.integers(0, depth))
    if style == "block":
        return "".join("  " * i + f"k{i}:\n" for i in range(min(depth, 400))) + "v\n"
    if style == "compact":
        return "- " * depth + "x\n"
    return "spec:\n  x: " + "[{a: " * (depth // 2) + "1" + "}]" * (depth // 2) + "\n"


@FUZZ
@given(text_mutations())
def test_text_mutations_load_or_fail_with_located_diagnostics(text: str) -> None:
    check([("mutated.yaml", text)])


@FUZZ
@given(structural_mutations())
def test_structural_mutations_load_or_fail_with_located_diagnostics(text: str) -> None:
    check([("mutated.yaml", text)])


@FUZZ
@given(st.binary(max_size=400).map(lambda raw: raw.decode("latin-1")))
def test_random_bytes_fail_with_located_diagnostics(text: str) -> None:
    check([("random.yaml", text)])


@settings(FUZZ, max_examples=200)
@given(deep_nesting())
def test_deep_nesting_fails_with_located_diagnostics(text: str) -> None:
    check([("deep.yaml", text)])


@settings(FUZZ, max_examples=300)
@given(st.lists(text_mutations(), min_size=2, max_size=4))
def test_several_broken_files_are_all_reported(texts: list[str]) -> None:
    check([(f"file-{i}.yaml", text) for i, text in enumerate(texts)])
