"""Render the models as schemas: one JSON Schema for editors (yaml-language-server) and
one structural CustomResourceDefinition per kind for Kubernetes.

Both come from the pydantic models; nothing here is written by hand except the printer
columns and names. CRD schemas must be structural (KEP-2335): every node typed, no `$ref`,
no `anyOf` with null, no `additionalProperties: false`. `is_structural` checks that.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from reconciler.model.base import API_GROUP, API_VERSION, API_VERSION_NAME, Resource
from reconciler.model.der import DER
from reconciler.model.device import Device
from reconciler.model.env_names import OWN_PATTERN, OWN_PREFIX
from reconciler.model.gateway import Gateway
from reconciler.model.kinds import KINDS
from reconciler.model.site import Site
from reconciler.model.status import ResourceStatus
from reconciler.model.vocab import ALLOWED_DER_TYPES

SCHEMA_ID = "https://energy.reconciler.dev/schema/v1alpha1.json"
CATEGORY = "energy"
Json = dict[str, Any]

_AnyResource = Annotated[Site | Gateway | Device | DER, Field(discriminator="kind")]

_READY = '.status.conditions[?(@.type=="Ready")].status'
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

# Per kind: plural, short names (none collide with the Gateway API's `gateways`/`gtw`),
# and printer columns.
CRD_NAMES: dict[str, Json] = {
    "Site": {
        "plural": "sites", "shortNames": ["esite"],
        "columns": [
            {"name": "Display Name", "type": "string", "jsonPath": ".spec.displayName"},
            {"name": "Timezone", "type": "string", "jsonPath": ".spec.timezone"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
        ],
    },
    "Gateway": {
        "plural": "gateways", "shortNames": ["egw"],
        "columns": [
            {"name": "Site", "type": "string", "jsonPath": ".spec.siteRef"},
            # A gateway is a Zap or an Enapter gateway (exactly one, by a CEL rule): the union
            # gives the one identifier it has, so the column is filled for both.
            {"name": "Serial", "type": "string",
             "jsonPath": ".spec['zap.serial','enapter.hardwareId']",
             "description": "The Zap's serial, or the Enapter gateway's hardware id."},
            {"name": "Claimed", "type": "string",
             "jsonPath": '.status.conditions[?(@.type=="Claimed")].status'},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
        ],
    },
    "Device": {
        "plural": "devices", "shortNames": ["edev"],
        "columns": [
            {"name": "Gateway", "type": "string", "jsonPath": ".spec.gatewayRef"},
            {"name": "Type", "type": "string", "jsonPath": ".spec.deviceType"},
            {"name": "Hardware ID", "type": "string", "jsonPath": ".spec.hardwareId"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
        ],
    },
    "DER": {
        "plural": "ders", "shortNames": ["eder"],
        "columns": [
            {"name": "Device", "type": "string", "jsonPath": ".spec.deviceRef"},
            {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
            {"name": "Publish", "type": "boolean", "jsonPath": ".spec.publish"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
        ],
    },
}


def _exactly_one(*fields: str) -> str:
    return "[" + ", ".join(f"has(self.{f})" for f in fields) + "].filter(x, x).size() == 1"


_DER_TABLE = "{" + ", ".join(
    f"'{device}': [" + ", ".join(f"'{t}'" for t in sorted(types)) + "]"
    for device, types in ALLOWED_DER_TYPES.items()
) + "}"

# CEL rules (x-kubernetes-validations) attached to schema nodes by the model's title.
# They repeat, for `kubectl apply`, the rules the loader checks in Python.
CEL_RULES: dict[str, list[Json]] = {
    "GatewaySpec": [{"rule": "has(self.zap) != has(self.enapter)",
                     "message": "set exactly one of zap or enapter"}],
    "Connection": [{"rule": _exactly_one("modbusTcp", "modbusRtu", "p1Uart", "mqtt"),
                    "message": "set exactly one of modbusTcp, modbusRtu, p1Uart or mqtt"}],
    "SecretSource": [
        {"rule": _exactly_one("secretKeyRef", "env"),
         "message": "set exactly one of secretKeyRef or env"},
        # The JSON Schema's `not` of the env name (`model.env_names`), which CRDs cannot take.
        # No `fieldPath`: the chart supports Kubernetes 1.25, which does not know it.
        {"rule": f"!has(self.env) || !self.env.matches('{OWN_PATTERN}')",
         "message": f"env may not name one of the reconciler's own settings ({OWN_PREFIX}*, "
                    "its cloud tokens and keys): use a variable of its own or secretKeyRef"},
    ],
    "ConfigOutput": [{"rule": _exactly_one("file", "secretName"),
                      "message": "set exactly one of file or secretName"}],
    "DeviceSpec": [
        {"rule": "!has(self.ders) || !has(self.deviceType) || "
                 f"self.ders.all(d, d.type in {_DER_TABLE}[self.deviceType])",
         "message": "a DER type is not allowed for this deviceType "
                    "(inverter: solar, battery, meter; battery: battery, meter; "
                    "ev_charger and v2x_charger: ev_charger_port; energy_meter: meter)"},
        {"rule": "!has(self.ders) || self.ders.all(a, self.ders.exists_one(b, b.name == a.name))",
         "message": "DER names must be unique within a device"},
        {"rule": "has(self.gatewayRef) || has(self.siteRef)",
         "message": "set gatewayRef or siteRef"},
    ],
}


def json_schema() -> Json:
    """JSON Schema of one document of any kind, for editor completion and validation."""
    schema = TypeAdapter(_AnyResource).json_schema(by_alias=True, mode="validation")
    schema = _strip_keys(schema, {"x-kubernetes-validations"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Energy site reconciler resource",
        "description": "A Site, Gateway, Device or DER document "
                       f"(apiVersion {API_VERSION}).",
        **schema,
    }


def _strip_keys(node: Any, keys: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _strip_keys(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [_strip_keys(v, keys) for v in node]
    return node


def _structural(node: Any, defs: Json) -> Any:
    """Inline refs and rewrite JSON Schema 2020-12 into the OpenAPI v3 subset a CRD takes."""
    if isinstance(node, list):
        return [_structural(v, defs) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _structural({**options[0], **rest}, defs)
        raise ValueError(f"cannot express a union of {len(options)} types structurally: {node}")
    out: Json = {}
    title = node.get("title")
    for key, value in node.items():
        # `not` is no part of a structural schema: a CEL rule (CEL_RULES) says the same.
        if key in ("title", "default", "$defs", "discriminator", "const", "not"):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "examples":
            out["example"] = value[0]
            continue
        if key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
            continue
        if key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
            continue
        out[key] = _structural(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if title in CEL_RULES and out.get("type") == "object":
        out["x-kubernetes-validations"] = CEL_RULES[title]
    return out


def _openapi_for(model: type[Any]) -> Json:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    result: Json = _structural(raw, defs)
    return result


def crd(kind: str) -> Json:
    """The CustomResourceDefinition of one kind."""
    model: type[Resource] = KINDS[kind]
    names = CRD_NAMES[kind]
    spec_schema = _openapi_for(model.model_fields["spec"].annotation)  # type: ignore[arg-type]
    status_schema = _openapi_for(ResourceStatus)
    # kopf keeps its own bookkeeping under status; unknown keys there must survive pruning.
    status_schema["x-kubernetes-preserve-unknown-fields"] = True
    spec_schema["description"] = model.model_fields["spec"].description or ""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{names['plural']}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": names["plural"],
                "singular": kind.lower(),
                "shortNames": names["shortNames"],
                "categories": [CATEGORY],
            },
            "versions": [{
                "name": API_VERSION_NAME,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [*names["columns"], _AGE],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": (model.__doc__ or kind).strip(),
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": status_schema,
                    },
                }},
            }],
        },
    }


def crds() -> dict[str, Json]:
    """File name -> CRD, one per kind."""
    return {f"{CRD_NAMES[k]['plural']}.{API_GROUP}.yaml": crd(k) for k in KINDS}


_ALLOWED_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_FORBIDDEN = {"$ref", "anyOf", "oneOf", "allOf", "not", "definitions", "$defs", "const"}


def structural_problems(node: Any, path: str = "") -> list[str]:
    """Reasons a CRD schema is not structural (empty when it is)."""
    problems: list[str] = []
    if not isinstance(node, dict):
        return [f"{path or '/'}: schema node is not a mapping"]
    for key in _FORBIDDEN & node.keys():
        problems.append(f"{path or '/'}: `{key}` is not allowed in a structural schema")
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if node.get("type") not in _ALLOWED_TYPES and not preserve:
        problems.append(f"{path or '/'}: missing or invalid `type`")
    if node.get("additionalProperties") is False:
        problems.append(f"{path or '/'}: `additionalProperties: false` is not allowed")
    if "properties" in node and isinstance(node.get("additionalProperties"), dict):
        problems.append(f"{path or '/'}: `properties` and `additionalProperties` are exclusive")
    for name, sub in node.get("properties", {}).items():
        if path == "" and name == "metadata":
            continue
        problems += structural_problems(sub, f"{path}/{name}")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}/items")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(
            node["additionalProperties"], f"{path}/additionalProperties"
        )
    return problems
