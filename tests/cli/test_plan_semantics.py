"""What `reconciler plan` compares and in which order `apply` writes, through the CLI
against the simulators: a declared field is set where the platform reports it empty, and
what is pruned goes in the reverse order of provisioning. Each case ends with a plan that
has nothing to do and writes nothing."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import cloud_device, standard_site  # tests/engine holds the shared helpers
from test_plan_apply import Cli, CliFactory, make_cli  # noqa: F401 - the fixture

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
