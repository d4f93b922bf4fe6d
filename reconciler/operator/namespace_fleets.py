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
be freed and its id given to another.

When the index changed, the fleet is built again, but each document the index kept is
not read again: what `objects.build` takes from a document (its model validated, what its
status records: `objects.read`) is kept with the document, by the same identity, so a
rebuild after one object changed reads that one object, and checks the rules over all
unless what they are given is as it was, or only the holders changed, in which case it
runs only the rules that read them (`objects.build_read`); even over all, a Device's own
rules run only if one of the objects they read changed (`model.fleet.DeviceChecked`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.operator import objects


@dataclass(frozen=True)
class Built:
    """A namespace's objects in declaration order and the fleet built from them."""

    bodies: list[Mapping[str, Any]]
    fleet: objects.NamespaceFleet


# A document of the index and how it reads (`objects.read`).
_Held = tuple[Mapping[str, Any], objects.Reading]


@dataclass(frozen=True)
class _Entry:
    # The index's documents, kind by kind in the index's order: what `built` was made of.
    documents: tuple[Mapping[str, Any], ...]
    # (kind, name) -> its document, to compare a handler's own body with.
    by_key: dict[tuple[str, str], Mapping[str, Any]]
    built: Built
    # id of a document -> the document (held: its id is not given to another while it is
    # here) and how `objects.read` read it.
    readings: dict[int, _Held]


class NamespaceFleets:
    """Built fleets by namespace, each valid while its index holds the same documents."""

    def __init__(self, after_first_build: Callable[[], None] | None = None) -> None:
        """`after_first_build`: called once a namespace's fleet was built with none kept
        before it (the operator's `heap.settle`: what a first build made lives long)."""
        self._entries: dict[str, _Entry] = {}
        self._after_first_build = after_first_build
        # How many builds were made and how many were reused, how many documents were
        # read for them, and how many builds ran every rule over the objects and how many
        # only those that read the holders (`objects.build_read`), for the benchmark to
        # say.
        self.builds = 0
        self.reused = 0
        self.documents_read = 0
        self.full_checks = 0
        self.holder_checks = 0

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
        ordered = in_place(indexed, current, kind, name)
        return Built(ordered, self._counted(objects.build_read(
            (self._held(d, entry.readings)[1] for d in ordered), entry.built.fleet
        ), entry.built.fleet))

    def forget_others(self, namespaces: Iterable[str]) -> None:
        """Drop the fleets of namespaces not in `namespaces` (none of their objects is
        indexed any more), so that their documents are not held for ever."""
        kept = set(namespaces)
        for namespace in [n for n in self._entries if n not in kept]:
            del self._entries[namespace]

    def _build(self, namespace: str, indexed: Sequence[Mapping[str, Any]]) -> _Entry:
        self.builds += 1
        documents = tuple(indexed)
        before = self._entries.get(namespace)
        kept = before.readings if before is not None else {}
        readings = {id(d): self._held(d, kept) for d in documents}
        # In declaration order (`objects.in_declaration_order`: a stable sort of the
        # documents by the key each reading keeps, not worked out again).
        ordered = sorted(readings.values(), key=_declaration_key)
        previous = before.built.fleet if before is not None else None
        entry = _Entry(
            documents,
            # The index's order, as a dict keeps it: of two documents of one name (an
            # object deleted and created again), the later.
            {(reading.kind, reading.name): d for d, reading in readings.values()},
            Built(
                [d for d, _ in ordered],
                self._counted(
                    objects.build_read((reading for _, reading in ordered), previous),
                    previous,
                ),
            ),
            readings,
        )
        self._entries[namespace] = entry
        if before is None and self._after_first_build is not None:
            self._after_first_build()
        return entry

    def _counted(
        self, built: objects.NamespaceFleet, previous: objects.NamespaceFleet | None
    ) -> objects.NamespaceFleet:
        """`built`, counted as a full check of the rules, or of those that read the
        holders alone, or neither (what the rules found then kept whole)."""
        now, then = built.checked, previous.checked if previous is not None else None
        if now is None or then is None or now.free is not then.free:
            self.full_checks += 1
        elif now is not then:
            self.holder_checks += 1
        return built

    def _held(self, body: Mapping[str, Any], kept: Mapping[int, _Held]) -> _Held:
        """`body` and how it reads (`objects.read`): as `kept` has it when it is the very
        document kept there (the id alone could be another's, once that one was freed:
        the document is compared as well)."""
        held = kept.get(id(body))
        if held is not None and held[0] is body:
            return held
        self.documents_read += 1
        return body, objects.read(body)


def _same(kept: tuple[Mapping[str, Any], ...], now: Sequence[Mapping[str, Any]]) -> bool:
    return len(kept) == len(now) and all(a is b for a, b in zip(kept, now, strict=True))


def _declaration_key(held: _Held) -> tuple[str, str]:
    return held[1].order


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
