"""Secrets for the operator, in the object's namespace: it reads MQTT passwords named by
`passwordFrom.secretKeyRef`, and writes the Enapter communication configs that
`enapter.configOutput.secretName` asks for. Values are held in memory for one reconcile
only; they never reach status, events or logs."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Mapping

from reconciler.engine.config import SecretResolver
from reconciler.errors import ProviderRejected
from reconciler.model.device import Device, SecretSource
from reconciler.model.fleet import Fleet


class KubeSecrets:
    """Reads Secrets with the official client (in-cluster config, or KUBECONFIG)."""

    def __init__(self) -> None:
        self._api: object | None = None

    def _core(self) -> object:
        if self._api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                # The client reads $KUBECONFIG once at import; read it now instead.
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
            self._api = client.CoreV1Api()
        return self._api

    def _read(self, namespace: str, name: str) -> dict[str, str]:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self._core().read_namespaced_secret(name, namespace)  # type: ignore[attr-defined]
        except ApiException as exc:
            raise KeyError(
                f"secret {namespace}/{name} cannot be read (HTTP {exc.status})"
            ) from None
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    async def read(self, namespace: str, name: str) -> dict[str, str]:
        return await asyncio.to_thread(self._read, namespace, name)

    def _exists(self, namespace: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self._core().read_namespaced_secret(name, namespace)  # type: ignore[attr-defined]
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise KeyError(
                f"secret {namespace}/{name} cannot be read (HTTP {exc.status})"
            ) from None
        return True

    def _write(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=MANAGED_LABELS),
            type="Opaque",
            string_data=dict(data),
        )
        core = self._core()
        try:
            if self._exists(namespace, name):
                core.replace_namespaced_secret(name, namespace, body)  # type: ignore[attr-defined]
            else:
                core.create_namespaced_secret(namespace, body)  # type: ignore[attr-defined]
        except ApiException as exc:
            # The status alone: an API error body may echo the request, which holds keys.
            raise ProviderRejected(
                f"secret {namespace}/{name} cannot be written (HTTP "
                f"{exc.status}); the chart grants it with "
                "rbac.writeConfigSecrets"
            ) from None


MANAGED_LABELS = {"app.kubernetes.io/managed-by": "energy-reconciler"}


class ConfigSecrets:
    """The engine's ConfigSecretStore for one namespace: Enapter configs as Secrets."""

    def __init__(self, secrets: KubeSecrets, namespace: str) -> None:
        self.secrets = secrets
        self.namespace = namespace

    async def exists(self, device: Device, name: str) -> bool:
        return await asyncio.to_thread(self.secrets._exists, self.namespace, name)

    async def write(self, device: Device, name: str, data: Mapping[str, str]) -> None:
        await asyncio.to_thread(self.secrets._write, self.namespace, name, data)


class PreloadedSecrets(SecretResolver):
    """A SecretResolver over values read ahead (the executors resolve synchronously)."""

    def __init__(self, values: Mapping[tuple[str, str], str], errors: Mapping[str, str]) -> None:
        super().__init__(secrets_dir="/nonexistent", environ=os.environ)
        self.values = dict(values)
        self.errors = dict(errors)

    def resolve(self, source: SecretSource) -> str:
        ref = source.secret_key_ref
        if ref is None:
            return super().resolve(source)
        if (ref.name, ref.key) in self.values:
            return self.values[(ref.name, ref.key)]
        raise KeyError(self.errors.get(ref.name, f"secret {ref.name} has no key {ref.key!r}"))


async def preload(reader: KubeSecrets, namespace: str, fleet: Fleet) -> PreloadedSecrets:
    """Read every Secret the fleet's devices reference."""
    wanted: set[tuple[str, str]] = set()
    for device in fleet.devices.values():
        mqtt = device.spec.connection.mqtt if device.spec.connection else None
        ref = mqtt.password_from.secret_key_ref if mqtt and mqtt.password_from else None
        if ref is not None:
            wanted.add((ref.name, ref.key))
    values: dict[tuple[str, str], str] = {}
    errors: dict[str, str] = {}
    for name in sorted({n for n, _ in wanted}):
        try:
            data = await reader.read(namespace, name)
        except KeyError as exc:
            errors[name] = str(exc.args[0])
            continue
        for secret_name, key in wanted:
            if secret_name == name and key in data:
                values[(name, key)] = data[key]
    return PreloadedSecrets(values, errors)
