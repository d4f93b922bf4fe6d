"""Safe YAML parsing with positions (`reconciler.sources.yaml_documents.parse_yaml`):
multi-document streams, exact line/column of every value and key, duplicate keys, refused
tags, merge keys, aliases (and alias bombs), date-like scalars, syntax errors."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reconciler.sources.yaml_documents import ParsedDocument, Position, parse_yaml


def parse_one(text: str) -> ParsedDocument:
    documents, problems = parse_yaml(text, "f.yaml")
    assert problems == [], [str(p) for p in problems]
    assert len(documents) == 1
    return documents[0]


def problems_of(text: str) -> list[str]:
    documents, problems = parse_yaml(text, "f.yaml")
    assert documents == []
    return [str(p) for p in problems]


def test_multi_document_stream_keeps_order_indexes_and_positions() -> None:
    text = "a: 1\n---\n# comment\nb:\n  c: [x, y]\n---\n- 1\n"
    documents, problems = parse_yaml(text, "f.yaml")
    assert problems == []
    assert [d.value for d in documents] == [{"a": 1}, {"b": {"c": ["x", "y"]}}, [1]]
    assert [d.index for d in documents] == [0, 1, 2]
    assert [d.start for d in documents] == [Position(1, 1), Position(4, 1), Position(7, 1)]
    second = documents[1]
    assert second.positions[("b",)] == (5, 3)
    assert second.positions[("b", "c")] == (5, 6)
    assert second.positions[("b", "c", 1)] == (5, 10)
    assert second.key_positions[("b", "c")] == (5, 3)
    assert all(d.file == "f.yaml" for d in documents)


def test_locate_falls_back_to_the_nearest_ancestor() -> None:
    document = parse_one("spec:\n  zap:\n    serial: x\n")
    assert document.locate(("spec", "zap", "serial")) == Position(3, 13)
    assert document.locate(("spec", "zap", "serial"), key=True) == Position(3, 5)
    assert document.locate(("spec", "zap", "url")) == Position(3, 5)  # the zap mapping
    assert document.locate(("spec", "gatewayRef", "x")) == Position(2, 3)
    assert document.locate(()) == Position(1, 1)
    assert document.locate(("other",)) == Position(1, 1)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("# only a comment\n", id="comment"),
        pytest.param("---\n", id="separator"),
        pytest.param("---\n~\n---\nnull\n", id="null-documents"),
        pytest.param("\n\n   \n", id="blank-lines"),
    ],
)
def test_empty_streams_give_no_documents_and_no_problems(text: str) -> None:
    assert parse_yaml(text, "f.yaml") == ([], [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: 1\nb: 2\na: 3\n", "f.yaml:3:1: a: duplicate key 'a'", id="top-level"),
        pytest.param("spec:\n  zap:\n    url: x\n    url: y\n",
                     "f.yaml:4:5: spec.zap.url: duplicate key 'url'", id="nested"),
        pytest.param("{a: 1, a: 1}\n", "f.yaml:1:8: a: duplicate key 'a'", id="flow-same-value"),
        pytest.param("'1': a\n\"1\": b\n", "f.yaml:2:1: 1: duplicate key '1'",
                     id="differently-quoted"),
    ],
)
def test_duplicate_keys_are_refused_at_the_second_key(text: str, expected: str) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith(expected), problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: !!python/object:os.system {}\n", "f.yaml:1:4: a: YAML tag "
                     "'tag:yaml.org,2002:python/object:os.system' is not allowed",
                     id="python-object"),
        pytest.param("a: !!python/name:os.system ''\n",
                     "f.yaml:1:4: a: YAML tag 'tag:yaml.org,2002:python/name:os.system'",
                     id="python-name"),
        pytest.param("a:\n  b: !secret x\n", "f.yaml:2:6: a.b: YAML tag '!secret' is not allowed",
                     id="application-tag"),
        pytest.param("a: !!binary aGVsbG8=\n", "f.yaml:1:4: a: YAML tag 'tag:yaml.org,2002:binary'",
                     id="binary"),
        pytest.param("a: !!set {x, y}\n", "f.yaml:1:4: a: YAML tag 'tag:yaml.org,2002:set'",
                     id="set"),
        pytest.param("a: !!omap [x: 1]\n", "f.yaml:1:4: a: YAML tag 'tag:yaml.org,2002:omap'",
                     id="omap"),
        pytest.param("? [a, b]\n: c\n", "f.yaml:1:3: mapping keys must be plain scalars",
                     id="complex-key"),
        pytest.param("2024-01-01: x\n", "f.yaml:1:1: 2024-01-01: the key '2024-01-01' reads "
                     "as a date in YAML; put it in quotes", id="timestamp-key"),
        pytest.param("labels:\n  on: x\n", "f.yaml:2:3: labels.on: the key 'on' reads as a "
                     "boolean in YAML; put it in quotes", id="boolean-key"),
        pytest.param("labels:\n  no: x\n", "f.yaml:2:3: labels.no: the key 'no' reads as a boolean",
                     id="no-key"),
        pytest.param("a: {~: x}\n", "f.yaml:1:5: a.~: the key '~' reads as null", id="null-key"),
        pytest.param("a:\n  0x10: x\n", "f.yaml:2:3: a.0x10: the key '0x10' reads as a number",
                     id="hex-key"),
        pytest.param("a:\n  1_000: x\n", "f.yaml:2:3: a.1_000: the key '1_000' reads as a number",
                     id="underscore-number-key"),
        pytest.param("a:\n  1.5: x\n", "f.yaml:2:3: a.1.5: the key '1.5' reads as a number",
                     id="float-key"),
    ],
)
def test_tags_and_complex_keys_are_refused(text: str, expected: str) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith(expected), problem


def test_python_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')"
    text = f"a: !!python/object/apply:builtins.exec [{payload!r}]\n"
    problems = problems_of(text)
    assert len(problems) == 1 and "is not allowed" in problems[0]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  c: 3\n",
                     {"a": 1, "b": 2, "c": 3}, id="merge"),
        pytest.param("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n",
                     {"a": 3, "b": 2}, id="explicit-key-overrides"),
        pytest.param("p: &p {a: 1}\nq: &q {a: 2, b: 2}\nx:\n  <<: [*p, *q]\n",
                     {"a": 1, "b": 2}, id="first-listed-wins"),
        pytest.param("p: &p {a: 1}\nq: &q {<<: *p, b: 2}\nx: {<<: *q, c: 3}\n",
                     {"a": 1, "b": 2, "c": 3}, id="chained"),
        pytest.param("p: &p {a: 1}\nq: &q {<<: *p, a: 2}\nr: *q\nx: {<<: *q}\n",
                     {"a": 2}, id="merged-mapping-reused-through-an-alias"),
    ],
)
def test_merge_keys(text: str, expected: dict[str, Any]) -> None:
    document = parse_one(text)
    assert document.value["x"] == expected


def test_merged_values_are_located_where_they_are_written() -> None:
    document = parse_one("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n")
    assert document.positions[("x", "a")] == (4, 6)  # the override
    assert document.positions[("x", "b")] == (1, 20)  # inside the anchored mapping


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("x: {<<: 5}\n", "f.yaml:1:9: x: `<<` (merge key) takes a mapping",
                     id="scalar"),
        pytest.param("x: {<<: [{a: 1}, 3]}\n", "f.yaml:1:18: x: `<<` (merge key) takes a mapping",
                     id="list-with-scalar"),
        pytest.param("a: &a {<<: *a}\n", "f.yaml:1:4: a: recursive alias: a mapping merges itself",
                     id="merges-itself"),
    ],
)
def test_bad_merges_are_located(text: str, expected: str) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith(expected), problem


def test_aliases_copy_values() -> None:
    document = parse_one("a: &x {host: 192.168.1.60, port: 502}\nb: *x\n")
    assert document.value["b"] == {"host": "192.168.1.60", "port": 502}
    document.value["b"]["port"] = 1
    assert document.value["a"]["port"] == 502  # separate objects


@pytest.mark.parametrize(
    ("text", "path"),
    [
        pytest.param("a: &a [*a]\n", "a[0]", id="list-in-itself"),
        pytest.param("a: &a {b: *a}\n", "a.b", id="mapping-in-itself"),
        pytest.param("a: &a {b: [c, {d: *a}]}\n", "a.b[1].d", id="deep"),
    ],
)
def test_recursive_aliases_are_refused(text: str, path: str) -> None:
    """Named at the alias that holds its own value, located at the value it holds."""
    (problem,) = problems_of(text)
    assert problem.startswith(f"f.yaml:1:4: {path}: recursive alias: a value contains itself"), \
        problem


def billion_laughs(levels: int = 7) -> str:
    """Nine lists of nine, `levels` deep: 5.4 million values at 7, 27 times the limit."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


