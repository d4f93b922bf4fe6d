"""Cross-field and cross-document rules (`reconciler.model.fleet.check_fleet`), one table row
per rule, those that read the holders run apart from the others (`rules_without_holders`,
`holder_rules`), a Device's rules taken from an earlier check only while what they read is
as it was (`DeviceChecked`), and the `Fleet` index (`Fleet.of`, `ders_of`, `devices_of`,
`gateways_of`, `site_of_device`)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model.base import API_VERSION, Resource
from reconciler.model.fleet import (
    Fleet,
    HolderFree,
    Problem,
    check_fleet,
    holder_rules,
    in_rule_order,
    rules_without_holders,
)
from reconciler.model.kinds import KINDS


def res(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> Resource:
    return KINDS[kind].model_validate({"apiVersion": API_VERSION, "kind": kind,
                                       "metadata": {"name": name, **metadata}, "spec": spec})


def site(name: str = "home", **spec: Any) -> Resource:
    base: dict[str, Any] = {"displayName": name.title(), "timezone": "Europe/Stockholm",
                            "novacore": {"orgId": "org-4f2a9c71"}}
    return res("Site", name, {k: v for k, v in {**base, **spec}.items() if v is not None})


def zap(name: str = "home-zap", site_ref: str = "home", serial: str = "zap-3c61a4f0b2d8e917",
        **zap_fields: Any) -> Resource:
    return res("Gateway", name, {"siteRef": site_ref, "zap": {
        "serial": serial, "url": "http://192.168.1.40", **zap_fields}})


def enapter_gateway(name: str = "lab-gateway", site_ref: str = "lab",
                    firmware: str = "3.2.1", hardware_id: str = "B27925CBA53754") -> Resource:
    return res("Gateway", name, {"siteRef": site_ref, "enapter": {
        "hardwareId": hardware_id, "firmwareVersion": firmware}})


def device(name: str, **spec: Any) -> Resource:
    return res("Device", name, {k: v for k, v in spec.items() if v is not None})


TCP = {"modbusTcp": {"host": "192.168.1.60", "profile": "sungrow"}}
RTU = {"modbusRtu": {"profile": "sungrow"}}


def inverter(name: str = "inverter", **spec: Any) -> Resource:
    base: dict[str, Any] = {"gatewayRef": "home-zap", "hardwareId": "A2231234567",
                            "deviceType": "inverter", "connection": TCP,
                            "ders": [{"name": "pv", "type": "solar"}]}
    return device(name, **{**base, **spec})


def lab() -> Resource:
    return site("lab", novacore=None, enapter={})


def enapter_device(name: str, kind: str, **spec: Any) -> Resource:
    enapter = {"kind": kind, **spec.pop("enapter", {})}
    base: dict[str, Any] = {"siteRef": "lab", "hardwareId": f"HW-{name}", "enapter": enapter}
    return device(name, **{**base, **spec})


def der(name: str, device_ref: str, der_name: str, der_type: str) -> Resource:
    return res("DER", name, {"deviceRef": device_ref, "name": der_name, "type": der_type})


def config_file(name: str, file: str) -> Resource:
    return enapter_device(name, "ucm", enapter={"configOutput": {"file": file}})


CONFIG_FILE = ("spec", "enapter", "configOutput", "file")
CONFIG_SECRET = ("spec", "enapter", "configOutput", "secretName")


def config_secret(name: str, secret: str, namespace: str | None = None) -> Resource:
    resource = enapter_device(name, "ucm", enapter={"configOutput": {"secretName": secret}})
    if namespace is None:
        return resource
    metadata = resource.metadata.model_copy(update={"namespace": namespace})
    return resource.model_copy(update={"metadata": metadata})


ZAP_SITE = [site(), zap()]
HOME = [*ZAP_SITE, inverter()]
LAB = [lab(), enapter_gateway()]

Expected = tuple[str, str, tuple[str | int, ...], str]


CASES = [
    # -- names and identities
    pytest.param(
        [*HOME, site()],
        [("Site", "home", ("metadata", "name"), "declared more than once")],
        id="duplicate-site",
    ),
    pytest.param(
        [*HOME, zap(serial="zap-0000000000000002")],
        [("Gateway", "home-zap", ("metadata", "name"), "declared more than once")],
        id="duplicate-gateway-name",
    ),
    pytest.param(
        [
            *HOME,
            res(
                "Site",
                "home",
                site().spec.model_dump(by_alias=True, exclude_none=True),
                namespace="other",
            ),
        ],
        [("Site", "home", ("metadata", "name"), "declared more than once")],
        id="duplicate-name-in-another-namespace",
    ),
    pytest.param(
        [*HOME, zap("garage-zap")],
        [
            (
                "Gateway",
                "garage-zap",
                ("spec", "zap", "serial"),
                "already declared as Gateway 'home-zap'",
            )
        ],
        id="duplicate-zap-serial",
    ),
    pytest.param(
        [*LAB, enapter_gateway("lab-gateway-2")],
        [
            (
                "Gateway",
                "lab-gateway-2",
                ("spec", "enapter", "hardwareId"),
                "already declared as Gateway 'lab-gateway'",
            )
        ],
        id="duplicate-enapter-gateway",
    ),
    pytest.param(
        [*HOME, inverter("inverter-2")],
        [
            (
                "Device",
                "inverter-2",
                ("spec", "hardwareId"),
                "'A2231234567' is already used by Device 'inverter' on Gateway 'home-zap'",
            )
        ],
        id="duplicate-hardware-id-per-gateway",
    ),
    pytest.param(
        [
            *HOME,
            site("cabin"),
            zap("cabin-zap", "cabin", "zap-0000000000000002"),
            inverter("cabin-inverter", gatewayRef="cabin-zap"),
        ],
        [],
        id="same-hardware-id-on-two-gateways-is-fine",
    ),
    # -- connection endpoints of one Zap (model.zap_endpoints)
    pytest.param(
        [*HOME, inverter("inverter-2", hardwareId="B1", connection={
            "modbusTcp": {"host": "192.168.1.60", "port": 502, "unitId": 1, "profile": "solis"}})],
        [("Device", "inverter-2", ("spec", "connection", "modbusTcp"),
          "Modbus TCP 192.168.1.60:502 unit id 1 on Gateway 'home-zap' is already taken by "
          "Device 'inverter'; the Zap refuses (409) to add a second device there: give each "
          "device on the Zap its own host, port or unitId")],
        id="modbus-tcp-address-and-unit-taken",
    ),
    pytest.param(
        [*HOME, inverter("inverter-2", hardwareId="B1", connection={
            "modbusTcp": {"host": "192.168.1.60", "port": 1502, "profile": "sungrow"}}),
         inverter("inverter-3", hardwareId="B2", connection={
             "modbusTcp": {"host": "192.168.1.60", "unitId": 2, "profile": "sungrow"}})],
        [],
        id="modbus-tcp-another-port-or-unit-is-fine",
    ),
    pytest.param(
        [*ZAP_SITE,
         inverter("a", hardwareId="A", connection={
             "modbusTcp": {"host": "fd00:0:0:0:0:0:0:60", "profile": "sungrow"}}),
         inverter("b", hardwareId="B", connection={
             "modbusTcp": {"host": "fd00::60", "profile": "sungrow"}}),
         inverter("c", hardwareId="C", connection={
             "modbusTcp": {"host": "Inverter.LAN", "profile": "sungrow"}}),
         inverter("d", hardwareId="D", connection={
             "modbusTcp": {"host": "inverter.lan", "profile": "sungrow"}})],
        [("Device", "b", ("spec", "connection", "modbusTcp"),
          "Modbus TCP [fd00::60]:502 unit id 1 on Gateway 'home-zap' is already taken by "
          "Device 'a'"),
         ("Device", "d", ("spec", "connection", "modbusTcp"),
          "Modbus TCP inverter.lan:502 unit id 1 on Gateway 'home-zap' is already taken by "
          "Device 'c'")],
        id="modbus-tcp-one-host-written-two-ways",
    ),
    pytest.param(
        [*ZAP_SITE, inverter("a", hardwareId="A", connection=RTU),
         inverter("b", hardwareId="B", connection={
             "modbusRtu": {"unitId": 1, "baudRate": 19200, "profile": "solis"}})],
        [("Device", "b", ("spec", "connection", "modbusRtu", "unitId"),
          "RS-485 unit id 1 on Gateway 'home-zap' is already taken by Device 'a'; the Zap "
          "refuses (409) to add a second device there: give each device on the Zap's RS-485 "
          "bus its own unitId")],
        id="modbus-rtu-unit-taken-whatever-the-serial-settings",
    ),
    pytest.param(
        [*ZAP_SITE, inverter("a", hardwareId="A", connection=RTU),
         inverter("b", hardwareId="B", connection={"modbusRtu": {"unitId": 2,
                                                                "profile": "sungrow"}}),
         inverter("c", hardwareId="C", connection={"modbusTcp": {"host": "192.168.1.60",
                                                                "profile": "sungrow"}})],
        [],
        id="modbus-rtu-another-unit-or-tcp-is-fine",
    ),
    pytest.param(
        [*ZAP_SITE,
         device("m1", gatewayRef="home-zap", hardwareId="M1", deviceType="energy_meter",
                connection={"p1Uart": {}}),
         device("m2", gatewayRef="home-zap", hardwareId="M2", deviceType="energy_meter",
                connection={"p1Uart": {"baudRate": 9600}})],
        [("Device", "m2", ("spec", "connection", "p1Uart"),
          "the P1 UART on Gateway 'home-zap' is already taken by Device 'm1'; the Zap refuses "
          "(409) to add a second device there: a Zap has one P1 port: declare one P1 device "
          "per Gateway")],
        id="p1-uart-taken",
    ),
    pytest.param(
        [*ZAP_SITE,
         *(device(name, gatewayRef="home-zap", hardwareId=name, deviceType="battery",
                  connection={"mqtt": {"profile": "ferroamp", "brokerHost": "192.168.1.70",
                                       **extra}})
           for name, extra in (("f1", {}), ("f2", {"brokerPort": 1884}),
                               ("f3", {"username": "other"})))],
        [("Device", "f3", ("spec", "connection", "mqtt"),
          "MQTT broker 192.168.1.70:1883 with profile ferroamp on Gateway 'home-zap' is "
          "already taken by Device 'f1'; the Zap refuses (409) to add a second device there: "
          "declare one device per broker host, port and profile on a Zap")],
        id="mqtt-broker-and-profile-taken",
    ),
    pytest.param(
        [*HOME, site("cabin"), zap("cabin-zap", "cabin", "zap-0000000000000002"),
         inverter("cabin-inverter", gatewayRef="cabin-zap", hardwareId="B1")],
        [],
        id="one-endpoint-on-two-gateways-is-fine",
    ),
    pytest.param(
        [
            *HOME,
            site("fp", flatpeak={"locationId": "loc_1"}),
            device("b1", siteRef="fp", flatpeak={"referenceId": "r", "type": "OTHER"}),
            device("b2", siteRef="fp", flatpeak={"referenceId": "r", "type": "OTHER"}),
        ],
        [
            (
                "Device",
                "b2",
                ("spec", "flatpeak", "referenceId"),
                "'r' is already used by Device 'b1'",
            )
        ],
        id="duplicate-flatpeak-reference",
    ),
    # -- references
    pytest.param(
        [site(), zap(site_ref="cabin")],
        [
            (
                "Gateway",
                "home-zap",
                ("spec", "siteRef"),
                "Site 'cabin' is not declared; declared sites: 'home'",
            )
        ],
        id="dangling-gateway-site-ref",
    ),
    pytest.param(
        [site(), inverter()],
        [
            (
                "Device",
                "inverter",
                ("spec", "gatewayRef"),
                "Gateway 'home-zap' is not declared; declared gateways: (none declared)",
            )
        ],
        id="dangling-gateway-ref-reports-only-that",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm", siteRef="labb")],
        [("Device", "ucm", ("spec", "siteRef"), "Site 'labb' is not declared")],
        id="dangling-device-site-ref",
    ),
    pytest.param(
        [*HOME, der("d", "inverter-9", "battery", "battery")],
        [
            (
                "DER",
                "d",
                ("spec", "deviceRef"),
                "Device 'inverter-9' is not declared (did you mean 'inverter'?); declared "
                "devices: 'inverter'",
            )
        ],
        id="dangling-device-ref",
    ),
    pytest.param(
        [
            *LAB,
            enapter_device("ucm", "ucm"),
            enapter_device(
                "lua", "lua", hardwareId=None, enapter={"runtimeRef": "ucm-2", "blueprintId": "b"}
            ),
        ],
        [("Device", "lua", ("spec", "enapter", "runtimeRef"), "Device 'ucm-2' is not declared")],
        id="dangling-runtime-ref",
    ),
    pytest.param(
        [
            *LAB,
            enapter_device(
                "slave", "link_slave", gatewayRef="lab-gateway", enapter={"masterRef": "master"}
            ),
        ],
        [("Device", "slave", ("spec", "enapter", "masterRef"), "Device 'master' is not declared")],
        id="dangling-master-ref",
    ),
    pytest.param(
        [*ZAP_SITE, site("cabin"), inverter(siteRef="cabin")],
        [
            (
                "Device",
                "inverter",
                ("spec", "siteRef"),
                "Gateway 'home-zap' is at Site 'home', not 'cabin'",
            )
        ],
        id="site-mismatch",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm", siteRef=None)],
        [("Device", "ucm", ("spec",), "set `gatewayRef`")],
        id="no-gateway-or-site",
    ),
    # -- gateways and platforms
    pytest.param(
        [site(novacore=None), zap()],
        [
            (
                "Gateway",
                "home-zap",
                ("spec", "zap", "orgId"),
                "no Novacore organisation to claim into",
            )
        ],
        id="zap-without-organisation",
    ),
    pytest.param(
        [site(novacore=None), zap(orgId="org-1")],
        [],
        id="zap-with-its-own-org-id-needs-no-site-novacore",
    ),
    pytest.param(
        [site(), zap(orgId="org-1")],
        [("Gateway", "home-zap", ("spec", "zap", "orgId"),
          "'org-1' is not the organisation of Site 'home' ('org-4f2a9c71')")],
        id="zap-claimed-into-another-organisation-than-its-site",
    ),
    pytest.param(
        [site(), zap(orgId="org-4f2a9c71")],
        [],
        id="zap-org-id-of-its-site",
    ),
    pytest.param(
        [site("lab", novacore=None), enapter_gateway()],
        [("Gateway", "lab-gateway", ("spec", "enapter"), "needs an `enapter` block on Site 'lab'")],
        id="enapter-gateway-site",
    ),
    pytest.param(
        [site(novacore=None), zap(orgId="org-1"), inverter()],
        [("Device", "inverter", ("spec", "gatewayRef"), "Site 'home' needs a `novacore` block")],
        id="zap-device-site-without-novacore",
    ),
    # -- devices on a Zap
    pytest.param(
        [*ZAP_SITE, inverter(connection=None)],
        [
            (
                "Device",
                "inverter",
                ("spec", "connection"),
                "a device on a Zap gateway needs `connection`",
            )
        ],
        id="zap-device-no-connection",
    ),
    pytest.param(
        [*ZAP_SITE, inverter(hardwareId=None)],
        [
            (
                "Device",
                "inverter",
                ("spec", "hardwareId"),
                "a device on a Zap gateway needs `hardwareId`",
            )
        ],
        id="zap-device-no-hardware-id",
    ),
    pytest.param(
        [*ZAP_SITE, inverter(deviceType=None, ders=[])],
        [
            (
                "Device",
                "inverter",
                ("spec", "deviceType"),
                "a device on a Zap gateway needs `deviceType`",
            )
        ],
        id="zap-device-no-type",
    ),
    pytest.param(
        [*ZAP_SITE, site("lab", enapter={}), inverter(enapter={"kind": "standalone"})],
        [("Device", "inverter", ("spec", "enapter"), "cannot be an Enapter device")],
        id="zap-device-with-enapter",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm", connection=TCP)],
        [("Device", "ucm", ("spec", "connection"), "needs `gatewayRef` naming a Zap")],
        id="connection-without-zap",
    ),
    pytest.param(
        [*LAB, device("sensor", gatewayRef="lab-gateway", hardwareId="HW")],
        [
            (
                "Device",
                "sensor",
                ("spec", "enapter"),
                "a device on an Enapter gateway needs an `enapter` block",
            )
        ],
        id="enapter-gateway-device-without-enapter",
    ),
    pytest.param(
        [site(), device("powerwall", siteRef="home", deviceType="battery")],
        [("Device", "powerwall", ("spec",), "must be registered somewhere")],
        id="cloud-only-device-unregistered",
    ),
    pytest.param(
        [
            *ZAP_SITE,
            inverter(connection={"mqtt": {"profile": "sungrow", "brokerHost": "192.168.1.70"}}),
        ],
        [
            (
                "Device",
                "inverter",
                ("spec", "connection", "mqtt", "profile"),
                "profile 'sungrow' does not work over mqtt; valid profiles: 'ambibox', 'ferroamp'",
            )
        ],
        id="profile-over-wrong-connection",
    ),
    pytest.param(
        [*ZAP_SITE, inverter(connection={"modbusTcp": {"host": "h", "profile": "growatt"}})],
        [
            (
                "Device",
                "inverter",
                ("spec", "connection", "modbusTcp", "profile"),
                "profile 'growatt' does not work over modbus_tcp",
            )
        ],
        id="unknown-profile",
    ),
    pytest.param(
        [*ZAP_SITE, inverter(connection={"p1Uart": {}})],
        [
            (
                "Device",
                "inverter",
                ("spec", "deviceType"),
                "profile 'p1_meter' reports device type 'energy_meter', not 'inverter'",
            )
        ],
        id="profile-device-type-mismatch",
    ),
    pytest.param(
        [
            *ZAP_SITE,
            inverter(
                connection={"p1Uart": {}},
                deviceType="energy_meter",
                ders=[],
                verification={"checkSerial": True},
            ),
        ],
        [
            (
                "Device",
                "inverter",
                ("spec", "verification", "checkSerial"),
                "they need a `modbusTcp` connection",
            )
        ],
        id="check-serial-needs-modbus",
    ),
    pytest.param(
        [*ZAP_SITE, inverter(connection=RTU, verification={"checkSerial": True})],
        [("Device", "inverter", ("spec", "verification", "checkSerial"),
          "the Zap's /api/modbus/read takes an address and port")],
        id="check-over-rtu",
    ),
    pytest.param(
        [*ZAP_SITE, inverter(verification={"checkSerial": True, "via": "direct"})],
        [],
        id="direct-check-over-tcp-is-fine",
    ),
    # -- DERs
    pytest.param(
        [
            *ZAP_SITE,
            inverter(
                ders=[{"name": "pv", "type": "solar"}, {"name": "ev", "type": "ev_charger_port"}]
            ),
        ],
        [
            (
                "Device",
                "inverter",
                ("spec", "ders", 1, "type"),
                "a device of type 'inverter' provides no 'ev_charger_port' DER; valid types: "
                "'battery', 'meter', 'solar'",
            )
        ],
        id="der-type-not-allowed-inline",
    ),
    pytest.param(
        [*HOME, der("d", "inverter", "ev", "ev_charger_port")],
        [("DER", "d", ("spec", "type"), "provides no 'ev_charger_port' DER")],
        id="der-type-not-allowed-standalone",
    ),
    pytest.param(
        [
            *ZAP_SITE,
            inverter(ders=[{"name": "pv", "type": "solar"}, {"name": "pv", "type": "battery"}]),
        ],
        [
            (
                "Device",
                "inverter",
                ("spec", "ders", 1, "name"),
                "DER name 'pv' is used twice on Device 'inverter'",
            )
        ],
        id="duplicate-der-inline",
    ),
    pytest.param(
        [*HOME, der("d", "inverter", "pv", "solar")],
        [("DER", "d", ("spec", "name"), "DER name 'pv' is used twice")],
        id="duplicate-der-inline-and-standalone",
    ),
    pytest.param(
        [*HOME, der("d1", "inverter", "bat", "battery"), der("d2", "inverter", "bat", "battery")],
        [("DER", "d2", ("spec", "name"), "DER name 'bat' is used twice")],
        id="duplicate-der-two-standalone",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm", ders=[{"name": "s", "type": "battery"}])],
        [("Device", "ucm", ("spec", "deviceType"), "DERs need a `deviceType`")],
        id="inline-ders-without-device-type",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm"), der("d", "ucm", "s", "battery")],
        [("DER", "d", ("spec", "deviceRef"), "Device 'ucm' has no `deviceType`")],
        id="standalone-der-without-device-type",
    ),
    # -- Enapter
    pytest.param(
        [site("lab", novacore=None, flatpeak={"locationId": "loc_1"}),
         enapter_device("ucm", "ucm")],
        [("Device", "ucm", ("spec", "enapter"), "Site 'lab' has no `enapter` block")],
        id="enapter-device-site-without-enapter",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm", hardwareId=None)],
        [("Device", "ucm", ("spec", "hardwareId"), "an Enapter `ucm` needs `hardwareId`")],
        id="ucm-without-hardware-id",
    ),
    pytest.param(
        [*LAB, enapter_device("el", "embedded", gatewayRef="lab-gateway")],
        [
            (
                "Device",
                "el",
                ("spec", "enapter", "embeddedType"),
                "an `embedded` device needs `embeddedType`",
            )
        ],
        id="embedded-without-type",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm", enapter={"embeddedType": "DRYER"})],
        [("Device", "ucm", ("spec", "enapter", "embeddedType"), "applies only to kind `embedded`")],
        id="embedded-type-on-ucm",
    ),
    pytest.param(
        [
            *LAB,
            enapter_device("ucm", "ucm"),
            enapter_device("lua", "lua", hardwareId=None, enapter={"runtimeRef": "ucm"}),
        ],
        [
            (
                "Device",
                "lua",
                ("spec", "enapter", "blueprintId"),
                "a `lua` device needs `blueprintId`",
            )
        ],
        id="lua-without-blueprint",
    ),
    pytest.param(
        [*LAB, enapter_device("lua", "lua", hardwareId=None, enapter={"blueprintId": "b"})],
        [("Device", "lua", ("spec", "enapter", "runtimeRef"), "a `lua` device needs `runtimeRef`")],
        id="lua-without-runtime",
    ),
    pytest.param(
        [
            *LAB,
            enapter_device(
                "el", "embedded", gatewayRef="lab-gateway", enapter={"embeddedType": "ELECTROLYSER"}
            ),
            enapter_device(
                "lua", "lua", hardwareId=None, enapter={"blueprintId": "b", "runtimeRef": "el"}
            ),
        ],
        [
            (
                "Device",
                "lua",
                ("spec", "enapter", "runtimeRef"),
                "Device 'el' is not a `ucm` or `vucm`",
            )
        ],
        id="lua-runtime-not-ucm",
    ),
    pytest.param(
        [
            *LAB,
            enapter_device("vucm", "vucm", gatewayRef="lab-gateway"),
            enapter_device(
                "lua", "lua", hardwareId=None, enapter={"blueprintId": "b", "runtimeRef": "vucm"}
            ),
        ],
        [],
        id="lua-on-a-vucm-is-fine",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm", enapter={"runtimeRef": "ucm"})],
        [("Device", "ucm", ("spec", "enapter", "runtimeRef"), "applies only to kind `lua`")],
        id="runtime-ref-on-ucm",
    ),
    pytest.param(
        [*LAB, enapter_device("slave", "link_slave", gatewayRef="lab-gateway")],
        [("Device", "slave", ("spec", "enapter", "masterRef"), "a `link_slave` needs `masterRef`")],
        id="link-slave-without-master",
    ),
    pytest.param(
        [
            *LAB,
            enapter_device("ucm", "ucm"),
            enapter_device(
                "slave", "link_slave", gatewayRef="lab-gateway", enapter={"masterRef": "ucm"}
            ),
        ],
        [
            (
                "Device",
                "slave",
                ("spec", "enapter", "masterRef"),
                "Device 'ucm' is not a `link_master`",
            )
        ],
        id="master-not-link-master",
    ),
    pytest.param(
        [*LAB, enapter_device("ucm", "ucm", enapter={"masterRef": "ucm"})],
        [("Device", "ucm", ("spec", "enapter", "masterRef"), "applies only to kind `link_slave`")],
        id="master-ref-on-ucm",
    ),
    pytest.param(
        [
            lab(),
            enapter_gateway(firmware="2.9.4"),
            enapter_device("vucm", "vucm", gatewayRef="lab-gateway"),
        ],
        [
            (
                "Device",
                "vucm",
                ("spec", "gatewayRef"),
                "needs Enapter Gateway 3.x; Gateway 'lab-gateway' runs 2.9.4",
            )
        ],
        id="vucm-on-gateway-2x",
    ),
    pytest.param(
        [
            lab(),
            enapter_gateway(firmware="2.9.4"),
            enapter_device("master", "link_master", gatewayRef="lab-gateway"),
        ],
        [("Device", "master", ("spec", "gatewayRef"), "needs Enapter Gateway 3.x")],
        id="link-master-on-gateway-2x",
    ),
    pytest.param(
        [*LAB, enapter_device("vucm", "vucm")],
        [
            (
                "Device",
                "vucm",
                ("spec", "gatewayRef"),
                "needs `gatewayRef` naming an Enapter Gateway 3.x",
            )
        ],
        id="vucm-without-gateway",
    ),
    # -- remote identities: two Sites never find the same remote site or device
    pytest.param(
        [site("s1", displayName="S1"), site("s2", displayName="S1")],
        [("Site", "s2", ("spec", "displayName"),
          "displayName 'S1' is already used by Site 's1' in org-4f2a9c71; set distinct")],
        id="same-display-name-in-one-org",
    ),
    pytest.param(
        [site("s1", displayName="S1"),
         site("s2", displayName="S1", novacore={"orgId": "org-0000000000"})],
        [],
        id="same-display-name-in-two-orgs-is-fine",
    ),
    pytest.param(
        [site("s1", displayName="S1", novacore={"orgId": "org-1", "siteId": "sit-1"}),
         site("s2", displayName="S1", novacore={"orgId": "org-1", "siteId": "sit-2"})],
        [],
        id="same-display-name-adopted-by-id-is-fine",
    ),
    pytest.param(
        [site("s1", displayName="S1", novacore={"orgId": "org-1", "siteId": "sit-1"}),
         site("s2", displayName="S1", novacore={"orgId": "org-1"})],
        [("Site", "s2", ("spec", "displayName"), "already used by Site 's1' in org-1")],
        id="same-display-name-one-found-by-name",
    ),
    pytest.param(
        [site("s1", novacore={"orgId": "org-1", "siteId": "sit-1"}),
         site("s2", novacore={"orgId": "org-1", "siteId": "sit-1"})],
        [("Site", "s2", ("spec", "novacore", "siteId"),
          "siteId 'sit-1' is already used by Site 's1'")],
        id="same-novacore-site-id",
    ),
    pytest.param(
        [site("lab", displayName="Lab", novacore=None, enapter={}),
         site("lab2", displayName="Lab", novacore=None, enapter={})],
        [("Site", "lab2", ("spec", "displayName"),
          "displayName 'Lab' is already used by Site 'lab' in Enapter Cloud")],
        id="same-enapter-display-name",
    ),
    pytest.param(
        [site("lab", novacore=None, enapter={"siteId": "e-1"}),
         site("lab2", novacore=None, enapter={"siteId": "e-1"})],
        [("Site", "lab2", ("spec", "enapter", "siteId"),
          "siteId 'e-1' is already used by Site 'lab'")],
        id="same-enapter-site-id",
    ),
    pytest.param(
        [*LAB, enapter_device("pump", "standalone", hardwareId=None),
         enapter_device("pump.2", "standalone", hardwareId=None, enapter={"slug": "pump"})],
        [("Device", "pump.2", ("spec", "enapter", "slug"),
          "Enapter slug 'pump' is already used by Device 'pump' at Site 'lab'")],
        id="same-declared-and-default-slug",
    ),
    pytest.param(
        [*LAB, enapter_device("a.b", "standalone", hardwareId=None),
         enapter_device("a-b", "standalone", hardwareId=None)],
        [("Device", "a-b", ("metadata", "name"),
          "Enapter slug 'a-b' is already used by Device 'a.b'")],
        id="same-default-slug",
    ),
    pytest.param(
        [*LAB, site("lab2", displayName="Lab 2", novacore=None, enapter={}),
         enapter_device("pump", "standalone", hardwareId=None),
         enapter_device("pump2", "standalone", hardwareId=None, siteRef="lab2",
                        enapter={"slug": "pump"})],
        [],
        id="same-slug-at-two-sites-is-fine",
    ),
    # -- Flatpeak
    pytest.param(
        [*ZAP_SITE, inverter(flatpeak={"referenceId": "pv", "type": "PV_SYSTEM"})],
        [("Device", "inverter", ("spec", "flatpeak"), "Site 'home' has no `flatpeak` block")],
        id="flatpeak-site-without-flatpeak",
    ),
    pytest.param(
        [site(flatpeak={"locationId": "loc_1"}), zap(),
         inverter(flatpeak={"referenceId": "pv", "type": "PV_SYSTEM"})],
        [],
        id="flatpeak-device-on-zap-is-fine",
    ),
    # -- Enapter config files: never a state file, never another device's
    *[
        pytest.param(
            [lab(), config_file("ucm", file)],
            [("Device", "ucm", CONFIG_FILE, f"{clash} the state directory's own {own!r}")],
            id=f"config-file-{file}",
        )
        for file, clash, own in [
            ("inventory.json", "is", "inventory.json"),
            ("./inventory.json", "is", "inventory.json"),
            ("secrets/../inventory.json", "is", "inventory.json"),
            ("credentials.key", "is", "credentials.key"),
            ("credentials.json", "is", "credentials.json"),
            ("journal.jsonl", "is", "journal.jsonl"),
            ("journal.jsonl.1", "is", "journal.jsonl.1"),
            ("lock", "is", "lock"),
            ("inventory.json.tmp", "is", "inventory.json.tmp"),
            ("Credentials.JSON", "is", "credentials.json"),
            ("journal.jsonl.1/ucm.json", "runs through", "journal.jsonl.1"),
        ]
    ],
    pytest.param(
        [lab(), config_file("ucm", "../site/ucm.json")],
        [("Device", "ucm", CONFIG_FILE, "leaves the state directory")],
        id="config-file-leaving-the-state-dir",
    ),
    pytest.param(
        [lab(), config_file("ucm", "secrets/..")],
        [("Device", "ucm", CONFIG_FILE, "names the state directory itself")],
        id="config-file-the-state-dir",
    ),
    # `~` is not expanded: whose home it is depends on where the reconciler runs, and a
    # `~user` that does not exist there made observation raise.
    *[
        pytest.param(
            [lab(), config_file("ucm", file)],
            [("Device", "ucm", CONFIG_FILE, f"file {file!r} starts with '~', which is not "
              "expanded")],
            id=f"config-file-{file}",
        )
        for file in ["~nouser/x", "~root/x", "~/x", "~/../inventory.json", "~x"]
    ],
    pytest.param(
        [lab(), config_file("ucm", "secrets/~/x"), config_file("ucm-2", "/srv/~ucm.json")],
        [],
        id="config-files-with-a-tilde-inside-are-fine",
    ),
    pytest.param(
        [lab(), config_file("ucm", "/var/lib/reconciler/inventory.json"),
         config_file("ucm-2", "inventory.json.bak"), config_file("ucm-3", "secrets/lock"),
         config_file("ucm-4", "secrets/a/../ucm.json")],
        [],
        id="config-files-named-like-state-files-elsewhere-are-fine",
    ),
    *[
        pytest.param(
            [lab(), config_file("master-a", first), config_file("master-b", second)],
            [("Device", "master-b", CONFIG_FILE, "already the configOutput of Device 'master-a'")],
            id=f"config-file-twice-{first}-{second}",
        )
        for first, second in [
            ("secrets/master-a.json", "secrets/master-a.json"),
            ("secrets/master-a.json", "./secrets/master-a.json"),
            ("secrets/master-a.json", "secrets/x/../master-a.json"),
            ("/etc/enapter/a.json", "/etc/enapter//./a.json"),
        ]
    ],
    pytest.param(
        [lab(), config_file("ucm", "/srv/a.json"), config_file("ucm-2", "srv/a.json"),
         config_file("ucm-3", "secrets/a.json"), config_file("ucm-4", "secrets/a.JSON")],
        [],
        id="config-files-of-their-own-are-fine",
    ),
    # -- Enapter config Secrets: one per device in a namespace
    pytest.param(
        [lab(), config_secret("ucm-a", "ucm-config"), config_secret("ucm-b", "ucm-config"),
         config_secret("ucm-c", "ucm-config")],
        [("Device", "ucm-b", CONFIG_SECRET, "Secret 'ucm-config' is already the configOutput "
          "of Device 'ucm-a'"),
         ("Device", "ucm-c", CONFIG_SECRET, "already the configOutput of Device 'ucm-a'")],
        id="config-secret-twice",
    ),
    pytest.param(
        [lab(), config_secret("ucm-a", "ucm-config", "north"),
         config_secret("ucm-b", "ucm-config", "south"), config_secret("ucm-c", "ucm-c-config")],
        [],
        id="config-secrets-of-their-own-or-in-other-namespaces-are-fine",
    ),
]


@pytest.mark.parametrize(("resources", "expected"), CASES)
def test_fleet_rules(resources: list[Resource], expected: list[Expected]) -> None:
    problems = check_fleet(resources)
    reported = [(p.kind, p.name, p.path) for p in problems]
    assert reported == [e[:3] for e in expected], [str(p) for p in problems]
    for problem, (*_, message) in zip(problems, expected, strict=True):
        assert message in problem.message, f"{message!r} not in {problem.message!r}"


@pytest.mark.parametrize("make", [
    pytest.param(lambda name: config_secret(name, "ucm-config"), id="secret"),
    pytest.param(lambda name: config_file(name, "secrets/ucm.json"), id="file"),
])
def test_the_device_holding_a_config_output_keeps_it_whichever_was_declared_first(
    make: Any,
) -> None:
    """The operator knows which Device holds its output (its status): the one declared
    first is refused when the other holds it; with no holder, declaration order decides."""
    resources = [lab(), make("ucm-a"), make("ucm-b")]
    held = check_fleet(resources, holders={"ucm-b"})
    assert [p.name for p in held] == ["ucm-a"]
    assert "already the configOutput of Device 'ucm-b'" in held[0].message
    assert [p.name for p in check_fleet(resources)] == ["ucm-b"]


def test_a_clash_names_the_other_declaration_and_nothing_else_does() -> None:
    """A clash carries the object it is with (the loader says where it is; the operator
    lets a rename's new object wait for the old one): not a path refused on its own
    (`~`), which two Devices declaring alike would not make a clash."""
    clashing = check_fleet([lab(), config_file("ucm-a", "secrets/a.json"),
                            config_file("ucm-b", "./secrets/a.json")])
    assert [p.clashes_with for p in clashing] == [("Device", "ucm-a", CONFIG_FILE)]
    home = check_fleet([lab(), config_file("ucm-a", "~/a.json"),
                        config_file("ucm-b", "~/a.json")])
    assert [(p.name, p.clashes_with) for p in home] == [("ucm-a", None), ("ucm-b", None)]


def test_a_complete_fleet_has_no_problems() -> None:
    resources = [
        *HOME,
        device(
            "p1",
            gatewayRef="home-zap",
            hardwareId="E0043007123456789",
            deviceType="energy_meter",
            connection={"p1Uart": {}},
            ders=[{"name": "grid", "type": "meter"}],
        ),
        der("inverter-battery", "inverter", "battery", "battery"),
        *LAB,
        enapter_device("ucm", "ucm", enapter={"configOutput": {"file": "secrets/ucm.json"}}),
        enapter_device(
            "el", "embedded", gatewayRef="lab-gateway", enapter={"embeddedType": "ELECTROLYSER"}
        ),
        enapter_device(
            "lua", "lua", hardwareId=None, enapter={"runtimeRef": "ucm", "blueprintId": "b"}
        ),
        enapter_device("master", "link_master", gatewayRef="lab-gateway"),
        enapter_device(
            "slave", "link_slave", gatewayRef="lab-gateway", enapter={"masterRef": "master"}
        ),
    ]
    assert check_fleet(resources) == []


def test_duplicates_carry_the_index_of_the_repeated_declaration() -> None:
    problems = check_fleet([site(), site(), site()])
    assert [(p.index, p.path) for p in problems] == [
        (1, ("metadata", "name")),
        (2, ("metadata", "name")),
    ]
    assert all(isinstance(p, Problem) for p in problems)


def test_fleet_of_keeps_the_first_declaration() -> None:
    first, second = site(displayName="First"), site(displayName="Second")
    fleet = Fleet.of([first, second])
    assert fleet.sites["home"] is first
    assert len(fleet) == 1


def test_fleet_lookups() -> None:
    resources = [
        *HOME,
        site("cabin"),
        zap("cabin-zap", "cabin", "zap-0000000000000002"),
        inverter("cabin-inverter", gatewayRef="cabin-zap"),
        device(
            "p1",
            gatewayRef="home-zap",
            hardwareId="E1",
            deviceType="energy_meter",
            connection={"p1Uart": {}},
        ),
        der("inverter-battery", "inverter", "battery", "battery"),
        *LAB,
        enapter_device("ucm", "ucm"),
    ]
    fleet = Fleet.of(resources)
    assert len(fleet) == len(resources)
    assert [r.KIND for r in fleet.resources()] == sorted(
        (r.KIND for r in resources), key=list(KINDS).index
    )
    assert [g.name for g in fleet.gateways_of("home")] == ["home-zap"]
    assert [g.name for g in fleet.gateways_of("lab")] == ["lab-gateway"]
    assert fleet.gateways_of("nowhere") == []
    assert [d.name for d in fleet.devices_of("home-zap")] == ["inverter", "p1"]
    assert [d.name for d in fleet.devices_of("lab-gateway")] == []
    assert [(d.name, d.type) for d in fleet.ders_of("inverter")] == [
        ("pv", "solar"),
        ("battery", "battery"),
    ]
    assert fleet.ders_of("p1") == []
    assert fleet.ders_of("unknown") == []
    # What the planner reads of each gateway: its Devices, each with what `ders_of` gives.
    assert [
        (d.name, [(x.name, x.type) for x in ders])
        for d, ders in fleet.devices_and_ders_of("home-zap")
    ] == [("inverter", [("pv", "solar"), ("battery", "battery")]), ("p1", [])]
    assert fleet.devices_and_ders_of("lab-gateway") == []
    assert fleet.devices_and_ders_of("nowhere") == []
    by_name = fleet.devices
    site_of = fleet.site_of_device
    assert [site_of(by_name[n]).name for n in ("inverter", "cabin-inverter", "ucm")] == [  # type: ignore[union-attr]
        "home",
        "cabin",
        "lab",
    ]


def test_fleet_lookups_follow_changes_and_do_not_share_lists() -> None:
    fleet = Fleet.of([*HOME])
    assert [d.name for d in fleet.devices_of("home-zap")] == ["inverter"]
    fleet.devices_of("home-zap").clear()  # a caller's copy; the index is unharmed
    assert [d.name for d in fleet.devices_of("home-zap")] == ["inverter"]
    fleet.devices_and_ders_of("home-zap")[0][1].clear()  # so is the Device's DER list
    assert [d.name for d in fleet.ders_of("inverter")] == ["pv"]
    added = inverter("inverter-2", hardwareId="A2")
    fleet.devices["inverter-2"] = added  # type: ignore[assignment]
    assert [d.name for d in fleet.devices_of("home-zap")] == ["inverter", "inverter-2"]


def test_zap_serials_are_kept_unchangeable_and_follow_changes() -> None:
    """Worked out once per fleet (a plan asks three times), as a set no caller can change
    under the next one, and again once a gateway is added."""
    fleet = Fleet.of([*HOME, lab(), enapter_gateway()])
    serials = fleet.zap_serials()
    assert serials == {"zap-3c61a4f0b2d8e917"}
    assert fleet.zap_serials() is serials
    with pytest.raises(AttributeError):
        serials.add("zap-0000000000000000")  # type: ignore[attr-defined]
    fleet.gateways["cabin-zap"] = zap(  # type: ignore[assignment]
        "cabin-zap", site_ref="home", serial="zap-0000000000000000")
    assert fleet.zap_serials() == {"zap-3c61a4f0b2d8e917", "zap-0000000000000000"}


def test_site_of_device_with_dangling_gateway_is_none() -> None:
    fleet = Fleet.of([site(), inverter()])
    assert fleet.site_of_device(fleet.devices["inverter"]) is None


def test_flatpeak_site_needs_an_address_or_a_location_id() -> None:
    without = check_fleet([site("fp", flatpeak={})])
    assert [(p.kind, p.name, p.path) for p in without] == [("Site", "fp", ("spec", "flatpeak"))]
    assert "postal address" in without[0].message
    assert check_fleet([site("fp", flatpeak={"locationId": "loc_1"})]) == []


def test_the_device_holding_a_zap_endpoint_keeps_it_whichever_was_declared_first() -> None:
    """The operator knows which Device holds its endpoint (its status records it applied
    there): the one declared first is refused when the other holds it; with no holder,
    declaration order decides."""
    resources = [*ZAP_SITE, inverter("a", hardwareId="A", connection=RTU),
                 inverter("b", hardwareId="B", connection=RTU)]
    held = check_fleet(resources, endpoint_holders={"b"})
    assert [p.name for p in held] == ["a"]
    assert "RS-485 unit id 1 on Gateway 'home-zap' is already taken by Device 'b'" in (
        held[0].message)
    assert [p.name for p in check_fleet(resources)] == ["b"]


# A problem of every rule around those that read the holders, each rule's once.
EVERY_CLASH = [
    *HOME,
    inverter("twin", connection=RTU),  # the inverter's hardwareId
    inverter("a", hardwareId="A", connection=RTU),  # the twin's endpoint
    *LAB,
    enapter_device("pump", "standalone", hardwareId=None),
    enapter_device("pump.2", "standalone", hardwareId=None, enapter={"slug": "pump"}),
    site("fp", flatpeak={"locationId": "loc_1"}),
    device("b1", siteRef="fp", flatpeak={"referenceId": "r", "type": "OTHER"}),
    device("b2", siteRef="fp", flatpeak={"referenceId": "r", "type": "OTHER"}),
    config_file("ucm-a", "secrets/ucm.json"),
    config_file("ucm-b", "secrets/ucm.json"),
    config_secret("s-a", "ucm-config"),
    config_secret("s-b", "ucm-config"),
    device("dangling", gatewayRef="gone", hardwareId="D", connection=TCP),
]


@pytest.mark.parametrize(("endpoint_holders", "holders", "refused"), [
    pytest.param((), (), ["twin", "a", "pump.2", "b2", "ucm-b", "s-b"], id="declared-first"),
    pytest.param(("a",), ("ucm-b", "s-b"), ["twin", "twin", "pump.2", "b2", "ucm-a", "s-a"],
                 id="holders-first"),
])
def test_the_rules_report_in_one_order_whatever_holds(
    endpoint_holders: tuple[str, ...], holders: tuple[str, ...], refused: list[str],
) -> None:
    """The rules that read the holders report where they always did among the others:
    after the hardwareIds, the Zap endpoints; after the Flatpeak references, the
    configOutputs (files, then Secrets)."""
    problems = check_fleet(EVERY_CLASH, holders=holders, endpoint_holders=endpoint_holders)
    reported = [(p.name, p.path[-1]) for p in problems if p.name != "dangling"]
    assert [name for name, _ in reported] == refused
    assert [field for _, field in reported] == [
        "hardwareId", "unitId", "slug", "referenceId", "file", "secretName"]


@pytest.mark.parametrize(("resources", "expected"), [
    *CASES, pytest.param(EVERY_CLASH, [], id="every-clash")])
def test_the_rules_run_apart_find_what_check_fleet_finds(
    resources: list[Resource], expected: list[Expected],
) -> None:
    """An operator whose holders changed, and nothing else, runs the rules that read them
    again and keeps what the others found: the same problems, in the same order, as all
    of them run again, whichever Devices hold, and with the invalid documents named."""
    fleet = Fleet.of(resources)
    devices = list(fleet.devices)
    free = rules_without_holders(resources, fleet)
    invalid = {p.refers_to for p in check_fleet(resources) if p.refers_to is not None}
    for holders in ((), devices, devices[-1:]):
        for endpoint_holders in ((), devices[::-1], devices[-1:]):
            apart = in_rule_order(free, holder_rules(fleet, holders, endpoint_holders), invalid)
            assert apart == check_fleet(resources, invalid, holders, endpoint_holders)


# Every object a Device's own rules read for it (`DeviceChecked`), in versions that change
# what those rules find, or absent (None): a Device's rules found again from what they
# found in an earlier fleet must notice each. The versions are made once: an object left
# as it was is the very object it was, as the operator's are (`operator.objects`). What
# is kept of a Device with its rules, where it is on its Zap (`zap_spot`) and what the
# DER rules find of its inline DERs, must follow them too: Devices of one Zap on one
# endpoint or not, DERs of a wrong type or name, a DER document added to a Device.
SECOND_TCP = {"modbusTcp": {"host": "192.168.1.61", "profile": "sungrow"}}
VERSIONS: dict[str, list[Resource | None]] = {
    "home": [site(), site(novacore=None, enapter={}), None],
    "lab": [lab(), site("lab"), None],
    "home-zap": [zap(), zap(site_ref="lab"), enapter_gateway("home-zap", "home"), None],
    "lab-gateway": [enapter_gateway(), enapter_gateway(firmware="2.9.0"), None],
    "inverter": [inverter(), inverter(siteRef="home"), None, inverter(connection=RTU),
                 inverter(ders=[{"name": "pv", "type": "ev_charger_port"}]),
                 inverter(ders=[{"name": "pv", "type": "solar"}, {"name": "pv", "type": "meter"}])],
    "second": [inverter("second", hardwareId="A3", connection=SECOND_TCP),
               inverter("second", hardwareId="A3"),
               inverter("second", hardwareId="A3", connection=RTU, ders=[]), None],
    "der": [None, der("der", "inverter", "pv", "battery"), der("der", "second", "bat", "battery"),
            der("der", "ucm", "bat", "battery"), der("der", "nothing", "bat", "battery")],
    "ucm": [enapter_device("ucm", "ucm"), enapter_device("ucm", "standalone", hardwareId=None),
            None],
    "lua": [enapter_device("lua", "lua", hardwareId=None,
                           enapter={"runtimeRef": "ucm", "blueprintId": "b"}), None],
    "master": [enapter_device("master", "link_master", gatewayRef="lab-gateway"),
               enapter_device("master", "ucm"), None],
    "slave": [enapter_device("slave", "link_slave", gatewayRef="lab-gateway",
                             enapter={"masterRef": "master"}), None],
    "pump": [enapter_device("pump", "standalone", hardwareId=None),
             enapter_device("pump", "standalone", hardwareId=None, siteRef="home"), None],
    "wanderer": [inverter("wanderer", hardwareId="W1", gatewayRef="home-zapp"), None],
    "cabin-zap": [None, zap("cabin-zap", serial="zap-0000000000000002")],
    # Read by none of the others: its rules are taken from the earlier check.
    "fp": [site("fp", flatpeak={"locationId": "loc_1"})],
    "meter": [device("meter", siteRef="fp", flatpeak={"referenceId": "r", "type": "OTHER"})],
}


def _fleet_of(chosen: dict[str, int]) -> list[Resource]:
    """The resources of `VERSIONS`, the version `chosen` of each (the first by default)."""
    versions = (VERSIONS[name][chosen.get(name, 0)] for name in VERSIONS)
    return [resource for resource in versions if resource is not None]


def _found_again(resources: list[Resource], previous: HolderFree | None) -> HolderFree:
    """What the rules that do not read the holders find in `resources`, given what they
    found in an earlier fleet: what they find in them from nothing, and with the rules
    that read the holders, what `check_fleet` finds."""
    fleet = Fleet.of(resources)
    again = rules_without_holders(resources, fleet, previous)
    # The rules reading the holders first, over what this check kept of each Device.
    assert fleet.shared_zap_endpoints() == Fleet.of(resources).shared_zap_endpoints()
    assert in_rule_order(again, holder_rules(fleet)) == check_fleet(resources)
    assert again == rules_without_holders(resources, Fleet.of(resources))
    return again


@pytest.mark.parametrize(("name", "version"), [
    pytest.param("home", 1, id="the-site-of-a-device-on-its-zap"),
    pytest.param("lab", 1, id="the-site-of-a-cloud-device"),
    pytest.param("home-zap", 1, id="the-gateway-at-another-site"),
    pytest.param("home-zap", 2, id="the-gateway-of-another-platform"),
    pytest.param("lab-gateway", 1, id="the-gateway-firmware"),
    pytest.param("ucm", 1, id="the-runtime-of-a-lua-device"),
    pytest.param("master", 1, id="the-master-of-a-link-slave"),
    pytest.param("lab-gateway", 2, id="a-gateway-removed-names-nothing"),
    pytest.param("home", 2, id="a-site-removed-names-nothing"),
    pytest.param("ucm", 2, id="a-runtime-removed-names-nothing"),
    pytest.param("master", 2, id="a-master-removed-names-nothing"),
    pytest.param("cabin-zap", 1, id="a-gateway-of-another-name-declared"),
])
def test_a_devices_rules_are_run_again_when_an_object_they_read_changes(
    name: str, version: int,
) -> None:
    """The rules of a Device that did not change are taken from an earlier check of the
    fleet (`DeviceChecked`) only when every object they read is the very object it was:
    one of them replaced (its site, gateway, Enapter runtime or LINK master), or removed,
    changes what they find; and while a reference names nothing, its problem lists the
    names declared, which an object of another name added or removed changes."""
    before = _found_again(_fleet_of({}), None)
    after = _found_again(_fleet_of({name: version}), before)
    assert after.before_endpoints != before.before_endpoints  # the change is seen
    # Back as it was: found again, not taken from the changed fleet's check.
    assert _found_again(_fleet_of({}), after) == before
    # A Device whose inputs did not change is not checked again.
    assert after.devices["meter"] is before.devices["meter"]


@pytest.mark.parametrize(("start", "name", "version"), [
    pytest.param({}, "second", 1, id="a-device-onto-the-endpoint-of-another"),
    pytest.param({"second": 1}, "inverter", 3, id="a-device-off-the-endpoint-of-another"),
    pytest.param({"second": 1}, "home-zap", 2, id="their-gateway-no-longer-a-zap"),
    pytest.param({"second": 1}, "second", 2, id="a-device-onto-another-connection-type"),
    pytest.param({}, "der", 1, id="a-der-document-added-to-a-device"),
    pytest.param({"der": 1}, "der", 2, id="a-der-document-moved-to-another-device"),
    pytest.param({"der": 3}, "der", 0, id="a-der-document-removed"),
    pytest.param({}, "inverter", 4, id="an-inline-der-of-a-wrong-type"),
    pytest.param({"inverter": 5}, "inverter", 0, id="inline-ders-made-right"),
])
def test_where_a_device_is_on_its_zap_and_its_ders_follow_edits(
    start: dict[str, int], name: str, version: int,
) -> None:
    """What a check keeps of a Device with its rules for the next (`DeviceChecked`): the
    endpoint it takes on its Zap, which the endpoint rule reads, follows an edit of the
    Device or of its Gateway; what the DER rules find of its inline DERs follows an edit
    of the Device, and a DER document naming it is checked with them."""
    before = _found_again(_fleet_of(start), None)
    _found_again(_fleet_of(start | {name: version}), before)  # as found from nothing
    assert check_fleet(_fleet_of(start | {name: version})) != check_fleet(_fleet_of(start))


@settings(max_examples=300, deadline=None, database=None,
          derandomize=bool(os.environ.get("CI")))
@given(st.lists(st.sampled_from([(name, v) for name, versions in VERSIONS.items()
                                 for v in range(len(versions))]), max_size=12))
def test_rules_found_again_after_any_edits_are_those_found_from_nothing(
    edits: list[tuple[str, int]],
) -> None:
    """Edit after edit, each object replaced by another version or removed and added
    again, the rules given what they found in the fleet before find what they find from
    nothing (`_found_again`)."""
    chosen: dict[str, int] = {}
    found = _found_again(_fleet_of(chosen), None)
    for name, version in edits:
        chosen[name] = version
        found = _found_again(_fleet_of(chosen), found)


def test_the_hardware_ids_behind_a_gateway_are_indexed_and_follow_changes() -> None:
    fleet = Fleet.of([*HOME])
    assert fleet.hardware_ids_of("home-zap") == {
        d.spec.hardware_id for d in fleet.devices_of("home-zap")}
    assert fleet.hardware_ids_of("nowhere") == frozenset()
    fleet.devices["inverter-2"] = inverter("inverter-2", hardwareId="A2")  # type: ignore[assignment]
    assert "A2" in fleet.hardware_ids_of("home-zap")


def test_the_devices_whose_password_and_serial_each_plan_checks_are_indexed() -> None:
    battery = device("battery", gatewayRef="home-zap", hardwareId="B1", deviceType="battery",
                     connection={"mqtt": {"profile": "ferroamp", "brokerHost": "10.0.0.2",
                                          "passwordFrom": {"env": "FERRO_PASSWORD"}}})
    open_battery = device("open-battery", gatewayRef="home-zap", hardwareId="B2",
                          deviceType="battery",
                          connection={"mqtt": {"profile": "ferroamp", "brokerHost": "10.0.0.3"}})
    checked = inverter("checked", hardwareId="A3", verification={"checkSerial": True})
    rtu = inverter("rtu", hardwareId="A4", connection=RTU, verification={"checkSerial": True})
    fleet = Fleet.of([*HOME, battery, open_battery, checked, rtu])
    assert [d.name for d in fleet.mqtt_password_devices()] == ["battery"]
    # Modbus TCP only: an RTU device's serial cannot be read before it is added.
    assert [d.name for d in fleet.serial_checked_of("home-zap")] == ["checked"]
    assert list(fleet.serial_checked_of("nowhere")) == []
    fleet.devices["checked-2"] = inverter(  # type: ignore[assignment]
        "checked-2", hardwareId="A5", verification={"checkSerial": True})
    assert [d.name for d in fleet.serial_checked_of("home-zap")] == ["checked", "checked-2"]
