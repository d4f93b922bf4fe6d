"""The Enapter site an Enapter Device's device is in (`status.externalIds.enapterSite`) is
recorded on that Device's status only, through the real operator (kopf against kmock's
emulator, the Enapter simulator on loopback): a stand-alone DER's reconcile applies its
device's changes, but has no Enapter device of its own, and nothing reads it there. Nor
does its status show the Device's Enapter device id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import der, document, enapter_site, stream
from harness import documents, operator

from reconciler.operator.config import OperatorConfig

TEXT = stream(
    enapter_site(),
    document("Device", "weather", """
        siteRef: h2-lab
        displayName: Weather station
        deviceType: inverter
        enapter: {kind: standalone}
        """),
    der("weather-pv", "weather", "pv", "solar"),
)


async def test_a_stand_alone_der_records_no_enapter_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    config = OperatorConfig(interval=3600.0, retry_delay=0.5)
    async with operator(TEXT, tmp_path, monkeypatch, config=config) as (cluster, _):
        await cluster.create_all(documents(TEXT))
        await cluster.wait_condition("Device", "weather", "Ready")
        await cluster.wait_condition("DER", "weather-pv", "Ready")
        device_ids = (await cluster.status("Device", "weather"))["externalIds"]
        assert device_ids.get("enapterSite"), device_ids
        assert device_ids.get("enapter"), device_ids
        der_ids = (await cluster.status("DER", "weather-pv")).get("externalIds") or {}
        assert "enapterSite" not in der_ids, "a DER has no Enapter device of its own"
        assert "enapter" not in der_ids, "nor its Device's Enapter device id"
