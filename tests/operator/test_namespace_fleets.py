"""A reconcile's fleet of its namespace is kept while kopf's indexes hold the same
documents (`operator.namespace_fleets`), and built again as soon as one object is added,
edited or removed: with kopf's own indexers, filled as its watch fills them. That the
operator's handlers plan with a fleet an edit of another object shows is tested end to
end too (`test_operator_config_output`: a DER's reconcile sees its Device's edit). A
status write that changes only which Devices hold their Zap endpoint or configOutput runs
only the rules that read that again (`objects.build_read`). The operator's process leaves
what a namespace's first build made out of later garbage collections (`heap`)."""

from __future__ import annotations

import copy
import dataclasses
import gc
from collections.abc import Mapping
from typing import Any

import yaml
from fleet_yaml import der, document, enapter_site, stream
from harness import NAMESPACE, documents
from kopf._core.engines.indexing import OperatorIndexer
from objects import HOME

from reconciler.model import zap_endpoints
from reconciler.model.fleet import Fleet
from reconciler.model.kinds import KINDS
from reconciler.operator import handlers, objects
from reconciler.operator.config import OperatorConfig


class _Namespace:
    """kopf's indexes of our four kinds, filled with the objects of `fleet` (created in
    its order), and a Runtime."""

    def __init__(self, fleet: str = HOME) -> None:
        self.indexers = {handlers._index_id(kind): OperatorIndexer() for kind in KINDS}
        self.bodies: dict[str, dict[str, Any]] = {}
        for n, body in enumerate(documents(fleet)):
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


def _compared(nsf: objects.NamespaceFleet) -> dict[str, Any]:
    """Every field of a namespace's fleet, in the order it holds them (declaration order
    decides which of two clashing objects is refused, so order is compared too)."""
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(nsf):
        if not field.compare:
            continue  # what it was built from, not what it says
        value = getattr(nsf, field.name)
        if isinstance(value, Fleet):
            value = [(kind, list(value.table(kind).items())) for kind in KINDS]
        elif isinstance(value, dict):
            value = list(value.items())
        fields[field.name] = value
    return fields


def _as_indexed(body: Mapping[str, Any]) -> dict[str, Any]:
    return objects.index_document(body, str(body["kind"]))


def _assert_as_built_from_nothing(namespace: _Namespace) -> None:
    """Each object's reconcile gets what `objects.build` makes of the namespace's
    documents from nothing: the same objects, in the same order, read the same."""
    indexes = {index_id: indexer.index for index_id, indexer in namespace.indexers.items()}
    for name, body in namespace.bodies.items():
        built = handlers._namespace_fleet(namespace.runtime, NAMESPACE, indexes, body)
        bodies = handlers._namespace_bodies(NAMESPACE, indexes, body)
        # A handler's own body may be in place of its document, equal to it as indexed.
        assert [_as_indexed(b) for b in built.bodies] == [_as_indexed(b) for b in bodies], name
        assert _compared(built.fleet) == _compared(objects.build(bodies)), name


