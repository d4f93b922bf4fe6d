"""An Enapter Site removed from the desired state, end to end through `reconciler plan` and
`apply` against the simulators of the examples: its Enapter site, gateway and devices stay
in Enapter Cloud, `--prune` or not (sites are never deleted), and every plan reports the
site, as the state directory remembers it, until it is deleted there or declared again;
it is then forgotten, or managed again."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from cloud_examples import cloud_examples
from test_plan_apply import Cli, CliFactory

from reconciler.sim.enapter import EnapterSimulator

make_cli = test_plan_apply.make_cli  # the fixture, shared

NO_CHANGES = "No changes. The actual state matches the desired state."


def without_h2_lab(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The examples less the Enapter Site h2-lab, its Gateway and its Devices."""
    kept_gateways = {d["metadata"]["name"] for d in docs
                     if d["kind"] == "Gateway" and d["spec"]["siteRef"] != "h2-lab"}
    return [d for d in docs
            if not (d["kind"] == "Site" and d["metadata"]["name"] == "h2-lab")
            and not (d["kind"] == "Gateway" and d["spec"]["siteRef"] == "h2-lab")
            and not (d["kind"] == "Device" and d["spec"].get("siteRef") == "h2-lab")
            and not (d["kind"] == "Device" and "gatewayRef" in d["spec"]
                     and d["spec"]["gatewayRef"] not in kept_gateways)]


def enapter(run: Cli) -> EnapterSimulator:
    return run.sims.sims.enapter


def remembered(run: Cli) -> dict[str, Any]:
    inventory = json.loads((run.state_dir / "inventory.json").read_text(encoding="utf-8"))
    return inventory["enapter_sites"]  # type: ignore[no-any-return]


def test_an_enapter_site_whose_site_is_removed_is_reported_until_deleted_there(
        make_cli: CliFactory) -> None:
    docs = cloud_examples()
    run = make_cli(docs)
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    [site] = run.sims.call(lambda: list(enapter(run).sites.values()))
    assert remembered(run) == {site.id: {"site": "h2-lab"}}
    devices = run.sims.call(lambda: len(enapter(run).devices))
    config_files = list(run.state_dir.rglob("h2-lab-ucm.json"))
    assert len(config_files) == 1

    run.rewrite(without_h2_lab(docs))
    report = (f"! unmanaged: Enapter site {site.id} ('H2 Lab, Pisa') was applied for Site "
              "h2-lab, and no declared Site is it any more")
    for command in (["plan", run.path, "--detailed-exitcode"],
                    ["apply", run.path, "--auto-approve", "--prune"],
                    ["plan", run.path, "--prune", "--detailed-exitcode"]):
        before = run.sims.call(enapter(run).writes)
        code, out, _ = run(*command)
        assert code == 0, out
        assert report in out, out
        assert "(apply --prune leaves it, as it says)" in out or "apply" in command, out
        assert run.sims.call(enapter(run).writes) == before, "nothing is deleted"
    assert run.sims.call(lambda: len(enapter(run).devices)) == devices
    assert config_files[0].exists()
    code, out, _ = run("plan", run.path, "-o", "json")
    [entry] = [u for u in json.loads(out)["unmanaged"] if u["platform"] == "enapter"]
    assert (entry["id"], entry["prunable"]) == (site.id, False)

    # Deleted in Enapter Cloud: no more report, and the next apply forgets it.
    def delete_site() -> None:
        sim = enapter(run)
        for device_id in [d.id for d in sim.devices.values() if d.site_id == site.id]:
            del sim.devices[device_id]
        del sim.sites[site.id]

    run.sims.call(delete_site)
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0 and "Enapter site" not in out, out
    assert remembered(run) == {}


def test_an_enapter_site_declared_again_is_managed_again_not_reported(
        make_cli: CliFactory) -> None:
    docs = cloud_examples()
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(without_h2_lab(docs))
    assert "Enapter site" in run("apply", run.path, "--auto-approve")[1]
    run.rewrite(docs)
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert (code, out.splitlines()[0]) == (0, NO_CHANGES), out
