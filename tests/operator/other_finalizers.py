"""An object deleted but kept by another controller's finalizer once the operator's own has
done its work: being deleted (a `deletionTimestamp`), with nothing more of it released."""

from __future__ import annotations

from harness import Cluster

# The finalizer of the other controller.
HOLD = "example.com/hold"


async def deleted_and_held(cluster: Cluster, kind: str, name: str) -> None:
    """Give the object the other controller's finalizer, delete it, and wait until the
    operator's finalizer has gone from it (its release has ended) and the other's is left."""
    body = await cluster.get(kind, name)
    assert body is not None, f"{kind}/{name} not there"
    finalizers = [*body["metadata"]["finalizers"], HOLD]
    await cluster.patch(kind, name, {"metadata": {"finalizers": finalizers}})
    await cluster.delete(kind, name)

    async def only_held() -> bool:
        now = await cluster.get(kind, name)
        return now is not None and now["metadata"]["finalizers"] == [HOLD]

    await cluster.wait_for(only_held, what=f"the operator's finalizer of {kind}/{name} to go")


async def let_go(cluster: Cluster, kind: str, name: str) -> None:
    """The other controller's finalizer removed: the object goes."""
    await cluster.patch(kind, name, {"metadata": {"finalizers": []}})
    await cluster.wait_gone(kind, name, timeout=60)
