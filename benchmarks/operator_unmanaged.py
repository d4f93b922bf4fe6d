"""The operator's cost of `status.unmanaged` for the Flatpeak Sites of one namespace: every
Site's reconcile checks the devices on its location against every Device of the namespace
(`operator.unmanaged_clouds`). Times that check, and the Flatpeak part of each Site's own
plan (which reads the namespace's Sites too), once for every Site of a namespace of
`--sites` Flatpeak Sites, as a drift check of them all does. Pure CPU: no simulator, no
Kubernetes; the account is made up in memory, with one undeclared device per site.

    .venv/bin/python benchmarks/operator_unmanaged.py [--sites 100 200 400] [--devices-per-site 2]
"""

from __future__ import annotations

import argparse
import time

from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.operator.objects import closure
from reconciler.operator.unmanaged_clouds import flatpeak_devices
from reconciler.plan.advice import Audience
from reconciler.plan.flatpeak import (
    COMPONENT,
    FlatpeakDeviceState,
    FlatpeakLocationState,
    FlatpeakPlanner,
    FlatpeakState,
)
from reconciler.plan.observed import Observed
from reconciler.sources.loader import load_texts

_ADDRESS = '{line1: Storgatan 1, city: Malmö, postCode: "211 19", countryCode: SE}'


def _documents(sites: int, per_site: int) -> str:
    docs = []
    for i in range(sites):
        docs.append(f"""apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata: {{name: site-{i}}}
spec:
  displayName: Site {i}
  timezone: Europe/Stockholm
  location: {{latitude: 55.61, longitude: 12.97, address: {_ADDRESS}}}
  flatpeak: {{customerId: cus_1}}
""")
        for j in range(per_site):
            docs.append(f"""apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata: {{name: site-{i}-battery-{j}}}
spec:
  siteRef: site-{i}
  flatpeak: {{referenceId: site-{i}-battery-{j}, type: BATTERY_SYSTEM}}
""")
    return "---\n".join(docs)


def _account(sites: int, per_site: int) -> FlatpeakState:
    """Every Site's location and Devices as applied, and one device on each location that
    no Device declares."""
    locations = [
        FlatpeakLocationState(
            f"loc_{i}", f"site-{i}", "cus_1",
            {"address_line1": "Storgatan 1", "city": "Malmö", "post_code": "211 19",
             "country_code": "SE"},
        )
        for i in range(sites)
    ]
    devices = [
        FlatpeakDeviceState(f"dev_{i}_{j}", f"site-{i}-battery-{j}", "BATTERY_SYSTEM",
                            (f"loc_{i}",))
        for i in range(sites) for j in range(per_site)
    ] + [
        FlatpeakDeviceState(f"dev_{i}_by_hand", f"by-hand-{i}", "EV_CHARGER", (f"loc_{i}",))
        for i in range(sites)
    ]
    return FlatpeakState(locations, devices)


def run(sites: int, per_site: int) -> None:
    loaded = load_texts([("fleet.yaml", _documents(sites, per_site))])
    whole = Fleet.of(loaded.resources)
    observed = Observed(extra={COMPONENT: _account(sites, per_site)})
    all_sites: list[Site] = list(whole.sites.values())

    started = time.process_time()
    found = 0
    for site in all_sites:
        entries = flatpeak_devices(site, whole, observed)
        found += len(entries or [])
    unmanaged = time.process_time() - started
    assert found == sites, found  # one undeclared device per site, each reported once

    started = time.process_time()
    for site in all_sites:
        FlatpeakPlanner(closure(whole, site), observed.extra[COMPONENT],
                        whole_fleet=whole, audience=Audience.OPERATOR).plan()
    own = time.process_time() - started
    print(f"{sites:5} sites x {per_site} devices: status.unmanaged {unmanaged:7.3f} s "
          f"({unmanaged / sites * 1000:7.2f} ms per Site); the Sites' own Flatpeak plans "
          f"{own:7.3f} s ({own / sites * 1000:6.2f} ms per Site)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--devices-per-site", type=int, default=2)
    args = parser.parse_args()
    for sites in args.sites:
        run(sites, args.devices_per_site)


if __name__ == "__main__":
    main()
