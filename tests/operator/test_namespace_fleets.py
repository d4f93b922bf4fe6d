"""A reconcile's fleet of its namespace is kept while kopf's indexes hold the same
documents (`operator.namespace_fleets`), and built again as soon as one object is added,
edited or removed: with kopf's own indexers, filled as its watch fills them. That the
operator's handlers plan with a fleet an edit of another object shows is tested end to
end too (`test_operator_config_output`: a DER's reconcile sees its Device's edit)."""

from __future__ import annotations

import copy
from typing import Any

from harness import NAMESPACE, documents
from kopf._core.engines.indexing import OperatorIndexer
from objects import HOME

from reconciler.model.kinds import KINDS
from reconciler.operator import handlers, objects
from reconciler.operator.config import OperatorConfig


class _Namespace:
    """kopf's indexes of our four kinds, filled with HOME's objects, and a Runtime."""

    def __init__(self) -> None:
        self.indexers = {handlers._index_id(kind): OperatorIndexer() for kind in KINDS}
        self.bodies: dict[str, dict[str, Any]] = {}
        for n, body in enumerate(documents(HOME)):
            body["metadata"] |= {"namespace": NAMESPACE, "uid": f"uid-{n}",
                                 "creationTimestamp": f"2026-01-01T00:00:{n:02d}Z"}
            self.index(body)
        self.runtime = handlers.Runtime(OperatorConfig())

    def index(self, body: dict[str, Any]) -> None:
        """An event of `body`, as kopf indexes it before the object's handlers run."""
        self.bodies[body["metadata"]["name"]] = body
        self.indexers[handlers._index_id(body["kind"])].replace(
            _key(body), {NAMESPACE: objects.index_document(body, body["kind"])}
        )

    def delete(self, name: str) -> None:
        body = self.bodies.pop(name)
        self.indexers[handlers._index_id(body["kind"])].discard(_key(body))

    def edited(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.bodies[name])

    def fleet(self, name: str) -> objects.NamespaceFleet:
        """The fleet a reconcile of `name` plans with."""
        indexes = {index_id: indexer.index for index_id, indexer in self.indexers.items()}
        body = self.bodies[name]
        return handlers._namespace_fleet(self.runtime, NAMESPACE, indexes, body).fleet


def _key(body: dict[str, Any]) -> tuple[str, str, str]:
    return NAMESPACE, body["metadata"]["name"], body["metadata"]["uid"]


def test_reconciles_of_an_unchanged_namespace_share_one_build() -> None:
    namespace = _Namespace()
    first = namespace.fleet("home")
    assert set(first.fleet.devices) == {"home-inverter", "home-battery"}
    assert all(namespace.fleet(name) is first for name in namespace.bodies)
    assert namespace.runtime.fleets.builds == 1


def test_an_object_indexed_again_unchanged_keeps_the_fleet() -> None:
    """A status write that changes nothing the fleet reads (kopf keeps the equal document)."""
    namespace = _Namespace()
    first = namespace.fleet("home")
    written = namespace.edited("home-zap") | {"status": {"observedGeneration": 1}}
    namespace.index(written)
    assert namespace.fleet("home-zap") is first
    assert namespace.fleet("home") is first


def test_an_edit_of_one_object_is_seen_by_the_next_reconcile_of_another() -> None:
    namespace = _Namespace()
    before = namespace.fleet("home-zap")
    assert before.fleet.devices["home-inverter"].spec.display_name == "Inverter"
    edited = namespace.edited("home-inverter")
    edited["spec"]["displayName"] = "Roof inverter"
    namespace.index(edited)
    after = namespace.fleet("home-zap")
    assert after.fleet.devices["home-inverter"].spec.display_name == "Roof inverter"
    # And an edit that makes it invalid refuses it in every reconcile's fleet.
    broken = namespace.edited("home-inverter")
    broken["spec"]["gatewayRef"] = 7
    namespace.index(broken)
    assert namespace.fleet("home").refusal("Device", "home-inverter")


def test_a_deleted_object_is_gone_from_the_next_reconcile_of_another() -> None:
    namespace = _Namespace()
    assert "home-battery" in namespace.fleet("home").fleet.devices
    namespace.delete("home-battery")
    assert "home-battery" not in namespace.fleet("home").fleet.devices
    added = namespace.edited("home-inverter")
    added["metadata"] |= {"name": "home-inverter-2", "uid": "uid-new"}
    added["spec"]["hardwareId"] = "SG0002"
    namespace.index(added)
    assert "home-inverter-2" in namespace.fleet("home").fleet.devices


def test_a_handlers_own_body_fresher_than_the_index_is_planned_with() -> None:
    """A drift check's live body can hold an edit its index document does not have yet:
    its own reconcile plans with the edit, the others with the index until it is indexed."""
    namespace = _Namespace()
    kept = namespace.fleet("home")
    edited = namespace.edited("home-inverter")
    edited["spec"]["displayName"] = "Roof inverter"
    namespace.bodies["home-inverter"] = edited  # not indexed
    own = namespace.fleet("home-inverter")
    assert own.fleet.devices["home-inverter"].spec.display_name == "Roof inverter"
    assert namespace.fleet("home") is kept
