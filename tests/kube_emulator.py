"""kmock's KubernetesEmulator as the operator's tests need it: objects created with
`generateName` (kopf's Events) get a name, as a real API server gives them, and every
resource kopf and the operator touch is registered (our four kinds with their status,
namespaces, events, Secrets, CRDs, and kopf's peering objects). Core paths that name the
namespaces themselves (`/api/v1/namespaces[/NAME]`) are parsed as the Namespace resource:
kmock 0.8 reads them as a namespace prefix with nothing after it, and fails with a 500,
which an operator serving some namespaces meets when it lists them. A PUT of a named object
replaces it, as the operator replaces a config Secret (kmock 0.8 serves no PUT).

Every write gives the object a new `resourceVersion`, as a real API server does (kmock 0.8
keeps whatever the object was created with). kopf waits after each of its patches for the
watch event of the version the patch returned before it runs handlers again: with one
version forever, any older event in the stream passes for that one, and handlers run again
on a body without their own last status (a Warning said twice, a handler run twice). A
JSON patch whose `test` of the version fails is refused with 422, as kopf expects of a
conflict, and a merge patch naming a `resourceVersion` other than the object's is refused
with 409 Conflict, as a real API server takes it for a precondition; so is a delete whose
`preconditions` (uid, resourceVersion) are not the object's. A list says the
version of the last write, and a watch from a version starts with the objects deleted and
written since, not with every object again.

A watch asking for `timeoutSeconds` is ended then, cleanly, as by an API server (kmock 0.8
ignores it): the client's own timeout, longer (kopf's `client_timeout`), is then not what
ends it. A watch its client gave up on is one the server goes on serving until it finds
the connection closed, and an event written meanwhile is read by nobody.

A test can expire the watches of a resource (`expire_watches`: an ERROR event of status 410
Gone, as an API server sends when the version a watch goes on from is too old), end them
with another ERROR event (`end_watches`), or answer the next watch requests with an HTTP
error (`fail(..., watch=True)`), hold a write until it lets it go (`hold`), keep an object's
changes from every watch from a point on, as a watch that lags behind the writes
(`keep_events`, until `show_events`), counts the lists of each resource (`listed`), and
tells whether a watch started after the last list is open (`watching_since_listed`). A
watch counted as ended is one whose client still reads it, and that tells the error even if
its timeout comes first: a test waiting until a watch was ended knows that its client was
told."""

from __future__ import annotations

import asyncio
import collections
import datetime
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import parsing

from reconciler.model.base import API_VERSION
from reconciler.model.schema import CRD_NAMES

VERBS = {"list", "watch", "get", "patch", "create", "delete", "update"}


@attrs.frozen
class PatchTestFailed(kmock.KubernetesError):
    """A JSON patch whose `test` operation failed (kopf tests `resourceVersion`)."""

    status: int = 422
    reason: str | None = "Invalid"
    message: str | None = "the JSON patch's test failed: the object was changed meanwhile"


@attrs.frozen
class InjectedError(kmock.KubernetesError):
    """An error a test has the API server answer (`Emulator.fail`), as a real one answers
    under load or a conflict."""

    status: int = 500
    reason: str | None = "InternalError"
    message: str | None = "injected by the test"


@attrs.define
class Fault:
    """Answer the next `count` requests of `method` whose path ends with `path_suffix` with
    `status`, before they change anything."""

    method: str
    path_suffix: str
    status: int
    count: int = 1
    # True: only watch requests; False: only others (a list is a GET of the same path).
    watch: bool | None = None
    # Only requests whose body it accepts (None: any).
    body: Callable[[Any], bool] | None = None
    # Seconds each such request waits for its answer (a proxy that answers 504 only once
    # its own timeout passed).
    delay: float = 0.0

    def matches(self, request: Any) -> bool:
        watching = request.action == kmock.action.WATCH
        return (self.count > 0 and str(request.method.value).upper() == self.method
                and request.url.path.endswith(self.path_suffix)
                and self.watch in (None, watching)
                and (self.body is None or self.body(request.data)))


@attrs.frozen
class VersionConflict(kmock.KubernetesError):
    """A merge patch whose `metadata.resourceVersion` is not the object's (a precondition)."""

    status: int = 409
    reason: str | None = "Conflict"
    message: str | None = (
        "the object has been modified; please apply your changes to the latest version"
    )


