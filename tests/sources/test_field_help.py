"""Messages that say what would be valid (`reconciler.sources.field_help`): unknown fields
with suggestions, quoting hints, pattern descriptions, and field-path rendering."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.model.device import Device, ModbusTcp, Mqtt
from reconciler.model.gateway import Gateway, ZapGateway
from reconciler.model.site import Location, Site
from reconciler.sources import field_help


def describe_all(model: type[Any], data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [field_help.describe(model, e) for e in caught.value.errors(include_url=False)]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param((), "", id="root"),
        pytest.param(("spec",), "spec", id="one"),
        pytest.param(("spec", "ders", 1, "type"), "spec.ders[1].type", id="list-index"),
        pytest.param(("spec", "connection", "modbusTcp"), "spec.connection.modbusTcp",
                     id="nested"),
        pytest.param((0,), "[0]", id="leading-index"),
    ],
)
def test_render_path(path: field_help.Path, expected: str) -> None:
    assert field_help.render_path(path) == expected


@pytest.mark.parametrize(
    ("model", "path", "expected"),
    [
        pytest.param(Device, ("spec", "connection", "modbusTcp"), ModbusTcp, id="alias-path"),
        pytest.param(Device, ("spec", "connection", "mqtt"), Mqtt, id="optional"),
        pytest.param(Device, ("spec", "ders", 3), field_help.model_at(Device, ("spec", "ders")),
                     id="list-items"),
        pytest.param(Gateway, ("spec", "zap"), ZapGateway, id="gateway"),
        pytest.param(Site, ("spec", "location"), Location, id="site"),
        pytest.param(Site, ("spec", "timezone"), None, id="scalar-field"),
        pytest.param(Site, ("spec", "nothing"), None, id="unknown-field"),
        pytest.param(Site, ("spec", "timezone", "deeper"), None, id="below-a-scalar"),
    ],
)
def test_model_at(model: type[Any], path: field_help.Path, expected: type[Any] | None) -> None:
    assert field_help.model_at(model, path) is expected


def test_list_items_resolve_to_the_item_model() -> None:
    items = field_help.model_at(Device, ("spec", "ders", 0))
    assert items is not None and items.__name__ == "DerFields"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param("hostname", "192.168.1.60", "unknown field 'hostname' (did you mean "
                     "'host'?); valid fields here: host, port, unitId, profile", id="close-match"),
        pytest.param("zzz", 1, "unknown field 'zzz'; valid fields here: host, port, unitId, "
                     "profile", id="no-close-match"),
    ],
)
def test_unknown_fields_list_the_valid_ones(field: str, value: object, expected: str) -> None:
    data = {"host": "192.168.1.60", "profile": "sungrow", field: value}
    assert describe_all(ModbusTcp, data) == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1031050223180042, "expected a string, but YAML reads this value as a "
                     "number; put it in quotes", id="int"),
        pytest.param(3.2, "expected a string, but YAML reads this value as a number; put it "
                     "in quotes", id="float"),
        pytest.param(True, "expected a string, but YAML reads this value as a boolean; put it "
                     "in quotes", id="yes-no-on-off"),
        pytest.param(["a"], "expected a string, not a list", id="list"),
        pytest.param({"a": 1}, "expected a string, not a mapping", id="mapping"),
    ],
)
def test_scalars_where_text_belongs(value: object, expected: str) -> None:
    assert describe_all(ModbusTcp, {"host": value, "profile": "sungrow"}) == [expected]


def test_no_value_says_what_to_write_and_whether_it_may_be_left_out() -> None:
    """`key:` alone, `null` and `~` reach the model as None; pydantic would say only
    "Input should be a valid string"."""
    messages = describe_all(ModbusTcp, {"host": None, "profile": "sungrow", "port": None})
    none = "no value here (YAML reads `key:` alone, `null` and `~` as none): write a value"
    assert messages[0].startswith(none) and not messages[0].endswith("or leave the field out")
    assert messages[1].startswith(none) and messages[1].endswith(", or leave the field out")


def test_missing_fields_and_patterns_say_what_is_expected() -> None:
    messages = describe_all(ZapGateway, {"serial": "zap-XYZ"})
    assert messages == [
        "String should match pattern '^zap-[0-9a-f]{4,32}$'. Expected: Gateway serial as "
        "reported by GET /api/crypto: `zap-` followed by lowercase hex digits.",
        "required field 'url' is missing",
    ]


def test_value_errors_lose_the_pydantic_prefix() -> None:
    (message,) = describe_all(Mqtt, {"profile": "ferroamp", "brokerHost": "h",
                                     "passwordFrom": {}})
    assert message == "set exactly one of `secretKeyRef` or `env`"


def test_a_scalar_where_a_mapping_belongs() -> None:
    (message,) = describe_all(Location, {"latitude": 1, "longitude": 2, "address": "Storgatan 1"})
    assert message == "expected a mapping of fields here"
