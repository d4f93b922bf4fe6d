"""An object's drift timer fires while its create or update handler is still applying (kopf
runs timers beside handlers): the two must not both plan from what was there before either
wrote, or a Site is created twice in Novacore and a gateway claimed twice. One reconcile of
an object (and of what it applies for: a DER's device) runs at a time; the next observes
what the first wrote."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from harness import operator
from objects import HOME, ZAP, declare

from reconciler.operator.config import OperatorConfig
from reconciler.sim.fleet import SimFleet


def _slow_answers(sims: SimFleet) -> None:
    """Every write takes effect at once and is answered 1.5 s later: longer than the drift
    interval, so a timer fires while the handler's write is on its way."""
    for server in sims.http_servers():
        server.faults.answer_delay_ms = 1500


async def test_a_drift_check_during_an_apply_does_not_write_the_same_again(
    tmp_path: Path, monkeypatch: Any
) -> None:
    config = OperatorConfig(interval=0.5, retry_delay=0.5)
    async with operator(HOME, tmp_path, monkeypatch, config=config,
                        before_start=_slow_answers) as (cluster, sims):
        await declare(cluster)
        for kind, name in (("Site", "home"), ("Gateway", "home-zap"),
                           ("Device", "home-inverter"), ("Device", "home-battery")):
            await cluster.wait_condition(kind, name, "Ready", timeout=60)
        sites = Counter((s.org_id, s.name) for s in sims.novacore.sites.values())
        assert sites == {("org-home", "Home"): 1}
        assert sims.novacore.requests["POST /sites"] == 1
        assert sims.novacore.requests["POST /gateways/claim"] == 1
        assert sims.novacore.requests["POST /devices/provision"] == 2
        assert sims.zaps[ZAP].requests["POST /api/devices"] == 2
