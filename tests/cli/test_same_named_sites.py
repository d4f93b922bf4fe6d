"""Two Novacore sites of one organisation with the name a Site is found by (no `siteId`),
through the CLI against the simulators, the second made through the Novacore API as a
second state directory's apply or a person would: the plan keeps using the first and
reports the other as unmanaged, naming the Site, both ids and what to do, in text and
JSON; a site an earlier apply put the Site in is said to be such a duplicate, not a site
the Site moved away from; devices Novacore bound into the other site plan as moving back,
not as created."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import ORG_A, site, standard_site
from test_plan_apply import CliFactory, delete_novacore_site, make_cli

__all__ = ["make_cli"]


def novacore(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A call to the Novacore simulator's API with the token the CLI uses."""
    headers = {"Authorization": f"Bearer {os.environ['RECONCILER_NOVACORE_TOKEN']}"}
    answer = httpx.request(method, f"{os.environ['RECONCILER_NOVACORE_URL']}{path}",
                           json=body, headers=headers)
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result


def duplicate(other: str, used: str, note: str = "") -> str:
    return (f"site {other} ('Site s1' in {ORG_A}) has the same name as site {used}, which "
            "Site s1 uses (a Site without `siteId` is found by name, and the first site of "
            f"the name is used){note}; set `spec.novacore.siteId` of Site s1 to the site to "
            "use, and delete the other in Novacore (or move its devices to the one used)")


def test_a_second_site_of_a_sites_name_is_reported_and_the_first_kept(
        make_cli: CliFactory) -> None:
    run = make_cli(standard_site(1))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    sites = run.sims.sims.novacore.sites
    (used,) = [s.id for s in sites.values() if s.name == "Site s1"]
    other = novacore("POST", "/sites", {"org_id": ORG_A, "name": "Site s1"})["id"]

    reported = duplicate(other, used)
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out  # nothing to apply: the Site keeps its site
    assert f"  ! unmanaged: {reported}\n" in out, out
    assert "1 object found that nothing declares (apply --prune leaves it" in out, out
    document = json.loads(run("plan", run.path, "-o", "json")[1])
    assert document["unmanaged"] == [{"platform": "novacore", "site": "s1", "id": other,
                                      "description": reported, "prunable": False}]
    assert other in run("plan", run.path, "-o", "markdown")[1]
    # The Site's selection owns it; another's does not.
    assert reported in run("plan", run.path, "--target", "site/s1")[1]

    # Applied (--prune too) and applied again: nothing written to either site.
    run.sims.call(run.sims.sims.reset_counts)
    code, out, _ = run("apply", run.path, "--auto-approve", "--prune")
    assert code == 0 and other in sites and used in sites, out
    assert run.sims.call(run.sims.sims.writes) == 0
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0
    inventory = json.loads((run.state_dir / "inventory.json").read_text())
    assert inventory["sites"]["s1"] == {"org": ORG_A, "id": used}

    # A Site that names the other by `siteId` makes it its own (and renames it), not a
    # duplicate.
    run.rewrite([*standard_site(1), *pinned([site("copy", display="Copy")], other)])
    code, out, _ = run("plan", run.path)
    assert code == 0 and "~ site/copy[novacore] will be updated in place" in out, out
    assert "unmanaged" not in out, out

    # `siteId` says which: nothing is ambiguous any more.
    run.rewrite(pinned(standard_site(1), used))
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0 and "unmanaged" not in out, out


def pinned(docs: list[dict[str, Any]], site_id: str) -> list[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] == "Site":
            doc["spec"]["novacore"]["siteId"] = site_id
    return docs


