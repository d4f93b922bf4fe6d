"""kopf glue: indexes of every object of our four kinds, create/update/resume handlers and
drift timers that call `reconcile_object`, and finalizers that honour `deletionPolicy`.
Decisions live in `reconcile.py`; this module only moves data between kopf and it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from secrets import token_bytes
from typing import Any

import kopf

from reconciler.engine import plan_origin
from reconciler.engine.config import Settings, load_settings
from reconciler.engine.credentials import KEY_BYTES, key_from_text
from reconciler.engine.fanout import ended
from reconciler.engine.host_waits import HostWaits
from reconciler.errors import ConfigError
from reconciler.model.base import API_GROUP
from reconciler.model.kinds import KINDS
from reconciler.model.status import FlatpeakLocation
from reconciler.operator import (
    conditions,
    declared,
    heap,
    interrupted_deletes,
    kept_reads,
    locations,
    namespace_fleets,
    objects,
    renamed_configs,
    sites_kept,
    swaps,
    takeovers,
    unmanaged,
    wait_lines,
    watch_errors,
)
from reconciler.operator.applied_secrets import LastApplied, PasswordFingerprint
from reconciler.operator.config import OperatorConfig
from reconciler.operator.events import Events
from reconciler.operator.finalized import Finalized
from reconciler.operator.handled import Handled
from reconciler.operator.holds import Holds
from reconciler.operator.leftovers import Leftovers
from reconciler.operator.owner_locks import drop, kept_lock, owner_lock, writers_under
from reconciler.operator.reconcile import (
    STATE_UNREADABLE,
    ObjectResult,
    reconcile_object,
    status_patch,
    waiting_result,
)
from reconciler.operator.release_waits import BlockedReleases
from reconciler.operator.removal import has_deletion_policy, remove_object, taken_over_from
from reconciler.operator.reported import Reported
from reconciler.operator.secrets import ConfigSecrets, KubeSecrets, preload
from reconciler.operator.status_writes import KubeStatus
from reconciler.operator.stopping import OperatorStop
from reconciler.operator.takeovers import KubeTakeovers
from reconciler.printable import readable

FINALIZER = objects.FINALIZER
_EVENT_REASONS = {
    "create": "Created",
    "update": "Updated",
    "delete": "Deleted",
    "replace": "Replaced",
    "claim": "Claimed",
    "transfer": "Transferred",
    "release": "Released",
    "verify": "Verified",
}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _index_id(kind: str) -> str:
    return f"index_{objects.PLURALS[kind]}"


def _namespace_bodies(
    namespace: str, indexes: Mapping[str, Any], current: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """Every object of the namespace from the indexes, with the handler's own (fresher)
    body, in declaration order (`objects.in_declaration_order`)."""
    return namespace_fleets.in_place(
        _namespace_documents(namespace, indexes), current,
        str(current.get("kind")), str((current.get("metadata") or {}).get("name")),
    )


def _namespace_documents(namespace: str, indexes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every document the indexes hold of the namespace, kind by kind in the index's order."""
    documents: list[Mapping[str, Any]] = []
    for kind in KINDS:
        index = indexes.get(_index_id(kind))
        if index is not None and namespace in index:
            documents += index[namespace]
    return documents


def _namespace_fleet(
    runtime: Runtime, namespace: str, indexes: Mapping[str, Any], body: Mapping[str, Any]
) -> namespace_fleets.Built:
    """The namespace's objects, the handler's own body in place of its document, and the
    fleet built from them: kept from an earlier reconcile while the index is unchanged
    (`namespace_fleets`)."""
    runtime.fleets.forget_others(
        {namespace for index in indexes.values() for namespace in index}
    )
    return runtime.fleets.of(
        namespace, _namespace_documents(namespace, indexes), body, str(body.get("kind"))
    )


def _indexed(
    indexes: Mapping[str, Any], namespace: str, kind: str, name: str
) -> Mapping[str, Any] | None:
    """The object as kopf's index holds it now; None when it is not there. kopf indexes
    each event before it runs the handlers for it, in the object's own worker: while a
    drift check (a timer, outside that worker) runs, an edit of the object is indexed at
    once; while a handler of the object runs, its next edit waits for it."""
    index = indexes.get(_index_id(kind))
    if index is None or namespace not in index:
        return None
    return next((b for b in index[namespace] if b["metadata"]["name"] == name), None)


def _paused() -> conditions.Cond:
    return conditions.Cond(
        "Synced", False, "Paused", f"annotation {objects.PAUSED_ANNOTATION} is set"
    )


def _alive(
    namespace: str,
    indexes: Mapping[str, Any],
    bodies: list[Mapping[str, Any]],
    current: Mapping[str, Any],
) -> Callable[[str, str], bool]:
    """Whether an object of `bodies` is still there as it was, now: in the indexes (kept
    up to date by kopf as events arrive), not being deleted, not another object created
    again under its name (`owner_locks`), and with the spec this reconcile began with. A
    reconcile begun before the spec changed (a drift check waiting for the object's lock)
    would apply the old one, and take back what the new one let others have (its config
    Secret): the reconcile of the new spec comes after it anyway.

    Only the owner is asked of, so a spec is rendered when asked, not for every object of
    the namespace: the index's documents are made anew for each event, never changed. The
    handler's own body (`current`, for a drift timer kopf's body, kept up to date as
    events arrive) is taken now."""
    began = {(body.get("kind"), body["metadata"]["name"]): body for body in bodies}
    own = (current.get("kind"), current["metadata"]["name"])
    own_began = (current["metadata"].get("uid"), objects.spec_json(current))

    def alive(kind: str, name: str) -> bool:
        now = _indexed(indexes, namespace, kind, name)
        if now is None or objects.is_deleting(now):
            return False
        if (kind, name) == own:
            was = own_began
        elif (kind, name) in began:
            body = began[(kind, name)]
            was = (body["metadata"].get("uid"), objects.spec_json(body))
        else:
            return False
        return (now["metadata"].get("uid"), objects.spec_json(now)) == was

    return alive


