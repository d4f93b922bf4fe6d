"""Telling the new name of a renamed Device or Gateway, or another object refused for
what one being deleted declared, that it takes over now.

Argo CD and Flux apply a renamed object before they prune the old one, so the new one is
reconciled first while the old one still declares the same device or gateway: it is
refused (`InvalidSpec`, a clash), which kopf does not run again for until the object
changes, and the old one's deletion is no change of it. Left so, it would take over only
at its next drift check (`RECONCILER_OPERATOR_INTERVAL`, 5 minutes by default).

So the old one's finalizer, leaving what it declares to the new one (`plan.taken_over`),
writes an annotation on it naming itself (`energy.reconciler.dev/takes-over-from:
Device/old-name`). Annotations are part of what kopf compares, so the new one's update
handler runs at once: it waits while the old one is still being deleted
(`WaitingForDependency`, retried) and takes over once it is gone. So does one that is not
refused (an Enapter device's new name, reconciled already while the old one was there):
its run for the annotation plans nothing while the view it would plan with (kopf's
indexes, as the run begins) has the old one still being deleted (`leaving`), and is run
again; as does one created or edited while the old one is being deleted, not told yet
(`removal.taken_over_from`), whose writes would cross the release's. The drift checks
of such an heir plan nothing either while the old one's release has not ended (its
finalizer on it: `objects.is_releasing`); held after that by another controller's
finalizer, the old one writes nothing more, and the checks reconcile the heir meanwhile
(its handler's run, which the hand-over needs, waits for it to be gone). Planned with the
old one still declaring its config file, the run would leave the file (a file a declared
Device names is not removed), and, the old one gone from the indexes by the run's end,
remove the annotation all the same: the file would stay until the next drift check, not
go with the takeover as the old one's `DeviceKept` says. A merge patch of the metadata
alone: the spec, its generation and the status are untouched, and GitOps tools leave
alone an annotation their manifests do not set. A write the API server refuses is
logged, and the drift check takes over instead.

So is every other object refused only for declaring what the old one declared
(`NamespaceFleet.freed_by`): a Device at its Zap endpoint (the device that replaced it
there, its new Device applied before the old one is pruned), or naming its configOutput.
Annotated as the old one goes, whatever its deletionPolicy, it is reconciled then, not
at its next drift check.

Once the heir's handler has reconciled it with the old one gone (`stale`), and is done
(not to be retried), the annotation has done its work: that run's patch removes it
(`clear`), so that `kubectl get -o yaml` and a GitOps diff show nothing stale. Not
while the handler is retried: the essence kopf compares would be the one it handled
last again, and kopf would drop the retry. Its removal is a change of the annotations
kopf compares, and kopf runs the update handler for it: a change of nothing else
(`only_cleared`) is no change to reconcile, and that run returns at once, planning
nothing and writing nothing.

A renamed Device whose config Secret the heir does not name, and whose config the heir
has not written yet, leaves that Secret to it (`renamed_configs`): the same patch names
it (`energy.reconciler.dev/takes-over-config-secret: SECRET`), and the heir's run that
removes both annotations first deletes it, once its own config is written
(`renamed_configs.hand_over`), so that the config is never in neither place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, MutableMapping
from typing import Any

from reconciler.model.base import API_GROUP
from reconciler.model.kinds import KINDS
from reconciler.operator import kube_client, objects

TAKES_OVER_ANNOTATION = f"{API_GROUP}/takes-over-from"
# The config Secret a renamed Device wrote that the heir deletes once it has written its
# own config (`renamed_configs.hand_over`), written with the annotation above.
CONFIG_SECRET_ANNOTATION = f"{API_GROUP}/takes-over-config-secret"
_ANNOTATIONS = (TAKES_OVER_ANNOTATION, CONFIG_SECRET_ANNOTATION)


class KubeTakeovers:
    """Writes the annotation with the official client (in-cluster config, or KUBECONFIG)."""

    def __init__(self) -> None:
        self._custom = kube_client.LazyApi("CustomObjectsApi")

    def _annotate(
        self, namespace: str, kind: str, heir: str, old: str, config_secret: str
    ) -> None:
        group, version, plural = objects.resource_ref(kind)
        annotations = {TAKES_OVER_ANNOTATION: f"{kind}/{old}"}
        if config_secret:
            annotations[CONFIG_SECRET_ANNOTATION] = config_secret
        self._custom().patch_namespaced_custom_object(
            group, version, namespace, plural, heir,
            {"metadata": {"annotations": annotations}},
            _content_type="application/merge-patch+json",
            _request_timeout=kube_client.REQUEST_TIMEOUT,
        )

    async def announce(
        self,
        namespace: str,
        kind: str,
        heir: str,
        old: str,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        config_secret: str = "",
    ) -> bool:
        """Annotate `heir` (of `kind`, in `namespace`) as taking over from `old`, and as
        deleting `old`'s config Secret `config_secret` ("": none) once its own config is
        written; False, with a warning, when the API server refused it or could not be
        reached."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            await asyncio.to_thread(
                self._annotate, namespace, kind, heir, old, config_secret)
        except ApiException as exc:
            why = f"HTTP {exc.status} {exc.reason or ''}".strip()
        except (HTTPError, OSError) as exc:  # the API server not reached
            why = type(exc).__name__
        else:
            return True
        logger.warning(
            "%s/%s: not told that it takes over from %s/%s (%s); it does at its next drift "
            "check", kind, heir, kind, old, why,
        )
        return False

    def _read(self, namespace: str, name: str) -> Any:
        group, version, plural = objects.resource_ref("Device")
        return self._custom().get_namespaced_custom_object(
            group, version, namespace, plural, name,
            _request_timeout=kube_client.REQUEST_TIMEOUT,
        )

    async def config_secret_now(self, namespace: str, heir: str) -> str | None:
        """The config Secret Device `heir` names as the API server has it now ("" when
        it names none, or is gone); None when it cannot be read. An edit made while the
        heir's own handler runs reaches neither kopf's body nor the indexes before the
        handler ends: only a read sees it (`renamed_configs.hand_over`)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            body = await asyncio.to_thread(self._read, namespace, heir)
        except ApiException as exc:
            return "" if exc.status == 404 else None
        except (HTTPError, OSError):  # the API server not reached
            return None
        return (objects.config_secret(body) or "") if isinstance(body, Mapping) else None


def source(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """The kind and name of the object `body` takes over from, as its annotation says;
    None when it has none, or one that names no object of our kinds."""
    value = objects.annotations_of(body).get(TAKES_OVER_ANNOTATION)
    if not isinstance(value, str):
        return None
    kind, _, name = value.partition("/")
    return (kind, name) if kind in KINDS and name else None


def source_name(body: Mapping[str, Any]) -> str:
    """The name of the object `body` takes over from (`source`); "" when none."""
    named = source(body)
    return named[1] if named else ""


def config_secret(body: Mapping[str, Any]) -> str:
    """The config Secret `body` is to delete once its own config is written, as its
    annotation says; "" when it has none."""
    value = objects.annotations_of(body).get(CONFIG_SECRET_ANNOTATION)
    return value if isinstance(value, str) else ""


def stale(body: Mapping[str, Any], deleting: Callable[[str, str], bool]) -> bool:
    """Whether `body` carries the annotation and it has no more work to do: the object it
    names is not being deleted (`deleting(kind, name)`, as the indexes have it) any more.
    One gone, or there again as another object (created anew under its name), leaves
    nothing to wait for; nor does a value that names no object of our kinds."""
    if not _annotated(body):
        return False
    named = source(body)
    return named is None or not deleting(*named)


def leaving(
    body: Mapping[str, Any], deleting: Collection[tuple[str, str]]
) -> tuple[str, str] | None:
    """The kind and name of the object `body` takes over from, when it is among `deleting`
    (the objects being deleted in the view a run plans with): that run is to wait for it to
    be gone (see the module); None when there is nothing to wait for."""
    named = source(body)
    return named if named is not None and named in deleting else None


def waiting_message(kind: str, name: str) -> str:
    """What a run that waits for `kind`/`name` to be gone (`leaving`) says: a wait, which
    kopf's line of its retry says at INFO (`wait_lines`)."""
    return (f"waiting: {kind} {name!r} is being deleted: this one takes over from it once "
            "it is gone")