T = TypeVar("T")

# The most a parse refusing a bomb may allocate at once. Stopping at the limit (200,000
# values, each with its position) peaks at about 80 MB; expanding a bomb 25 times the limit
# before counting would take 1 GB or more. Memory, unlike time, does not depend on how loaded
# the machine is.
BOMB_PEAK_BYTES = 300_000_000


def peak_of(parse: Callable[[], T]) -> tuple[T, int]:
    """What `parse` returns, and the most bytes it held at once (as tracemalloc counts)."""
    tracemalloc.start()
    try:
        result = parse()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_alias_bomb_is_refused_at_the_expansion_limit_with_a_located_error() -> None:
    (documents, problems), peak = peak_of(
        lambda: parse_yaml("kind: Site\n---\n" + billion_laughs(), "bomb.yaml"))
    assert [d.value for d in documents] == [{"kind": "Site"}]  # the document before is kept
    (problem,) = problems
    assert problem.file == "bomb.yaml" and problem.line is not None and problem.line >= 3
    assert "document expands to more than 200000 values (alias expansion)" in problem.message
    assert peak < BOMB_PEAK_BYTES, f"refusing the bomb held {peak / 1e6:.0f} MB at once"


def test_a_large_document_without_aliases_is_not_blamed_on_aliases() -> None:
    text = "a:\n" + "".join(f"  - {i}\n" for i in range(210_000))
    (problem,) = problems_of(text)
    assert problem == ("f.yaml:200000:5: a[199998]: document has more than 200000 values; "
                       "split it into smaller documents"), problem