def _names_secret(
    namespace: str, indexes: Mapping[str, Any], bodies: list[Mapping[str, Any]]
) -> Callable[[str, str], bool]:
    """Whether a Device of `bodies` names a Secret as its configOutput now, as the indexes
    have it (not another Device created again under its name): asked right before its
    config is written there (`secrets.ConfigSecrets`). Only that field is compared, not
    the whole spec as `_alive` does: a config generated for another edit still belongs in
    the Secret the Device names."""
    uids = {
        body["metadata"]["name"]: body["metadata"].get("uid")
        for body in bodies
        if body.get("kind") == "Device"
    }

    def names(device: str, secret: str) -> bool:
        now = _indexed(indexes, namespace, "Device", device)
        if now is None or device not in uids or now["metadata"].get("uid") != uids[device]:
            return False
        return objects.config_secret(now) == secret

    return names


def _named_by_another(namespace: str, indexes: Mapping[str, Any]) -> Callable[[str, str], bool]:
    """Whether a Device of the namespace other than the one named names a Secret as its
    configOutput now, as the indexes have it (one refused for naming it too counts): the
    release of a Device leaves that Secret to it (`secrets.ConfigSecrets.remove`)."""

    def named(device: str, secret: str) -> bool:
        index = indexes.get(_index_id("Device")) or {}
        return any(
            body["metadata"]["name"] != device and objects.config_secret(body) == secret
            for body in index.get(namespace, ())
        )

    return named


def _releasing(
    namespace: str, indexes: Mapping[str, Any], blocked: BlockedReleases
) -> Callable[[str, str], bool]:
    """Whether an object of the namespace is being deleted now, as the indexes have it
    (kopf indexes its deletion before its finalizer runs), and its release may be under
    way: not a Gateway whose finalizer's last attempt could not release it, until the next
    attempt begins (`release_waits`)."""

    def releasing(kind: str, name: str) -> bool:
        now = _indexed(indexes, namespace, kind, name)
        if now is None or not objects.is_deleting(now):
            return False
        return (namespace, name, str(now["metadata"].get("uid"))) not in blocked

    return releasing


def _deleting(namespace: str, indexes: Mapping[str, Any]) -> Callable[[str, str], bool]:
    """Whether an object of the namespace is being deleted now, as the indexes have it."""

    def deleting(kind: str, name: str) -> bool:
        now = _indexed(indexes, namespace, kind, name)
        return now is not None and objects.is_deleting(now)

    return deleting


