"""Where a YAML text first nests deeper than the loader reads, found without recursion.

libyaml's composer recurses once per level of nesting without a check (about 25,000 levels
crash the interpreter), so a text that might nest that deep is measured from parser
events, which never recurse, before it is composed. What is found is located as the
converter would locate it: the document, the line and column, and the field path
(`spec.ders[0]...`), as a validation error names its field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

Path = tuple[str | int, ...]

MAX_DEPTH = 100  # bound on nesting; site documents nest about 6 levels deep
# A document with fewer structural characters than this cannot nest deep enough to exhaust
# the C stack; larger ones are measured first.
_SAFE_STRUCTURE = 1_000
_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n]|$)", re.MULTILINE)
_STRUCTURE = "[{-:?"


@dataclass(frozen=True)
class TooDeep:
    """The first collection nested deeper than `MAX_DEPTH`: in which document (counted
    from 0, empty ones included), where (0-based YAML line and column) and its field
    path."""

    document: int
    line: int
    column: int
    path: Path


def too_deep_message() -> str:
    return f"values nest more than {MAX_DEPTH} levels deep; flatten the document"


def might_nest_too_deep(text: str) -> bool:
    """Cheap and sound: every level of nesting needs a character of `_STRUCTURE` of its own
    in its document, and documents are separated by markers at the start of a line."""
    if sum(text.count(c) for c in _STRUCTURE) <= _SAFE_STRUCTURE:
        return False
    return any(sum(part.count(c) for c in _STRUCTURE) > _SAFE_STRUCTURE
               for part in _DOCUMENT_MARKER.split(text))


def first_too_deep(text: str, loader: type[yaml.SafeLoader]) -> TooDeep | None:
    """The first collection nested deeper than `MAX_DEPTH`, read with `loader` (and, if
    that stops on an error, with Python's parser). None when there is none before the end
    or the first syntax error (which composing reports)."""
    try:
        return _first_too_deep_by(loader, text)
    except yaml.YAMLError:
        if loader is yaml.SafeLoader:
            return None
    # libyaml 0.2.6 and newer stop at 1,000 flow levels, and may do so while looking ahead,
    # before yielding the event at level 101: Python's parser, slower, has no such limit.
    # It is asked only after libyaml stopped on an error, which files that parse never do.
    try:
        return _first_too_deep_by(yaml.SafeLoader, text)
    except yaml.YAMLError:
        return None


@dataclass
class _Collection:
    """An open mapping or sequence, its field path, and where the next value inside it
    goes. `merged`: the value of a `<<` key, whose mappings' keys are put in the mapping
    that merges them, as the converter puts them."""

    mapping: bool
    merged: bool
    path: Path
    index: int = 0
    key: str | None = None
    key_merges: bool = False
    awaiting_key: bool = True


def _part(parent: _Collection | None) -> tuple[Path, bool]:
    """The field path of a value beginning in `parent` and whether it is the value of a
    `<<` key; `parent` moves on past it. A collection that is a key, and the mappings a
    `<<` merges, add nothing to the path."""
    if parent is None:
        return (), False
    if not parent.mapping:
        parent.index += 1
        return (parent.path if parent.merged else (*parent.path, parent.index - 1)), False
    if parent.awaiting_key:
        parent.awaiting_key, parent.key, parent.key_merges = False, None, False
        return parent.path, False
    parent.awaiting_key = True
    if parent.key_merges:
        return parent.path, True
    return (parent.path if parent.key is None else (*parent.path, parent.key)), False


def _first_too_deep_by(loader: type[yaml.SafeLoader], text: str) -> TooDeep | None:
    """`first_too_deep` with one parser; its errors are raised."""
    number = -1
    open_: list[_Collection] = []
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.DocumentStartEvent):
            number += 1
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
            parent = open_[-1] if open_ else None
            if (parent is not None and parent.mapping and parent.awaiting_key
                    and isinstance(event, yaml.ScalarEvent)):
                parent.awaiting_key, parent.key = False, event.value
                # Only a plain `<<` is a merge key; a quoted one is the text.
                parent.key_merges = (event.value == "<<" and event.tag is None
                                     and event.implicit[0])
            else:
                _part(parent)
        elif isinstance(event, yaml.CollectionStartEvent):
            parent = open_[-1] if open_ else None
            path, merged = _part(parent)
            open_.append(_Collection(isinstance(event, yaml.MappingStartEvent), merged, path))
            if len(open_) > MAX_DEPTH:
                mark = event.start_mark
                return TooDeep(number, mark.line if mark else 0, mark.column if mark else 0,
                               path)
        elif isinstance(event, yaml.CollectionEndEvent):
            open_.pop()
    return None
