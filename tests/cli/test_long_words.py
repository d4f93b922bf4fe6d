"""Ids and names a page long in a plan's messages: a 5,000-character `orgId` a Site
declares (said twice in the line of the organisation the token cannot read) and a
5,000-character reference id of a Flatpeak device nobody declares show in the text plan,
its Markdown and the errors as their start and their length, as a long value of a field
change does; the JSON plan, for machines, keeps every message whole. So do the `error:` line
of a refused call whose path holds a long id, and the warning naming a long location id
applied with another Flatpeak account. The CLI runs in this
process against the simulators of the examples (`test_plan_apply.make_cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from cloud_examples import cloud_examples
from simworld import standard_site
from test_plan_apply import CliFactory

from reconciler.sim.fleet import SimFleet

make_cli = test_plan_apply.make_cli  # the fixture, shared

LONG = 5_000


def _cut(word: str, opening: str = "", closing: str = "") -> str:
    return f"{opening}{word[:200]}…{closing} ({len(word):,} characters)"


def _without_access(sims: SimFleet) -> None:
    """The token's identity may not read the organisation of the long id (a 403)."""
    for orgs in sims.novacore.members.values():
        for org in [org for org in orgs if len(org) == LONG]:
            del orgs[org]


def test_a_long_org_id_is_cut_short_in_text_markdown_and_errors_not_in_json(
        make_cli: CliFactory) -> None:
    org = "org-" + "x" * (LONG - 4)
    docs = standard_site(1)
    docs[0]["spec"]["novacore"]["orgId"] = org
    run = make_cli(docs)
    run.sims.call(_without_access, run.sims.sims)
    code, out, err = run("plan", run.path, "--no-color")
    assert code == 1, out + err
    assert org not in out and org not in err, "cut, in the plan and in the errors"
    [line] = [line for line in err.splitlines() if line.startswith("error: site/s1[novacore]")]
    assert line.startswith(f"error: site/s1[novacore]: Novacore organisation {_cut(org)} "
                           "cannot be read with this token"), line[:500]
    assert line.endswith(f"give the token's identity a role in {_cut(org)}"), line[-500:]
    assert len(line) < 1_500, line[:500]  # the org's id thrice: Novacore's answer names it
    lines = out.splitlines()
    message = lines[lines.index("  ? site/s1[novacore] will be verified  [BLOCKED]") + 1]
    assert message == "      " + line.removeprefix("error: site/s1[novacore]: ")

    code, out, _ = run("plan", run.path, "-o", "markdown")
    assert org not in out and _cut(org) in out
    code, out, _ = run("plan", run.path, "-o", "json")
    [change] = [c for c in json.loads(out)["changes"] if c["address"] == "site/s1[novacore]"]
    assert change["message"].count(org) == 2 and change["after"]["org_id"] == org


def test_a_long_name_of_an_undeclared_flatpeak_device_is_cut_short(
        make_cli: CliFactory) -> None:
    run = make_cli(cloud_examples())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    reference = "F" * LONG

    def add_device(sims: SimFleet) -> None:
        flatpeak = sims.flatpeak
        [location] = [loc["id"] for loc in flatpeak.locations.values()
                      if loc["reference_id"] == "townhouse-malmo"]
        device: dict[str, Any] = {
            "id": "dev_other", "object": "device", "live_mode": False,
            "reference_id": reference, "type": "OTHER", "locations": [location],
            "manufacturer": None, "model_code": None, "model_name": None, "properties": {},
            "time_created": "2024-01-01T00:00:00Z", "account_id": sims.flatpeak_account,
            "last_seen": None}
        flatpeak.devices["dev_other"] = device

    run.sims.call(add_device, run.sims.sims)
    code, out, err = run("plan", run.path, "--no-color")
    assert code == 0, out + err
    assert reference not in out
    quoted = _cut(reference, "('", "')")
    assert (f"  ! unmanaged: Flatpeak device dev_other {quoted} on the "
            "location of site townhouse-malmo is not declared") in out.splitlines(), out[:3_000]
    code, out, _ = run("plan", run.path, "-o", "markdown")
    assert reference not in out and quoted in out
    code, out, _ = run("plan", run.path, "-o", "json")
    [item] = [u for u in json.loads(out)["unmanaged"] if u["id"] == "dev_other"]
    assert reference in item["description"]