class Runtime:
    """What the handlers share: settings, the operator config and the Secret reader.
    `settle_heap`: after each namespace's first build, collect and freeze what is alive
    (`heap.settle`), as the operator's process does (not a test's, which runs many)."""

    def __init__(
        self, config: OperatorConfig, settings: Settings | None = None, *,
        settle_heap: bool = False,
    ) -> None:
        self.config = config
        self._settings = settings
        self.secrets = KubeSecrets()
        self.status = KubeStatus()
        self.takeovers = KubeTakeovers()
        # Keys the password fingerprints kept in Device status (`engine.credentials`).
        self.credential_key = (
            key_from_text(config.credential_key)
            if config.credential_key
            else token_bytes(KEY_BYTES)
        )
        # The password fingerprint each Device's last reconcile made, newer than kopf's copy
        # of its status until the watch brings the write (`applied_secrets`).
        self.applied = LastApplied()
        # Objects whose writes wait for a change after a permanent failure.
        self.holds = Holds()
        # The namespaces whose temporary config files left by killed runs were removed.
        self.leftovers = Leftovers()
        # Objects whose finalizer did its work: kopf may run it a second time.
        self.finalized = Finalized()
        # The spec each object's handler reconciled last: kopf may run it again for it.
        self.handled = Handled()
        # Gateways whose release could not be done, between two attempts of their finalizer:
        # the Devices under them reconcile as usual meanwhile.
        self.blocked_releases = BlockedReleases()
        # What each object's Ready said last, so that a Warning says a problem once.
        self.reported = Reported()
        # Objects whose last reconcile met a server that asked to be called again later
        # than `retry_delay` (Retry-After): time.monotonic() before which the drift timer
        # leaves them be. An edit of the object still reconciles at once.
        self.not_before: dict[tuple[str, str, str], float] = {}
        # The servers that asked (Retry-After) to be called later: every reconcile and
        # finalizer leaves them alone until then, not only the one that was answered.
        self.host_waits = HostWaits()
        # Set as kopf begins to stop the operator (`stopping`): what the create, update and
        # resume handlers' reconciles honour, as a drift check does kopf's own stop flag.
        self.stop = OperatorStop(DRIFT_STOP_WAIT)
        # Posted through kopf until then, written directly after (`events`).
        self.events = Events(self.stop.event)
        # Each namespace's built fleet, until its index changes (`namespace_fleets`).
        self.fleets = namespace_fleets.NamespaceFleets(heap.settle if settle_heap else None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
            warning = self._settings.insecure_warning()
            if warning is not None:
                logging.getLogger(__name__).warning(warning)
        return self._settings

    def current_settings(self) -> Settings:
        """The settings for one reconcile, the credentials given as files read again: a
        token rotated in its mounted Secret is used without a restart. A file that cannot
        be read now makes the reconcile wait and retry, naming the file."""
        try:
            return self.settings.renewed()
        except ConfigError as error:
            raise kopf.TemporaryError(
                f"invalid settings: {error}", delay=self.config.retry_delay
            ) from None


def event_message(text: str) -> str:
    """An event's message: `kubectl describe` shows it on a terminal, and it carries what
    gateways and clouds report (serials, error bodies)."""
    # A word a page long (an id) is cut with its length said, not at the end alone.
    return readable(text)[:1000]


def _declared_serials(indexes: Mapping[str, Any], own: tuple[str, str]) -> dict[str, str]:
    """The serials the Gateway objects of every namespace served declare, but `own`."""
    index = indexes.get(_index_id("Gateway")) or {}
    return swaps.declared_serials(
        ((namespace, body) for namespace in index for body in index[namespace]), own
    )


def _served_gateways(indexes: Mapping[str, Any], config: OperatorConfig) -> unmanaged.Served:
    """The Gateway objects this operator serves, of every namespace its index holds (kopf
    keys it by namespace): a gateway one of them declares is not unmanaged."""
    index = indexes.get(_index_id("Gateway")) or {}
    return unmanaged.served(
        (body for namespace in index for body in index[namespace]),
        config.namespaces,
        config.shard,
    )


async def _post_events(
    events: Events,
    body: kopf.Body,
    result: ObjectResult,
    said: Callable[[str, int | None], bool],
    news: bool,
    generation: int | None,
) -> None:
    """The Events of a reconcile's `result`, of the spec of `generation`. `said`: whether a
    one-off message is said for the first time (of that spec, when given); `news`: whether
    the object's Ready condition changed (`_is_news`)."""
    for message in result.kept:
        if said(message, None):
            await events.info(body, reason="GatewayKept", message=event_message(message))
    for message in result.other_account:
        if said(message, None):
            await events.warn(body, reason=locations.OTHER_ACCOUNT_REASON,
                              message=event_message(message))
    for message in result.unmanaged_fields:
        # Once per spec: a drift check given the status from before the edit's reconcile
        # recorded the field removed converges too, and would say it again.
        if said(message, generation):
            await events.info(body, reason=declared.EVENT_REASON,
                              message=event_message(message))
    for message in result.finished.removed:
        await events.info(body, reason=interrupted_deletes.REMOVED_REASON,
                          message=event_message(message))
    for message in result.finished.failed:
        if said(message, None):
            await events.warn(body, reason=interrupted_deletes.NOT_REMOVED_REASON,
                              message=event_message(message))
    for outcome in result.outcomes:
        if outcome.address in result.finished.addresses:
            continue  # said above, as what became of the file
        if outcome.status == "done":
            reason = _EVENT_REASONS.get(outcome.action, "Applied")
            # What became of a config file written earlier, said with it, as `apply`
            # says it and the finalizer's events do: credentials on disk gone or left.
            note = f"; {outcome.note}" if outcome.note else ""
            message = f"{outcome.address}: {outcome.action} done{note}"
            await events.info(body, reason=reason, message=event_message(message))
        elif outcome.status in ("failed", "skipped") and news:
            # Said once per problem, as the Failed Warning is: Ready carries every failed
            # change's message, so a change failing again the same way at each drift check
            # or retry leaves it as it was; a failure that changes, or comes back after the
            # object converged, changes it and is said again.
            message = f"{outcome.address}: {outcome.action} {outcome.status}: {outcome.message}"
            await events.warn(body, reason="ApplyFailed", message=event_message(message))


def _is_news(
    runtime: Runtime, key: tuple[str, str, str], status: Mapping[str, Any], result: ObjectResult,
    generation: int | None,
) -> bool:
    """Whether the object's Ready condition changes: a Warning says a problem once, not
    again at every drift check or retry while it stays the same (`reported`). `generation`:
    of the spec `result` is of."""
    ready = next((c for c in result.conditions if c.type == "Ready"), None)
    return ready is None or runtime.reported.is_news(key, status, ready, generation)


def _write_conditions(
    patch: kopf.Patch, status: Mapping[str, Any], generation: int | None, result: ObjectResult
) -> None:
    """The conditions of `result`, said of the spec of `generation`."""
    new = list(result.conditions)
    if result.unobserved is not None:
        new += conditions.unobserved(status.get("conditions"), *result.unobserved)
    patch.status["conditions"] = conditions.merge(
        status.get("conditions"), new, now=_now(), generation=generation
    )


def _write_status(
    patch: kopf.Patch, status: Mapping[str, Any], generation: int | None, result: ObjectResult
) -> None:
    """The status of `result`, a reconcile of the spec of `generation`."""
    _write_conditions(patch, status, generation, result)
    patch.status["observedGeneration"] = generation
    for key, value in status_patch(result, now=_now()).items():
        patch.status[key] = value


async def _reconcile(
    runtime: Runtime,
    kind: str,
    body: kopf.Body,
    namespace: str,
    patch: kopf.Patch,
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    indexes: Mapping[str, Any],
    logger: logging.Logger | logging.LoggerAdapter[Any],
    lock_wait: float | None = None,
    stop: asyncio.Event | None = None,
    recorded: bool = False,
) -> None:
    """Reconcile the object, and write what came of it into kopf's `patch`. `stop`: once
    set, no change starts (`reconcile_object`). `recorded`: kopf records the run as done
    when it returns (a create, update or resume handler, not a drift check): one cut short
    by the stop raises kopf.TemporaryError instead, for the next operator to run it again."""
    name = meta["name"]
    # The generation of the spec planned with, taken with it (no await between): a drift
    # check's `meta` is kopf's live body, which an edit made while the check applies moves
    # on. Read at the end, the status would say the edit was observed, with the conditions
    # of the older spec (Ready: in sync), before the edit's own reconcile applied it.
    generation = meta.get("generation")
    if objects.is_paused(body):
        _write_status(patch, status, generation, ObjectResult(conditions=[_paused()]))
        return
    built = _namespace_fleet(runtime, namespace, indexes, body)
    bodies, nsf = built.bodies, built.fleet
    refused = nsf.refusal(kind, name)
    leaving = None if refused else _leaving(kind, name, body, nsf, recorded)
    if leaving is not None and not recorded:
        # A drift check of an heir while the release of the object it takes over from may
        # write: its writes and the release's would cross as a handler's would (below).
        # Nothing planned nor written, the status as it was; the next check, or the
        # handler's run once the other is gone, reconciles it.
        logger.info("%s/%s: not reconciled: %s", kind, name, takeovers.waiting_message(*leaving))
        return
    if leaving is not None:
        # Told to take over from an object this view still has being deleted: planned
        # with it, what it declares (its config file) would be left, and the annotation
        # removed once it is gone by this run's end (`takeovers`). Not told yet (created,
        # or edited, while that one's release runs): its writes and the release's would
        # cross (a config written for the Enapter device the release deletes), and the
        # release, finding it, sends none more (`removal`). Nothing planned nor written,
        # the status as the last reconcile left it; run again once it may be gone. A
        # refused heir waits in `reconcile_object`, its status saying so.
        result = waiting_result(
            takeovers.waiting_message(*leaving), runtime.config.retry_delay)
        if not status.get("conditions"):
            # A new one has no status to keep: it says that it waits, as a refused one.
            _write_conditions(patch, status, generation, result)
        raise kopf.TemporaryError(result.message, delay=result.delay)
    # The spec `alive` compares with is the one just planned with: taken after the Secrets
    # are read (an await), a drift check's live body may hold an edit made meanwhile, which
    # the index holds too, and the check would apply the older spec it planned with.
    alive = _alive(namespace, indexes, bodies, body)
    if not refused:
        # What a deletion honours should the spec be made invalid later (`_release`).
        spec = objects.spec_json(body)
        if status.get(objects.LAST_VALID_SPEC) != spec:
            patch.status[objects.LAST_VALID_SPEC] = spec
    secrets = await preload(runtime.secrets, namespace, nsf.fleet, runtime.config.password_env)
    settings = runtime.current_settings()
    result = await reconcile_object(
        kind, name, namespace, nsf, settings, runtime.config, secrets,
        config_store=ConfigSecrets(
            runtime.secrets, namespace, _names_secret(namespace, indexes, bodies)
        ),
        credentials=PasswordFingerprint(
            runtime.credential_key, status.get("appliedSecrets"), runtime.applied,
            (namespace, name, str(meta.get("uid"))),
        ),
        holds=runtime.holds,
        claims=swaps.recorded(status, nsf.fleet) if kind == "Gateway" else (),
        declared_elsewhere=(
            _declared_serials(indexes, (namespace, name)) if kind == "Gateway" else None
        ),
        had=locations.recorded(status) if kind == "Device" else (),
        alive=alive,
        lock_wait=lock_wait,
        waits=runtime.host_waits,
        release_under_way=_releasing(namespace, indexes, runtime.blocked_releases),
        stop=stop,
        gateways=(
            _served_gateways(indexes, runtime.config) if kind in ("Site", "Gateway") else None
        ),
        leftovers=runtime.leftovers,
    )
    if result.stopped:
        # Nothing planned nor written: the status stays as the last reconcile left it.
        patch.pop("status", None)
        if recorded:
            raise kopf.TemporaryError(wait_lines.stopping_message("not reconciled"), delay=0)
        logger.info("%s/%s: not reconciled: the operator is stopping", kind, name)
        return
    if result.busy:
        # kopf indexes this object's next edit in the worker this handler holds: it is let
        # go, the edit indexed (others plan with it), and the handler run again at once with
        # the newest spec. Nothing is said but kopf's own retry, at INFO (`wait_lines`); its
        # patch carries only its progress (and this spec as the last valid one, as any run
        # records it).
        raise kopf.TemporaryError(result.message, delay=0)
    if result.going:
        # Its finalizer, or the reconcile of its new spec, speaks for it now: no status
        # written after it released what it did (a drift check that waited for it, or
        # began as the object was deleted), nor one of a spec the object no longer has.
        patch.pop("status", None)  # its lastValidSpec too: the finalizer read it already
        logger.info(
            "%s/%s: not reconciled: it is being deleted, or its spec changed since this began",
            kind, name,
        )
        return
    now = _indexed(indexes, namespace, kind, name)
    if now is not None and objects.is_paused(now):
        # Paused while this ran (a drift check begun before the annotation was set, which
        # the pause's own handler does not wait for): what it did is recorded, and Synced
        # says paused, instead of hiding the pause until the next drift check.
        result.conditions = [c for c in result.conditions if c.type != "Synced"] + [_paused()]
    owner = (namespace, kind, name)
    if result.retry == "temporary" and result.delay > runtime.config.retry_delay:
        runtime.not_before[owner] = time.monotonic() + result.delay
    else:
        runtime.not_before.pop(owner, None)
    # Decided before anything is awaited: a concurrent run for this object then finds it said.
    news = _is_news(runtime, owner, status, result, generation)
    found = result.unmanaged
    if found is not None and runtime.reported.unmanaged_changed(owner, status, found):
        # Said when the set changes: not an error (Ready stays as the plan has it), but
        # what the user is to act on, the operator removing nothing it does not declare.
        post = runtime.events.warn if found else runtime.events.info
        await post(body, reason=unmanaged.EVENT_REASON,
                   message=event_message(unmanaged.message(found)))
    if kind == "Site":
        # The Flatpeak location it leaves stays remembered, for its deletion to say.
        result.flatpeak_locations = locations.left_by_site(
            name, status, result.external_ids, result.location_not_found,
            nsf.flatpeak_location_accounts,
            plan_origin.flatpeak_account(settings) if settings.flatpeak_account_id else None,
        )
    _write_status(patch, status, generation, result)
    if (recorded and result.retry != "temporary"
            and takeovers.stale(body, _deleting(namespace, indexes))):
        # Reconciled with the object it took over from gone: the annotation did its work.
        # Removed by the handler's own patch (a drift check writes only the status), once
        # kopf records the handler done: removed while it retries, the object's essence
        # would be the one kopf handled last again, and kopf would drop the retry.
        handed = takeovers.config_secret(body) if kind == "Device" else ""
        if handed:
            # The old one's config Secret, left to this one until its own config is
            # written (`renamed_configs.hand_over`).
            # The Secret this Device names now, read: an edit made while this handler ran
            # (one naming the old Secret) is in neither `body` nor the indexes yet. Not
            # read (None), the spec planned with decides, as it did before the read.
            named = await runtime.takeovers.config_secret_now(namespace, name)
            reason, said = await renamed_configs.hand_over(
                nsf.fleet.devices.get(name), handed, takeovers.source_name(body),
                ConfigSecrets(runtime.secrets, namespace,
                              lambda _, secret: named == secret,
                              named_by_another=_named_by_another(namespace, indexes)),
                settings,
            )
            if said:
                await runtime.events.info(body, reason=reason, message=event_message(said))
        takeovers.clear(patch)
    await _post_events(
        runtime.events, body, result,
        lambda message, of: runtime.reported.first_time(owner, message, of), news, generation,
    )
    ready = next((c for c in result.conditions if c.type == "Ready"), None)
    if result.warn and news and ready is not None:
        await runtime.events.warn(body, reason=ready.reason, message=event_message(ready.message))
    if result.retry == "temporary" and stop is not None and stop.is_set():
        # Cut short by the stop (its status says so): no retry comes in this process, so
        # no kopf ERROR line that one will; the next process's reconcile goes on. A
        # handler's run is not recorded as done: the next process runs it again, at once.
        if recorded:
            raise kopf.TemporaryError(wait_lines.stopping_message(result.message), delay=0)
        logger.info("%s/%s: %s (the operator is stopping)", kind, name, result.message)
        return
    if result.retry == "temporary":
        raise kopf.TemporaryError(result.message, delay=result.delay)
    if result.retry == "permanent":
        if news:
            await runtime.events.warn(body, reason="Failed", message=event_message(result.message))
        raise kopf.PermanentError(result.message)
    logger.info("%s/%s: %s", kind, name, result.summary)


def _leaving(
    kind: str, name: str, body: kopf.Body, nsf: objects.NamespaceFleet, recorded: bool
) -> tuple[str, str] | None:
    """The kind and name of the object being deleted that `kind`/`name` takes over from,
    told to (`takeovers.leaving`) or by declaring what it declares (`taken_over_from`), and
    is to wait for; None when it has none to wait for. A handler's run (`recorded`) waits
    for it to be gone: kopf records the run done, and what the hand-over does once it is
    gone (the takes-over-from annotation cleared, the old config handed over) is done only
    by such a run. A drift check waits only while the other's release has not ended (the
    operator's finalizer on it): held after that by another controller's finalizer, the
    other writes nothing more, and the checks reconcile the heir meanwhile."""
    among = nsf.deleting if recorded else nsf.releasing
    return takeovers.leaving(body, among) or taken_over_from(kind, name, nsf, among)


def _indexes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k.startswith("index_")}


