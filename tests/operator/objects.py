"""The fleets the operator tests declare, and how a test declares one: `HOME` (a site, its
Zap, an inverter over Modbus and a battery over MQTT whose password is in a Secret) that
most tests start from, and the two sites a Device moves between."""

from __future__ import annotations

from typing import Any

from fleet_yaml import (
    HOME_ZAP_SERIAL,
    der,
    document,
    ferroamp_battery,
    novacore_site,
    stream,
    sungrow_inverter,
    zap_gateway,
)
from harness import Cluster, documents

from reconciler.sim.fleet import SimFleet
from reconciler.sim.lan import MqttDevice

ZAP = HOME_ZAP_SERIAL
SECRET = "s3cret-mqtt-passw0rd"  # the battery's MQTT password, in its Secret (a test value)
RELEASE = "deletionPolicy: Release"

HOME_INVERTER = sungrow_inverter(
    "home-inverter", "home-zap", "SG0001", "192.168.1.60",
    ders=(("pv", "solar"), ("battery", "battery")),
    extra="displayName: Inverter\nverification: {checkSerial: true}\ndeletionPolicy: Release",
)
# The gateway and the inverter are released when their objects are deleted.
HOME = stream(novacore_site(), zap_gateway(extra=RELEASE), HOME_INVERTER, ferroamp_battery())


async def declare(cluster: Cluster, fleet: str = HOME) -> list[dict[str, Any]]:
    """The MQTT password's Secret and every object of `fleet`, as `kubectl apply` would;
    the objects' documents."""
    await cluster.create_secret("ferroamp-mqtt", {"password": SECRET})
    docs = documents(fleet)
    await cluster.create_all(docs)
    return docs


# A battery at home that moves to the cabin: each site with its own Zap.
BATTERY = "FERRO-0001"
_BAT = f"""
    gatewayRef: home-zap
    hardwareId: {BATTERY}
    deviceType: battery
    connection:
      mqtt: {{profile: ferroamp, brokerHost: 192.168.1.70}}
    """


def two_sites(cabin_org: str = "org-home", *, der_document: bool = False) -> str:
    """Home and the cabin (in `cabin_org`), each with its Zap, and the battery `bat` at
    home, its battery DER in its spec or (`der_document`) in a DER document of its own."""
    sites = [
        novacore_site(),
        novacore_site("cabin", "Cabin", cabin_org),
        zap_gateway(),
        zap_gateway("cabin-zap", "cabin", "zap-00000000000000a2", "http://192.168.1.3"),
    ]
    if der_document:
        return stream(*sites, document("Device", "bat", _BAT),
                      der("bat-battery", "bat", "battery", "battery"))
    ders = "ders:\n  - {name: battery, type: battery}"
    return stream(*sites, document("Device", "bat", _BAT, ders))


def rewire_to_the_cabin(sims: SimFleet) -> None:
    """The battery re-wired: it answers behind the cabin's broker too."""
    sims.lans["cabin"].mqtt_devices[("192.168.1.70", 1883, "ferroamp")] = MqttDevice(
        BATTERY, "ferroamp"
    )
