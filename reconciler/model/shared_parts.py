"""Equal parts of the resources of one load made one object each, to keep a large fleet small.

A fleet repeats itself: 10,000 devices hold 10,000 `Verification` blocks left to their
default, DERs `{name: battery, type: battery}` by the thousand, the same profile, kind and
API version strings. Pydantic gives each block a model object of its own, with a `__dict__`
and a set of the fields its document set (`model_fields_set`), some 500 bytes a model
before its values. `Sharing` walks each validated resource once and puts in place of each
part one equal part already seen. For 1,000 sites of 10 devices what the fleet holds goes
from 53 MB to 22 MB, and the peak RSS of a no-op plan, which holds the fleet and what it
observed, from 187 MB to 154 MB (`benchmarks/reconcile_fleet.py`).

What makes this safe: every model of the desired state is frozen (`base.StrictModel`), so
a shared part cannot change under one of its holders, and pydantic copies the fields set
of a model before changing it (`model_copy`). A part is shared only when it is equal in
every respect that shows: the same class, the same fields set, values of the same types
(`True` equals `1`, and `-0.0` equals `0.0`: floats are never shared, nor are values this
module does not know, nor models that hold one). Resources themselves are never shared: two
documents that declare the same thing are two declarations (`check_fleet` tells them
apart, and reports the second).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel

from reconciler.model.base import Resource

R = TypeVar("R", bound=Resource)

# What a value that cannot be shared, and no model that holds it, is keyed by.
_UNSHARED = object()
# Values compared by type and value: the types of the YAML scalars the models keep.
_SCALARS = (int, bool, type(None))


class Sharing:
    """The parts seen so far in one load. Kept for that load alone: a table that lived on
    would keep every fleet it saw (the watch agent and the operator load again and again)."""

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._models: dict[tuple[Any, ...], BaseModel] = {}
        self._fields_sets: dict[frozenset[str], set[str]] = {}

    def resource(self, resource: R) -> R:
        """`resource` with its parts replaced by equal ones seen before (in place: nothing
        else holds it yet)."""
        self._fields(resource)
        return resource

    def _fields(self, model: BaseModel) -> tuple[Any, ...] | None:
        """Share the values and the fields set of `model` (in place); the key of its
        content, or None when some value cannot be shared."""
        values = model.__dict__
        parts: list[Any] = []
        whole = True
        for name, value in values.items():
            shared, part = self._value(value)
            if shared is not value:
                # Straight into the frozen model's __dict__, as pydantic itself sets values:
                # the same value, one object.
                values[name] = shared
            if part is _UNSHARED:
                whole = False
            elif whole:
                parts.append(part)
        declared = model.__pydantic_fields_set__
        frozen = frozenset(declared)
        one = self._fields_sets.setdefault(frozen, declared)
        if one is not declared:
            object.__setattr__(model, "__pydantic_fields_set__", one)
        if not whole or model.__pydantic_extra__ or model.__pydantic_private__:
            return None
        return (type(model), frozen, *parts)

    def _value(self, value: Any) -> tuple[Any, Any]:
        """(the shared value, its key part, or _UNSHARED)."""
        kind = type(value)
        if kind is str:
            text = self._strings.setdefault(value, value)
            return text, text
        if kind in _SCALARS or isinstance(value, Enum):
            return value, (kind, value)
        if isinstance(value, BaseModel):
            if isinstance(value, Resource):
                return value, _UNSHARED
            key = self._fields(value)
            if key is None:
                return value, _UNSHARED
            model = self._models.setdefault(key, value)
            # The table keeps every shared model for the load, so its id stands for it.
            return model, (BaseModel, id(model))
        if kind is list:
            parts = []
            for index, item in enumerate(value):
                shared, part = self._value(item)
                if shared is not item:
                    value[index] = shared
                parts.append(part)
            if any(part is _UNSHARED for part in parts):
                return value, _UNSHARED
            return value, (list, *parts)
        if kind is dict:
            # Labels and annotations: their strings are shared, the mapping is each
            # holder's own (a mutable value shared would be one change away from a surprise).
            if not value:
                return value, _UNSHARED
            return {self._value(key)[0]: self._value(item)[0]
                    for key, item in value.items()}, _UNSHARED
        return value, _UNSHARED
