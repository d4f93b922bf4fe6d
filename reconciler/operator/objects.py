"""Custom-resource objects as the model sees them: strip what the API server adds, validate
with the same models and rules as the CLI, and build the fleet of one namespace from the
operator's in-memory indexes."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Diagnostic
from reconciler.model import zap_endpoints
from reconciler.model.base import API_GROUP, API_VERSION_NAME, Resource
from reconciler.model.fleet import (
    DANGLING,
    Fleet,
    HolderFree,
    Problem,
    holder_rules,
    in_rule_order,
    rules_without_holders,
)
from reconciler.model.schema import CRD_NAMES
from reconciler.model.status import FlatpeakLocation
from reconciler.operator import declared, locations
from reconciler.plan.retired import RetiredSite
from reconciler.printable import echo
from reconciler.sources.loader import resource_from_object

PLURALS = {kind: names["plural"] for kind, names in CRD_NAMES.items()}
PAUSED_ANNOTATION = f"{API_GROUP}/paused"
KINDS_BY_PLURAL = {plural: kind for kind, plural in PLURALS.items()}


def resource_ref(kind: str) -> tuple[str, str, str]:
    return API_GROUP, API_VERSION_NAME, PLURALS[kind]


def model_document(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a custom resource the model validates (no status, no server fields)."""
    metadata = body.get("metadata", {})
    meta: dict[str, Any] = {"name": metadata.get("name")}
    if metadata.get("namespace"):
        meta["namespace"] = metadata["namespace"]
    if metadata.get("labels"):
        meta["labels"] = dict(metadata["labels"])
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if not k.startswith("kopf.zalando.org/")
    }
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": meta,
        "spec": dict(body.get("spec") or {}),
    }


