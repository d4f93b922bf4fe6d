"""An Enapter Site's location deleted from the spec, end to end through `reconciler plan`
and `apply` against the simulators of the examples: Enapter keeps a site's location (it
has no default to go back to), so the plan reports the location, or its name, as no longer
managed, never silently, and sends nothing; a Site in no Enapter site has nothing remote
to report."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from cloud_examples import cloud_examples
from test_plan_apply import Cli, CliFactory

make_cli = test_plan_apply.make_cli  # the fixture, shared


def site_spec(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [spec] = [d["spec"] for d in docs if d["kind"] == "Site" and d["metadata"]["name"] == name]
    return spec  # type: ignore[no-any-return]


def enapter_writes(run: Cli) -> int:
    return run.sims.call(run.sims.sims.enapter.writes)


def applied(make_cli: CliFactory) -> tuple[Cli, list[dict[str, Any]]]:
    docs = cloud_examples()
    run = make_cli(docs)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    return run, docs


def test_an_enapter_location_deleted_from_the_spec_is_reported_not_left_silently(
        make_cli: CliFactory) -> None:
    run, docs = applied(make_cli)
    edited = copy.deepcopy(docs)
    del site_spec(edited, "h2-lab")["location"]
    run.rewrite(edited)
    before = enapter_writes(run)
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out
    assert ("! unmanaged: spec.location of Site h2-lab was declared at the last apply and is "
            "removed from the spec; its value on Enapter is left as it is and no longer "
            "managed (the Enapter site keeps its location)") in out, out
    assert "spec.location.name" not in out and "spec.location.latitude" not in out, out
    # The apply sends nothing and records the removal: the next plan says nothing more.
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    assert enapter_writes(run) == before
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert (code, out.splitlines()[0]) == (
        0, "No changes. The actual state matches the desired state."), out


def test_an_enapter_location_name_deleted_from_the_spec_is_reported(
        make_cli: CliFactory) -> None:
    run, docs = applied(make_cli)
    edited = copy.deepcopy(docs)
    del site_spec(edited, "h2-lab")["location"]["name"]
    # A Site in no Enapter site: its location is nothing remote.
    del site_spec(edited, "townhouse-malmo")["location"]["name"]
    run.rewrite(edited)
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out
    assert ("! unmanaged: spec.location.name of Site h2-lab was declared at the last apply "
            "and is removed from the spec; its value on Enapter is left as it is") in out, out
    assert "Site townhouse-malmo" not in out, out
