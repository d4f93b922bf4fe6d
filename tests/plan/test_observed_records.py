"""The records the planner reads (`plan.observed`), as the providers' conversions make them
of the answers the APIs give: every field where the API says it, and what it leaves out
or reports empty told apart."""

from __future__ import annotations

from reconciler.plan.observed import NovacoreDer, NovacoreDevice
from reconciler.providers.novacore import convert


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