def index_document(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """What the operator's index keeps of an object: its model document, its kind, when it
    was created (`in_declaration_order`), whether it holds its configOutput
    (`holds_config_output`), for a Site the Novacore site it was applied to
    (`applied_novacore_site`) and for a Device the Site it was last placed at (`last_site`),
    the Zap endpoint it was last found at or added to (`applied_zap_endpoint`) and the
    Flatpeak locations its Site had (`flatpeak_locations`), the spec fields its status
    records as declared (`declared_fields`) and its uid; for a Site the Flatpeak location
    its status records, those it had (`flatpeak_locations`) and the one it records as not
    found (`locations.known`), for a Gateway the serials its status records as claimed
    (`claimed_serials`), for a Gateway or Device the Enapter id its status records
    (`recorded_enapter_id`), for a Device the Enapter site it records
    (`recorded_enapter_site`), and whether the object is being deleted (`is_deleting`) and
    its release runs (`is_releasing`); `build` strips them again."""
    document = model_document(body) | {"kind": kind}
    created = (body.get("metadata") or {}).get("creationTimestamp")
    if created:
        document["metadata"]["creationTimestamp"] = str(created)
    uid = (body.get("metadata") or {}).get("uid")
    if uid:
        # Tells an object from one created again under its name (`handlers._alive`).
        document["metadata"]["uid"] = str(uid)
    if holds_config_output(body):
        document[HOLDS_CONFIG_OUTPUT] = True
    applied = applied_novacore_site(body)
    if applied:
        document[APPLIED_NOVACORE_SITE] = applied
    placed = last_site(body)
    if placed:
        document[LAST_SITE] = placed
    applied_endpoint = applied_zap_endpoint(body)
    if applied_endpoint is not None:
        document[APPLIED_ZAP_ENDPOINT] = list(applied_endpoint)
    had = flatpeak_locations(body)
    if had:
        document[locations.LOCATIONS] = [
            entry.model_dump(by_alias=True, exclude_none=True) for entry in had
        ]
    fields = declared_fields(body)
    if fields is not None:
        document[declared.DECLARED] = sorted(fields)
    ids = (body.get("status") or {}).get("externalIds")
    location = ids.get("flatpeak") if kind == "Site" and isinstance(ids, Mapping) else None
    if isinstance(location, str) and location:
        document[locations.SITE_LOCATION] = location
    gone = locations.not_found(body) if kind == "Site" else None
    if gone is not None:
        document[locations.NOT_FOUND] = gone
    if is_deleting(body):
        document[DELETING] = True
    if is_releasing(body):
        document[RELEASING] = True
    held = claimed_serials(body) if kind == "Gateway" else []
    if held:
        document[CLAIMED_SERIALS] = held
    enapter_id = recorded_enapter_id(body)
    if enapter_id:
        document[RECORDED_ENAPTER_ID] = enapter_id
    enapter_site = recorded_enapter_site(body)
    if enapter_site:
        document[RECORDED_ENAPTER_SITE] = enapter_site
    return document


# In an index document: the Enapter id a Gateway's or Device's status records.
RECORDED_ENAPTER_ID = "recordedEnapterId"


def recorded_enapter_id(body: Mapping[str, Any]) -> str | None:
    """The Enapter device id a Gateway's or Device's status records
    (`status.externalIds.enapter`): where a Device of the same Site (or behind the same
    Gateway) whose own id was never recorded, its Site gone, is looked for
    (`plan.enapter_witnesses`)."""
    return _recorded_id(body, RECORDED_ENAPTER_ID, ("Gateway", "Device"), "enapter")


# In an index document: the Enapter site a Device's status records its device in.
RECORDED_ENAPTER_SITE = "recordedEnapterSite"


def recorded_enapter_site(body: Mapping[str, Any]) -> str | None:
    """The Enapter site a Device's status records its device in
    (`status.externalIds.enapterSite`): where its device is looked for when its Site is
    another Enapter site now, to be replaced into it (`plan.enapter_left_devices`)."""
    return _recorded_id(body, RECORDED_ENAPTER_SITE, ("Device",), "enapterSite")


# In an index document: the serials a Gateway's status records as claimed (`claimed_serials`).
CLAIMED_SERIALS = "claimedSerials"


def claimed_serials(body: Mapping[str, Any]) -> list[str]:
    """The serials a Gateway's status records as claimed (`status.claims`): the one it
    declares, and those swapped out of its spec whose release waits. The Site that reports
    its organisation's gateways nothing declares (`unmanaged`) leaves those to the Gateway,
    which releases them."""
    if CLAIMED_SERIALS in body:
        return [str(s) for s in body[CLAIMED_SERIALS]]
    claims = (body.get("status") or {}).get("claims")
    return sorted(
        {
            str(c["serial"])
            for c in (claims if isinstance(claims, list) else [])
            if isinstance(c, Mapping) and isinstance(c.get("serial"), str)
        }
    )


# In an index document: the object is being deleted (its finalizer runs).
DELETING = "deleting"


def is_deleting(body: Mapping[str, Any]) -> bool:
    return bool(body.get(DELETING) or (body.get("metadata") or {}).get("deletionTimestamp"))


# The finalizer kopf keeps on the operator's objects (kopf's `persistence.finalizer`): while
# an object being deleted has it, its release has not ended.
FINALIZER = f"{API_GROUP}/finalizer"

# In an index document: the object is being deleted and its release has not ended
# (`is_releasing`).
RELEASING = "releasing"


def is_releasing(body: Mapping[str, Any]) -> bool:
    """Whether the object is being deleted with the operator's finalizer still on it: its
    release may be writing. Once the finalizer is gone, another controller's finalizer may
    keep the object, being deleted (`is_deleting`), with nothing more of it released."""
    if body.get(RELEASING):
        return True
    metadata = body.get("metadata") or {}
    return bool(metadata.get("deletionTimestamp")) and FINALIZER in (
        metadata.get("finalizers") or ())


# In an index document: the object holds its configOutput (`holds_config_output`).
HOLDS_CONFIG_OUTPUT = "holdsConfigOutput"


def holds_config_output(body: Mapping[str, Any]) -> bool:
    """Whether a Device holds the `configOutput` (Secret or file) its spec declares: its
    last valid spec (`status.lastValidSpec`) declared the same one, so it was accepted with
    it, and has written or may write its config there. Of two Devices declaring one output,
    the holder keeps it and the other, which asks for it second, is refused, even when
    the holder was created later (an older Device edited to take a newer one's Secret);
    creation order decides only between Devices of which none, or both, hold it."""
    if HOLDS_CONFIG_OUTPUT in body:
        return bool(body[HOLDS_CONFIG_OUTPUT])
    declared = _config_output(body.get("spec"))
    last = with_last_valid_spec(body)
    return declared is not None and last is not None and _config_output(last["spec"]) == declared


# In an index document: the id of the Novacore site a Site was applied to.
APPLIED_NOVACORE_SITE = "appliedNovacoreSite"


def applied_novacore_site(body: Mapping[str, Any]) -> str | None:
    """The id of the Novacore site a Site object was last found in or created as, which its
    status records (`status.externalIds.novacore`): what the CLI's inventory remembers
    (`engine.state.Inventory.applied_sites`), so that a Site renamed in Novacore, or in
    its spec, keeps that site instead of a second one being created."""
    return _recorded_id(body, APPLIED_NOVACORE_SITE, ("Site",), "novacore")


def _recorded_id(
    body: Mapping[str, Any], indexed: str, kinds: tuple[str, ...], key: str
) -> str | None:
    """The id `body` records: as its index document keeps it (under `indexed`), or, for an
    object of one of `kinds`, in its status (`status.externalIds[key]`); None for none."""
    if indexed in body:
        return str(body[indexed]) or None
    if body.get("kind") not in kinds:
        return None
    ids = (body.get("status") or {}).get("externalIds")
    found = ids.get(key) if isinstance(ids, Mapping) else None
    return found if isinstance(found, str) and found else None


# In an index document: the Site a Device was last placed at.
LAST_SITE = "lastSite"


def last_site(body: Mapping[str, Any]) -> str | None:
    """The Site a Device's status last placed it at (`status.gateway.site`): where a Device
    moved to a gateway of another Site comes from, for its own reconcile and for those of
    its stand-alone DERs, which apply its changes."""
    if LAST_SITE in body:
        return str(body[LAST_SITE]) or None
    if body.get("kind") != "Device":
        return None
    gateway = (body.get("status") or {}).get("gateway")
    site = gateway.get("site") if isinstance(gateway, Mapping) else None
    return site if isinstance(site, str) and site else None


# In an index document: the Zap endpoint a Device was last found at or added to.
APPLIED_ZAP_ENDPOINT = "appliedZapEndpoint"


def applied_zap_endpoint(body: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """The gateway (name, serial) and connection endpoint a Device's status says it was
    last found at or added to on a Zap (`status.gateway`): what the operator applied there.
    Of two Devices declaring one endpoint, the one that has it keeps it
    (`zap_endpoint_holder`), as for a `configOutput` (`holds_config_output`)."""
    if APPLIED_ZAP_ENDPOINT in body:
        recorded = body[APPLIED_ZAP_ENDPOINT]
        return (str(recorded[0]), str(recorded[1]), str(recorded[2]))
    if body.get("kind") != "Device":
        return None
    gateway = (body.get("status") or {}).get("gateway")
    if not isinstance(gateway, Mapping):
        return None
    fields = (gateway.get("name"), gateway.get("serial"), gateway.get("endpoint"))
    if not all(isinstance(f, str) and f for f in fields):
        return None  # recorded before endpoints were, or never placed
    return (str(fields[0]), str(fields[1]), str(fields[2]))


def zap_endpoint_holder(fleet: Fleet, device: Resource, applied: tuple[str, str, str]) -> bool:
    """Whether `device` holds the Zap endpoint its spec declares: its status records it at
    that endpoint on the gateway (name and serial) its spec names now. One edited onto
    another endpoint, or moved to another gateway, holds none until it was applied there."""
    gateway = fleet.gateways.get(getattr(device.spec, "gateway_ref", None) or "")
    connection = getattr(device.spec, "connection", None)
    if gateway is None or gateway.spec.zap is None or connection is None:
        return False
    return applied == (
        gateway.name, gateway.spec.zap.serial, zap_endpoints.of_connection(connection).described()
    )


def flatpeak_locations(body: Mapping[str, Any]) -> list[FlatpeakLocation]:
    """The Flatpeak locations a Device's status says its Site had, and a Site's those it
    had, its own last (`operator.locations`), as its index document keeps them too."""
    if body.get("kind") not in ("Device", "Site"):
        return []
    if locations.LOCATIONS in body:
        return locations.recorded(body)
    return locations.recorded(body.get("status"))


def declared_fields(body: Mapping[str, Any]) -> frozenset[str] | None:
    """The spec fields an object's status records as declared (`operator.declared`), as
    its index document keeps them too: a stand-alone DER's reconcile, which plans its
    Device's changes, compares the Device's."""
    if declared.DECLARED in body:
        return declared.recorded(body)
    return declared.recorded(body.get("status"))


def config_secret(body: Mapping[str, Any]) -> str | None:
    """The Secret a Device's spec names as its `configOutput`, if any."""
    output = _config_output(body.get("spec"))
    name = output.get("secretName") if isinstance(output, Mapping) else None
    return name if isinstance(name, str) else None


def _config_output(spec: Any) -> Any:
    enapter = spec.get("enapter") if isinstance(spec, Mapping) else None
    return enapter.get("configOutput") if isinstance(enapter, Mapping) else None


def in_declaration_order(bodies: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The objects of a namespace in the order a site file would declare them: oldest
    first (creationTimestamp, then name). Rules over several objects refuse the later of
    two ("... is already used by Device 'a'"), so every object's reconcile must see the
    same order: the object that was there first keeps working and the newcomer is refused,
    whichever of them is reconciled."""
    return sorted(bodies, key=declaration_key)


def declaration_key(body: Mapping[str, Any]) -> tuple[str, str]:
    """What `in_declaration_order` sorts by: creationTimestamp, then name."""
    metadata = body.get("metadata") or {}
    return str(metadata.get("creationTimestamp") or ""), str(metadata.get("name"))


# The spec last found valid, in the object's status (`model.status.ResourceStatus`).
LAST_VALID_SPEC = "lastValidSpec"


def spec_json(body: Mapping[str, Any]) -> str:
    """The object's spec as `status.lastValidSpec` keeps it: a JSON string, which a status
    patch replaces whole (a merge patch of an object would keep keys the spec dropped)."""
    return json.dumps(body.get("spec") or {}, sort_keys=True, separators=(",", ":"))


def with_last_valid_spec(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The object with the spec its status records as last valid; None when none is."""
    recorded = (body.get("status") or {}).get(LAST_VALID_SPEC)
    try:
        spec = json.loads(recorded) if isinstance(recorded, str) else None
    except ValueError:
        return None
    if not isinstance(spec, dict):
        return None
    return {**body, "spec": spec}


def annotations_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The annotations of an object's body ({} when it has none)."""
    return (body.get("metadata") or {}).get("annotations") or {}


def is_paused(body: Mapping[str, Any]) -> bool:
    return str(annotations_of(body).get(PAUSED_ANNOTATION, "")).lower() in ("true", "1", "yes")


@dataclass
class NamespaceFleet:
    """The validated resources of one namespace, and what is wrong with the others."""

    fleet: Fleet
    invalid: dict[tuple[str, str], list[Diagnostic]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Site name -> the Novacore site its status says it was applied to, in the
    # organisation it declares (`applied_novacore_site`; `PlanOptions.applied_sites`).
    applied_sites: dict[str, RetiredSite] = field(default_factory=dict)
    # Device name -> the Site its status last placed it at (`last_site`).
    last_sites: dict[str, str] = field(default_factory=dict)
    # Flatpeak location id -> the Site it was the location of, as the Devices' statuses
    # remember them (`flatpeak_locations`; `PlanOptions.flatpeak_locations`).
    flatpeak_locations: dict[str, str] = field(default_factory=dict)
    # Resource address -> the spec fields its status records as declared when a reconcile
    # of it last converged (`declared_fields`; `PlanOptions.last_declared`).
    last_declared: dict[str, frozenset[str]] = field(default_factory=dict)
    # (kind, name) of the objects being deleted (`is_deleting`: a deletionTimestamp), their
    # release running, or kept after it by another controller's finalizer.
    deleting: frozenset[tuple[str, str]] = frozenset()
    # Of those, the ones whose release has not ended: the operator's finalizer is still on
    # them (`is_releasing`).
    releasing: frozenset[tuple[str, str]] = frozenset()
    # Flatpeak location id -> the fingerprint of the account it was found with, where the
    # Devices' statuses record it (`locations.accounts`).
    flatpeak_location_accounts: dict[str, str] = field(default_factory=dict)
    # (kind, name) -> the Enapter id a Gateway's or Device's status records
    # (`recorded_enapter_id`).
    enapter_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    # Device name -> the Enapter site its status records its device in
    # (`recorded_enapter_site`; `PlanOptions.enapter_device_sites`).
    enapter_sites: dict[str, str] = field(default_factory=dict)
    # What the rules over all objects were given, and found (`build_read`).
    checked: Checked | None = field(default=None, repr=False, compare=False)

    def problems_of(self, kind: str, name: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind and p.name == name]

    def refusal(self, kind: str, name: str) -> str:
        """Why the object's spec is refused (its model, or a rule over several objects),
        naming the fields; "" when it is valid. A reference to an object not declared yet
        does not refuse it: it waits."""
        invalid = self.invalid.get((kind, name))
        if invalid:
            return "; ".join(f"{d.path}: {d.message}" for d in invalid)
        return self._said(p for p in self.problems_of(kind, name) if p.code != DANGLING)

    def refusal_once_deleted(self, kind: str, name: str) -> str:
        """`refusal`, but for clashes with objects being deleted: why the object would be
        refused once they are gone. The spec a Device declaring what a Device being
        deleted declared (a rename) is refused for until then is valid on its own: its own
        deletion honours it, and it takes over what the other leaves (`plan.taken_over`)."""
        if self.invalid.get((kind, name)):
            return self.refusal(kind, name)
        return self._said(
            p for p in self.problems_of(kind, name)
            if p.code != DANGLING and self._leaving_clash(p) is None
        )

    def freed_by(self, kind: str, name: str) -> list[str]:
        """The names of the objects of `kind` refused for a clash with `kind`/`name`, being
        deleted, and valid once the objects being deleted are gone: they take over what it
        declared (a rename's new name; a Device at its Zap endpoint or naming its
        configOutput) once it is gone, and are told so as it goes (`takeovers`). One being
        deleted too takes nothing over."""
        return sorted({
            p.name
            for p in self.problems
            if p.kind == kind and p.clashes_with is not None
            and p.clashes_with[:2] == (kind, name)
            and (p.kind, p.name) not in self.deleting
            and not self.refusal_once_deleted(p.kind, p.name)
        })

    def _leaving_clash(self, problem: Problem) -> tuple[str, str] | None:
        """The (kind, name) of the object being deleted `problem` is a clash with; None
        when it is no clash, or one with an object that stays."""
        other = problem.clashes_with
        return other[:2] if other is not None and other[:2] in self.deleting else None

    def _said(self, problems: Iterable[Problem]) -> str:
        """`problems` as a refusal says them: a clash with an object being deleted ends
        once that one is gone (a rename), which is said too."""
        said = []
        for p in problems:
            leaving = self._leaving_clash(p)
            until = (f" ({leaving[0]} {echo(leaving[1])} is being deleted: this one is "
                     "reconciled once it is gone)") if leaving else ""
            said.append(f"{'.'.join(map(str, p.path))}: {p.message}{until}")
        return "; ".join(said)


@functools.lru_cache(maxsize=65536)
def _validated(document_json: str, source: str) -> tuple[Resource | None, tuple[Diagnostic, ...]]:
    """Validation is pure and each reconcile validates its whole namespace: remember the
    result per document content (models are frozen, so sharing them is safe)."""
    resource, diagnostics = resource_from_object(json.loads(document_json), source=source)
    return resource, tuple(diagnostics)


@dataclass(frozen=True, slots=True)
class Reading:
    """What `build` takes from one object's body: its identity, what its status and index
    document record, and its model validated. A function of the body alone, so a body
    that is kept is read once (`operator.namespace_fleets`)."""

    kind: str
    name: str
    order: tuple[str, str]  # `declaration_key`
    deleting: bool
    releasing: bool
    holds_config_output: bool
    applied_zap_endpoint: tuple[str, str, str] | None
    applied_novacore_site: str | None
    last_site: str | None
    flatpeak_locations: tuple[FlatpeakLocation, ...]
    declared_fields: frozenset[str] | None
    enapter_id: str | None
    enapter_site: str | None
    resource: Resource | None
    diagnostics: tuple[Diagnostic, ...]


def read(body: Mapping[str, Any]) -> Reading:
    """`body` as `build` reads it (a model document, an index document, or a live body)."""
    kind = str(body.get("kind"))
    name = str((body.get("metadata") or {}).get("name"))
    document = json.dumps(model_document(body), sort_keys=True, default=str)
    resource, diagnostics = _validated(document, f"{kind}/{name}")
    return Reading(
        kind,
        name,
        declaration_key(body),
        is_deleting(body),
        is_releasing(body),
        kind == "Device" and holds_config_output(body),
        applied_zap_endpoint(body) if kind == "Device" else None,
        (applied_novacore_site(body) or None) if kind == "Site" else None,
        (last_site(body) or None) if kind == "Device" else None,
        tuple(flatpeak_locations(body)),
        declared_fields(body),
        recorded_enapter_id(body),
        recorded_enapter_site(body),
        resource,
        diagnostics,
    )


@dataclass(frozen=True)
class Checked:
    """What `check_fleet` was given and what it found: a function of these alone. `free`:
    what the rules that do not read the holders found (`rules_without_holders`), a
    function of `resources` alone."""

    resources: tuple[Resource, ...]
    invalid: frozenset[tuple[str, str]]
    holders: frozenset[str]
    endpoint_holders: frozenset[str]
    fleet: Fleet
    free: HolderFree
    problems: tuple[Problem, ...]


def build(bodies: Iterable[Mapping[str, Any]]) -> NamespaceFleet:
    """The fleet of a namespace's objects, `bodies` in declaration order."""
    return build_read([read(body) for body in bodies])


def build_read(
    readings: Iterable[Reading], previous: NamespaceFleet | None = None
) -> NamespaceFleet:
    """`build` of the objects read as `readings` (`read`), in declaration order.
    `previous`: an earlier build of the namespace. When the rules would be given what
    they were given then (the same validated objects, in the same order: an object's
    status written, which the rules do not read, or reads the same), what they found
    then is taken, and its `Fleet`: a namespace converging has every object's status
    written, and checking the rules is most of a build. When the objects are the same but
    the holders are not (a Device's first status at its Zap endpoint, or with the
    configOutput it declares: each Device's first converged reconcile), only the rules
    that read them run again (`holder_rules`): the others found what they found then.
    When every rule runs again, each Device's own rules still find what they found then
    while the objects they read are the ones they read then (`model.fleet.DeviceChecked`):
    after one object's edit, those of the Devices that read it run."""
    resources: list[Resource] = []
    invalid: dict[tuple[str, str], list[Diagnostic]] = {}
    holders: set[str] = set()
    endpoints: dict[str, tuple[str, str, str]] = {}  # Device -> its `applied_zap_endpoint`
    applied: dict[str, str] = {}
    placed: dict[str, str] = {}
    had: list[FlatpeakLocation] = []
    fields: dict[str, frozenset[str]] = {}
    deleting: set[tuple[str, str]] = set()
    releasing: set[tuple[str, str]] = set()
    enapter_ids: dict[tuple[str, str], str] = {}
    enapter_sites: dict[str, str] = {}
    for reading in readings:
        kind, name = reading.kind, reading.name
        if reading.enapter_id:
            enapter_ids[(kind, name)] = reading.enapter_id
        if reading.enapter_site:
            enapter_sites[name] = reading.enapter_site
        if reading.deleting:
            deleting.add((kind, name))
        if reading.releasing:
            releasing.add((kind, name))
        if reading.holds_config_output:
            holders.add(name)
        if reading.applied_zap_endpoint is not None:
            endpoints[name] = reading.applied_zap_endpoint
        if reading.applied_novacore_site:
            applied[name] = reading.applied_novacore_site
        if reading.last_site:
            placed[name] = reading.last_site
        had += reading.flatpeak_locations
        if reading.declared_fields is not None:
            fields[f"{kind.lower()}/{name}"] = reading.declared_fields
        if reading.resource is None:
            invalid[(kind, name)] = list(reading.diagnostics)
        else:
            resources.append(reading.resource)
    last = previous.checked if previous is not None else None
    # Models are validated once per content (`_validated`): an object read again the
    # same is the very model it was, so identity tells unchanged objects.
    same = last is not None and len(last.resources) == len(resources) and all(
        a is b for a, b in zip(last.resources, resources, strict=True)
    )
    fleet = last.fleet if last is not None and same else Fleet.of(resources)
    refused = frozenset(invalid)
    holding = frozenset(holders)
    endpoint_holders = frozenset(
        name for name, at in endpoints.items()
        if name in fleet.devices and zap_endpoint_holder(fleet, fleet.devices[name], at)
    )
    if last is not None and same and (
        (last.invalid, last.holders, last.endpoint_holders)
        == (refused, holding, endpoint_holders)
    ):
        checked = last
    else:
        # The rules that do not read the holders (nor which documents are invalid, which
        # `in_rule_order` says) find in the same objects what they found then.
        # Else they run again, but for the Devices whose rules read what they read then
        # (`model.fleet.DeviceChecked`): after one object's edit, all but a few.
        free = last.free if last is not None and same else rules_without_holders(
            resources, fleet, last.free if last is not None else None
        )
        held = holder_rules(fleet, holding, endpoint_holders)
        checked = Checked(
            tuple(resources), refused, holding, endpoint_holders, fleet, free,
            tuple(in_rule_order(free, held, refused)),
        )
    return NamespaceFleet(
        fleet, invalid, list(checked.problems), _applied_sites(fleet, applied), placed,
        locations.remembered(had), fields, frozenset(deleting), frozenset(releasing),
        flatpeak_location_accounts=locations.accounts(had), enapter_ids=enapter_ids,
        enapter_sites=enapter_sites,
        checked=checked,
    )


def _applied_sites(fleet: Fleet, applied: Mapping[str, str]) -> dict[str, RetiredSite]:
    """Where the Sites of `fleet` were applied, in the organisation each declares now:
    the status keeps the site's id only, and a site not listed in that organisation (the
    Site moved to another) is ignored by the planner (`plan.novacore_sites.applied_site`)."""
    return {
        name: RetiredSite(site.spec.novacore.org_id, applied[name])
        for name, site in fleet.sites.items()
        if name in applied and site.spec.novacore is not None
    }


def closure(fleet: Fleet, resource: Resource) -> Fleet:
    """The resource with everything it depends on (site, gateway, device, runtimes), and
    for a Device its stand-alone DERs."""
    picked: list[Resource] = []

    def add(item: Resource | None) -> None:
        if item is not None and item not in picked:
            picked.append(item)
            spec = item.spec
            add(fleet.sites.get(getattr(spec, "site_ref", None) or ""))
            add(fleet.gateways.get(getattr(spec, "gateway_ref", None) or ""))
            add(fleet.devices.get(getattr(spec, "device_ref", None) or ""))
            enapter = getattr(spec, "enapter", None)
            for ref in (
                getattr(enapter, "runtime_ref", None),
                getattr(enapter, "master_ref", None),
            ):
                add(fleet.devices.get(ref or ""))

    add(resource)
    for device in [r for r in picked if r.KIND == "Device"]:
        for der in fleet.ders.values():
            if der.spec.device_ref == device.name:
                add(der)
    return Fleet.of(picked)
