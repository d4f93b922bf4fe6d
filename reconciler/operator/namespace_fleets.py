"""The built fleet of each namespace (`objects.build`), kept between reconciles until the
namespace's index changes: building it validates every object of the namespace and checks
the rules over them all, which at a thousand Sites costs many times the rest of one
object's reconcile, and a drift check of every object would do it once per object.

The index's documents are the version: kopf keeps the document it holds of an object while
a new event indexes an equal one, and stores the new one otherwise (`kopf` `Store`), and
the index's documents are made anew for each event and never changed in place
(`objects.index_document`). So the namespace is unchanged while every document its index
holds is the very one the fleet was built from: one identity check per object, no
rendering nor hashing of their contents. The documents are held here, so none of them can
be freed and its id given to another."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.operator import objects


@dataclass(frozen=True)
class Built:
    """A namespace's objects in declaration order and the fleet built from them."""

    bodies: list[Mapping[str, Any]]
    fleet: objects.NamespaceFleet


@dataclass(frozen=True)
class _Entry:
    # The index's documents, kind by kind in the index's order: what `built` was made of.
    documents: tuple[Mapping[str, Any], ...]
    # (kind, name) -> its document, to compare a handler's own body with.
    by_key: dict[tuple[str, str], Mapping[str, Any]]
    built: Built


class NamespaceFleets:
    """Built fleets by namespace, each valid while its index holds the same documents."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        # How many builds were made and how many were reused, for the benchmark to say.
        self.builds = 0
        self.reused = 0

    def of(
        self,
        namespace: str,
        indexed: Sequence[Mapping[str, Any]],
        current: Mapping[str, Any],
        kind: str,
    ) -> Built:
        """The fleet of `namespace` whose index holds `indexed` (every kind's documents of
        it, in the index's order), for a handler of `current` (its own body, fresher than
        its document in the index). Built again when a document was added, replaced or
        removed since the last build; built with `current` in place of its document,
        and not kept, when the two differ (the index has not caught up with the body yet,
        or a drift check's live body holds an edit the index does not)."""
        name = str((current.get("metadata") or {}).get("name"))
        entry = self._entries.get(namespace)
        if entry is None or not _same(entry.documents, indexed):
            entry = self._build(namespace, indexed)
        else:
            self.reused += 1
        if entry.by_key.get((kind, name)) == objects.index_document(current, kind):
            return entry.built
        self.builds += 1
        return _build_with(indexed, current, kind, name)

    def forget_others(self, namespaces: Iterable[str]) -> None:
        """Drop the fleets of namespaces not in `namespaces` (none of their objects is
        indexed any more), so that their documents are not held for ever."""
        kept = set(namespaces)
        for namespace in [n for n in self._entries if n not in kept]:
            del self._entries[namespace]

    def _build(self, namespace: str, indexed: Sequence[Mapping[str, Any]]) -> _Entry:
        self.builds += 1
        documents = tuple(indexed)
        bodies = objects.in_declaration_order(documents)
        entry = _Entry(
            documents,
            {(str(d.get("kind")), str(d["metadata"]["name"])): d for d in documents},
            Built(bodies, objects.build(bodies)),
        )
        self._entries[namespace] = entry
        return entry


def _same(kept: tuple[Mapping[str, Any], ...], now: Sequence[Mapping[str, Any]]) -> bool:
    return len(kept) == len(now) and all(a is b for a, b in zip(kept, now, strict=True))


def _build_with(
    indexed: Sequence[Mapping[str, Any]], current: Mapping[str, Any], kind: str, name: str
) -> Built:
    """The namespace's fleet with the handler's own body in place of its document."""
    ordered = in_place(indexed, current, kind, name)
    return Built(ordered, objects.build(ordered))


def in_place(
    indexed: Sequence[Mapping[str, Any]], current: Mapping[str, Any], kind: str, name: str
) -> list[Mapping[str, Any]]:
    """The namespace's documents `indexed`, with `current` (object `kind`/`name`, fresher)
    in place of its own, in declaration order (`objects.in_declaration_order`)."""
    bodies: list[Mapping[str, Any]] = [current]
    bodies += [
        d for d in indexed if (d.get("kind"), d["metadata"]["name"]) != (kind, name)
    ]
    return objects.in_declaration_order(bodies)
