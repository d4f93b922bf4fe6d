"""The drift timers' status writes, made by the operator itself rather than by kopf.

kopf applies the patch a timer leaves after each run, and when the API server refuses it
(a 409 Conflict, or a 5xx past kopf's own retries) the exception ends the timer: that
object is never checked for drift again while the process runs. So a drift check writes
its status here, as a merge patch of the status subresource, and a refused write is
logged (kind, name, HTTP status) and made again, whole, at the next drift check.

The write lands after the check let its object's lock go (`owner_locks`): the reconcile of
an edit may plan, apply and write its status in between. So it is made only if the status
does not say a newer generation already, with the object's resourceVersion as a
precondition, read again when something else wrote first: a late write never puts an older
generation (and its lastValidSpec) back over the status of a newer one. The same holds for
a check of another replica, which no lock of this process orders."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from reconciler.operator import kube_client, objects

# How many times the status is read again when another write came between the read and the
# patch (409 Conflict): another refusal is logged, and the next drift check writes anyway.
CONFLICT_ATTEMPTS = 3


class KubeStatus:
    """Patches our objects' status with the official client (in-cluster config, or
    KUBECONFIG)."""

    def __init__(self) -> None:
        self._custom = kube_client.LazyApi("CustomObjectsApi")

    def _patch(
        self, namespace: str, kind: str, name: str, status: Mapping[str, Any],
        generation: int | None,
    ) -> int | None:
        """Patch the status unless it says a generation newer than `generation`: then that
        generation, and nothing is written."""
        from kubernetes.client.exceptions import ApiException

        group, version, plural = objects.resource_ref(kind)
        api: Any = self._custom()
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            current = api.get_namespaced_custom_object_status(
                group, version, namespace, plural, name,
                _request_timeout=kube_client.REQUEST_TIMEOUT,
            )
            said = (current.get("status") or {}).get("observedGeneration")
            if generation is not None and isinstance(said, int) and said > generation:
                return said
            meta = current.get("metadata") or {}
            # The precondition: refused (409) if anything was written since the read.
            precondition = {"resourceVersion": meta["resourceVersion"]} if meta.get(
                "resourceVersion") else {}
            try:
                api.patch_namespaced_custom_object_status(
                    group, version, namespace, plural, name,
                    {"metadata": precondition, "status": dict(status)},
                    _content_type="application/merge-patch+json",
                    _request_timeout=kube_client.REQUEST_TIMEOUT,
                )
            except ApiException as exc:
                if exc.status != 409 or attempt == CONFLICT_ATTEMPTS:
                    raise
            else:
                return None
        return None  # pragma: no cover - the last attempt returns or raises

    async def write(
        self,
        namespace: str,
        kind: str,
        name: str,
        status: Mapping[str, Any] | None,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        generation: int | None = None,
    ) -> bool:
        """Patch the object's status with `status`, of the spec of `generation` (nothing
        when empty, or when the status says a newer generation already); False, with a
        warning, when the API server refused it or could not be reached."""
        if not status:
            return True
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            newer = await asyncio.to_thread(
                self._patch, namespace, kind, name, status, generation
            )
        except ApiException as exc:
            why = f"HTTP {exc.status} {exc.reason or ''}".strip()
        except (HTTPError, OSError) as exc:  # the API server not reached
            why = type(exc).__name__
        else:
            if newer is not None:
                logger.info(
                    "%s/%s: status of generation %s not written: it says generation %s already",
                    kind, name, generation, newer,
                )
            return True
        logger.warning(
            "%s/%s: status not written (%s); written again at the next drift check",
            kind, name, why,
        )
        return False

