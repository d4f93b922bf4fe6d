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


def _walk(model: BaseModel, prefix: str, into: set[str]) -> None:
    fields = type(model).model_fields
    for name in model.model_fields_set:
        info = fields.get(name)
        if info is None:
            continue
        key = f"{prefix}{info.alias or name}"
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _walk(value, f"{key}.", into)
        elif value is not None:
            into.add(key)