@attrs.frozen
class PreconditionFailed(kmock.KubernetesError):
    """A delete whose `preconditions` (uid, resourceVersion) are not the object's."""

    status: int = 409
    reason: str | None = "Conflict"
    message: str | None = "Precondition failed"


@attrs.define
class Hold:
    """Hold the next request of `method` whose path ends with `path_suffix` and whose body
    `body` accepts, before it changes anything, until `release` is set; `arrived` is set as
    it is held, `answered` once it was served (or refused)."""

    method: str
    path_suffix: str
    body: Callable[[Any], bool]
    release: asyncio.Event = attrs.field(factory=asyncio.Event)
    arrived: asyncio.Event = attrs.field(factory=asyncio.Event)
    answered: asyncio.Event = attrs.field(factory=asyncio.Event)
    count: int = 1

    def matches(self, request: Any) -> bool:
        return (self.count > 0 and str(request.method.value).upper() == self.method
                and request.url.path.endswith(self.path_suffix) and self.body(request.data))


@attrs.define(eq=False)
class Kept:
    """The watch events of object `name` of resource `plural`, from the first whose object
    `since` accepts on: kept from every watch (and from a watch's first objects), as from
    a watch that lags behind the writes, until `Emulator.show_events`. `kept` counts them."""

    plural: str
    name: str
    since: Callable[[dict[str, Any]], bool]
    started: bool = False
    kept: int = 0

    def keeps(self, plural: str, obj: dict[str, Any]) -> bool:
        """Whether the event of `obj` (or the object listed) is kept from the watches."""
        if plural != self.plural or (obj.get("metadata") or {}).get("name") != self.name:
            return False
        self.started = self.started or self.since(obj)
        if self.started:
            self.kept += 1
        return self.started


@attrs.define(eq=False)
class _Watch:
    """A watch being served: the connection it answers, and whether a test asked to end it
    with an error (`Emulator.end_watches`), which it then tells, its timeout or not."""

    plural: str
    connection: Any  # the aiohttp request
    # The lists of its resource served before it started (`Emulator.listed`).
    lists: int = 0
    ending: bool = False

    @property
    def read(self) -> bool:
        """Whether its connection is still open: one its client closed is served until the
        server's side finds out, a moment later."""
        transport = getattr(self.connection, "transport", None)
        return transport is not None and not transport.is_closing()


def _timeout(request: Any) -> float | None:
    """The seconds a watch asks to be ended after (`timeoutSeconds`), if it asks."""
    asked = str(request.params.get("timeoutSeconds", ""))
    return float(asked) if asked.isdigit() else None