def test_a_fleet_built_again_is_the_one_built_from_nothing() -> None:
    """The fleet built again after a change reads only the documents that changed
    (`namespace_fleets`: what each document reads is kept with it); every field of it is
    what a build of the namespace from nothing gives, step after step."""
    namespace = _Namespace()
    _assert_as_built_from_nothing(namespace)
    inverter = namespace.fleet("home").fleet.devices["home-inverter"]
    assert inverter.spec.connection is not None
    endpoint = zap_endpoints.of_connection(inverter.spec.connection).described()
    zap = namespace.fleet("home").fleet.gateways["home-zap"].spec.zap
    assert zap is not None

    # Added: a second device at the inverter's endpoint, the later one, refused.
    meter = namespace.edited("home-inverter")
    meter["metadata"] |= {"name": "home-meter", "uid": "uid-meter",
                          "creationTimestamp": "2026-01-01T00:01:00Z"}
    meter["spec"]["hardwareId"] = "SG0009"
    namespace.index(meter)
    _assert_as_built_from_nothing(namespace)
    assert namespace.fleet("home").refusal("Device", "home-meter")
    assert not namespace.fleet("home").refusal("Device", "home-inverter")

    # Its status only, which the index keeps: it was added at that endpoint, so it holds
    # it and the inverter is the one refused.
    placed = namespace.edited("home-meter")
    placed["status"] = {"gateway": {"name": "home-zap", "serial": zap.serial,
                                    "endpoint": endpoint, "site": "home"},
                        "declaredFields": ["spec.hardwareId"]}
    namespace.index(placed)
    _assert_as_built_from_nothing(namespace)
    assert namespace.fleet("home").refusal("Device", "home-inverter")
    assert namespace.fleet("home").last_sites == {"home-meter": "home"}

    # Its spec edited off the endpoint, and back: the same number of valid objects, the
    # same holders, what the rules find changed.
    at_endpoint = namespace.edited("home-inverter")
    moved = copy.deepcopy(at_endpoint)
    moved["spec"]["connection"]["modbusTcp"]["unitId"] = 2
    namespace.index(moved)
    _assert_as_built_from_nothing(namespace)
    assert not namespace.fleet("home").refusal("Device", "home-inverter")
    namespace.index(at_endpoint)
    _assert_as_built_from_nothing(namespace)
    assert namespace.fleet("home").refusal("Device", "home-inverter")

    # A status write the index keeps but the rules do not read: the objects validate as
    # they did, so what the rules found is kept (and still what a build from nothing finds).
    checked = namespace.fleet("home").checked
    converged = namespace.edited("home-battery") | {
        "status": {"declaredFields": ["spec.displayName"]}}
    namespace.index(converged)
    _assert_as_built_from_nothing(namespace)
    assert namespace.fleet("home").checked is checked
    assert namespace.fleet("home").last_declared["device/home-battery"] == {"spec.displayName"}

    # A status write the index does not keep (kopf keeps the document it holds).
    written = namespace.edited("home-zap") | {"status": {"observedGeneration": 3}}
    namespace.index(written)
    _assert_as_built_from_nothing(namespace)

    # Edited; then invalid; then valid again, as it was.
    battery = namespace.edited("home-battery")
    battery["spec"]["displayName"] = "Garage battery"
    namespace.index(battery)
    read = namespace.runtime.fleets.documents_read
    _assert_as_built_from_nothing(namespace)
    assert namespace.runtime.fleets.documents_read == read + 1  # the battery's alone
    valid = namespace.edited("home-inverter")
    broken = copy.deepcopy(valid)
    broken["spec"]["gatewayRef"] = 7
    namespace.index(broken)
    _assert_as_built_from_nothing(namespace)
    assert ("Device", "home-inverter") in namespace.fleet("home").invalid
    namespace.index(valid)
    _assert_as_built_from_nothing(namespace)
    assert "home-inverter" in namespace.fleet("home").fleet.devices

    # Being deleted; then deleted, and the other clashing device is not refused any more.
    deleting = namespace.edited("home-meter")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    namespace.index(deleting)
    _assert_as_built_from_nothing(namespace)
    assert ("Device", "home-meter") in namespace.fleet("home").deleting
    namespace.delete("home-meter")
    _assert_as_built_from_nothing(namespace)
    assert not namespace.fleet("home").refusal("Device", "home-inverter")

    # Created again under an old name, a new object (another uid, created later).
    again = copy.deepcopy(battery)
    again["metadata"] |= {"uid": "uid-again", "creationTimestamp": "2026-01-03T00:00:00Z"}
    namespace.delete("home-battery")
    namespace.index(again)
    _assert_as_built_from_nothing(namespace)

    # A handler's own body fresher than its document, not indexed yet (a drift check's).
    fresher = namespace.edited("home-inverter")
    fresher["spec"]["displayName"] = "Roof inverter"
    namespace.bodies["home-inverter"] = fresher
    _assert_as_built_from_nothing(namespace)


def _checks(namespace: _Namespace) -> tuple[int, int]:
    """How many builds checked every rule, and how many only those that read holders."""
    return namespace.runtime.fleets.full_checks, namespace.runtime.fleets.holder_checks


def _at_endpoint(body: dict[str, Any], zap_serial: str, endpoint: str) -> dict[str, Any]:
    """`body` with the status of a Device found at, or added to, `endpoint` on home-zap."""
    return body | {"status": {"gateway": {"name": "home-zap", "serial": zap_serial,
                                          "endpoint": endpoint, "site": "home"}}}


