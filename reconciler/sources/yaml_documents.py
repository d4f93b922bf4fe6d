"""Safe YAML parsing that remembers where every value came from.

PyYAML's composer gives a node tree with line and column marks. We build plain Python
values from it ourselves so that we can (a) reject duplicate keys, (b) refuse every tag
that would construct an object, (c) bound alias expansion and nesting depth, and (d) keep
a map from field path to source position for error messages. Only the safe constructor
builds scalars.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Diagnostic
from reconciler.printable import echo
from reconciler.sources import deep_nesting, merge_conflicts, utf8
from reconciler.sources.field_help import render_path

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
# What YAML 1.1 makes of a key that is not a string; keys are always text here.
_KEY_READS_AS = {
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
    _TIMESTAMP_TAG: "a date",
}
_MAP_TAG = "tag:yaml.org,2002:map"
BOM = "\ufeff"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAX_NODES = 200_000  # bound on alias expansion ("billion laughs")


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


# (line, column) pairs. Plain tuples of ints, not Position objects: a large fleet has a few
# hundred thousand of them, and the garbage collector stops tracking tuples of ints, so
# they cost no collector time (each Position instance is scanned by every full collection).
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
    """A value (or key) the converter refuses, with its node (for the line and column) and
    its field path (a key's own where the key is at fault), so that it is named as a
    validation error names the field (`spec.zap.port: ...`)."""

    def __init__(self, message: str, node: Node, path: Path) -> None:
        super().__init__(message)
        self.node = node
        self.path = path


# YAML 1.1 (PyYAML and libyaml alike) ends a line at U+0085, U+2028 and U+2029 as well;
# editors end one only at \n, \r\n and \r, and their line numbers are the ones to report.
_YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_YAML_ONLY_BREAKS = "\x85\u2028\u2029"


def _syntax_hint(problem: str, text: str, line: int | None) -> str:
    """What to do about the syntax errors hand-edited files have most, which PyYAML words
    in terms of its scanner: a line indented with a tab, and a key out of line with the
    keys beside it (or a value holding `: `). Empty for any other error."""
    lines = utf8.TEXT_LINE_BREAK.split(text) if line is not None else []
    if line is not None and line <= len(lines):
        current = lines[line - 1]
        if "\t" in current[: len(current) - len(current.lstrip())]:
            return "; this line is indented with a tab: YAML indents with spaces only"
    if problem.startswith("mapping values are not allowed"):
        return ("; a key must be indented as the keys beside it, and a value holding ': ' "
                "must be quoted")
    return ""


class _Lines:
    """Where a PyYAML mark (0-based line and column, lines counted at YAML's line breaks)
    is in the lines an editor shows. Nearly every file has no break that YAML alone counts:
    then the mark is the place, and nothing is indexed."""

    def __init__(self, text: str) -> None:
        self.same = not any(char in text for char in _YAML_ONLY_BREAKS)
        self.yaml_starts: list[int] = []
        self.editor_starts: list[int] = []
        if not self.same:
            self.yaml_starts = [0] + [m.end() for m in _YAML_LINE_BREAK.finditer(text)]
            self.editor_starts = [0] + [m.end() for m in utf8.TEXT_LINE_BREAK.finditer(text)]

    def at(self, line: int, column: int) -> LineColumn:
        """The 1-based editor line and column of 0-based YAML `line` and `column`."""
        if self.same:
            return line + 1, column + 1
        start = self.yaml_starts[min(line, len(self.yaml_starts) - 1)]
        return self.of_offset(start + column)

    def of_offset(self, offset: int) -> LineColumn:
        """The 1-based editor line and column of a character offset (only when not `same`)."""
        index = bisect_right(self.editor_starts, offset) - 1
        return index + 1, offset - self.editor_starts[index] + 1

    def mark(self, mark: Mark) -> LineColumn:
        return self.at(mark.line, mark.column)

    def relocate(self, document: ParsedDocument) -> None:
        """Field positions recorded from marks, moved to editor lines (in place)."""
        if self.same:
            return
        for table in (document.positions, document.key_positions):
            for path, (line, column) in table.items():
                table[path] = self.at(line - 1, column - 1)


class _Converter:
    def __init__(self, loader: yaml.SafeLoader, document: ParsedDocument) -> None:
        self.loader = loader
        self.document = document
        self.count = 0
        self.depth = 0
        self.active: set[int] = set()
        # Collections converted so far, to tell a document that is merely large from one
        # that aliases blow up (the message differs).
        self.expanded: set[int] = set()
        self.expanded_twice = False
        self.pairs_cache: dict[int, dict[str, tuple[Node, Node]]] = {}

    def convert(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            if self.expanded_twice:
                raise _ConversionError(
                    f"document expands to more than {_MAX_NODES} values (alias expansion); "
                    "split it or remove aliases", node, path)
            raise _ConversionError(
                f"document has more than {_MAX_NODES} values; split it into smaller documents",
                node, path)
        mark = node.start_mark
        # In YAML's lines until `_Lines.relocate` moves them to the lines of an editor.
        self.document.positions[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.active:
            raise _ConversionError("recursive alias: a value contains itself", node, path)
        if self.depth >= deep_nesting.MAX_DEPTH:
            raise _ConversionError(deep_nesting.too_deep_message(), node, path)
        self.active.add(id(node))
        if id(node) in self.expanded:  # an alias: the same collection once more
            self.expanded_twice = True
        self.expanded.add(id(node))
        self.depth += 1
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if node.tag != _SEQ_TAG:
                raise _ConversionError(f"YAML tag {echo(node.tag)} is not allowed", node, path)
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.depth -= 1
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, (key_node, value_node) in self._pairs(node, path).items():
            child = (*path, key)
            mark = key_node.start_mark
            self.document.key_positions[child] = (mark.line + 1, mark.column + 1)
            result[key] = self.convert(value_node, child)
        return result

    def _pairs(self, node: MappingNode, path: Path) -> dict[str, tuple[Node, Node]]:
        """Key -> (key node, value node) of a mapping, with `<<` merge keys resolved: explicit
        keys override merged ones, and of several merged mappings the first wins (YAML
        merge-key semantics). Resolved here rather than with PyYAML's `flatten_mapping`,
        which rewrites the nodes in place and so makes a mapping that is both merged and
        aliased look as if it repeated keys. `path` is where the mapping's keys are put
        (a merged mapping's are put in the mapping that merges it), for a key's errors."""
        cached = self.pairs_cache.get(id(node))
        if cached is not None:
            return cached
        if node.tag != _MAP_TAG:
            raise _ConversionError(f"YAML tag {echo(node.tag)} is not allowed", node, path)
        merged: dict[str, tuple[Node, Node]] = {}
        explicit: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.update(self._merged(value_node, path))
                continue
            if isinstance(key_node, ScalarNode) and key_node.tag in _KEY_READS_AS:
                # `on:` would become the key 'True', `0x10:` the key '16': never what was
                # written, and a label or field name changed silently.
                raise _ConversionError(
                    f"the key {echo(key_node.value)} reads as {_KEY_READS_AS[key_node.tag]} in "
                    "YAML; put it in quotes", key_node, (*path, key_node.value))
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                raise _ConversionError("mapping keys must be plain scalars", key_node, path)
            key = key_node.value
            if key in explicit:
                raise _ConversionError(
                    f"duplicate key {echo(key)}: each key may appear once in a mapping", key_node,
                    (*path, key))
            explicit[key] = (key_node, value_node)
        pairs = {**merged, **explicit}
        self.pairs_cache[id(node)] = pairs
        return pairs

    def _merged(self, value: Node, path: Path) -> dict[str, tuple[Node, Node]]:
        """The pairs a `<<` key brings in: one mapping, or a list of mappings."""
        if isinstance(value, SequenceNode) and value.tag != _SEQ_TAG:
            raise _ConversionError(f"YAML tag {echo(value.tag)} is not allowed", value, path)
        sources = value.value if isinstance(value, SequenceNode) else [value]
        merged: dict[str, tuple[Node, Node]] = {}
        for source in reversed(sources):  # the first mapping listed wins
            if not isinstance(source, MappingNode):
                raise _ConversionError(
                    "`<<` (merge key) takes a mapping or a list of mappings", source, path)
            if id(source) in self.active:
                raise _ConversionError("recursive alias: a mapping merges itself", source, path)
            self.active.add(id(source))
            try:
                merged.update(self._pairs(source, path))
            finally:
                self.active.discard(id(source))
        return merged

    def _scalar(self, node: Node, path: Path) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return str(node.value)  # keep dates as written; fields that take dates are strings
        if node.tag == _STR_TAG and isinstance(node, ScalarNode):
            return node.value  # the common case, without the constructor's indirections
        construct = _SCALAR_CONSTRUCTORS.get(node.tag)
        if construct is None or not isinstance(node, ScalarNode):
            raise _ConversionError(
                f"YAML tag {echo(node.tag)} is not allowed; only plain strings, numbers, booleans "
                "and null", node, path)
        # Not `loader.construct_object`: it caches every node it sees for the rest of the
        # stream, which kept each file's whole node tree alive (and the collector busy).
        try:
            return construct(self.loader, node)
        except ValueError:  # int(): the interpreter's limit on the digits of a number
            raise _ConversionError(
                "a number of more than 4,300 digits, too long to read; write a number of a "
                "few digits, or put it in quotes if it is text", node, path) from None


def parse_yaml(text: str, file: str) -> tuple[list[ParsedDocument], list[Diagnostic]]:
    """Every document of a YAML stream, plus diagnostics for what could not be parsed.
    A syntax error stops the file at that point (YAML cannot resynchronise)."""
    documents: list[ParsedDocument] = []
    diagnostics: list[Diagnostic] = []
    # A byte order mark is no character of line 1: PyYAML's marks skip it, and offsets into
    # the text would count it, putting columns of line 1 one too far right.
    text = text.removeprefix(BOM)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: not text any YAML parser reads
        line, column = utf8.position(text, exc.start)
        return [], [Diagnostic(f"character U+{ord(text[exc.start]):04X} is not valid Unicode "
                               "text", file=file, line=line, column=column)]
    conflicts = merge_conflicts.find(text, file)
    if conflicts:  # YAML would stop at some line after the first, naming no conflict
        return [], conflicts
    too_deep = (deep_nesting.first_too_deep(text, _Loader)
                if deep_nesting.might_nest_too_deep(text) else None)
    lines = _Lines(text)
    loader = _Loader(text)
    index = 0
    number = 0  # documents composed so far, empty ones included (as events count them)
    try:
        while True:
            try:
                # Before asking for the document: libyaml may fail on its own depth limit
                # while looking ahead into it.
                if too_deep is not None and number == too_deep.document:
                    line, column = lines.at(too_deep.line, too_deep.column)
                    diagnostics.append(Diagnostic(deep_nesting.too_deep_message(), file=file,
                                                  line=line, column=column,
                                                  path=render_path(too_deep.path)))
                    break
                if not loader.check_node():
                    break
                number += 1
                node = loader.get_node()
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or exc.context_mark
                where = lines.mark(mark) if mark else (None, None)
                diagnostics.append(Diagnostic(
                    f"YAML syntax error: {exc.problem or exc}"
                    + (f" ({exc.context})" if exc.context else "")
                    + _syntax_hint(exc.problem or "", text, where[0]),
                    file=file,
                    line=where[0],
                    column=where[1],
                ))
                break
            except yaml.reader.ReaderError as exc:
                # Its position is in bytes for the C reader and characters for the Python one;
                # the first occurrence of the refused character is where reading stopped.
                found = text.find(chr(exc.character)) if isinstance(exc.character, int) else -1
                line, column = utf8.position(text, max(found, 0))
                what = (f"character U+{exc.character:04X}" if isinstance(exc.character, int)
                        else "a character")
                diagnostics.append(Diagnostic(f"{what} is not allowed in YAML ({exc.reason})",
                                              file=file, line=line, column=column))
                break
            except yaml.YAMLError as exc:  # not located by PyYAML: blame the start of the file
                diagnostics.append(Diagnostic(f"YAML error: {exc}", file=file, line=1, column=1))
                break
            if node is None:
                continue
            document = ParsedDocument(file=file, index=index, value=None,
                                      start=Position(*lines.mark(node.start_mark)))
            index += 1
            try:
                document.value = _Converter(loader, document).convert(node, ())
                lines.relocate(document)
            except _ConversionError as exc:
                line, column = lines.mark(exc.node.start_mark)
                diagnostics.append(Diagnostic(str(exc), file=file, line=line, column=column,
                                              path=render_path(exc.path)))
                continue
            except yaml.YAMLError as exc:
                line, column = lines.mark(node.start_mark)
                diagnostics.append(Diagnostic(f"invalid value: {exc}", file=file, line=line,
                                              column=column))
                continue
            if document.value is not None:
                documents.append(document)
    finally:
        loader.dispose()
    return documents, diagnostics
