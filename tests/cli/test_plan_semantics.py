"""What `reconciler plan` compares and in which order `apply` writes, through the CLI
against the simulators: a declared field is set where the platform reports it empty, and
what is pruned goes in the reverse order of provisioning. Each case ends with a plan that
has nothing to do and writes nothing."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import (  # tests/engine holds the shared helpers
    cloud_device,
    cloud_devices,
    owner,
    serial_of,
    standard_site,
)
from test_plan_apply import Cli, CliFactory, make_cli

from reconciler.sim.fleet import SimFleet

__all__ = ["make_cli"]


def settled(run: Cli) -> None:
    """The next plan has nothing to do, and reading for it writes nothing."""
    run.sims.call(run.sims.sims.reset_counts)
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out
    assert run.sims.call(run.sims.sims.writes) == 0


def test_a_declared_manufacturer_and_model_reach_a_novacore_device_that_had_none(
        make_cli: CliFactory) -> None:
    docs = standard_site(1)  # the P1 meter s1-p1 declares no manufacturer nor model
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    assert cloud_device(run.sims.sims, "P1M0001").manufacturer is None

    declared = copy.deepcopy(docs)
    declared[3]["spec"] |= {"manufacturer": "Kaifa", "model": "MA105"}
    run.rewrite(declared)
    code, out, _ = run("plan", run.path, "-o", "json", "--detailed-exitcode")
    assert code == 2, out
    [change] = [c for c in json.loads(out)["changes"] if c["actions"] != ["no-op"]]
    assert change["address"] == "device/s1-p1[novacore]"
    assert {(d["path"], d["old"], d["new"]) for d in change["diff"]} == {
        ("manufacturer", None, "Kaifa"), ("model", None, "MA105")}

    assert run("apply", run.path, "--auto-approve")[0] == 0
    meter = cloud_device(run.sims.sims, "P1M0001")
    assert (meter.manufacturer, meter.model) == ("Kaifa", "MA105")
    settled(run)

    # Left out of the spec again, the fields are not compared: nothing to do.
    run.rewrite(docs)
    settled(run)


class RefusedDeletes:
    """Novacore refuses every device delete (403) while `on`: a permanent failure, so the
    apply reports it at once and what waits for it is not attempted."""

    def __init__(self) -> None:
        self.on = True

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.on and request.method == "DELETE" and request.path.startswith("/devices/"):
                return web.json_response({"error": "forbidden"}, status=403)
            return await handler(request)

        sims.novacore.app.middlewares.append(refuse)


def test_pruning_deletes_in_novacore_before_removing_from_the_zap_and_releasing(
        make_cli: CliFactory) -> None:
    docs = standard_site(1) + standard_site(2)
    docs[5]["spec"]["deletionPolicy"] = "Release"  # gateway s2-zap
    refused = RefusedDeletes()
    refused.on = False
    run = make_cli(docs, before_start=refused.install)
    assert run("apply", run.path, "--auto-approve")[0] == 0

    # s1 drops its inverter; s2 keeps its Site but drops its gateway and both devices.
    kept = [d for d in docs if d["metadata"]["name"] not in ("s1-inv", "s2-zap", "s2-inv",
                                                             "s2-p1")]
    run.rewrite(kept)
    code, out, _ = run("plan", run.path, "--prune", "-o", "json")
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    assert changes["device/s1-zap.SG0001[zap]"]["depends_on"] == ["device/s1.SG0001[novacore]"]
    assert changes[f"gateway/{serial_of(2)}[novacore]"]["depends_on"] == [
        "device/s2.P1M0002[novacore]", "device/s2.SG0002[novacore]"]

    refused.on = True
    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 1, out
    assert "not attempted: device/s1.SG0001[novacore] did not succeed" in out
    sims = run.sims.sims
    assert "SG0001" in sims.zaps[serial_of(1)].devices, "removed from the Zap before Novacore"
    assert owner(sims, serial_of(2)) == "org-alpha", "released before its devices were deleted"

    refused.on = False
    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert "SG0001" not in sims.zaps[serial_of(1)].devices
    assert owner(sims, serial_of(2)) is None
    assert not cloud_devices(sims, "SG0001") and not cloud_devices(sims, "SG0002")
    settled(run)