def clear(patch: MutableMapping[str, Any]) -> None:
    """Remove the annotations with `patch` (kopf's, a merge patch: null deletes a key)."""
    metadata = patch.setdefault("metadata", {})
    for key in _ANNOTATIONS:
        metadata.setdefault("annotations", {})[key] = None


def only_cleared(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Whether kopf's essence `new` is `old` with the annotation removed, and nothing else
    changed: the update that `clear` made, which has nothing to reconcile."""
    if old is None or new is None or not _annotated(old) or _annotated(new):
        return False
    return _without_annotation(old) == _without_annotation(new)


def _annotated(body: Mapping[str, Any]) -> bool:
    annotations = objects.annotations_of(body)
    return any(key in annotations for key in _ANNOTATIONS)


def _without_annotation(essence: Mapping[str, Any]) -> dict[str, Any]:
    """`essence` without the annotation, and without the stanzas left empty by its removal
    (kopf drops empty `metadata.annotations` and `metadata` from an essence)."""
    stripped = {key: value for key, value in essence.items() if key != "metadata"}
    metadata = dict(essence.get("metadata") or {})
    annotations = {
        key: value for key, value in (metadata.get("annotations") or {}).items()
        if key not in _ANNOTATIONS
    }
    metadata.pop("annotations", None)
    if annotations:
        metadata["annotations"] = annotations
    if metadata:
        stripped["metadata"] = metadata
    return stripped