def test_the_site_an_earlier_apply_used_is_reported_as_a_same_named_one_not_as_left(
        make_cli: CliFactory) -> None:
    """Another site of the name comes first in the listing (here renamed to it; two applies
    with different state directories make one each): the next apply uses it, and the one
    the state directory remembers is reported as the duplicate it is."""
    run = make_cli(standard_site(1))
    first = novacore("POST", "/sites", {"org_id": ORG_A, "name": "Site s1 draft"})["id"]
    assert run("apply", run.path, "--auto-approve")[0] == 0
    (applied,) = [s.id for s in run.sims.sims.novacore.sites.values() if s.name == "Site s1"]
    novacore("PUT", f"/sites/{first}", {"name": "Site s1"})

    note = (f"; an earlier apply with this state directory put Site s1 in {applied} (another "
            f"state directory's apply may have made site {first} at the same time)")
    reported = duplicate(applied, first, note)
    code, out, _ = run("plan", run.path)
    assert code == 0 and f"  ! unmanaged: {reported}\n" in out, out
    assert run("apply", run.path, "--auto-approve")[0] == 0
    inventory = json.loads((run.state_dir / "inventory.json").read_text())
    assert inventory["sites"]["s1"] == {"org": ORG_A, "id": first}
    assert [left["id"] for left in inventory["left_sites"].values()] == [applied]

    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out
    assert "moved to another site" not in out, out
    document = json.loads(run("plan", run.path, "-o", "json")[1])
    assert [u["description"] for u in document["unmanaged"]] == [reported]

    # Deleted in Novacore: nothing to report, and the inventory forgets it.
    delete_novacore_site(applied)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    inventory = json.loads((run.state_dir / "inventory.json").read_text())
    assert inventory["left_sites"] == {}
    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 0 and "unmanaged" not in out, out


def test_a_same_named_site_another_site_is_renamed_into_is_not_reported(
        make_cli: CliFactory) -> None:
    """Site r, renamed in git, keeps the site the last apply put it in (the inventory
    remembers it), which someone has since given the name of Site s1: the plan renames it
    for r, so it is no duplicate of s1's."""
    run = make_cli([*standard_site(1), site("r", display="Spare")])
    assert run("apply", run.path, "--auto-approve")[0] == 0
    (spare,) = [s.id for s in run.sims.sims.novacore.sites.values() if s.name == "Spare"]
    novacore("PUT", f"/sites/{spare}", {"name": "Site s1"})
    run.rewrite([*standard_site(1), site("r", display="Spare room")])

    code, out, _ = run("plan", run.path)
    assert code == 0 and "~ site/r[novacore] will be updated in place" in out, out
    assert f"renamed: an earlier apply put this Site in site {spare}" in out, out
    assert "unmanaged" not in out, out


def test_devices_bound_into_a_same_named_site_plan_as_moving_back_not_as_created(
        make_cli: CliFactory) -> None:
    """The Site's devices are in the other site of its name (an apply from another state
    directory provisioned them there, and Novacore rebound them): the plan says they move
    back into the site the Site uses, naming both and keeping each device's id, as the
    apply then does; it does not say they will be created. The other site's devices are
    read only then: with them where they belong, the plan reads no more than before."""
    run = make_cli(standard_site(1))
    first = novacore("POST", "/sites", {"org_id": ORG_A, "name": "Site s1 draft"})["id"]
    assert run("apply", run.path, "--auto-approve")[0] == 0
    simulated = run.sims.sims.novacore
    (applied,) = [s.id for s in simulated.sites.values() if s.name == "Site s1"]
    devices = {d.id: d.hardware_id for d in simulated.devices.values()}
    novacore("PUT", f"/sites/{first}", {"name": "Site s1"})

    code, out, _ = run("plan", run.path, "--detailed-exitcode")
    assert code == 2 and "will be created" not in out, out
    for name in ("s1-inv", "s1-p1"):
        (device_id,) = [d.id for d in simulated.devices.values() if d.name == name]
        assert (f"  ~ device/{name}[novacore] will be updated in place\n"
                f"      moves from site 'Site s1' ({applied}) (gateway s1-zap), which has the "
                f"name of Site s1 too, to site s1 ({first}, the one it uses; gateway s1-zap): "
                f"provisioned there, Novacore rebinds device {device_id} (same id)\n") in out, out
    assert "Plan: 2 to update." in out, out
    document = json.loads(run("plan", run.path, "-o", "json")[1])
    moved = [c for c in document["changes"] if c["reason"] == "moved"]
    assert {c["external_id"] for c in moved} == set(devices), moved
    assert {c["before"]["site"] for c in moved} == {f"'Site s1' ({applied})"}, moved

    # Applied: the same devices, now in the site used; nothing left to do.
    assert run("apply", run.path, "--auto-approve")[0] == 0
    assert {d.id: d.hardware_id for d in simulated.devices.values()} == devices
    assert {d.site_id for d in simulated.devices.values()} == {first}
    run.sims.call(run.sims.sims.reset_counts)
    assert run("plan", run.path, "--detailed-exitcode")[0] == 0
    # The other site's devices are not read once the Site's own site has them all.
    assert simulated.count("GET") == 3, simulated.requests  # sites, gateways, its devices
