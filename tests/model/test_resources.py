"""Single-document rules of the four kinds (`reconciler.model.site/gateway/device/der`):
defaults, derived properties, and every field constraint and exactly-one rule that
pydantic enforces, one table row per rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.model.base import API_VERSION, Resource, is_valid_resource_name
from reconciler.model.der import DER
from reconciler.model.device import Device
from reconciler.model.gateway import Gateway
from reconciler.model.kinds import KINDS
from reconciler.model.site import Site

SITE: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "Site",
    "metadata": {"name": "home-solna"},
    "spec": {
        "displayName": "Home, Solna",
        "timezone": "Europe/Stockholm",
        "location": {
            "latitude": 59.36,
            "longitude": 18.0,
            "address": {"line1": "Storgatan 1", "city": "Solna", "postCode": "169 70",
                        "countryCode": "SE"},
        },
        "novacore": {"orgId": "org-4f2a9c71"},
    },
}
ZAP: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "Gateway",
    "metadata": {"name": "home-zap"},
    "spec": {"siteRef": "home-solna",
             "zap": {"serial": "zap-3c61a4f0b2d8e917", "url": "http://192.168.1.40"}},
}
INVERTER: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "Device",
    "metadata": {"name": "inverter"},
    "spec": {
        "gatewayRef": "home-zap",
        "hardwareId": "A2231234567",
        "deviceType": "inverter",
        "connection": {"modbusTcp": {"host": "192.168.1.60", "profile": "sungrow"}},
        "ders": [{"name": "pv", "type": "solar"}, {"name": "battery", "type": "battery"}],
    },
}
UCM: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "Device",
    "metadata": {"name": "ucm"},
    "spec": {"siteRef": "lab", "hardwareId": "C8795CBA5375484E829105E959663C8B",
             "enapter": {"kind": "ucm", "configOutput": {"file": "secrets/ucm.json"}}},
}
STANDALONE_DER: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "DER",
    "metadata": {"name": "inverter-meter"},
    "spec": {"deviceRef": "inverter", "name": "meter", "type": "meter"},
}
_DELETE = object()


def edit(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with dotted paths set (or removed with `_DELETE`)."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return data


def validate(data: dict[str, Any]) -> Resource:
    return KINDS[data["kind"]].model_validate(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(SITE, id="site"),
        pytest.param(edit(SITE, {"spec.location": _DELETE, "spec.novacore": _DELETE}),
                     id="site-minimal"),
        pytest.param(edit(SITE, {"spec.timezone": "UTC"}), id="site-utc"),
        pytest.param(ZAP, id="zap-gateway"),
        pytest.param(edit(ZAP, {"spec.zap.serial": "zap-04772a97"}), id="zap-short-doc-serial"),
        pytest.param(edit(ZAP, {"spec.zap": _DELETE, "spec.enapter": {
            "hardwareId": "B27925CBA5375484E829105E959663C8B", "firmwareVersion": "3.2.1"}}),
            id="enapter-gateway"),
        pytest.param(INVERTER, id="inverter"),
        pytest.param(edit(INVERTER, {"spec.connection": {"p1Uart": {}}}), id="p1-defaults"),
        pytest.param(edit(INVERTER, {"spec.connection": {"mqtt": {
            "profile": "ferroamp", "brokerHost": "192.168.1.70",
            "passwordFrom": {"env": "FERROAMP_PASSWORD"}}}}), id="mqtt-password-from-env"),
        pytest.param(UCM, id="enapter-ucm"),
        pytest.param(STANDALONE_DER, id="standalone-der"),
        pytest.param(edit(INVERTER, {"spec.ders": [{"name": f"pv-{i}", "type": "solar"}
                                                   for i in range(16)]}), id="16-ders"),
        pytest.param(edit(INVERTER, {"spec.flatpeak": {
            "referenceId": "home-pv", "type": "PV_SYSTEM",
            "properties": {"pvAzimuth": 359.9, "pvTilt": 90, "installDate": "2023-05-16"}}}),
            id="flatpeak-properties-at-bounds"),
    ],
)
def test_valid_documents(data: dict[str, Any]) -> None:
    resource = validate(data)
    assert resource.kind == data["kind"]
    assert resource.name == data["metadata"]["name"]


def error_list(data: dict[str, Any]) -> list[tuple[str, tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        validate(data)
    return [(e["type"], tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("data", "error_type", "loc", "message"),
    [
        pytest.param(edit(SITE, {"apiVersion": "energy.reconciler.dev/v1"}),
                     "string_pattern_mismatch", ("apiVersion",), "", id="wrong-api-version"),
        pytest.param(edit(SITE, {"metadata.name": "Home"}), "string_pattern_mismatch",
                     ("metadata", "name"), "", id="name-upper-case"),
        pytest.param(edit(SITE, {"metadata.name": "a" * 254}), "string_too_long",
                     ("metadata", "name"), "253", id="name-too-long"),
        pytest.param(edit(SITE, {"metadata.labels": {"region": 1}}), "string_type",
                     ("metadata", "labels", "region"), "", id="label-value-not-string"),
        pytest.param(edit(SITE, {"spec.displayName": ""}), "string_too_short",
                     ("spec", "displayName"), "", id="empty-display-name"),
        pytest.param(edit(SITE, {"spec.timezone": "Europe/Solna"}), "value_error",
                     ("spec", "timezone"), "unknown timezone 'Europe/Solna'", id="bad-timezone"),
        pytest.param(edit(SITE, {"spec.timezone": "Europe"}), "value_error",
                     ("spec", "timezone"), "unknown timezone 'Europe'", id="timezone-directory"),
        pytest.param(edit(SITE, {"spec.timezone": "../etc/passwd"}), "value_error",
                     ("spec", "timezone"), "unknown timezone", id="timezone-path"),
        pytest.param(edit(SITE, {"spec.location.latitude": 90.5}), "less_than_equal",
                     ("spec", "location", "latitude"), "90", id="latitude-above-90"),
        pytest.param(edit(SITE, {"spec.location.longitude": -181}), "greater_than_equal",
                     ("spec", "location", "longitude"), "-180", id="longitude-below-180"),
        pytest.param(edit(SITE, {"spec.location.address.countryCode": "se"}),
                     "string_pattern_mismatch", ("spec", "location", "address", "countryCode"),
                     "", id="country-code-lower-case"),
        pytest.param(edit(SITE, {"spec.novacore.orgId": ""}), "string_too_short",
                     ("spec", "novacore", "orgId"), "", id="empty-org-id"),
        pytest.param(edit(SITE, {"spec.novacore.orgID": "org-1"}), "extra_forbidden",
                     ("spec", "novacore", "orgID"), "", id="unknown-field"),
        pytest.param(edit(ZAP, {"spec.zap.serial": "zap-abc"}), "string_pattern_mismatch",
                     ("spec", "zap", "serial"), "", id="zap-serial-too-short"),
        pytest.param(edit(ZAP, {"spec.zap.serial": "zap-" + "0" * 33}), "string_pattern_mismatch",
                     ("spec", "zap", "serial"), "", id="zap-serial-too-long"),
        pytest.param(edit(ZAP, {"spec.zap.serial": "3c61a4f0b2d8e917"}), "string_pattern_mismatch",
                     ("spec", "zap", "serial"), "", id="zap-serial-without-prefix"),
        pytest.param(edit(ZAP, {"spec.zap.url": "ftp://192.168.1.40"}), "url_scheme",
                     ("spec", "zap", "url"), "http", id="zap-url-not-http"),
        pytest.param(edit(ZAP, {"spec.deletionPolicy": "Delete"}), "enum",
                     ("spec", "deletionPolicy"), "'Orphan' or 'Release'", id="deletion-policy"),
        pytest.param(edit(ZAP, {"spec.enapter": {"hardwareId": "B2", "firmwareVersion": "3.2.1"}}),
                     "value_error", ("spec",), "exactly one of `zap` or `enapter`",
                     id="gateway-zap-and-enapter"),
        pytest.param(edit(ZAP, {"spec.zap": _DELETE}), "value_error", ("spec",),
                     "exactly one of `zap` or `enapter`", id="gateway-no-platform"),
        pytest.param(edit(ZAP, {"spec.zap": _DELETE, "spec.enapter": {
            "hardwareId": "B2", "firmwareVersion": "3.2"}}), "string_pattern_mismatch",
            ("spec", "enapter", "firmwareVersion"), "", id="enapter-firmware-not-semver"),
        pytest.param(edit(INVERTER, {"spec.connection": {}}), "value_error",
                     ("spec", "connection"), "exactly one of", id="no-connection-type"),
        pytest.param(edit(INVERTER, {"spec.connection.p1Uart": {}}), "value_error",
                     ("spec", "connection"), "exactly one of", id="two-connection-types"),
        pytest.param(edit(INVERTER, {"spec.connection.modbusTcp.port": 0}), "greater_than_equal",
                     ("spec", "connection", "modbusTcp", "port"), "", id="port-zero"),
        pytest.param(edit(INVERTER, {"spec.connection.modbusTcp.unitId": 256}), "less_than_equal",
                     ("spec", "connection", "modbusTcp", "unitId"), "255", id="unit-id-256"),
        pytest.param(edit(INVERTER, {"spec.connection.modbusTcp.host": ""}), "string_too_short",
                     ("spec", "connection", "modbusTcp", "host"), "", id="empty-host"),
        pytest.param(edit(INVERTER, {"spec.connection": {"modbusRtu": {
            "profile": "sungrow", "parity": "mark"}}}), "enum",
            ("spec", "connection", "modbusRtu", "parity"), "'none', 'even' or 'odd'",
            id="rtu-parity"),
        pytest.param(edit(INVERTER, {"spec.connection": {"p1Uart": {"dataBits": 9}}}),
                     "less_than_equal", ("spec", "connection", "p1Uart", "dataBits"), "",
                     id="p1-data-bits"),
        pytest.param(edit(INVERTER, {"spec.connection": {"mqtt": {
            "profile": "ferroamp", "brokerHost": "h", "password": "hunter2"}}}),
            "extra_forbidden", ("spec", "connection", "mqtt", "password"), "",
            id="inline-password"),
        pytest.param(edit(INVERTER, {"spec.connection": {"mqtt": {
            "profile": "ferroamp", "brokerHost": "h", "passwordFrom": {}}}}),
            "value_error", ("spec", "connection", "mqtt", "passwordFrom"),
            "exactly one of `secretKeyRef` or `env`", id="password-from-empty"),
        pytest.param(edit(INVERTER, {"spec.connection": {"mqtt": {
            "profile": "ferroamp", "brokerHost": "h", "passwordFrom": {"env": "1PASSWORD"}}}}),
            "string_pattern_mismatch", ("spec", "connection", "mqtt", "passwordFrom", "env"), "",
            id="env-name-pattern"),
        pytest.param(edit(INVERTER, {"spec.connection": {"mqtt": {
            "profile": "ferroamp", "brokerHost": "h",
            "passwordFrom": {"env": "RECONCILER_OPERATOR_CREDENTIAL_KEY"}}}}),
            "value_error", ("spec", "connection", "mqtt", "passwordFrom", "env"),
            "are the reconciler's own settings", id="env-name-own-setting"),
        pytest.param(edit(INVERTER, {"spec.connection": {"mqtt": {
            "profile": "ferroamp", "brokerHost": "h",
            "passwordFrom": {"env": "Reconciler_FLATPEAK_API_KEY"}}}}),
            "value_error", ("spec", "connection", "mqtt", "passwordFrom", "env"),
            "are the reconciler's own settings", id="env-name-own-setting-any-case"),
        pytest.param(edit(INVERTER, {"spec.deviceType": "hybrid"}), "enum",
                     ("spec", "deviceType"), "'inverter'", id="device-type"),
        pytest.param(edit(INVERTER, {"spec.hardwareId": 1031050223180042}), "string_type",
                     ("spec", "hardwareId"), "", id="hardware-id-number"),
        pytest.param(edit(INVERTER, {"spec.ders.0.type": "pv"}), "enum",
                     ("spec", "ders", 0, "type"), "'solar'", id="der-local-type-name"),
        pytest.param(edit(INVERTER, {"spec.ders.1.name": "pv roof"}), "string_pattern_mismatch",
                     ("spec", "ders", 1, "name"), "", id="der-name-space"),
        pytest.param(edit(INVERTER, {"spec.ders.1.name": "p" * 65}), "string_too_long",
                     ("spec", "ders", 1, "name"), "64", id="der-name-65"),
        pytest.param(edit(INVERTER, {"spec.ders": [{"name": f"pv-{i}", "type": "solar"}
                                                   for i in range(17)]}),
                     "too_long", ("spec", "ders"), "16", id="17-ders"),
        pytest.param(edit(INVERTER, {"spec.verification.via": "cloud"}), "enum",
                     ("spec", "verification", "via"), "'direct' or 'gateway'", id="via"),
        pytest.param(edit(INVERTER, {"spec.flatpeak": {"referenceId": "r", "type": "HEAT_PUMP"}}),
                     "enum", ("spec", "flatpeak", "type"), "'BATTERY_SYSTEM'",
                     id="flatpeak-type"),
        pytest.param(edit(INVERTER, {"spec.flatpeak": {"referenceId": "", "type": "OTHER"}}),
                     "string_too_short", ("spec", "flatpeak", "referenceId"), "",
                     id="flatpeak-empty-reference"),
        pytest.param(edit(INVERTER, {"spec.flatpeak": {"referenceId": "r", "type": "PV_SYSTEM",
                                                       "properties": {"pvAzimuth": 360}}}),
                     "less_than", ("spec", "flatpeak", "properties", "pvAzimuth"), "360",
                     id="pv-azimuth-360"),
        pytest.param(edit(INVERTER, {"spec.flatpeak": {
            "referenceId": "r", "type": "PV_SYSTEM", "properties": {"installDate": "22/03/2024"}}}),
                     "string_pattern_mismatch",
                     ("spec", "flatpeak", "properties", "installDate"), "", id="install-date"),
        pytest.param(edit(INVERTER, {"spec.flatpeak": {
            "referenceId": "r", "type": "PV_SYSTEM", "properties": {"installDate": "2023-13-45"}}}),
                     "value_error", ("spec", "flatpeak", "properties", "installDate"),
                     "'2023-13-45' is not a real date: month must be in 1..12",
                     id="install-date-month-13"),
        pytest.param(edit(INVERTER, {"spec.flatpeak": {
            "referenceId": "r", "type": "PV_SYSTEM",
            "properties": {"installDate": "2024-02-30T00:00:00Z"}}}),
                     "value_error", ("spec", "flatpeak", "properties", "installDate"),
                     "day is out of range", id="install-date-february-30"),
        pytest.param(edit(INVERTER, {"spec.flatpeak": {
            "referenceId": "r", "type": "PV_SYSTEM",
            "properties": {"installDate": "2024-03-22T00:00:00+01:00"}}}),
                     "string_pattern_mismatch", ("spec", "flatpeak", "properties", "installDate"),
                     "", id="install-date-with-offset"),
        pytest.param(edit(UCM, {"spec.enapter.kind": "ucm2"}), "enum", ("spec", "enapter", "kind"),
                     "'ucm'", id="enapter-kind"),
        pytest.param(edit(UCM, {"spec.enapter.embeddedType": "FUEL_CELL"}), "enum",
                     ("spec", "enapter", "embeddedType"), "'ELECTROLYSER'", id="embedded-type"),
        pytest.param(edit(UCM, {"spec.enapter.slug": "Gas-Sensor"}), "string_pattern_mismatch",
                     ("spec", "enapter", "slug"), "", id="slug-upper-case"),
        pytest.param(edit(UCM, {"spec.enapter.protocol": "HTTP"}), "enum",
                     ("spec", "enapter", "protocol"), "'MQTT' or 'MQTTS'", id="protocol"),
        pytest.param(edit(UCM, {"spec.enapter.configOutput.secretName": "ucm"}), "value_error",
                     ("spec", "enapter", "configOutput"), "exactly one of `file` or `secretName`",
                     id="config-output-both"),
        pytest.param(edit(UCM, {"spec.enapter.runtimeRef": "UCM"}), "string_pattern_mismatch",
                     ("spec", "enapter", "runtimeRef"), "", id="runtime-ref-name-rules"),
        pytest.param(edit(STANDALONE_DER, {"spec.deviceRef": _DELETE}), "missing",
                     ("spec", "deviceRef"), "", id="der-without-device-ref"),
        pytest.param(edit(STANDALONE_DER, {"spec.publish": "sometimes"}), "bool_type",
                     ("spec", "publish"), "", id="der-publish-not-bool"),
    ],
)
def test_invalid_documents(
    data: dict[str, Any], error_type: str, loc: tuple[str | int, ...], message: str
) -> None:
    errors = error_list(data)
    assert [(t, lo) for t, lo, _ in errors] == [(error_type, loc)], errors
    assert message in errors[0][2], f"{message!r} not in {errors[0][2]!r}"


def test_a_model_accepts_only_its_own_kind() -> None:
    with pytest.raises(ValidationError) as caught:
        Site.model_validate(edit(SITE, {"kind": "Gateway"}))
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("literal_error", ("kind",))]


def test_defaults_are_filled_in() -> None:
    device = validate(edit(INVERTER, {"spec.connection": {"modbusRtu": {"profile": "sungrow"}}}))
    assert isinstance(device, Device)
    rtu = device.spec.connection.modbus_rtu if device.spec.connection else None
    assert rtu is not None
    assert (rtu.baud_rate, rtu.unit_id, rtu.parity, rtu.data_bits, rtu.stop_bits) == (
        9600, 1, "none", 8, 1)
    assert device.spec.verification.check_serial is False
    assert device.spec.verification.via == "gateway"
    assert device.spec.deletion_policy == "Orphan"
    assert all(d.publish for d in device.spec.ders)

    gateway = validate(ZAP)
    assert isinstance(gateway, Gateway) and gateway.spec.zap is not None
    assert gateway.spec.zap.allow_transfer is False
    assert gateway.spec.deletion_policy == "Orphan"

    p1 = validate(edit(INVERTER, {"spec.connection": {"p1Uart": {}}}))
    assert isinstance(p1, Device) and p1.spec.connection and p1.spec.connection.p1_uart
    assert p1.spec.connection.p1_uart.profile == "p1_meter"
    assert p1.spec.connection.p1_uart.baud_rate == 115200

    tcp = validate(INVERTER)
    assert isinstance(tcp, Device) and tcp.spec.connection and tcp.spec.connection.modbus_tcp
    assert (tcp.spec.connection.modbus_tcp.port, tcp.spec.connection.modbus_tcp.unit_id) == (502, 1)


@pytest.mark.parametrize(
    ("connection", "expected_type"),
    [
        pytest.param({"modbusTcp": {"host": "192.168.1.60", "profile": "sungrow"}}, "modbus_tcp",
                     id="modbus-tcp"),
        pytest.param({"modbusRtu": {"profile": "solis"}}, "modbus_rtu", id="modbus-rtu"),
        pytest.param({"p1Uart": {}}, "p1_uart", id="p1-uart"),
        pytest.param({"mqtt": {"profile": "ambibox", "brokerHost": "192.168.1.50"}}, "mqtt",
                     id="mqtt"),
    ],
)
def test_connection_type_is_the_zap_name_of_the_one_set(
    connection: dict[str, Any], expected_type: str
) -> None:
    device = validate(edit(INVERTER, {"spec.connection": connection}))
    assert isinstance(device, Device) and device.spec.connection is not None
    assert device.spec.connection.type == expected_type
    assert device.spec.connection.settings is getattr(device.spec.connection, expected_type)


def test_address_and_display_name() -> None:
    device = validate(INVERTER)
    assert isinstance(device, Device)
    assert device.address == "device/inverter"
    assert device.display_name == "inverter"  # falls back to metadata.name
    named = validate(edit(INVERTER, {"spec.displayName": "Sungrow SH10RT"}))
    assert isinstance(named, Device)
    assert named.display_name == "Sungrow SH10RT"
    assert validate(SITE).address == "site/home-solna"
    assert validate(STANDALONE_DER).address == "der/inverter-meter"


def test_enums_are_stored_as_their_values() -> None:
    device = validate(INVERTER)
    assert isinstance(device, Device)
    assert device.spec.device_type == "inverter"
    assert type(device.spec.ders[0].type) is str


def test_models_are_frozen() -> None:
    site = validate(SITE)
    assert isinstance(site, Site)
    with pytest.raises(ValidationError, match="frozen"):
        site.spec.timezone = "UTC"  # type: ignore[misc]


def test_python_names_populate_too() -> None:
    der = DER.model_validate({
        "api_version": API_VERSION, "kind": "DER", "metadata": {"name": "d"},
        "spec": {"device_ref": "inverter", "name": "pv", "type": "solar"},
    })
    assert der.spec.device_ref == "inverter"
    dumped = der.model_dump(by_alias=True, exclude_defaults=True)
    assert dumped["spec"] == {"deviceRef": "inverter", "name": "pv", "type": "solar"}
    assert dumped["apiVersion"] == API_VERSION


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        pytest.param("home-solna", True, id="dash"),
        pytest.param("site.1", True, id="dot"),
        pytest.param("a" * 253, True, id="253"),
        pytest.param("a" * 254, False, id="254"),
        pytest.param("-home", False, id="leading-dash"),
        pytest.param("home-", False, id="trailing-dash"),
        pytest.param("a..b", False, id="empty-part"),
        pytest.param("a.-b", False, id="part-starts-with-dash"),
        pytest.param("a-.b", False, id="part-ends-with-dash"),
        pytest.param("a.b-c.d", True, id="dotted"),
        pytest.param("Home", False, id="upper-case"),
        pytest.param("home_solna", False, id="underscore"),
        pytest.param("", False, id="empty"),
    ],
)
def test_resource_names_follow_kubernetes(name: str, valid: bool) -> None:
    assert is_valid_resource_name(name) is valid
