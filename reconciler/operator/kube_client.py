"""The official Kubernetes client's configuration, for what the operator writes and reads
itself, beside kopf (Secrets, status patches, Events at the stop): in-cluster config in a
pod, else KUBECONFIG."""

from __future__ import annotations

import os

# (connect, read) seconds for a request whose caller handles the API server not answering
# (urllib3's errors): without one, a server that drops packets holds the thread for
# minutes, and the operator's exit with it (`asyncio.run` waits for its threads).
REQUEST_TIMEOUT = (5.0, 30.0)


def load_config() -> None:
    """Configure the official client: the pod's ServiceAccount, else KUBECONFIG."""
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # The client reads $KUBECONFIG once at import; read it now instead.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