# What an API server sends in a watch stream whose version is too old (etcd compacted it).
GONE = {
    "type": "ERROR",
    "object": {
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "code": 410, "reason": "Expired",
        "message": "too old resource version: 1000 (2000)",
    },
}


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """KubernetesEmulator that names objects created with `generateName`, moves
    `resourceVersion` at every write, and starts a watch from the version it is given."""

    # Writes are applied one at a time, in the order of their versions, so that a watch
    # started from a version has seen every write up to it.
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _version: int = attrs.field(default=999, init=False)

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    faults: list[Fault] = attrs.field(factory=list, init=False)
    holds: list[Hold] = attrs.field(factory=list, init=False)
    kept: list[Kept] = attrs.field(factory=list, init=False)
    # Lists served, by plural (a client's list, as kopf's at start and after a 410).
    listed: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    # The watches being served (`end_watches` ends those whose client still reads them).
    _watches: set[_Watch] = attrs.field(factory=set, init=False)
    # Every request taken, in the order taken (kmock's own record is not kept: `_forget`).
    taken: list[Any] = attrs.field(factory=list, init=False)

    def fail(self, method: str, path_suffix: str, status: int, count: int = 1, *,
             watch: bool | None = None, body: Callable[[Any], bool] | None = None,
             delay: float = 0.0) -> Fault:
        """Answer the next `count` such requests (`watch`: only watches, or only others;
        `body`: only those whose body it accepts) with `status`, each after `delay`
        seconds; they change nothing."""
        fault = Fault(method.upper(), path_suffix, status, count, watch, body, delay)
        self.faults.append(fault)
        return fault

    def hold(self, method: str, path_suffix: str, body: Callable[[Any], bool]) -> Hold:
        """Hold the next such request whose body `body` accepts until the hold's `release`
        is set (a write that lands late, after others)."""
        held = Hold(method.upper(), path_suffix, body)
        self.holds.append(held)
        return held

    def keep_events(
        self, plural: str, name: str, since: Callable[[dict[str, Any]], bool]
    ) -> Kept:
        """Keep the events of that object from every watch, from the first whose object
        `since` accepts on (a status the operator wrote), until `show_events`."""
        kept = Kept(plural, name, since)
        self.kept.append(kept)
        return kept

    async def show_events(self, kept: Kept) -> None:
        """Let the watches see the object again: its state now is written anew (a new
        resourceVersion) and told as MODIFIED, so that a watch open now and one started
        later from an older version both bring it."""
        self.kept.remove(kept)
        async with self._write_lock, self._lock:
            for (resource, _namespace, name), obj in self._objects.items():
                if (str(resource.plural) == kept.plural and name == kept.name
                        and not obj.deleted):
                    obj.patch({"metadata": {"resourceVersion": self._next_version()}})
                    await self._buses[resource].put({"type": "MODIFIED", "object": obj.raw})

    def _kept(self, plural: str, obj: dict[str, Any]) -> bool:
        return any(kept.keeps(plural, obj) for kept in self.kept)

    async def expire_watches(self, plural: str) -> int:
        """End every open watch of the resource `plural` with 410 Gone; how many there were
        (a watch not open now is not told)."""
        return await self.end_watches(plural, GONE)

    async def end_watches(self, plural: str, error: dict[str, Any]) -> int:
        """End every open watch of the resource `plural` with the ERROR event `error`; how
        many there were whose client still reads them (a watch not open now is not told).

        Counted from the watches served, not from the bus's consumers: the server ends
        kopf's watches at their `timeoutSeconds`, before kopf's client gives up on them, so
        a watch counted is one kopf still reads. (When kopf's client timeout ended each,
        an error put just then went to a watch kopf no longer read, or was counted for one
        the server had not yet found closed while kopf's next one was not open yet: the
        test then waited in vain for the kind to be listed again.) Each watch counted is
        marked before the error is put, so that its timeout, should it come meanwhile,
        does not end it before it told the error."""
        ended = 0
        for watch in self._watches:
            if watch.plural == plural and watch.read:
                watch.ending = True
                ended += 1
        for resource, bus in list(self._buses.items()):
            if resource.plural == plural:
                await bus.put(error)
        return ended

    def watching_since_listed(self, plural: str) -> bool:
        """Whether a watch of the resource `plural` that started after its last list is
        open (its client still reads it) and not being ended (`end_watches`): a client that
        lists, then watches from the list (kopf), had taken in that list when it asked for
        the watch."""
        return any(watch.plural == plural and watch.read and not watch.ending
                   and watch.lists == self.listed[plural] for watch in self._watches)

    async def _handle(self, request: Any) -> Any:
        self.taken.append(request)
        try:
            held = next((hold for hold in self.holds if hold.matches(request)), None)
            if held is None:
                return await self._answer(request)
            held.count -= 1
            held.arrived.set()
            await held.release.wait()
            try:
                return await self._answer(request)
            finally:
                held.answered.set()
        finally:
            self._forget(request)

    def _forget(self, request: Any) -> None:
        """Drop an answered request from kmock's record of every request served. kmock
        finds each request's reaction by filtering that whole record, once per reaction,
        so an operator test's thousands of requests cost time quadratic in their number:
        over half of such a test's CPU. Past requests are read from `taken` instead (the
        reactions a test adds see the request they answer, which is kept until then)."""
        served = getattr(self, "_requests", None)
        if isinstance(served, list):
            served[:] = [kept for kept in served if kept is not request]

    async def _answer(self, request: Any) -> Any:
        for fault in self.faults:
            if fault.matches(request):
                fault.count -= 1
                await asyncio.sleep(fault.delay)
                raise InjectedError(status=fault.status, reason=f"HTTP{fault.status}")
        writes = (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE)
        if request.action not in writes and request.method != kmock.method.PUT:
            return await super()._handle(request)
        async with self._write_lock:
            return await self._write(request)

    async def _write(self, request: Any) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
            meta["resourceVersion"] = self._next_version()
            # As an API server does: a delete's uid precondition then means something.
            meta.setdefault("uid", str(uuid.uuid4()))
        if request.method == kmock.method.PUT and request.resource and request.name:
            return await self._replace(request)
        if request.action == kmock.action.UPDATE and request.resource and request.name:
            self._check_precondition(request)
            self._version_patch(request.data)
        if request.action == kmock.action.DELETE and request.resource and request.name:
            self._check_delete_preconditions(request)
            await self._mark_deleted(request)
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchException:
            raise PatchTestFailed() from None

    async def _serve_list(self, request: Any) -> Any:
        """The list, with the version of the last write (kmock's is "...")."""
        listed = await super()._serve_list(request)
        self.listed[str(request.resource.plural)] += 1
        listed["metadata"]["resourceVersion"] = str(self._version)
        return listed

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        """A watch starts with an ADDED event of each object, then streams what is written
        next. kmock's watch, from which this is taken, starts listening only once it has
        sent the objects it starts with: whatever was written while it sent them (a patch
        of the test, the operator's status) was never told, and kopf went on with the
        state before it. Here the stream is marked before the objects are listed, under the
        lock every write publishes under, so nothing falls between the two.

        A watch from a version (kopf's, after its list, and again at every reconnect) starts
        with only the objects written since, as from an API server (stale ADDED events
        otherwise pass for the object's state after kopf's own patches, and its next patch
        conflicts), and with those deleted since (kmock keeps no history of its events: an
        object deleted between two watches, never told, would stay in kopf's indexes for
        good), in the order of their versions.

        A watch asking for `timeoutSeconds` ends then, with no event, unless a test asked to
        end it with an error (`end_watches`): it tells that error first."""
        yield b""  # the headers, at once, even if nothing happens
        since = str(request.params.get("resourceVersion", ""))
        bus = self._buses[request.resource]
        loop = asyncio.get_running_loop()
        timeout = _timeout(request)
        deadline = None if timeout is None else loop.time() + timeout
        plural = str(request.resource.plural)
        watch = _Watch(plural, request._raw_request, lists=self.listed[plural])
        async with self._lock:
            mark = await bus.mark()
            first: list[tuple[int, dict[str, Any]]] = []
            for (resource, namespace, name), obj in self._objects.items():
                if not self._watched(request, resource, namespace, name):
                    continue
                raw = obj.last.raw if obj.deleted else obj.raw
                version = str(raw.get("metadata", {}).get("resourceVersion", ""))
                number = int(version) if version.isdigit() else 0
                if since.isdigit() and number <= int(since):
                    continue
                if self._kept(str(resource.plural), raw):
                    continue
                if obj.deleted and since.isdigit():
                    first.append((number, {"type": "DELETED", "object": raw}))
                elif not obj.deleted:
                    first.append((number, {"type": "ADDED", "object": raw}))
        events = bus.stream(since=mark)
        # The next event, awaited across the checks of the timeout: a wait for it that is
        # cancelled would end the bus's stream.
        pending: asyncio.Future[Any] | None = None
        self._watches.add(watch)
        try:
            for _, event in sorted(first, key=lambda e: e[0]):
                yield event
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(events))
                left = None if deadline is None or watch.ending else deadline - loop.time()
                await asyncio.wait({pending}, timeout=None if left is None else max(0.0, left))
                if not pending.done():
                    if watch.ending:
                        continue  # the error is on its way: told before the watch ends
                    return  # its timeoutSeconds passed: ended cleanly, as by an API server
                event, pending = pending.result(), None
                meta = event.get("object", {}).get("metadata", {})
                if event.get("type") == "ERROR":  # about the watch, not an object
                    yield event
                    return  # an API server ends the stream with its error
                if self._watched(request, request.resource, meta.get("namespace"),
                                 meta.get("name")) and not self._kept(
                                     str(request.resource.plural), event.get("object", {})):
                    yield event
        finally:
            # No longer counted by `end_watches` from here, before anything is awaited.
            self._watches.discard(watch)
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            await events.aclose()
            await bus.unmark(mark)

    @staticmethod
    def _watched(request: Any, resource: Any, namespace: str | None, name: str | None) -> bool:
        """Whether a watch of `request` covers this object (as kmock's own check)."""
        return bool(resource == request.resource
                    and request.namespace in (None, namespace)
                    and request.name in (None, name))

    def _check_precondition(self, request: Any) -> None:
        """Refuse a merge patch naming another `resourceVersion` than the object's (409)."""
        data = request.data
        wanted = (data.get("metadata") or {}).get("resourceVersion") if isinstance(
            data, dict) else None
        key = (request.resource, request.namespace, request.name)
        if wanted is None or key not in self._objects or self._objects[key].deleted:
            return
        if str(self._objects[key].get("metadata", {}).get("resourceVersion")) != str(wanted):
            raise VersionConflict()

    def _check_delete_preconditions(self, request: Any) -> None:
        """Refuse a delete whose `preconditions` (uid, resourceVersion) are not the
        object's (409), as an API server does: the object was written over, or deleted
        and created again, since the client read it."""
        data = request.data
        wanted = data.get("preconditions") if isinstance(data, dict) else None
        key = (request.resource, request.namespace, request.name)
        if not wanted or key not in self._objects or self._objects[key].deleted:
            return
        meta = self._objects[key].get("metadata", {})
        for field, held in (("uid", meta.get("uid")),
                            ("resourceVersion", meta.get("resourceVersion"))):
            if wanted.get(field) is not None and str(wanted[field]) != str(held):
                raise PreconditionFailed(message=(
                    f"Precondition failed: {field} in precondition: {wanted[field]}, "
                    f"{field} in object meta: {held}"))

    def _version_patch(self, data: Any) -> None:
        """Put the object's next resourceVersion in a patch (merge or JSON patch)."""
        version = self._next_version()
        if isinstance(data, dict):
            data.setdefault("metadata", {})["resourceVersion"] = version
        elif isinstance(data, list):
            data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})

    async def _mark_deleted(self, request: Any) -> None:
        """A delete of an object with finalizers only marks it (deletionTimestamp), with a
        new resourceVersion; kmock then finds it marked and leaves it."""
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            # kmock's ObjectsArray.get() is no lookup by key.
            obj = self._objects[key] if key in self._objects else None  # noqa: SIM401
            if obj is None or obj.deleted:
                return
            meta = obj.get("metadata", {})
            if meta.get("deletionTimestamp"):
                return
            if not meta.get("finalizers"):
                # Deleted at once (kmock does it next): its DELETED event has a version of
                # its own, as from an API server, so a later watch can tell it came after.
                obj.patch({"metadata": {"resourceVersion": self._next_version()}})
                return
            now = datetime.datetime.now(tz=datetime.UTC).isoformat()
            obj.patch({"metadata": {"deletionTimestamp": now,
                                    "resourceVersion": self._next_version()}})
            await self._buses[request.resource].put({"type": "MODIFIED", "object": obj.raw})

    async def _replace(self, request: Any) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            meta = request.data.setdefault("metadata", {})
            meta["resourceVersion"] = self._next_version()
            # The same object, written over: its uid stays, as on an API server.
            uid = self._objects[key].get("metadata", {}).get("uid")
            if uid is not None:
                meta["uid"] = uid
            self._objects[key].create(request.data)
            raw = self._objects[key].raw
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)


_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        name = parts[3] if len(parts) == 4 else None
        return parsing.ParsedPath(group="", version="v1", plural="namespaces", name=name)
    return _kmock_parse_path(path)


parsing.parse_path = _parse_path


def register_resources(emulator: kmock.KubernetesEmulator) -> None:
    for kind, names in CRD_NAMES.items():
        emulator.resources[f"{API_VERSION}/{names['plural']}"] = kmock.ResourceInfo(
            kind=kind, namespaced=True, verbs=VERBS, subresources={"status"},
            shortnames=set(names["shortNames"]), categories={"energy"}, singular=kind.lower())
    for path, kind, namespaced in [
        ("v1/namespaces", "Namespace", False),
        ("v1/events", "Event", True),
        ("v1/secrets", "Secret", True),
        ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False),
        ("kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering", False),
        ("kopf.dev/v1/kopfpeerings", "KopfPeering", True),
    ]:
        emulator.resources[path] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs=VERBS)
