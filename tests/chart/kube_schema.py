"""Offline schema checks of Kubernetes manifests.

Built-in kinds are checked against the models of the official `kubernetes` client, which
are generated from the Kubernetes OpenAPI document: every key must be a field of the
model under its JSON name (`attribute_map`), every value must have the field's type
(`openapi_types`), and required fields must be present (pydantic `model_fields` in the
client's newer, pydantic-based models; the constructor's checks in older ones). That is
what `kubectl apply` with strict field validation would reject, without an API server.

Custom resources are checked with jsonschema against the `openAPIV3Schema` of their CRD
(draft 4 semantics, as OpenAPI 3.0 has them: a boolean `exclusiveMinimum`), made strict the
way the API server is: an object with `properties` and no
`x-kubernetes-preserve-unknown-fields` accepts no other keys. CEL rules
(`x-kubernetes-validations`) are not evaluated here; the models enforce the same rules.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import pydantic
import yaml
from kubernetes.client import Configuration, models

_CONFIG = Configuration()
_CONFIG.client_side_validation = True  # older models: the setters reject missing fields
# `List[X]` / `Dict[str, X]` in the pydantic-based client, `list[X]` / `dict(str, X)` before.
_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
_DICT = re.compile(r"^(?:Dict\[str, (.+)\]|dict\(str, (.+)\))$")


class _KubeLoader(yaml.SafeLoader):
    """YAML read as kubectl reads it (sigs.k8s.io/yaml): a timestamp stays a string."""


_KubeLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def load_all(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML stream, as kubectl would send them."""
    return [d for d in yaml.load_all(text, Loader=_KubeLoader) if d]  # a SafeLoader


def model_for(api_version: str, kind: str) -> type:
    """The client model of a built-in kind, e.g. apps/v1 Deployment -> V1Deployment."""
    version = api_version.rsplit("/", 1)[-1]
    model = getattr(models, version[:1].upper() + version[1:] + kind, None)
    if model is None or not hasattr(model, "openapi_types"):
        raise LookupError(f"no Kubernetes model for {api_version} {kind}")
    return model


def _check(value: Any, type_name: str, path: str, errors: list[str]) -> None:
    if value is None:
        return  # an explicit null means "unset" to the API server
    if match := _LIST.match(type_name):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            _check(item, match.group(1), f"{path}[{index}]", errors)
        return
    if match := _DICT.match(type_name):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(f"{path}: key {key!r} is not a string")
            _check(item, match.group(1) or match.group(2), f"{path}.{key}", errors)
        return
    scalar = {
        "str": (str,), "bytes": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
        "datetime": (str, datetime.datetime, datetime.date),
    }
    if type_name == "object":  # int-or-string, quantities, raw extensions: anything goes
        return
    if type_name in scalar:
        wanted = scalar[type_name]
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    model = getattr(models, type_name)
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {type_name} object, got {type(value).__name__}")
        return
    _check_model(value, model, path, errors)


def _check_model(value: Mapping[str, Any], model: type, path: str, errors: list[str]) -> None:
    fields = {json_key: attr for attr, json_key in model.attribute_map.items()}  # type: ignore[attr-defined]
    for key, item in value.items():
        if key not in fields:
            errors.append(f"{path}.{key}: unknown field of {model.__name__}")
            continue
        _check(item, model.openapi_types[fields[key]], f"{path}.{key}", errors)  # type: ignore[attr-defined]
    if issubclass(model, pydantic.BaseModel):
        missing = [model.attribute_map[name]  # type: ignore[attr-defined]
                   for name, info in model.model_fields.items()
                   if info.is_required() and model.attribute_map[name] not in value]  # type: ignore[attr-defined]
        errors.extend(f"{path}.{key}: required field of {model.__name__} is missing"
                      for key in missing)
        return
    try:
        model(**{fields[k]: v for k, v in value.items() if k in fields},
              local_vars_configuration=_CONFIG)
    except ValueError as exc:
        errors.append(f"{path}: {model.__name__}: {exc}")


def validate_builtin(document: Mapping[str, Any]) -> list[str]:
    """What is wrong with a built-in Kubernetes object ([] when it is valid)."""
    errors: list[str] = []
    model = model_for(str(document.get("apiVersion")), str(document.get("kind")))
    _check_model(document, model, str(document.get("kind")), errors)
    return errors


def strict(schema: Any) -> Any:
    """A copy of a structural schema where objects with properties forbid other keys."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:  # node is a schema; only its subschemas are walked
        if not isinstance(node, dict):
            return
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for child in (node.get("properties") or {}).values():
            walk(child)
        for key in ("items", "additionalProperties", "not"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key) or []:
                walk(child)

    walk(schema)
    return schema


def _with_implicit_root(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The API server allows apiVersion, kind and metadata on every object, declared or not."""
    schema = copy.deepcopy(dict(schema))
    properties = schema.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties.setdefault("metadata", {"type": "object"})
    return schema


class CrdSet:
    """The CRDs a chart installs, to validate custom resources against."""

    def __init__(self, crds: Iterable[Mapping[str, Any]]) -> None:
        self.validators: dict[tuple[str, str], jsonschema.Draft4Validator] = {}
        self.scopes: dict[tuple[str, str], str] = {}
        for crd in crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schema = strict(_with_implicit_root(version["schema"]["openAPIV3Schema"]))
                jsonschema.Draft4Validator.check_schema(schema)
                self.validators[key] = jsonschema.Draft4Validator(schema)
                self.scopes[key] = spec["scope"]

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.validators

    def validate(self, document: Mapping[str, Any]) -> list[str]:
        """What is wrong with a custom resource ([] when it is valid)."""
        key = (str(document.get("apiVersion")), str(document.get("kind")))
        if key not in self.validators:
            return [f"no CRD serves {key[0]} {key[1]}"]
        errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                  for e in self.validators[key].iter_errors(dict(document))]
        namespaced = bool((document.get("metadata") or {}).get("namespace"))
        if self.scopes[key] == "Cluster" and namespaced:
            errors.append(f"{key[1]} is cluster-scoped but has metadata.namespace")
        return errors
