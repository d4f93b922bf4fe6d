"""The watch agent run with another Flatpeak account than the state directory applied the
Flatpeak example with: its first run says, once, that the locations applied with the other
account are neither looked for nor forgotten, and later runs of the same plan do not say
it again; the inventory keeps them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agent_helpers import EXAMPLES, Spawn, base_env

from reconciler.sim.fleet import SimFleet
from reconciler.sources import loader


async def test_the_agent_says_once_that_locations_of_another_account_are_kept(
        tmp_path: Path, spawn: Spawn) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    shutil.copy(EXAMPLES / "townhouse-malmo-flatpeak.yaml", sites)
    sims = SimFleet()
    sims.seed_fleet(loader.load_fleet([sites]))
    await sims.start()
    try:
        env = base_env() | sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state")}
        applied = await spawn("apply", "sites", "--auto-approve", env=env, cwd=tmp_path)
        assert await applied.finish() == 0, applied.text
        inventory = tmp_path / "state" / "inventory.json"
        [location] = json.loads(inventory.read_text())["flatpeak_locations"]

        sims.flatpeak.add_account("acc_watched_with_another", "key-of-another")
        other = env | {"RECONCILER_FLATPEAK_ACCOUNT_ID": "acc_watched_with_another",
                       "RECONCILER_FLATPEAK_API_KEY": "key-of-another"}
        agent = await spawn("watch", "sites", "--interval", "0.5s", env=other, cwd=tmp_path)
        await agent.wait_for(
            rf"run=1 warning: the state directory \S+ applied 1 Flatpeak location with "
            rf"another Flatpeak account than RECONCILER_FLATPEAK_ACCOUNT_ID names now: "
            rf"{location} \(Site townhouse-malmo\)")
        await agent.wait_for(r"run=3 trigger=interval")
        assert sum("warning:" in line for line in agent.out) == 1, agent.text
        assert await agent.terminate() == 0
        assert location in json.loads(inventory.read_text())["flatpeak_locations"]
        assert "key-of-another" not in agent.text
    finally:
        await sims.stop()