def test_a_status_that_changes_only_the_endpoint_holders_runs_only_their_rules() -> None:
    """Each Device's first converged status makes it hold its Zap endpoint: what the rules
    that do not read that found is kept, those that do run again, and the fleet is the one
    built from nothing, with a clash whose refused Device changes as the holder does."""
    namespace = _Namespace()
    _assert_as_built_from_nothing(namespace)
    fleet = namespace.fleet("home").fleet
    inverter, zap = fleet.devices["home-inverter"], fleet.gateways["home-zap"].spec.zap
    assert inverter.spec.connection is not None and zap is not None
    endpoint = zap_endpoints.of_connection(inverter.spec.connection).described()
    full, holder = _checks(namespace)

    # No clash: the inverter's first status at its endpoint.
    namespace.index(_at_endpoint(namespace.edited("home-inverter"), zap.serial, endpoint))
    _assert_as_built_from_nothing(namespace)
    assert _checks(namespace) == (full, holder + 1)
    assert namespace.fleet("home").checked.endpoint_holders == {"home-inverter"}  # type: ignore[union-attr]
    assert not namespace.fleet("home").problems

    # A second Device at that endpoint, created later: its spec is new, every rule runs.
    meter = namespace.edited("home-battery")
    meter["metadata"] |= {"name": "home-meter", "uid": "uid-meter",
                          "creationTimestamp": "2026-01-01T00:01:00Z"}
    meter["spec"] = copy.deepcopy(namespace.bodies["home-inverter"]["spec"])
    meter["spec"]["hardwareId"] = "SG0009"
    namespace.index(meter)
    _assert_as_built_from_nothing(namespace)
    assert _checks(namespace) == (full + 1, holder + 1)
    assert namespace.fleet("home").refusal("Device", "home-meter")
    assert not namespace.fleet("home").refusal("Device", "home-inverter")

    # Both hold it (the meter was added there too): the first declared keeps it.
    namespace.index(_at_endpoint(namespace.edited("home-meter"), zap.serial, endpoint))
    _assert_as_built_from_nothing(namespace)
    assert _checks(namespace) == (full + 1, holder + 2)
    assert namespace.fleet("home").refusal("Device", "home-meter")

    # The inverter's status no longer records it there: the meter alone holds it, and
    # the inverter is the one refused.
    namespace.index(namespace.edited("home-inverter") | {"status": {"observedGeneration": 2}})
    _assert_as_built_from_nothing(namespace)
    assert _checks(namespace) == (full + 1, holder + 3)
    assert "already taken by Device 'home-meter'" in namespace.fleet("home").refusal(
        "Device", "home-inverter")
    assert not namespace.fleet("home").refusal("Device", "home-meter")


def _ucm(name: str) -> str:
    return document("Device", name, f"""
        siteRef: h2-lab
        hardwareId: {name.upper()}-8795CBA5375484E829105E959663C8B
        enapter:
          kind: ucm
          protocol: MQTT
          configOutput: {{secretName: {name}-config}}
        """)


def test_a_status_that_changes_only_the_config_output_holders_runs_only_their_rules() -> None:
    """A Device's last valid spec with the configOutput it declares makes it hold it: of
    two Devices naming one Secret, the holder keeps it, whichever was created first."""
    namespace = _Namespace(stream(enapter_site(), _ucm("ucm-a"), _ucm("ucm-b")))
    for name in ("ucm-a", "ucm-b"):  # both edited onto one Secret, neither holding it
        edited = namespace.edited(name)
        edited["spec"]["enapter"]["configOutput"]["secretName"] = "ucm-config"
        namespace.index(edited)
    _assert_as_built_from_nothing(namespace)
    assert namespace.fleet("ucm-a").refusal("Device", "ucm-b")
    full, holder = _checks(namespace)

    valid = namespace.edited("ucm-b")
    namespace.index(valid | {"status": {"lastValidSpec": objects.spec_json(valid)}})
    _assert_as_built_from_nothing(namespace)
    assert _checks(namespace) == (full, holder + 1)
    assert namespace.fleet("ucm-a").checked.holders == {"ucm-b"}  # type: ignore[union-attr]
    assert "already the configOutput of Device 'ucm-b'" in namespace.fleet("ucm-a").refusal(
        "Device", "ucm-a")
    assert not namespace.fleet("ucm-a").refusal("Device", "ucm-b")

    # Its status written again with nothing the rules read changed: no rule runs.
    checked = namespace.fleet("ucm-a").checked
    namespace.index(namespace.edited("ucm-b") | {"status": {
        "lastValidSpec": objects.spec_json(valid), "declaredFields": ["spec.hardwareId"]}})
    _assert_as_built_from_nothing(namespace)
    assert _checks(namespace) == (full, holder + 1)
    assert namespace.fleet("ucm-a").checked is checked


