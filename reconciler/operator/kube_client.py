"""The official Kubernetes client's configuration, for what the operator writes and reads
itself, beside kopf (Secrets, status patches, annotations, Events at the stop): in-cluster
config in a pod, else KUBECONFIG, how long a request may take before it is given up, and
the API objects each writer makes at its first use (`LazyApi`)."""

from __future__ import annotations

import os
from typing import Any, Literal

# (connect, read) seconds for a request whose caller handles the API server not answering
# (urllib3's errors): without one, a server that drops packets holds the thread for
# minutes, and the operator's exit with it (`asyncio.run` waits for its threads).
REQUEST_TIMEOUT = (5.0, 30.0)
# A connection refused is tried once more at once (an API server restarting), and nothing
# else: urllib3's default (three retries, read timeouts of GETs and PUTs included) would
# have a server that takes requests and never answers hold a Secret's read for four
# timeouts, two minutes, while its callers try again later anyway.
CONNECT_RETRIES = 1


def load_config() -> None:
    """Configure the official client: the pod's ServiceAccount, else KUBECONFIG."""
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # The client reads $KUBECONFIG once at import; read it now instead.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    _limit_retries()


def _limit_retries() -> None:
    from kubernetes import client
    from urllib3.util.retry import Retry

    configuration = client.Configuration.get_default_copy()
    configuration.retries = Retry(
        total=CONNECT_RETRIES, connect=CONNECT_RETRIES, read=0, status=0, other=0,
        redirect=0, raise_on_status=False,
    )
    client.Configuration.set_default(configuration)


class LazyApi:
    """One of the official client's API objects, made at its first call, and the client
    configured then: an operator that never writes a Secret (or never stops) never loads
    a kubeconfig for it, and a writer made before KUBECONFIG is known reads the one set by
    the time it writes. Calling it gives the API object."""

    def __init__(self, kind: Literal["CoreV1Api", "CustomObjectsApi"]) -> None:
        self._kind = kind
        self._api: Any = None

    def __call__(self) -> Any:
        if self._api is None:
            from kubernetes import client

            load_config()
            self._api = getattr(client, self._kind)()
        return self._api
