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
(`WaitingForDependency`, retried) and takes over once it is gone. A merge patch of the
metadata alone: the spec, its generation and the status are untouched, and GitOps tools
leave alone an annotation their manifests do not set. A write the API server refuses is
logged, and the drift check takes over instead.

So is every other object refused only for declaring what the old one declared
(`NamespaceFleet.freed_by`): a Device at its Zap endpoint (the device that replaced it
there, its new Device applied before the old one is pruned), or naming its configOutput.
Annotated as the old one goes, whatever its deletionPolicy, it is reconciled then, not
at its next drift check."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from reconciler.model.base import API_GROUP
from reconciler.operator import kube_client, objects

TAKES_OVER_ANNOTATION = f"{API_GROUP}/takes-over-from"


class KubeTakeovers:
    """Writes the annotation with the official client (in-cluster config, or KUBECONFIG)."""

    def __init__(self) -> None:
        self._custom = kube_client.LazyApi("CustomObjectsApi")

    def _annotate(self, namespace: str, kind: str, heir: str, old: str) -> None:
        group, version, plural = objects.resource_ref(kind)
        self._custom().patch_namespaced_custom_object(
            group, version, namespace, plural, heir,
            {"metadata": {"annotations": {TAKES_OVER_ANNOTATION: f"{kind}/{old}"}}},
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
    ) -> bool:
        """Annotate `heir` (of `kind`, in `namespace`) as taking over from `old`; False,
        with a warning, when the API server refused it or could not be reached."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            await asyncio.to_thread(self._annotate, namespace, kind, heir, old)
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