def test_the_operators_first_build_of_a_namespace_freezes_what_is_alive() -> None:
    """As the operator's process runs (`Runtime(settle_heap=True)`): after a namespace's
    first build, what is alive is frozen (`gc.freeze`), the fleet with it; a build after
    an edit freezes nothing more. Without it, nothing is frozen (as in a test's runtime)."""
    # What an earlier test of this worker froze (an in-process simulator fleet freezes its
    # heap too) is not this test's to count.
    gc.unfreeze()
    namespace = _Namespace()
    namespace.fleet("home")
    assert gc.get_freeze_count() == 0
    namespace.runtime = handlers.Runtime(OperatorConfig(), settle_heap=True)
    try:
        fleet = namespace.fleet("home")
        assert gc.get_freeze_count() > 0
        # Out of the collector's generations: full collections do not go through it.
        assert gc.is_tracked(fleet.fleet)
        assert not any(o is fleet.fleet for o in gc.get_objects())
        gc.unfreeze()
        edited = namespace.edited("home-battery")
        edited["spec"]["displayName"] = "Garage battery"
        namespace.index(edited)
        assert namespace.fleet("home") is not fleet
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


_LUA = document("Device", "lab-lua", """
    siteRef: h2-lab
    enapter: {kind: lua, runtimeRef: ucm-a, blueprintId: bp-gas-1}
    """)


def _device_checks(namespace: _Namespace) -> Mapping[str, object]:
    """What each Device's own rules found in the namespace's last build, by Device."""
    checked = namespace.fleet("home").checked
    assert checked is not None
    return checked.free.devices


def test_an_edit_of_what_a_devices_rules_read_is_seen_in_what_they_find() -> None:
    """After one object's edit, each Device's own rules are taken from the build before
    only while every object they read is the one it was (`model.fleet.DeviceChecked`):
    an edit of a Device's Site, Gateway or Enapter runtime, or a reference to a removed
    object (whose problem lists the names declared), is seen as a build from nothing
    sees it, and a Device that reads none of them is not checked again."""
    namespace = _Namespace(stream(HOME, enapter_site(), _ucm("ucm-a"), _LUA))
    _assert_as_built_from_nothing(namespace)
    assert not namespace.fleet("home").problems
    lua = _device_checks(namespace)["lab-lua"]

    # The Site of the Devices on the Zap: without a Novacore block they are refused.
    home = namespace.edited("home")
    no_novacore = copy.deepcopy(home)
    del no_novacore["spec"]["novacore"]
    no_novacore["spec"]["enapter"] = {}
    namespace.index(no_novacore)
    _assert_as_built_from_nothing(namespace)
    assert "Site 'home' needs a `novacore` block" in namespace.fleet("home").refusal(
        "Device", "home-inverter")
    assert _device_checks(namespace)["lab-lua"] is lua
    namespace.index(home)
    _assert_as_built_from_nothing(namespace)
    assert not namespace.fleet("home").problems

    # Their Gateway, an Enapter gateway now, at the same Site.
    zap = namespace.edited("home-zap")
    enapter = copy.deepcopy(zap)
    enapter["spec"] = {"siteRef": "home", "enapter": {
        "hardwareId": "GW0000000000000000000000000000009", "firmwareVersion": "3.1.0"}}
    namespace.index(enapter)
    _assert_as_built_from_nothing(namespace)
    assert "a device on an Enapter gateway needs an `enapter` block" in namespace.fleet(
        "home").refusal("Device", "home-battery")
    namespace.index(zap)
    _assert_as_built_from_nothing(namespace)

    # The Lua device's runtime: no UCM any more, then gone, then another UCM declared
    # (the runtimeRef, which names nothing, lists it).
    ucm = namespace.edited("ucm-a")
    standalone = copy.deepcopy(ucm)
    standalone["spec"]["enapter"]["kind"] = "standalone"
    del standalone["spec"]["hardwareId"]
    namespace.index(standalone)
    _assert_as_built_from_nothing(namespace)
    assert "Device 'ucm-a' is not a `ucm` or `vucm`" in namespace.fleet("home").refusal(
        "Device", "lab-lua")
    namespace.delete("ucm-a")
    _assert_as_built_from_nothing(namespace)
    ucm["metadata"] |= {"name": "ucm-b", "uid": "uid-ucm-b",
                        "creationTimestamp": "2026-01-01T00:01:00Z"}
    namespace.index(ucm)
    _assert_as_built_from_nothing(namespace)
    assert "declared ucm and vucm devices: 'ucm-b'" in namespace.fleet("home").problems_of(
        "Device", "lab-lua")[0].message