async def _reconcile_call(
    runtime: Runtime,
    kind: str,
    kwargs: Mapping[str, Any],
    lock_wait: float | None = None,
    stop: asyncio.Event | None = None,
    recorded: bool = False,
) -> None:
    """Unpack kopf's keyword arguments for `_reconcile`."""
    await _reconcile(
        runtime,
        kind,
        kwargs["body"],
        kwargs["namespace"] or "",
        kwargs["patch"],
        kwargs["status"],
        kwargs["meta"],
        _indexes(kwargs),
        kwargs["logger"],
        lock_wait,
        stop,
        recorded,
    )


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Register every handler for the four kinds in `registry`."""
    labels = runtime.config.label_filter() or None
    for kind in KINDS:
        _register_kind(registry, runtime, kind, labels)


def _register_kind(
    registry: kopf.OperatorRegistry, runtime: Runtime, kind: str, labels: dict[str, Any] | None
) -> None:
    group, version, plural = objects.resource_ref(kind)

    @kopf.index(group, version, plural, id=_index_id(kind), labels=labels, registry=registry)
    def index(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, Any]:
        return {namespace or "": objects.index_document(body, kind)}

    async def reconcile(**kwargs: Any) -> None:
        uid, essence = kwargs["meta"].get("uid"), kwargs.get("new")
        if runtime.handled.already(uid, essence):
            # kopf handled an event older than its record of this run (`handled`): the
            # object's next edit waits in its queue behind this one, not behind a plan.
            kwargs["logger"].debug(
                "%s/%s: reconciled already by a handler for this spec", kind, kwargs["meta"]["name"]
            )
            return
        if takeovers.only_cleared(kwargs.get("old"), essence):
            # The takes-over-from annotation removed by this handler's last run, and nothing
            # else changed: nothing to plan or write (`takeovers`).
            kwargs["logger"].debug(
                "%s/%s: only the annotation %s was removed: nothing to reconcile",
                kind, kwargs["meta"]["name"], takeovers.TAKES_OVER_ANNOTATION,
            )
            runtime.handled.record(uid, essence)
            return
        # Not long: kopf's worker of the object is held meanwhile (`HANDLER_LOCK_WAIT`).
        # At the operator's stop, its changes in flight land, as a drift check's do, and
        # no other starts (`stopping`).
        with runtime.stop.handling() as stop:
            await _reconcile_call(runtime, kind, kwargs, HANDLER_LOCK_WAIT, stop, recorded=True)
        runtime.handled.record(uid, essence)

    for decorator, cause in (
        (kopf.on.create, "create"),
        (kopf.on.update, "update"),
        (kopf.on.resume, "resume"),
    ):
        decorator(group, version, plural, id=f"{cause}-{plural}", labels=labels, registry=registry)(
            reconcile
        )

    def running(**_: Any) -> bool:
        # kopf stops every drift timer as it begins to stop, but an event of an object that
        # its worker handles after that starts the object's timer anew, with a stop flag
        # nothing sets: not started once the operator stops. Started, it ticked (checking
        # nothing, below) until kopf cancelled it, after waiting 5 s for it.
        return not runtime.stop.event.is_set()

    @kopf.timer(
        group,
        version,
        plural,
        id=f"drift-{plural}",
        interval=runtime.config.interval,
        initial_delay=runtime.config.interval,
        labels=labels,
        when=running,
        registry=registry,
    )
    async def drift(**kwargs: Any) -> None:
        stopping = kwargs["stopped"] or runtime.stop.event.is_set()
        if kwargs["meta"].get("deletionTimestamp") or stopping:
            # Being deleted, or the operator stops: no new check starts. kopf's flag alone
            # does not say the stop: a timer started before the stop whose flag kopf has
            # not set yet (`running`).
            return
        owner = (kwargs["namespace"] or "", kind, kwargs["meta"]["name"])
        if time.monotonic() < runtime.not_before.get(owner, 0.0):
            return  # a server asked not to be called before then (Retry-After)
        # Written here, not by kopf: a status patch kopf makes for a timer and the API server
        # refuses ends the timer for good (`status_writes`).
        patch = kopf.Patch()
        # The generation `_reconcile` plans with (it reads it too before any await): the
        # write is skipped if the status says a newer one already, written by the reconcile
        # of an edit after this check let the object's lock go (`status_writes`).
        generation = kwargs["meta"].get("generation")
        try:
            async with _stop_when_leaving(kwargs["stopped"]) as stop:
                await _reconcile_call(runtime, kind, {**kwargs, "patch": patch}, stop=stop)
        except (kopf.TemporaryError, kopf.PermanentError):
            await runtime.status.write(*owner, patch.get("status"), kwargs["logger"], generation)
            raise
        await runtime.status.write(*owner, patch.get("status"), kwargs["logger"], generation)

    @kopf.on.delete(
        group, version, plural, id=f"finalize-{plural}", labels=labels, registry=registry
    )
    async def finalize(**kwargs: Any) -> None:
        # A release writing at the operator's stop is waited for as a handler's reconcile
        # is (`stopping`), not cancelled by kopf after 2 s mid-write; it starts no other
        # write (`remove_object`'s stop), and the next operator releases the rest.
        with runtime.stop.handling():
            await _finalize(runtime, kind, kwargs)


# Why kopf stops a drift check that makes a check in flight wind down (`_stop_when_leaving`):
# the operator stops, or pauses for another replica, or the object is now another shard's.
# Not its deletion: the finalizer waits for the check's writes, all of them, and releases
# after them (`_finalize`).
_LEAVING = (
    kopf.DaemonStoppingReason.OPERATOR_EXITING
    | kopf.DaemonStoppingReason.OPERATOR_PAUSING
    | kopf.DaemonStoppingReason.FILTERS_MISMATCH
)


# The name of the task that relays kopf's stop of a drift check (`_stop_when_leaving`).
RELAY_NAME = "drift check's stop"


@contextlib.asynccontextmanager
async def _stop_when_leaving(stopped: kopf.DaemonStopped) -> AsyncIterator[asyncio.Event]:
    """An event set once kopf stops the drift check for a reason of `_LEAVING`: the
    reconcile's changes in flight finish, no other starts, and a plan not yet applied is
    abandoned, so that kopf sees the check end within `DRIFT_STOP_WAIT`."""
    stop = asyncio.Event()

    async def relay() -> None:
        await stopped.wait()
        # Stopped for its object's deletion, the check goes on; the operator may stop
        # meanwhile (kopf adds that reason to the flag already set, which wakes no one).
        while True:
            if stopped.reason is not None and stopped.reason & _LEAVING:
                stop.set()
                return
            await asyncio.sleep(DRIFT_STOP_POLL)

    task = asyncio.create_task(relay(), name=RELAY_NAME)
    try:
        yield stop
    finally:
        task.cancel()
        # A cancellation of the check itself that lands while the relay ends is the
        # check's (kopf's cancel, or the event loop's at its shutdown), not lost (`ended`).
        await ended(task)


# How long a create, update or resume handler waits for its owner's lock (a drift check or
# a stand-alone DER's reconcile writing) before kopf runs it again. kopf indexes an object's
# edits in the worker that runs its handlers: while one waits, the objects planned beside it
# see the object's previous spec. A drift check, run outside that worker, waits as long as
# the writes take.
HANDLER_LOCK_WAIT = 5.0

# How long a finalizer waits for a reconcile of its object in flight to end (its writes
# are bounded by the platforms' timeouts and retries) before kopf tries it again later; a
# Gateway's, for those of the Devices under it too.
LOCK_WAIT = 60.0


def _writers_under(
    namespace: str, indexes: Mapping[str, Any], gateway: str
) -> list[asyncio.Lock]:
    """The locks of the Devices whose spec names `gateway`, and of those whose reconcile
    writes under it now (one begun before its Device was moved to another gateway:
    `owner_locks.writing_under`), in the order of their names: their reconciles, and those
    of their stand-alone DERs, write to its Zap and to Novacore under it. A Device being
    deleted whose lock went with its finalizer has no reconcile writing for it
    (`owner_locks`), and is not given a new one; nor one that only writes under it."""
    index = indexes.get(_index_id("Device")) or {}
    named = {
        body["metadata"]["name"]
        for body in index.get(namespace, ())
        if (body.get("spec") or {}).get("gatewayRef") == gateway
    }
    deleting = {
        body["metadata"]["name"] for body in index.get(namespace, ()) if objects.is_deleting(body)
    }
    locks = [
        owner_lock(namespace, "Device", device)
        if device in named and device not in deleting
        else kept_lock(namespace, "Device", device)
        for device in sorted(named | writers_under(namespace, "Device", gateway))
    ]
    return [lock for lock in locks if lock is not None]


async def _finalize(runtime: Runtime, kind: str, kwargs: Mapping[str, Any]) -> None:
    """Release the object as `_release` does, under its reconciles' lock (`owner_locks`):
    once a reconcile of it in flight has landed its writes, and before another writes
    again. A Gateway's also under the locks of the Devices under it: a Device's provisioning
    in Novacore that landed after the gateway was released would be refused, taken for a
    failure retrying cannot cure, and held so after the Gateway came back. The object's own
    lock is taken first, then the Devices' by name: a reconcile holds one lock only, so
    nothing waits in a circle. Its lock goes with it."""
    namespace = kwargs["namespace"] or ""
    name = kwargs["meta"]["name"]
    uid = kwargs["meta"].get("uid")
    if uid is not None and uid in runtime.finalized:
        # kopf's second run, once a drift check that outlived the first ended (`finalized`).
        kwargs["logger"].info("%s/%s deleted (finalized already)", kind, name)
        return
    # Before anything is awaited: a Device reconcile under the Gateway that begins from now
    # on writes nothing under it; one begun before holds its lock, waited for below.
    attempt = (namespace, name, str(uid))
    runtime.blocked_releases.attempting(attempt)
    async with contextlib.AsyncExitStack() as held:
        try:
            async with asyncio.timeout(LOCK_WAIT):
                own = owner_lock(namespace, kind, name)
                await own.acquire()
                held.callback(own.release)
                # The Devices under it as the index has them now, once its own lock is held.
                writers = (
                    _writers_under(namespace, _indexes(kwargs), name) if kind == "Gateway" else []
                )
                for lock in writers:
                    await lock.acquire()
                    held.callback(lock.release)
        except TimeoutError:
            # Said at WARNING in our words (`wait_lines`), not as kopf's ERROR line.
            message = wait_lines.finalizer_waiting_message(kind, LOCK_WAIT)
            if kind == "Gateway":
                runtime.blocked_releases.blocked(attempt)  # nothing was released
            raise kopf.TemporaryError(message, delay=runtime.config.retry_delay) from None
        try:
            await _release(runtime, kind, kwargs)
            if uid is not None:
                runtime.finalized.add(uid)
            runtime.handled.forget(uid)
        except kopf.TemporaryError:
            if kind == "Gateway":
                # Not released (or not all of it): until the next attempt, the Devices
                # under it reconcile as usual; their plans read whether it is still claimed.
                runtime.blocked_releases.blocked(attempt)
            raise
        finally:
            # Dropped also when the release waits: whatever reconcile of it comes next finds
            # it being deleted, and the next attempt takes a new lock.
            drop(namespace, kind, name)


async def _release(runtime: Runtime, kind: str, kwargs: Mapping[str, Any]) -> None:
    """Honour `deletionPolicy` before kopf removes our finalizer: while the object cannot
    be released, the finalizer stays, with a Warning and a condition saying why."""
    body: kopf.Body = kwargs["body"]
    namespace = kwargs["namespace"] or ""
    name = kwargs["meta"]["name"]
    last: Mapping[str, Any] | None = None

    def now() -> objects.NamespaceFleet:
        """The namespace as kopf's live index holds it now, this object with its last valid
        spec once that is honoured."""
        if last is not None:
            return objects.build(_namespace_bodies(namespace, _indexes(kwargs), last))
        return _namespace_fleet(runtime, namespace, _indexes(kwargs), body).fleet

    nsf = now()
    # Refused only for what an object being deleted declares too (a rename deleted
    # together), its spec is valid on its own: honoured.
    refusal = nsf.refusal_once_deleted(kind, name)
    if refusal and has_deletion_policy(kind):
        # An invalid spec says nothing to act on: honour the last valid one, if recorded.
        last = objects.with_last_valid_spec(body)
        if last is not None:
            nsf = now()
        resource = nsf.fleet.table(kind).get(name) if last is not None else None
        if resource is None:
            message = (
                "deleted with an invalid spec, and no valid spec of it was recorded: its "
                "deletionPolicy is not known, so nothing outside was touched (release by "
                f"hand what it declared, if it was to be released); the spec: {refusal}"
            )
            await runtime.events.warn(
                body, reason="DeletionPolicyUnknown", message=event_message(message)
            )
            runtime.holds.release((namespace, kind, name))
            runtime.reported.forget((namespace, kind, name))
            runtime.not_before.pop((namespace, kind, name), None)
            kwargs["logger"].info("%s/%s deleted (%s)", kind, name, "nothing outside touched")
            return
        policy = getattr(resource.spec, "deletion_policy", "")
        message = (
            f"deleted with an invalid spec: the deletionPolicy of its last valid spec "
            f"({policy}) is honoured; the spec: {refusal}"
        )
        await runtime.events.info(body, reason="LastValidSpec", message=event_message(message))
    secrets = await preload(runtime.secrets, namespace, nsf.fleet, runtime.config.password_env)
    gateway = kind == "Gateway"
    settings = runtime.current_settings()
    removal = await remove_object(
        kind, name, nsf, settings, secrets, status=kwargs["status"],
        claims=swaps.recorded(kwargs["status"], nsf.fleet) if gateway else (),
        declared_elsewhere=(
            _declared_serials(_indexes(kwargs), (namespace, name)) if gateway else None
        ),
        waits=runtime.host_waits,
        stop=runtime.stop.event,
        # A released Device's config Secret goes with its Enapter device.
        config_store=ConfigSecrets(
            runtime.secrets, namespace, named_by_another=_named_by_another(
                namespace, _indexes(kwargs))
        ) if kind == "Device" else None,
        # An heir created while the release reads or writes takes over (`removal`).
        now=now,
        say=kwargs["logger"].info,
    )
    failed = [o for o in removal.outcomes if o.status != "done"]
    for outcome in removal.outcomes:
        if outcome.status == "done":
            # What became of the config file or Secret written for it, said with it.
            note = f"; {outcome.note}" if outcome.note else ""
            said = f"{outcome.address}: {outcome.message or outcome.action}{note}"
            await runtime.events.info(
                body,
                reason=_EVENT_REASONS.get(outcome.action, "Deleted"),
                message=event_message(said),
            )
    if removal.blocked or removal.refused or removal.unreadable or failed:
        if removal.unreadable:
            # The reason a reconcile gives for it (`reconcile_object`).
            reason = STATE_UNREADABLE
            message = (
                f"{removal.unreadable}; nothing released: the next attempt reads it again "
                f"(removing the finalizer {FINALIZER} leaves it as it is)"
            )
        elif removal.blocked:
            reason = "ReleaseBlocked"
            message = f"{removal.blocked}, or remove the finalizer {FINALIZER} to leave it as it is"
        elif removal.refused:
            # The reason a reconcile gives for refused credentials (`reconcile_object`).
            reason = "AuthError"
            message = (
                f"{removal.refused} (nothing released; retried; removing the finalizer "
                f"{FINALIZER} leaves it as it is)"
            )
        else:
            reason = "ReleaseFailed"
            message = "; ".join(f"{o.address}: {o.message}" for o in failed)
            # A write refused for its token (a release past the token's 24 h): which
            # setting to change, as a refused read says; once however many writes it failed.
            hints = (settings.refused_hint(o.error, when="at the next attempt") for o in failed)
            message += "".join(f"; {hint}" for hint in dict.fromkeys(h for h in hints if h))
            message += f" (retried; removing the finalizer {FINALIZER} leaves it as it is)"
        result = ObjectResult(
            conditions=[
                conditions.Cond("Ready", False, reason, message),
                conditions.Cond("Synced", False, reason, message),
            ]
        )
        generation = kwargs["meta"].get("generation")
        _write_conditions(kwargs["patch"], kwargs["status"], generation, result)
        if _is_news(runtime, (namespace, kind, name), kwargs["status"], result, generation):
            await runtime.events.warn(body, reason=reason, message=event_message(message))
        if runtime.stop.event.is_set():
            # Cut short by the operator's stop: the finalizer stays, and the next operator
            # releases the rest at once (said at INFO, `wait_lines`).
            raise kopf.TemporaryError(wait_lines.stopping_message(message), delay=0)
        raise kopf.TemporaryError(message, delay=runtime.config.retry_delay)
    # Said once, as the object goes: a pass that waits is tried again and would repeat it.
    for message in removal.kept:
        await runtime.events.info(body, reason="GatewayKept", message=event_message(message))
    # Refused while this one declared the same, the heir and the others that take over what
    # it declared (a Device at its Zap endpoint) are run again now, not at their next drift
    # check (`takeovers`).
    heirs = [removal.heir] if removal.heir else []
    taken_over = removal.taken_over
    for other in dict.fromkeys([*heirs, *nsf.freed_by(kind, name)]):
        handed = removal.handed if other == removal.heir else ""
        told = await runtime.takeovers.announce(
            namespace, kind, other, name, kwargs["logger"], config_secret=handed)
        if handed and not told:
            # Not named on the heir, the Secret is deleted by nobody: said, as it stays.
            taken_over = removal.not_told
    if taken_over:
        await runtime.events.info(body, reason=f"{kind}Kept", message=event_message(taken_over))
    left_to_it = takeovers.config_secret(body) if kind == "Device" else ""
    if left_to_it:
        # The config Secret the Device it took over from left to it, which it goes before
        # deleting (`renamed_configs.hand_over`): it goes with the device, or is said.
        reason, said = await renamed_configs.left_by_the_heir(
            nsf.fleet.devices.get(name), left_to_it, takeovers.source_name(body),
            ConfigSecrets(runtime.secrets, namespace,
                          named_by_another=_named_by_another(namespace, _indexes(kwargs))),
            removal.outcomes, objects.recorded_enapter_id(body), removal.heir,
        )
        if said:
            await runtime.events.info(body, reason=reason, message=event_message(said))
    if removal.left:
        await runtime.events.warn(body, reason="ZapNotRead", message=event_message(removal.left))
    if removal.unknown:
        await runtime.events.warn(
            body, reason="EnapterDeviceUnknown", message=event_message(removal.unknown)
        )
    if removal.secret_kept:
        await runtime.events.info(
            body, reason="ConfigSecretKept", message=event_message(removal.secret_kept)
        )
    for message in removal.left_copies:
        # Logged by this module, not kopf's object logger, which would post it again as an
        # Event of its own.
        logging.getLogger(__name__).warning("%s %s/%s: %s", kind, namespace, name, message)
        await runtime.events.warn(body, reason="CopyLeftOnZap", message=event_message(message))
    # Read once more as it goes, so that what is said to stay is there (`kept_reads`).
    kept = await kept_reads.said(
        settings,
        _locations_left(namespace, _indexes(kwargs), body),
        _site_left(namespace, _indexes(kwargs), body),
        runtime.host_waits,
    )
    for message in kept.locations:
        await runtime.events.info(
            body, reason=locations.KEPT_REASON, message=event_message(message)
        )
    for message in kept.sites:
        await runtime.events.info(
            body, reason=sites_kept.KEPT_REASON, message=event_message(message)
        )
    runtime.holds.release((namespace, kind, name))
    runtime.reported.forget((namespace, kind, name))
    runtime.not_before.pop((namespace, kind, name), None)
    runtime.applied.forget((namespace, name, str(kwargs["meta"].get("uid"))))
    kwargs["logger"].info(
        "%s/%s deleted (%s)",
        kind,
        name,
        "released" if removal.outcomes else "nothing outside touched",
    )


def _locations_left(
    namespace: str, indexes: Mapping[str, Any], body: kopf.Body
) -> list[FlatpeakLocation]:
    """The Flatpeak locations only the object being deleted remembers (`locations`): those
    being deleted with it do not keep them, or objects deleted together would each leave
    the saying to another."""
    own = (body.get("kind"), (body.get("metadata") or {}).get("name"))
    staying = [
        other
        for other in _namespace_bodies(namespace, indexes, body)
        if (other.get("kind"), (other.get("metadata") or {}).get("name")) != own
        and not objects.is_deleting(other)
    ]
    return locations.left_behind(body, staying)


def _site_left(
    namespace: str, indexes: Mapping[str, Any], body: kopf.Body
) -> sites_kept.KeptSite | None:
    """The Novacore site a Site being deleted leaves, when no other Site of any namespace
    served is applied to it (`sites_kept`): a site id names one site wherever it is
    declared. Sites being deleted with it do not keep it, as for Flatpeak locations."""
    if body.get("kind") != "Site":
        return None
    index = indexes.get(_index_id("Site")) or {}
    own = (namespace, (body.get("metadata") or {}).get("name"))
    staying = [
        other
        for other_namespace in index
        for other in index[other_namespace]
        if (other_namespace, other["metadata"]["name"]) != own and not objects.is_deleting(other)
    ]
    return sites_kept.left_behind(body, staying)


def register_login(registry: kopf.OperatorRegistry) -> None:
    """Authenticate as kopf does by default: the pod's service account in a cluster, else
    the kubeconfig (a registry of our own starts without kopf's default handlers)."""
    kopf.on.login(registry=registry, id="login")(kopf.login_via_client)


# How often kopf looks whether a deleted object's drift check has ended (`configure`).
DRIFT_EXIT_POLL = 1.0

# How long kopf waits for a drift check in flight to end once it stops it (`configure`),
# and how long a create, update or resume handler's reconcile is waited for, counted from
# the stop (`stopping`): on SIGTERM, the writes in flight land and nothing new starts,
# well within the 30 s a pod is given to stop (the chart sets no
# terminationGracePeriodSeconds: Kubernetes' default). A drift check still writing after
# that is left to kopf, which cancels it 5 s later, a handler's reconcile is cancelled
# then; the engine's journal keeps the write as interrupted for the next run.
DRIFT_STOP_WAIT = 20.0
# How often a drift check stopped for its object's deletion looks whether the operator
# stops too (`_stop_when_leaving`).
DRIFT_STOP_POLL = 0.5


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> watch_errors.Watches:
    """kopf settings: our finalizer name, events for info and above, a bounded watch, the
    shard selector applied by the API server, the peering priority, how soon a deleted
    object whose drift check was running goes, a failed watch listed again
    (`watch_errors`), and kopf's line for a handler waiting (for its object's lock, or for
    another object) said at INFO, as no Event (`wait_lines`). The record of the watches:
    its `stop` is kopf's `stop_flag` for a kind that keeps failing to stop the operator."""
    watch_errors.install()
    wait_lines.install()
    watches = watch_errors.track(settings, config.watch_failure_limit)
    settings.persistence.finalizer = FINALIZER
    # An object deleted while its drift check runs keeps its finalizer until the check
    # ends (it waits for the object's lock, or lands its writes), and kopf looks again only
    # this often, or at the object's next event: a check that finds its object going writes
    # nothing, so kopf's 60 s would hold every such deletion a minute longer.
    settings.background.cancellation_polling = DRIFT_EXIT_POLL
    # kopf gives a timer it stops a few loop cycles to end, and on the operator's exit (or
    # pause) leaves one still running orphaned at once, with a warning, and cancels it at
    # any await a few seconds later: a drift check writing would be cut mid-change. It is
    # waited for instead, as it winds down (`_stop_when_leaving`); a sleeping one ends at
    # once. A deleted object's check is waited for as long in its own worker, which its
    # finalizer did anyway, holding the object's lock.
    settings.background.instant_exit_timeout = DRIFT_STOP_WAIT
    if config.shard:
        # Filter on the server too, so a shard neither lists nor watches other shards' objects.
        # Every resource of the group: a lone string key is read as a resource's name.
        settings.watching.label_selectors[API_GROUP, kopf.EVERYTHING] = config.shard
    settings.peering.priority = config.priority
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.peering.mandatory = bool(config.peering)
    if config.peering:
        settings.peering.name = config.peering
    settings.peering.standalone = not config.peering
    return watches


def namespaces_of(config: OperatorConfig) -> Iterable[str]:
    return config.namespaces
