"""The Events the handlers and drift checks post about our objects.

kopf queues an Event (`kopf.info`, `kopf.warn`) for a task of its own to post, and that
task is among the first its stop ends (SIGTERM): an Event queued after is dropped, said
nowhere. Yet a reconcile still writing then posts what it did and what it did not start
(`stopping`). `Events` posts through kopf until the operator stops, and from then on
writes each Event itself with the official client (in-cluster config, or KUBECONFIG), as
kopf would have; one the API server does not take is logged at WARNING, whole."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from reconciler.operator import kube_client

logger = logging.getLogger(__name__)

# As kopf's defaults name and sign its own Events (`settings.posting`): `kubectl describe`
# shows one source for all.
_POSTING = kopf.OperatorSettings().posting


class Events:
    """Post Events about an object: through kopf, or, once `stop` is set, directly."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._core = kube_client.LazyApi("CoreV1Api")

    async def info(self, body: kopf.Body, *, reason: str, message: str) -> None:
        await self.post(body, "Normal", reason, message)

    async def warn(self, body: kopf.Body, *, reason: str, message: str) -> None:
        await self.post(body, "Warning", reason, message)

    async def post(self, body: kopf.Body, type_: str, reason: str, message: str) -> None:
        if not self._stop.is_set():
            kopf.event(body, type=type_, reason=reason, message=message)
            return
        event = _event(kopf.build_object_reference(body), type_, reason, message)
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            await asyncio.to_thread(self._create, event)
        except ApiException as exc:
            why = f"HTTP {exc.status} {exc.reason or ''}".strip()
        except (HTTPError, OSError) as exc:  # the API server not reached
            why = type(exc).__name__
        else:
            return
        ref = event["involvedObject"]
        logger.warning(
            "%s/%s: Event not posted (%s): %s %s: %s",
            ref.get("kind"), ref.get("name"), why, type_, reason, message,
        )

    def _create(self, event: Mapping[str, Any]) -> None:
        namespace = event["metadata"]["namespace"]
        self._core().create_namespaced_event(
            namespace, dict(event), _request_timeout=kube_client.REQUEST_TIMEOUT
        )


def _event(
    ref: Mapping[str, Any], type_: str, reason: str, message: str
) -> dict[str, Any]:
    """The Event kopf would post (`kopf._cogs.clients.events.post_event`)."""
    namespace = ref.get("namespace") or "default"
    now = datetime.datetime.now(datetime.UTC).isoformat()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": namespace, "generateName": _POSTING.event_name_prefix},
        "action": "Action?",
        "type": type_,
        "reason": reason,
        "message": message,
        "reportingComponent": _POSTING.reporting_component,
        "reportingInstance": _POSTING.reporting_instance,
        "source": {"component": _POSTING.reporting_component},
        "involvedObject": {**ref, "namespace": namespace},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "eventTime": now,
    }