def test_merge_bomb_is_refused_too() -> None:
    # Mappings of a list of nine merged mappings, 7 deep: 5.4 million values.
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"]
    for level in range(1, 7):
        lines.append(f"m{level}: &m{level} {{k: [{', '.join([f'*m{level - 1}'] * 9)}]}}")
    (problem,), peak = peak_of(lambda: problems_of("\n".join(lines) + "\n"))
    assert "document expands to more than 200000 values (alias expansion)" in problem
    assert peak < BOMB_PEAK_BYTES, f"refusing the bomb held {peak / 1e6:.0f} MB at once"


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        pytest.param("2024-03-22", "2024-03-22", id="date"),
        pytest.param("2024-03-22T00:00:00Z", "2024-03-22T00:00:00Z", id="datetime-utc"),
        pytest.param("2001-12-14 21:59:43.10 -5", "2001-12-14 21:59:43.10 -5", id="spaced"),
        pytest.param("'2024-03-22'", "2024-03-22", id="quoted"),
        pytest.param("3.2.1", "3.2.1", id="version"),
        pytest.param("0x1F", 31, id="hex-int"),
        pytest.param("1_000", 1000, id="underscores"),
        pytest.param("1.5", 1.5, id="float"),
        pytest.param("~", None, id="null"),
        pytest.param("true", True, id="bool"),
        pytest.param("yes", True, id="yaml-1.1-bool"),
        pytest.param("'yes'", "yes", id="quoted-bool"),
        pytest.param("zap-3c61a4f0b2d8e917", "zap-3c61a4f0b2d8e917", id="serial"),
        pytest.param("http://192.168.1.40", "http://192.168.1.40", id="url"),
    ],
)
def test_scalars(scalar: str, expected: object) -> None:
    value = parse_one(f"v: {scalar}\n").value["v"]
    assert value == expected and type(value) is type(expected)