def test_a_long_hardware_id_is_cut_short_in_apply_progress_and_summary_not_in_json(
        make_cli: CliFactory) -> None:
    """A 5,000-character hardwareId the Zap reads otherwise fails its change: the progress
    line and the summary line of the failure show it cut, as the plan shows ids; the JSON
    report keeps the message whole."""
    hardware_id = "SN" + "7" * (LONG - 2)
    docs = standard_site(1)
    [inverter] = [d for d in docs
                  if d["kind"] == "Device" and d["spec"]["deviceType"] == "inverter"]
    inverter["spec"]["hardwareId"] = hardware_id
    run = make_cli(docs)
    code, out, err = run("apply", run.path, "--auto-approve", "--no-color")
    assert code == 1, out + err
    assert hardware_id not in out and hardware_id not in err
    cut = _cut(hardware_id, "'", "';")
    lines = out.splitlines()
    [progress] = [line for line in lines if "✗ device/s1-inv[zap] create failed: " in line]
    assert progress.endswith(f"not hardwareId {cut} removed it again"), progress[-500:]
    [summary] = [line for line in lines if line.startswith("failed: device/s1-inv[zap]: ")]
    assert summary.endswith(f"not hardwareId {cut} removed it again"), summary[-500:]

    code, out, err = run("apply", run.path, "--auto-approve", "-o", "json")
    assert code == 1, out + err
    [failed] = [o for o in json.loads(out)["outcomes"] if o["status"] == "failed"]
    assert failed["message"].endswith(f"not hardwareId {hardware_id!r}; removed it again")


def test_a_long_id_in_a_refused_call_is_cut_short_in_the_error_line(
        make_cli: CliFactory) -> None:
    """A call refused (a token expired) names its path: a 5,000-character Novacore site id
    a Site adopts shows in the `error:` line of `plan` and `apply` as its start and length."""
    site_id = "sit-" + "x" * (LONG - 4)

    def refuse(sims: SimFleet) -> None:
        @web.middleware
        async def expired(request: web.Request, handler: Any) -> web.StreamResponse:
            if site_id in request.path:
                return web.json_response(
                    {"error": "unauthorized", "message": "Token expired"}, status=401)
            return await handler(request)

        sims.novacore.app.middlewares.append(expired)

    docs = standard_site(1)
    docs[0]["spec"]["novacore"]["siteId"] = site_id
    run = make_cli(docs, before_start=refuse)
    for command in (["plan", run.path], ["apply", run.path, "--auto-approve"]):
        code, out, err = run(*command)
        assert code == 1, out + err
        assert site_id not in err, "cut"
        [line] = [line for line in err.splitlines() if line.startswith("error: ")]
        path = f"/sites/{site_id}/devices"
        assert line == (f"error: novacore.list_site_devices {_cut(path, closing=':')} HTTP "
                        "401: unauthorized: Token expired"), line[:500]


def test_a_long_location_id_is_cut_short_in_the_warning_of_another_flatpeak_account(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The warning of `plan` and `apply` naming the locations applied with another Flatpeak
    account shows a 5,000-character location id as its start and length."""
    run = make_cli(cloud_examples())
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    location = "loc_" + "y" * (LONG - 4)
    inventory_file = run.state_dir / "inventory.json"
    inventory = json.loads(inventory_file.read_text(encoding="utf-8"))
    [(_, applied)] = inventory["flatpeak_locations"].items()
    inventory["flatpeak_locations"] = {location: applied}
    inventory_file.write_text(json.dumps(inventory), encoding="utf-8")
    run.sims.call(run.sims.sims.flatpeak.add_account, "acc_other", "key-other")
    monkeypatch.setenv("RECONCILER_FLATPEAK_ACCOUNT_ID", "acc_other")
    monkeypatch.setenv("RECONCILER_FLATPEAK_API_KEY", "key-other")
    for command in (["plan", run.path], ["apply", run.path, "--auto-approve"]):
        code, out, err = run(*command)
        assert code == 0, out + err
        assert location not in err, "cut"
        [line] = [line for line in err.splitlines() if line.startswith("warning: ")]
        assert f"names now: {_cut(location)} (Site townhouse-malmo); it is not" in line, \
            line[:1_000]
