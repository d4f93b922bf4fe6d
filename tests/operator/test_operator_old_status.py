"""Objects whose status an older operator wrote, without the fields added since: a Gateway
with no `status.claims` whose serial is swapped before its first reconcile by this
operator still releases, with `deletionPolicy: Release`, the gateway its older status says
it claimed (`status.lastValidSpec` and the `Claimed` condition), as the CLI releases one
its inventory remembers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import novacore_site, stream, zap_gateway
from harness import KopfRuns, documents, operator
from objects import HOME_INVERTER, RELEASE, ZAP

OLD, NEW = ZAP, "zap-00000000000000a9"
NEW_URL = "http://192.168.1.9"
PAUSED = "energy.reconciler.dev/paused"
# kopf's name of a Gateway's drift check, in its line of each run (`KopfRuns`).
DRIFT = "Timer 'drift-gateways'"


async def test_a_gateway_swapped_before_its_first_reconcile_since_an_upgrade_releases_the_old(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    fleet = stream(novacore_site(), zap_gateway(extra=RELEASE), HOME_INVERTER)
    seeded = stream(fleet, zap_gateway("spare", serial=NEW, url=NEW_URL))
    async with operator(seeded, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        await cluster.patch("Gateway", "home-zap", {"metadata": {"annotations": {PAUSED: "true"}}})
        await cluster.wait_reason("Gateway", "home-zap", "Paused", type_="Synced")
        # The status as an older operator left it: no `claims`. A drift check that began
        # before the pause lands its status after it, `claims` with it, before it ends: of
        # the next two, the second began after the pause. A paused one writes no claims.
        await runs.wait("home-zap", DRIFT, 2)
        await cluster.patch("Gateway", "home-zap", {"status": {"claims": None}})
        await runs.wait("home-zap", DRIFT, 1)
        assert "claims" not in await cluster.status("Gateway", "home-zap")
        await cluster.patch("Gateway", "home-zap", {
            "metadata": {"annotations": {PAUSED: None}},
            "spec": {"zap": {"serial": NEW, "url": NEW_URL}},
        })

        async def released() -> bool:
            return sims.novacore.gateways[OLD].org_id is None

        await cluster.wait_for(released, what=f"{OLD} released")
        assert sims.novacore.gateways[NEW].org_id == "org-home"
        assert sims.novacore.requests["DELETE /gateways/{serial}"] == 1
