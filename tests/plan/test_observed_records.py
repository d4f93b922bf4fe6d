"""The records the planner reads (`plan.observed`), as the providers' conversions make them
of the answers the APIs give: every field where the API says it, and what it leaves out
or reports empty told apart."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.plan.frozen_records import builder
from reconciler.plan.observed import NovacoreDer, NovacoreDevice, Observed, ZapDevice, ZapState
from reconciler.providers.novacore import convert
from reconciler.providers.zap import convert as zap_convert


def test_novacore_devices_are_recorded_with_their_ders_and_the_fields_reported_empty() -> None:
    answer = [
        {"id": "d1", "name": "Inverter", "type": "inverter", "state": "active",
         "hardware_id": "SG1", "gateway_serial": "zap-1", "site_id": "s1",
         "manufacturer": "Sungrow", "model": "SH10RT",
         "ders": [{"id": "x1", "name": "pv", "type": "solar", "device_id": "d1"},
                  "not a DER", {"id": "x2", "name": "battery", "type": "battery"}]},
        {"id": 7, "device_type": "energy_meter", "hardware_id": "P1",
         "manufacturer": None, "model": ""},
        {"id": "d3", "name": "Battery", "type": "battery", "hardware_id": "B1",
         "manufacturer": "Ferroamp"},
        {"name": "no id"},
        "not a device",
    ]
    assert convert.devices(answer) == [
        NovacoreDevice("d1", "Inverter", "inverter", "SG1", "active", "zap-1", "Sungrow",
                       "SH10RT", (NovacoreDer("x1", "pv", "solar"),
                                  NovacoreDer("x2", "battery", "battery")), ()),
        NovacoreDevice("7", "", "energy_meter", "P1", "active", None, None, "", (),
                       ("manufacturer", "model")),
        NovacoreDevice("d3", "Battery", "battery", "B1", "active", None, "Ferroamp", None,
                       (), ()),
    ]


def test_zap_devices_are_recorded_with_their_settings_and_ders() -> None:
    answer = {"count": 3, "devices": [
        {"type": "modbus_tcp", "profile": "sungrow", "device_type": "inverter", "sn": "SG1",
         "ip": "192.168.1.60", "port": 502, "unit_id": 1, "connected": True, "path": "x",
         "ders": [{"type": "pv", "enabled": True, "rated_power": 10}, {"type": "meter"},
                  {"enabled": True}, "not a DER"]},
        {"serial_number": 7, "type": "mqtt", "broker_port": 1883, "broker_host": "10.0.0.2",
         "connected": False},
        {"type": "p1_uart"},
        "not a device",
    ]}
    state = zap_convert.zap_state(answer)
    assert state == ZapState({
        "SG1": ZapDevice("SG1", "modbus_tcp", "sungrow", "inverter",
                         {"ip": "192.168.1.60", "port": 502, "unit_id": 1},
                         {"pv": True, "meter": False}, True),
        "7": ZapDevice("7", "mqtt", None, None,
                       {"broker_host": "10.0.0.2", "broker_port": 1883}, {}, False),
    })
    # In the order of the Zap's fields, whatever the answer's: it is what a plan shows.
    assert list(state.devices["7"].settings) == ["broker_host", "broker_port"]


def test_records_made_by_the_conversions_are_the_frozen_records_themselves() -> None:
    """Built the fast way (`plan.frozen_records`): of their own class, equal to and hashed
    as the records their constructor makes, and refusing every assignment."""
    zap = next(iter(zap_convert.zap_state([{"sn": "SG1", "type": "mqtt"}]).devices.values()))
    (device,) = convert.devices([{"id": "d1", "hardware_id": "H1",
                                  "ders": [{"id": "x1", "name": "pv", "type": "solar"}]}])
    der = device.ders[0]
    assert (type(zap), type(device), type(der)) == (ZapDevice, NovacoreDevice, NovacoreDer)
    assert der == NovacoreDer("x1", "pv", "solar")
    assert hash(der) == hash(NovacoreDer("x1", "pv", "solar"))
    assert hash(device) == hash(NovacoreDevice("d1", "", "", "H1", ders=(der,)))
    for record, name in ((zap, "sn"), (device, "hardware_id"), (der, "type")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, name, "other")
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(record, name)
    assert dataclasses.replace(der, type="battery") == NovacoreDer("x1", "pv", "battery")


def test_a_builder_is_made_only_of_a_frozen_dataclass_with_slots() -> None:
    with pytest.raises(TypeError, match="Observed is not a frozen dataclass with slots"):
        builder(Observed)
    make = builder(NovacoreDer)
    with pytest.raises(TypeError):
        make("x1", "pv")  # every field, positionally
