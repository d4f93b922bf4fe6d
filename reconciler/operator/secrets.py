"""Secrets for the operator, in the object's namespace: it reads MQTT passwords named by
`passwordFrom.secretKeyRef`, and writes the Enapter communication configs that
`enapter.configOutput.secretName` asks for, labelled as ours and annotated with the Device
and the Enapter device whose config they hold (never over a Secret someone else wrote). Once
that Enapter device is deleted (`deletionPolicy: Release`), it deletes the Secret, only if it
wrote it for that device (for that Device, or for one that left the device to it: a
rename, `plan.taken_over`), and no other Device names it now; so it does, as a renamed
Device goes, with one the new name does not name (`renamed_configs`).
Values are held in memory for one reconcile only; they never reach status, events or logs.

`passwordFrom.env` reads the operator pod's environment, shared by every namespace served
and holding the cloud tokens, so only the variables the installer listed
(RECONCILER_OPERATOR_PASSWORD_ENV, `operator.config`) are read; any other name is refused
before the environment is looked at, so a refusal does not even tell whether it is set."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any

from reconciler.engine.config import SecretResolver
from reconciler.engine.enapter import StoredSecret
from reconciler.errors import ProviderRejected, ProviderUnavailable
from reconciler.model.base import API_GROUP
from reconciler.model.device import Device, SecretSource
from reconciler.model.fleet import Fleet
from reconciler.operator import kube_client

_log = logging.getLogger(__name__)


class KubeSecrets:
    """Reads Secrets with the official client (in-cluster config, or KUBECONFIG)."""

    def __init__(self) -> None:
        self._core = kube_client.LazyApi("CoreV1Api")

    def _read(self, namespace: str, name: str) -> dict[str, str]:
        secret = self._get(namespace, name, missing_ok=False)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def _get(self, namespace: str, name: str, *, missing_ok: bool) -> Any:
        """The Secret, or None when it does not exist and `missing_ok`; a KeyError saying
        why when it cannot be read (refused, or the API server not answering within
        `kube_client.REQUEST_TIMEOUT`)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return self._core().read_namespaced_secret(
                name, namespace, _request_timeout=kube_client.REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            if exc.status == 404:
                raise KeyError(f"secret {namespace}/{name} does not exist") from None
            raise KeyError(
                f"secret {namespace}/{name} cannot be read (HTTP {exc.status})"
            ) from None
        except (HTTPError, OSError) as exc:
            raise KeyError(
                f"secret {namespace}/{name} cannot be read (the API server did not answer: "
                f"{type(exc).__name__})"
            ) from None

    async def read(self, namespace: str, name: str) -> dict[str, str]:
        return await asyncio.to_thread(self._read, namespace, name)

    def _find(self, namespace: str, name: str) -> StoredSecret:
        """What the Secret's metadata says of it: whether it exists, whether we wrote it,
        and for which Enapter device."""
        secret = self._get(namespace, name, missing_ok=True)
        if secret is None:
            return StoredSecret(present=False)
        labels = secret.metadata.labels or {}
        if any(labels.get(k) != v for k, v in MANAGED_LABELS.items()):
            return StoredSecret(present=True, foreign=True)
        annotations = secret.metadata.annotations or {}
        return StoredSecret(
            present=True,
            written_for=annotations.get(ENAPTER_DEVICE_ANNOTATION),
            device=annotations.get(DEVICE_ANNOTATION),
        )

    def _delete(self, namespace: str, name: str, device_id: str) -> str | None:
        """Delete Secret `name` if we wrote it for Enapter device `device_id`, whichever
        Device it was written for; what happened, or None when it is not there. Deleted only as read
        (its uid and resourceVersion as preconditions): one written over since, perhaps
        for another device, is read again by the retry (ProviderUnavailable)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        where = f"Secret {name}"
        try:
            secret = self._get(namespace, name, missing_ok=True)
        except KeyError as exc:
            raise ProviderUnavailable(f"{exc.args[0]}; not deleted") from None
        if secret is None:
            return None
        labels = secret.metadata.labels or {}
        if any(labels.get(k) != v for k, v in MANAGED_LABELS.items()):
            return f"kept {where}: it was not written by the reconciler"
        annotations = secret.metadata.annotations or {}
        # The Enapter device's id alone decides: the Device the Secret was written for may
        # be another, which left the device to this one (a rename, `plan.taken_over`), and
        # the credentials it holds die with the device all the same.
        if annotations.get(ENAPTER_DEVICE_ANNOTATION) != device_id:
            return f"kept {where}: it holds the config of another device"
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(
            uid=secret.metadata.uid, resource_version=secret.metadata.resource_version))
        try:
            self._core().delete_namespaced_secret(
                name, namespace, body=options, _request_timeout=kube_client.REQUEST_TIMEOUT
            )
        except (HTTPError, OSError) as exc:
            raise ProviderUnavailable(
                f"secret {namespace}/{name}: the API server did not answer its delete "
                f"({type(exc).__name__})"
            ) from None
        except ApiException as exc:
            if exc.status == 404:
                return f"{where} is gone already"
            raise _delete_refused(namespace, name, exc.status) from None
        return f"deleted {where}"

    def _write(
        self, namespace: str, name: str, data: Mapping[str, str], device: str, device_id: str
    ) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        annotations = {DEVICE_ANNOTATION: device, ENAPTER_DEVICE_ANNOTATION: device_id}
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name, namespace=namespace, labels=MANAGED_LABELS, annotations=annotations
            ),
            type="Opaque",
            string_data=dict(data),
        )
        core = self._core()
        found = self._find(namespace, name)
        if found.foreign:
            # Created by someone else since the plan looked: it may hold their credentials.
            raise ProviderRejected(
                f"secret {namespace}/{name} was not written by the reconciler (it has no "
                "label app.kubernetes.io/managed-by=energy-reconciler) and is not written "
                "over: delete it, or name another Secret in configOutput.secretName"
            )
        try:
            if found.present:
                core.replace_namespaced_secret(
                    name, namespace, body, _request_timeout=kube_client.REQUEST_TIMEOUT
                )
            else:
                core.create_namespaced_secret(
                    namespace, body, _request_timeout=kube_client.REQUEST_TIMEOUT
                )
        except (HTTPError, OSError) as exc:
            # Sent, perhaps written: tried again, as any write whose answer was lost.
            raise ProviderUnavailable(
                f"secret {namespace}/{name}: the API server did not answer its write "
                f"({type(exc).__name__})"
            ) from None
        except ApiException as exc:
            raise _write_refused(namespace, name, exc.status) from None


def _write_refused(namespace: str, name: str, status: int | None) -> Exception:
    """The error for a Secret write the API server answered with an error, by its status
    alone: an API error body may echo the request, which holds keys."""
    where = f"secret {namespace}/{name}"
    if status in (404, 409):
        # Created, replaced or deleted by someone else between the read and the write:
        # tried again, it is read anew (and not written over if it is not ours).
        return ProviderUnavailable(
            f"{where} changed between its read and its write (HTTP {status})")
    if status == 429 or (status or 0) >= 500:
        return ProviderUnavailable(f"{where} was not written: the API server answered "
                                   f"HTTP {status}")
    if status == 403:
        return ProviderRejected(f"{where} cannot be written (HTTP 403, forbidden): the "
                                "chart grants it with rbac.writeConfigSecrets")
    return ProviderRejected(f"{where} cannot be written: the API server refused it (HTTP "
                            f"{status})")


def _delete_refused(namespace: str, name: str, status: int | None) -> Exception:
    """The error for a Secret delete the API server answered with an error (its status
    alone, as `_write_refused`)."""
    where = f"secret {namespace}/{name}"
    if status == 409 or status == 429 or (status or 0) >= 500:
        # 409: written over between its read and its delete; read again, it may be ours no
        # more (a precondition of the delete).
        return ProviderUnavailable(f"{where} was not deleted: the API server answered "
                                   f"HTTP {status}")
    # Only a release deletes one, and its finalizer stays until an attempt has (or finds
    # it gone): the next attempts try again (`operator.left_secrets`).
    if status == 403:
        return ProviderRejected(f"{where} holds the credentials of the deleted device and "
                                "cannot be deleted (HTTP 403, forbidden): the chart grants it "
                                "with rbac.writeConfigSecrets; the release's next attempt "
                                "after that deletes it (or delete it yourself)")
    return ProviderRejected(f"{where} cannot be deleted: the API server refused it (HTTP "
                            f"{status}); the release's next attempt tries again (or delete "
                            "it yourself)")


# Every config Secret the operator writes carries this label: a Secret without it is
# someone else's, and is not written over.
MANAGED_LABELS = {"app.kubernetes.io/managed-by": "energy-reconciler"}
# Whose config a Secret holds: the Device, and the Enapter device the config is of (a
# Secret written for another one holds no config of this device; `plan.enapter_configs`).
DEVICE_ANNOTATION = f"{API_GROUP}/device"
ENAPTER_DEVICE_ANNOTATION = f"{API_GROUP}/enapter-device-id"


class ConfigSecrets:
    """The engine's ConfigSecretStore for one namespace: Enapter configs as Secrets.

    `still_names(device, secret)`: whether that Device names that Secret now (its newest
    spec). A reconcile begun before its Device named another Secret (a drift check, which
    an edit does not wait for) would write the old one, which another Device may have
    taken and written since: the engine asks before it generates a config, and `write`
    asks again right before the Secret is written; the old Secret is left as it is, and
    the config to the reconcile of the newest spec.

    `named_by_another(device, secret)`: whether a Device other than that one names that
    Secret now; `remove` leaves such a Secret alone, as that Device's to write."""

    def __init__(
        self,
        secrets: KubeSecrets,
        namespace: str,
        still_names: Callable[[str, str], bool] | None = None,
        named_by_another: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.secrets = secrets
        self.namespace = namespace
        self._still_names = still_names
        self._named_by_another = named_by_another

    def names(self, device: Device, name: str) -> bool:
        return self._still_names is None or self._still_names(device.name, name)

    async def find(self, device: Device, name: str) -> StoredSecret:
        return await asyncio.to_thread(self.secrets._find, self.namespace, name)

    async def write(
        self, device: Device, name: str, data: Mapping[str, str], device_id: str
    ) -> bool:
        if not self.names(device, name):
            _log.info(
                "Device %s/%s: config not written to Secret %s: the Device names it no more "
                "(edited, deleted or created again); the reconcile of its newest spec writes "
                "its config where that spec says",
                self.namespace, device.name, name,
            )
            return False
        await asyncio.to_thread(
            self.secrets._write, self.namespace, name, data, device.name, device_id
        )
        return True

    async def remove(self, device: Device, name: str, device_id: str) -> str | None:
        if self._named_by_another is not None and self._named_by_another(device.name, name):
            return f"kept Secret {name}: another Device names it now"
        return await asyncio.to_thread(
            self.secrets._delete, self.namespace, name, device_id
        )


ENV_FIELD = "spec.connection.mqtt.passwordFrom.env"


def env_not_allowed(name: str, allowed: Collection[str]) -> str:
    """Why the operator does not read `name` (the same whether or not it is set)."""
    listed = ", ".join(sorted(allowed)) if allowed else "none is listed"
    return (
        f"{ENV_FIELD} names {name}, which this operator does not read: it reads only the "
        f"environment variables listed in RECONCILER_OPERATOR_PASSWORD_ENV (the chart's "
        f"`passwordEnv`; {listed}); reference a Secret of this namespace with "
        "`passwordFrom.secretKeyRef` instead, or have the operator's installer list it"
    )


class PreloadedSecrets(SecretResolver):
    """A SecretResolver over values read ahead (the executors resolve synchronously), and
    over the allowed variables of the operator's environment."""

    def __init__(
        self,
        values: Mapping[tuple[str, str], str],
        errors: Mapping[str, str],
        password_env: Collection[str] = (),
    ) -> None:
        # Only the allowed variables are held: nothing else of the environment is reachable.
        allowed = {n: os.environ[n] for n in password_env if n in os.environ}
        super().__init__(secrets_dir="/nonexistent", environ=allowed)
        self.password_env = frozenset(password_env)
        self.values = dict(values)
        self.errors = dict(errors)

    def resolve(self, source: SecretSource) -> str:
        ref = source.secret_key_ref
        if ref is None:
            if source.env not in self.password_env:
                raise KeyError(env_not_allowed(str(source.env), self.password_env))
            return super().resolve(source)
        if (ref.name, ref.key) in self.values:
            if not (value := self.values[(ref.name, ref.key)]):
                # As the CLI's empty secret file: sent, it would replace the password.
                raise KeyError(f"secret {ref.name} key {ref.key!r} is empty; expected the "
                               "password in it")
            return value
        raise KeyError(self.errors.get(ref.name, f"secret {ref.name} has no key {ref.key!r}"))


async def preload(
    reader: KubeSecrets, namespace: str, fleet: Fleet, password_env: Collection[str] = ()
) -> PreloadedSecrets:
    """Read every Secret the fleet's devices reference; of the environment, only the
    variables in `password_env` can be resolved."""
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
    return PreloadedSecrets(values, errors, password_env)