def test_a_syntax_error_keeps_the_documents_before_it() -> None:
    documents, problems = parse_yaml("a: 1\n---\nb: [1, 2\n---\nc: 3\n", "f.yaml")
    assert [d.value for d in documents] == [{"a": 1}]
    (problem,) = problems
    assert (problem.file, problem.line, problem.column) == ("f.yaml", 4, 1)
    assert problem.message.startswith("YAML syntax error: did not find expected ',' or ']'")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        pytest.param("a:\n\tb: 1\n", 2, 1, id="tab-indent"),
        pytest.param("a: 1\n b: 2\n", 2, 3, id="bad-indent"),
        pytest.param("a: 'open\n", 2, 1, id="unclosed-quote"),
        pytest.param("a: [1, 2\n", 2, 1, id="unclosed-flow"),
        pytest.param("- a\nb: c\n", 2, 1, id="list-then-mapping"),
        pytest.param("a: *missing\n", 1, 4, id="unknown-alias"),
        pytest.param("%YAML 2.0\n---\na: 1\n", 1, 1, id="unsupported-version"),
    ],
)
def test_syntax_errors_are_located(text: str, line: int, column: int) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith(f"f.yaml:{line}:{column}: YAML"), problem


def test_a_non_mapping_document_is_kept_for_the_validator_to_judge() -> None:
    assert parse_one("just text\n").value == "just text"
    assert parse_one("[1, 2]\n").value == [1, 2]


def chain_of_aliases(levels: int) -> str:
    lines = ["a0: &a0 x"]
    lines += [f"a{i}: &a{i}\n- *a{i - 1}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# The field path of the collection at level 101 (the root is level 1): 100 steps.
IN_LISTS = "[0]" * 100
IN_MAPPINGS = ".".join(["a"] * 100)


@pytest.mark.parametrize(
    ("text", "where", "path"),
    [
        pytest.param("[" * 101 + "]" * 101, "1:101", IN_LISTS, id="flow-101"),
        pytest.param("[" * 50_000 + "]" * 50_000, "1:101", IN_LISTS, id="flow-50000"),
        pytest.param("{a: " * 30_000 + "}" * 30_000, "1:401", IN_MAPPINGS,
                     id="flow-mapping-30000"),
        pytest.param("".join("  " * i + "a:\n" for i in range(3_000)), "101:201", IN_MAPPINGS,
                     id="block-3000"),
        pytest.param("- " * 40_000 + "x\n", "1:201", IN_LISTS, id="compact-sequence-40000"),
        # a1 is the 100th list inside a100's
        pytest.param(chain_of_aliases(150), "2:5", "a100" + "[0]" * 99, id="alias-chain-150"),
        # A merged mapping's keys are put in the mapping that merges it, as its values are.
        pytest.param("a: 1\nspec:\n  - {<<: [{k: 1}, {z: " + "[" * 2000 + "]" * 2000 + "}]}\n",
                     "3:118", "spec[0].z" + "[0]" * 95, id="merged-2000"),
    ],
)
def test_deep_nesting_is_refused_without_crashing(text: str, where: str, path: str) -> None:
    """Located, and named by the field path of the collection too deep, as a validation
    error names its field: whether measured before composing (a text with many brackets)
    or while converting."""
    documents, (problem,) = parse_yaml(text, "f.yaml")
    assert documents == []
    assert (problem.location(), problem.path, problem.message) == (
        f"f.yaml:{where}", path, "values nest more than 100 levels deep; flatten the document")


def test_nesting_of_100_levels_is_fine_and_earlier_documents_survive_a_deep_one() -> None:
    assert parse_one("[" * 100 + "]" * 100).value is not None
    documents, problems = parse_yaml("a: 1\n---\n" + "[" * 5_000 + "]" * 5_000 + "\n---\nb: 2\n",
                                     "f.yaml")
    assert [d.value for d in documents] == [{"a": 1}]
    assert [(p.location(), p.path, p.message) for p in problems] == [
        ("f.yaml:3:101", IN_LISTS, "values nest more than 100 levels deep; flatten the document")]
