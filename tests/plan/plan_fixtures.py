"""A small desired fleet for the pure planner tests, and `Observed` records built by hand
for it: `converged()` is the actual state that matches the fleet exactly, and each test
changes one thing in a copy of it. No I/O anywhere.

The fleet: two sites of organisation `org-a`.

* `home` (label region=north): gateway `home-zap`, a Sungrow inverter `home-inv` over
  Modbus TCP (DERs pv/battery published, meter not) and a P1 meter `home-p1`.
* `cabin` (label region=south): gateway `cabin-zap` and an inverter `cabin-inv` whose
  serial is checked before it is added (`checkSerial: true`).
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler.model.fleet import Fleet
from reconciler.plan.observed import (
    IdentityReading,
    NovacoreDer,
    NovacoreDevice,
    NovacoreSite,
    Observed,
    ZapDevice,
    ZapState,
)
from reconciler.sources import loader

ORG = "org-a"
OTHER_ORG = "org-b"
HOME_SERIAL = "zap-00000000000000a1"
CABIN_SERIAL = "zap-00000000000000b2"

HOME_SITE = """\
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata: {name: home, labels: {region: north}}
spec:
  displayName: Home
  timezone: Europe/Stockholm
  novacore: {orgId: org-a}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Gateway
metadata: {name: home-zap, labels: {region: north}}
spec:
  siteRef: home
  zap: {serial: zap-00000000000000a1, url: "http://192.168.1.40"%(zap_extra)s}
  deletionPolicy: %(policy)s
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata: {name: home-inv, labels: {kind: inverter}}
spec:
  gatewayRef: home-zap
  hardwareId: INV1
  deviceType: inverter
  displayName: Home inverter
  manufacturer: Sungrow
  connection:
    modbusTcp: {host: 192.168.1.60, port: 502, unitId: 1, profile: sungrow}
  ders:
    - {name: pv, type: solar}
    - {name: battery, type: battery}
    - {name: grid, type: meter, publish: false}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata: {name: home-p1}
spec:
  gatewayRef: home-zap
  hardwareId: P1A
  deviceType: energy_meter
  connection:
    p1Uart: {}
  ders:
    - {name: grid-meter, type: meter}
"""

CABIN_SITE = """\
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata: {name: cabin, labels: {region: south}}
spec:
  displayName: Cabin
  timezone: Europe/Stockholm
  novacore: {orgId: org-a}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Gateway
metadata: {name: cabin-zap}
spec:
  siteRef: cabin
  zap: {serial: zap-00000000000000b2, url: "http://192.168.2.40"}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata: {name: cabin-inv}
spec:
  gatewayRef: cabin-zap
  hardwareId: INV2
  deviceType: inverter
  connection:
    modbusTcp: {host: 192.168.2.60, unitId: 3, profile: sungrow}
  verification: {checkSerial: true}
  ders:
    - {name: pv, type: solar}
"""


def fleet_text(*, allow_transfer: bool = False, policy: str = "Orphan",
               home_overrides: dict[str, str] | None = None) -> str:
    zap_extra = ", allowTransfer: true" if allow_transfer else ""
    home = HOME_SITE % {"zap_extra": zap_extra, "policy": policy}
    for old, new in (home_overrides or {}).items():
        assert old in home, f"override {old!r} does not occur in the home site"
        home = home.replace(old, new)
    return home + "---\n" + CABIN_SITE


def make_fleet(**kwargs: Any) -> Fleet:
    return loader.load_texts([("fleet.yaml", fleet_text(**kwargs))]).fleet()


INVERTER_SETTINGS = {"ip": "192.168.1.60", "port": 502, "unit_id": 1}
P1_SETTINGS = {"baud_rate": 115200, "data_bits": 8, "parity": "none", "stop_bits": 1}
CABIN_SETTINGS = {"ip": "192.168.2.60", "port": 502, "unit_id": 3}


def converged() -> Observed:
    """The actual state that matches `make_fleet()` exactly (ids are fixed, not random)."""
    return Observed(
        novacore_sites={ORG: [NovacoreSite("sit-home", ORG, "Home"),
                              NovacoreSite("sit-cabin", ORG, "Cabin")],
                        OTHER_ORG: []},
        novacore_gateways={ORG: {HOME_SERIAL, CABIN_SERIAL}, OTHER_ORG: set()},
        novacore_devices={
            "sit-home": [
                NovacoreDevice("dev-inv1", "Home inverter", "inverter", "INV1",
                               gateway_serial=HOME_SERIAL, manufacturer="Sungrow",
                               ders=(NovacoreDer("der-1", "pv", "solar"),
                                     NovacoreDer("der-2", "battery", "battery"),
                                     NovacoreDer("der-3", "grid", "meter"))),
                NovacoreDevice("dev-p1a", "home-p1", "energy_meter", "P1A",
                               gateway_serial=HOME_SERIAL,
                               ders=(NovacoreDer("der-4", "grid-meter", "meter"),)),
            ],
            "sit-cabin": [
                NovacoreDevice("dev-inv2", "cabin-inv", "inverter", "INV2",
                               gateway_serial=CABIN_SERIAL,
                               ders=(NovacoreDer("der-5", "pv", "solar"),)),
            ],
        },
        zaps={
            "home-zap": ZapState({
                "INV1": ZapDevice("INV1", "modbus_tcp", "sungrow", "inverter",
                                  dict(INVERTER_SETTINGS),
                                  {"pv": True, "battery": True, "meter": False}),
                "P1A": ZapDevice("P1A", "p1_uart", "p1_meter", "energy_meter",
                                 dict(P1_SETTINGS), {"meter": True}),
            }),
            "cabin-zap": ZapState({
                "INV2": ZapDevice("INV2", "modbus_tcp", "sungrow", "inverter",
                                  dict(CABIN_SETTINGS),
                                  {"pv": True, "battery": False, "meter": False}),
            }),
        },
    )


def copy_of(observed: Observed) -> Observed:
    return copy.deepcopy(observed)


def without_cabin_inverter_on_zap(observed: Observed, reading: IdentityReading | None) -> Observed:
    """The cabin inverter is not on its Zap yet (and so not in Novacore): it needs the
    identity check; `reading` is what the check read, or None when it was not read."""
    observed.zaps["cabin-zap"] = ZapState({})
    observed.novacore_devices["sit-cabin"] = []
    if reading is not None:
        observed.identities["cabin-inv"] = reading
    return observed


def fresh() -> Observed:
    """Organisations observed, nothing else exists yet."""
    return Observed(novacore_sites={ORG: []}, novacore_gateways={ORG: set()},
                    zaps={"home-zap": ZapState({}), "cabin-zap": ZapState({})},
                    identities={"cabin-inv": IdentityReading("INV2")})
