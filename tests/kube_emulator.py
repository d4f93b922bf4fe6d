"""kmock's KubernetesEmulator as the operator's tests need it: objects created with
`generateName` (kopf's Events) get a name, as a real API server gives them, and every
resource kopf and the operator touch is registered (our four kinds with their status,
namespaces, events, Secrets, CRDs, and kopf's peering objects). Core paths that name the
namespaces themselves (`/api/v1/namespaces[/NAME]`) are parsed as the Namespace resource:
kmock 0.8 reads them as a namespace prefix with nothing after it, and fails with a 500,
which an operator serving some namespaces meets when it lists them. A PUT of a named object
replaces it, as the operator replaces a config Secret (kmock 0.8 serves no PUT)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import parsing

from reconciler.model.base import API_VERSION
from reconciler.model.schema import CRD_NAMES

VERBS = {"list", "watch", "get", "patch", "create", "delete", "update"}


class Emulator(kmock.KubernetesEmulator):
    """KubernetesEmulator that names objects created with `generateName`."""

    async def _handle(self, request: Any) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
        if request.method == kmock.method.PUT and request.resource and request.name:
            return await self._replace(request)
        return await super()._handle(request)

    async def _replace(self, request: Any) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
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
