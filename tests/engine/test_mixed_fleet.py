"""The whole example fleet (examples/sites) across the four platforms at once: Zap
gateways, Novacore, Enapter Cloud and Flatpeak, each simulated on loopback. A fresh apply
converges, and the next plan is a no-op that writes nothing anywhere."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reconciler.cli.demo_run import _demo_secrets
from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sources import loader

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sites"


async def test_fresh_apply_of_the_examples_converges_across_all_platforms(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = loader.load_fleet([EXAMPLES])
    assert any(s.spec.enapter for s in fleet.sites.values())
    assert any(s.spec.flatpeak for s in fleet.sites.values())
    for key, value in _demo_secrets(fleet, tmp_path / "secrets").items():
        monkeypatch.setenv(key, value)
    sims = SimFleet(seed=1)
    sims.seed_fleet(fleet)
    async with sims:
        settings = load_settings(sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state"),
                                               "RECONCILER_SECRETS_DIR": str(tmp_path / "secrets")})
        async with Reconciler(fleet, settings) as reconciler:
            first = await reconciler.plan(PlanOptions(audience=Audience.CLI))
            components = {c.component for c in first.plan.pending}
            assert {"zap", "novacore", "enapter", "flatpeak"} <= components, components
            assert not first.plan.blocked, [(c.address, c.message) for c in first.plan.blocked]
            report = await reconciler.apply(first)
        assert report.ok, [o.__dict__ for o in report.outcomes if o.status != "done"]

        sims.reset_counts()
        async with Reconciler(fleet, settings) as reconciler:
            again = await reconciler.plan(PlanOptions(audience=Audience.CLI))
        assert not again.plan.has_changes, [(c.address, c.message) for c in again.plan.pending]
        assert again.plan.unmanaged == []
        assert sims.writes() == 0
        assert sims.enapter.writes() == sims.flatpeak.writes() == 0
        assert sims.enapter.count() > 0 and sims.flatpeak.count() > 0

    # The UCM's communication config went where the example points, under the state dir.
    config = tmp_path / "state" / "secrets" / "h2-lab-ucm.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
