"""A Site renamed by hand in Novacore (no `siteId`, so found by its display name): the
operator renames the site back, as the CLI does from its inventory, instead of creating a
second one. The operator has no inventory: where a Site was applied is in its status
(`status.externalIds`), which the namespace index carries to the planner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import novacore_site
from harness import documents, operator

FLEET = novacore_site()


async def test_a_site_renamed_in_novacore_gets_its_name_back(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(FLEET))
        await cluster.wait_condition("Site", "home", "Ready")
        [site_id] = sims.novacore.sites
        body = await cluster.get("Site", "home")
        assert body and body["status"]["externalIds"]["novacore"] == site_id

        sims.novacore.rename_site(site_id, "renamed in the cloud UI")

        async def corrected() -> bool:
            names = [s.name for s in sims.novacore.sites.values()]
            return "Home" in names

        await cluster.wait_for(corrected, what="the drift corrected")
        assert {i: s.name for i, s in sims.novacore.sites.items()} == {site_id: "Home"}

        async def told() -> list[str]:
            messages = [e.get("message", "") for e in await cluster.events()]
            return messages if "site/home[novacore]: update done" in messages else []

        # The event is posted once the write is answered and the reconcile is over: after
        # the simulator has the name back, by as long as a loaded machine takes.
        events = await cluster.wait_for(told, what="the update's event")
        assert events.count("site/home[novacore]: create done") == 1, "only the first time"
