"""The lock that lets one reconcile at a time plan and apply an owner's changes, and its
end with the owner. kopf runs an object's drift timer beside its create or update handler,
and a Device's changes are also applied by its stand-alone DERs' reconciles: two at once
would each plan from what was there before the other wrote (a Site created twice, a
gateway claimed twice), so the second waits and observes what the first wrote.

An object's finalizer takes the same lock: a reconcile mid-write when the object is
deleted lands its writes before the finalizer reads what to release, instead of after it
released them, re-creating them. A reconcile that gets the lock after the finalizer, or
starts while the object is being deleted, finds its owner going (`handlers`) and writes
nothing. The finalizer drops the owner's entry once it is done: the table holds the owners
reconciled since, not every object this process ever reconciled. A reconcile still
waiting on the dropped lock then finds its owner going, and one for an object created
again under the same name takes a new lock.

A Gateway's finalizer also takes the locks of the Devices under it (`handlers`), after its
own and in the order of their names: a Device reconcile writing to its gateway's Zap and to
Novacore under it lands its writes before the gateway is released, not after. Those are
the Devices whose spec names the gateway now, and those whose reconcile holding their lock
writes under it (`writing_under`): one that began before its Device was moved to another
gateway still writes under the old one. A reconcile that gets its lock once the gateway is
being deleted to be released writes nothing under it (`reconcile`), so none begins after
the finalizer looked; between two attempts of a release that could not be done, it writes
as usual (`release_waits`).

Locks belong to an event loop, so they are kept per loop."""

from __future__ import annotations

import asyncio
import weakref

Key = tuple[str, str, str]  # namespace, kind, name

_tables: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
# Owner -> the gateway its reconcile holding the owner's lock writes under.
_under: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, str]] = (
    weakref.WeakKeyDictionary()
)


def _table() -> dict[Key, asyncio.Lock]:
    return _tables.setdefault(asyncio.get_running_loop(), {})


def _writing() -> dict[Key, str]:
    return _under.setdefault(asyncio.get_running_loop(), {})


def owner_lock(namespace: str, kind: str, name: str) -> asyncio.Lock:
    """The lock of the owner `kind`/`name` of `namespace`, made at its first use."""
    return _table().setdefault((namespace, kind, name), asyncio.Lock())


def kept_lock(namespace: str, kind: str, name: str) -> asyncio.Lock | None:
    """The owner's lock if this event loop keeps one; None once it was dropped (or never
    made): no reconcile of the owner writes then (one still waiting on a dropped lock finds
    its owner going)."""
    return _table().get((namespace, kind, name))


def writing_under(namespace: str, kind: str, name: str, gateway: str) -> None:
    """Say that the reconcile holding the owner's lock writes under `gateway` until it lets
    the lock go (`done_writing`)."""
    _writing()[(namespace, kind, name)] = gateway


def done_writing(namespace: str, kind: str, name: str) -> None:
    """The reconcile holding the owner's lock lets it go: it writes under no gateway."""
    _writing().pop((namespace, kind, name), None)


def writers_under(namespace: str, kind: str, gateway: str) -> frozenset[str]:
    """The owners of `kind` whose reconcile holding their lock writes under `gateway`."""
    return frozenset(
        name for (space, of, name), under in _writing().items()
        if (space, of, under) == (namespace, kind, gateway)
    )


def drop(namespace: str, kind: str, name: str) -> None:
    """Forget the owner's lock: its object is deleted (its finalizer is done)."""
    _table().pop((namespace, kind, name), None)


def owners() -> frozenset[Key]:
    """The owners whose lock this event loop keeps."""
    return frozenset(_table())