def _added(namespace: _Namespace, text: str, n: int) -> None:
    """The object of `text` created after the others (another uid, created later); not
    validated alone, as `documents` would (a DER names a Device of the namespace)."""
    body = yaml.safe_load(text)
    body["metadata"] |= {"namespace": NAMESPACE, "uid": f"uid-added-{n}",
                         "creationTimestamp": f"2026-01-01T00:02:{n:02d}Z"}
    namespace.index(body)


def test_an_edit_of_a_devices_zap_endpoint_or_ders_is_seen_in_what_the_rules_find() -> None:
    """What a build keeps of each Device for the next besides its own rules' problems
    (`model.fleet.DeviceChecked`): the endpoint it takes on its Zap, which decides which
    Devices of a Zap clash, follows an edit of its Gateway; what the DER rules find of its
    inline DERs follows an edit of the Device; a DER document naming it is checked with
    them. Each step is what a build from nothing finds."""
    namespace = _Namespace()
    meter = namespace.edited("home-inverter")
    meter["metadata"] |= {"name": "home-meter", "uid": "uid-meter",
                          "creationTimestamp": "2026-01-01T00:01:00Z"}
    meter["spec"]["hardwareId"] = "SG0009"
    namespace.index(meter)
    _assert_as_built_from_nothing(namespace)
    assert "already taken by Device 'home-inverter'" in namespace.fleet("home").refusal(
        "Device", "home-meter")

    # Their Gateway an Enapter gateway: no Zap endpoint to clash at.
    zap = namespace.edited("home-zap")
    enapter = copy.deepcopy(zap)
    enapter["spec"] = {"siteRef": "home", "enapter": {
        "hardwareId": "GW0000000000000000000000000000009", "firmwareVersion": "3.1.0"}}
    namespace.index(enapter)
    _assert_as_built_from_nothing(namespace)
    assert "already taken" not in namespace.fleet("home").refusal("Device", "home-meter")
    namespace.index(zap)
    _assert_as_built_from_nothing(namespace)
    assert "already taken" in namespace.fleet("home").refusal("Device", "home-meter")
    namespace.delete("home-meter")

    # A DER document naming the inverter, by the name of one of its inline DERs; removed.
    _added(namespace, der("inverter-pv", "home-inverter", "pv", "solar"), 0)
    _assert_as_built_from_nothing(namespace)
    assert "DER name 'pv' is used twice" in namespace.fleet("home").refusal(
        "DER", "inverter-pv")
    namespace.delete("inverter-pv")
    _assert_as_built_from_nothing(namespace)
    assert not namespace.fleet("home").problems

    # An inline DER of a type the inverter does not provide; then as it was.
    inverter = namespace.edited("home-inverter")
    charger = copy.deepcopy(inverter)
    charger["spec"]["ders"][0]["type"] = "ev_charger_port"
    namespace.index(charger)
    _assert_as_built_from_nothing(namespace)
    assert "provides no 'ev_charger_port' DER" in namespace.fleet("home").refusal(
        "Device", "home-inverter")
    namespace.index(inverter)
    _assert_as_built_from_nothing(namespace)
    assert not namespace.fleet("home").problems
