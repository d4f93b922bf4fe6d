"""Safe YAML parsing that remembers where every value came from.

PyYAML's composer gives a node tree with line and column marks. We build plain Python
values from it ourselves so that we can (a) reject duplicate keys, (b) refuse every tag
that would construct an object, (c) bound alias expansion, and (d) keep a map from field
path to source position for error messages. Only the safe constructor builds scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Diagnostic

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path = tuple[str | int, ...]

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_STR_TAG = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_CONSTRUCTORS: dict[str, Callable[[yaml.SafeLoader, ScalarNode], Any]] = {
    "tag:yaml.org,2002:str": yaml.SafeLoader.construct_yaml_str,
    "tag:yaml.org,2002:int": yaml.SafeLoader.construct_yaml_int,
    "tag:yaml.org,2002:float": yaml.SafeLoader.construct_yaml_float,
    "tag:yaml.org,2002:bool": yaml.SafeLoader.construct_yaml_bool,
    "tag:yaml.org,2002:null": yaml.SafeLoader.construct_yaml_null,
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAX_NODES = 200_000  # bound on alias expansion ("billion laughs")


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


# (line, column) pairs. Plain tuples of ints, not Position objects: a large fleet has a few
# hundred thousand of them, and the garbage collector stops tracking plain int tuples, so
# they cost no collector time (Position instances made the loader about three times slower).
LineColumn = tuple[int, int]


@dataclass
class ParsedDocument:
    """One YAML document: its value and the (line, column) of each field path."""

    file: str
    index: int
    value: Any
    start: Position
    positions: dict[Path, LineColumn] = field(default_factory=dict)
    key_positions: dict[Path, LineColumn] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> Position:
        """Position of `path`, or of its nearest ancestor that exists in the source."""
        probe = path
        while probe:
            if key and probe in self.key_positions:
                return Position(*self.key_positions[probe])
            if probe in self.positions:
                return Position(*self.positions[probe])
            probe = probe[:-1]
        return self.start


class _ConversionError(Exception):
    def __init__(self, message: str, node: Node) -> None:
        super().__init__(message)
        self.node = node


def _position(node: Node) -> LineColumn:
    mark = node.start_mark
    return mark.line + 1, mark.column + 1


class _Converter:
    def __init__(self, loader: yaml.SafeLoader, document: ParsedDocument) -> None:
        self.loader = loader
        self.document = document
        self.count = 0
        self.active: set[int] = set()

    def convert(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _ConversionError(
                f"document expands to more than {_MAX_NODES} values (alias expansion); "
                "split it or remove aliases", node)
        mark = node.start_mark
        self.document.positions[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self.active:
            raise _ConversionError("recursive alias: a value contains itself", node)
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if node.tag != _SEQ_TAG:
                raise _ConversionError(f"YAML tag {node.tag!r} is not allowed", node)
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        if node.tag != _MAP_TAG:
            raise _ConversionError(f"YAML tag {node.tag!r} is not allowed", node)
        explicit = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
        if len(explicit) != len(node.value):
            try:
                # Resolves `<<` merge keys safely: merged pairs come first, then the explicit
                # ones, which override them (YAML merge-key semantics).
                self.loader.flatten_mapping(node)
            except yaml.MarkedYAMLError as exc:
                raise _ConversionError(str(exc.problem), node) from None
        result: dict[str, Any] = {}
        seen_explicit: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _PLAIN_TAGS:
                raise _ConversionError("mapping keys must be plain scalars", key_node)
            key = str(self._scalar(key_node))
            child = (*path, key)
            if id(key_node) in explicit:
                if key in seen_explicit:
                    raise _ConversionError(
                        f"duplicate key {key!r}: each key may appear once in a mapping",
                        key_node)
                seen_explicit.add(key)
            if key in result:  # a merged value overridden: forget where the old one was
                self._forget(child)
            mark = key_node.start_mark
            self.document.key_positions[child] = (mark.line + 1, mark.column + 1)
            result[key] = self.convert(value_node, child)
        return result

    def _forget(self, prefix: Path) -> None:
        size = len(prefix)
        for table in (self.document.positions, self.document.key_positions):
            for stale in [p for p in table if p[:size] == prefix]:
                del table[stale]

    def _scalar(self, node: Node) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return str(node.value)  # keep dates as written; fields that take dates are strings
        if node.tag == _STR_TAG and isinstance(node, ScalarNode):
            return node.value  # the common case, without the constructor's indirections
        construct = _SCALAR_CONSTRUCTORS.get(node.tag)
        if construct is None or not isinstance(node, ScalarNode):
            raise _ConversionError(
                f"YAML tag {node.tag!r} is not allowed; only plain strings, numbers, booleans "
                "and null", node)
        # Not `loader.construct_object`: it caches every node it sees for the rest of the
        # stream, which kept each file's whole node tree alive (and the collector busy).
        return construct(self.loader, node)


def parse_yaml(text: str, file: str) -> tuple[list[ParsedDocument], list[Diagnostic]]:
    """Every document of a YAML stream, plus diagnostics for what could not be parsed.
    A syntax error stops the file at that point (YAML cannot resynchronise)."""
    documents: list[ParsedDocument] = []
    diagnostics: list[Diagnostic] = []
    loader = _Loader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or exc.context_mark
                diagnostics.append(Diagnostic(
                    f"YAML syntax error: {exc.problem or exc}"
                    + (f" ({exc.context})" if exc.context else ""),
                    file=file,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                ))
                break
            except yaml.YAMLError as exc:
                diagnostics.append(Diagnostic(f"YAML error: {exc}", file=file))
                break
            if node is None:
                continue
            document = ParsedDocument(file=file, index=index, value=None,
                                      start=Position(*_position(node)))
            index += 1
            try:
                document.value = _Converter(loader, document).convert(node, ())
            except _ConversionError as exc:
                line, column = _position(exc.node)
                diagnostics.append(Diagnostic(str(exc), file=file, line=line, column=column))
                continue
            except yaml.YAMLError as exc:
                line, column = _position(node)
                diagnostics.append(Diagnostic(f"invalid value: {exc}", file=file, line=line,
                                              column=column))
                continue
            if document.value is not None:
                documents.append(document)
    finally:
        loader.dispose()
    return documents, diagnostics
