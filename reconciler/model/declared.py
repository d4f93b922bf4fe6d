"""Which fields a resource's spec sets: the paths (YAML names, dot-separated) of the
values written in the desired state, not those left to their defaults. The state
directory records them at each apply, so that the next plan knows a field its spec stopped
declaring (`plan.removed_fields`); only names are recorded, never a value."""

from __future__ import annotations

from pydantic import BaseModel


def declared_paths(model: BaseModel) -> frozenset[str]:
    """The leaf paths `model` sets, in camelCase (`connection.modbusTcp.port`). A nested
    block set is walked into; a list or a mapping is one leaf (its items are matched by
    their own keys elsewhere: a DER by name)."""
    paths: set[str] = set()
    _walk(model, "", paths)
    return frozenset(paths)


# Model class -> its field names -> the YAML names (aliases): looked up once per class, as
# the walk runs over every resource of the fleet at each plan.
_YAML_NAMES: dict[type[BaseModel], dict[str, str]] = {}


def _walk(model: BaseModel, prefix: str, into: set[str]) -> None:
    names = _YAML_NAMES.get(type(model))
    if names is None:
        fields = type(model).model_fields
        names = _YAML_NAMES[type(model)] = {n: info.alias or n for n, info in fields.items()}
    for name in model.model_fields_set:
        key = names.get(name)
        if key is None:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _walk(value, f"{prefix}{key}.", into)
        elif value is not None:
            into.add(prefix + key)
