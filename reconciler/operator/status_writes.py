"""The drift timers' status writes, made by the operator itself rather than by kopf.

kopf applies the patch a timer leaves after each run, and when the API server refuses it
(a 409 Conflict, or a 5xx past kopf's own retries) the exception ends the timer: that
object is never checked for drift again while the process runs. So a drift check writes
its status here, as a merge patch of the status subresource, and a refused write is
logged (kind, name, HTTP status) and made again, whole, at the next drift check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from reconciler.operator import kube_client, objects


class KubeStatus:
    """Patches our objects' status with the official client (in-cluster config, or
    KUBECONFIG)."""

    def __init__(self) -> None:
        self._api: object | None = None

    def _custom(self) -> object:
        if self._api is None:
            from kubernetes import client

            kube_client.load_config()
            self._api = client.CustomObjectsApi()
        return self._api

    def _patch(self, namespace: str, kind: str, name: str, status: Mapping[str, Any]) -> None:
        group, version, plural = objects.resource_ref(kind)
        self._custom().patch_namespaced_custom_object_status(  # type: ignore[attr-defined]
            group, version, namespace, plural, name, {"status": dict(status)},
            _content_type="application/merge-patch+json",
            _request_timeout=kube_client.REQUEST_TIMEOUT,
        )

    async def write(
        self,
        namespace: str,
        kind: str,
        name: str,
        status: Mapping[str, Any] | None,
        logger: logging.Logger | logging.LoggerAdapter[Any],
    ) -> bool:
        """Patch the object's status with `status` (nothing when empty); False, with a
        warning, when the API server refused it or could not be reached."""
        if not status:
            return True
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            await asyncio.to_thread(self._patch, namespace, kind, name, status)
        except ApiException as exc:
            why = f"HTTP {exc.status} {exc.reason or ''}".strip()
        except (HTTPError, OSError) as exc:  # the API server not reached
            why = type(exc).__name__
        else:
            return True
        logger.warning(
            "%s/%s: status not written (%s); written again at the next drift check",
            kind, name, why,
        )
        return False

