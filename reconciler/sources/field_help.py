"""Turn pydantic validation errors into messages that say what would be valid.

Pydantic says *what* is wrong; a user editing YAML also needs to know *what to write*:
the fields allowed at that place for an unknown key, the field's description for a value
that does not match its pattern."""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

from reconciler.name_list import closest
from reconciler.printable import echo

Path = tuple[str | int, ...]


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/list/Annotated down to the model class inside, if any."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else options[0]
        elif origin in (list, tuple, set, frozenset):
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def _field_by_alias(model: type[BaseModel], key: str) -> tuple[str, Any] | None:
    for name, info in model.model_fields.items():
        if key in (info.alias, name):
            return name, info
    return None


def model_at(model: type[BaseModel], path: Path) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path`, if the path leads to one."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue  # list index: the item type was unwrapped already
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        found = _field_by_alias(current, part)
        if found is None:
            return None
        current = _unwrap(found[1].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _aliases(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def describe(model: type[BaseModel], error: ErrorDetails) -> str:
    """A human message for one pydantic error, with what would be valid."""
    loc = tuple(error["loc"])
    kind = error["type"]
    message = error["msg"]
    if kind == "extra_forbidden":
        parent = model_at(model, loc[:-1])
        fields = _aliases(parent) if parent else []
        close = closest(str(loc[-1]), fields)
        hint = f" (did you mean {echo(close)}?)" if close is not None else ""
        return (
            f"unknown field {echo(loc[-1])}{hint}; valid fields here: "
            f"{', '.join(fields) or '(none)'}"
        )
    if error.get("input") is None and (kind.endswith("_type") or kind in _CHOICES):
        return _null(model, loc)
    if kind == "string_type" and isinstance(error.get("input"), bool | int | float):
        what = "a boolean" if isinstance(error["input"], bool) else "a number"
        return f"expected a string, but YAML reads this value as {what}; put it in quotes"
    if kind == "string_type" and isinstance(error.get("input"), list | dict):
        what = "a list" if isinstance(error["input"], list) else "a mapping"
        return f"expected a string, not {what}"
    if kind in _EXPECTED:
        mismatch = _scalar_mismatch(_EXPECTED[kind], error.get("input"))
        if mismatch is not None:
            return mismatch
    if kind == "enum" and isinstance(error.get("input"), str):
        meant = closest(error["input"], _enum_values(model, loc))
        if meant is not None:
            return f"{message}; did you mean {echo(meant)}?"
    if kind == "finite_number":
        return "expected a number, but YAML reads this value as .nan or .inf; write a number"
    if kind == "missing":
        return f"required field {echo(loc[-1])} is missing"
    if kind in ("string_too_short", "too_short") and error.get("input") == "":
        return _empty(model, loc)
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = error.get("input")
    if (kind in ("url_parsing", "url_scheme") and isinstance(value, str) and value
            and "://" not in value and "@" not in value):
        # `192.168.1.40` reads as a relative URL, `zap.local:80` as the scheme `zap.local`.
        message = (f"{echo(value)} has no scheme: write the URL whole, such as "
                   f"{echo('http://' + value)}")
    if kind in ("string_pattern_mismatch", "url_parsing", "url_scheme"):
        parent = model_at(model, loc[:-1])
        info = (
            _field_by_alias(parent, str(loc[-1])) if parent and isinstance(loc[-1], str) else None
        )
        if info is not None and info[1].description:
            message = f"{message}. Expected: {info[1].description}"
    if kind == "model_type" or kind == "dict_type":
        message = "expected a mapping of fields here"
    return message


def _enum_values(model: type[BaseModel], loc: Path) -> list[str]:
    """The values of the enum field at `loc`, or none when it is not one."""
    parent = model_at(model, loc[:-1])
    info = _field_by_alias(parent, str(loc[-1])) if parent and isinstance(loc[-1], str) else None
    annotation = _unwrap(info[1].annotation) if info is not None else None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return []



# The kinds of error of a field that takes one of a few values.
_CHOICES = ("enum", "literal_error")


def _null(model: type[BaseModel], loc: Path) -> str:
    """The message for no value where one is needed (`key:` with nothing after it, `null`
    or `~`, which YAML reads alike): what to write, and that an optional field can be left
    out instead. pydantic says only what type the input is not."""
    return _needs_value(model, loc, "no value here (YAML reads `key:` alone, `null` and `~` "
                                    "as none)")


def _empty(model: type[BaseModel], loc: Path) -> str:
    """The message for an empty string where a value is needed: what to write, and that an
    optional field can be left out instead."""
    return _needs_value(model, loc, "must not be empty")


def _needs_value(model: type[BaseModel], loc: Path, problem: str) -> str:
    """`problem` (a field given no usable value), then what to write, and that an optional
    field can be left out instead."""
    parent = model_at(model, loc[:-1])
    info = _field_by_alias(parent, str(loc[-1])) if parent and isinstance(loc[-1], str) else None
    if info is None:
        return problem
    expected = f" ({info[1].description.rstrip('.')})" if info[1].description else ""
    if info[1].is_required():
        return f"{problem}: write a value{expected}"
    return f"{problem}: write a value{expected}, or leave the field out"


# Number and boolean fields are strict (no `port: true`, `port: "502"`, `publish: 1`):
# what YAML turned a value into is rarely what its author meant.
_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
}


def _scalar_mismatch(expected: str, value: Any) -> str | None:
    """The message for a scalar of the wrong YAML type, None for other inputs (a mapping,
    a list: the generic message fits those)."""
    if isinstance(value, bool):
        return (f"expected {expected}, but YAML reads this value as a boolean (true, false, "
                "yes, no, on and off are booleans)")
    if isinstance(value, float) and expected == _EXPECTED["int_type"]:
        return f"expected {expected}, not {echo(value)}"
    if isinstance(value, int) and expected == _EXPECTED["float_type"]:
        # A whole number is a number: refused only when past what a float holds.
        return (f"expected a number, but this one ({value.bit_length():,} bits) is too large "
                "to hold: a number is at most about 1.8e308")
    if isinstance(value, int | float):
        return f"expected {expected}, but YAML reads this value as a number"
    if isinstance(value, str):
        if _reads_as(expected, value):
            return f"expected {expected}, but the quotes make this value text; remove them"
        return f"expected {expected}, not the text {echo(value)}"
    return None


def _reads_as(expected: str, text: str) -> bool:
    """Whether `text` unquoted would be what the field expects."""
    try:
        value = yaml.safe_load(text)
    # Text that is no YAML, or YAML past what the parser reads: nested too deeply
    # (RecursionError), or a number of more than 4,300 digits (ValueError).
    except (yaml.YAMLError, RecursionError, ValueError):
        return False
    if expected == _EXPECTED["bool_type"]:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if expected == _EXPECTED["float_type"]:
        return isinstance(value, int | float)
    return isinstance(value, int)


def render_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
