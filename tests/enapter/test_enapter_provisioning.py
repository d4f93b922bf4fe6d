"""Enapter Cloud end to end against the simulator on loopback: every provisioning kind in
dependency order, convergence with zero writes, PATCH and assign_blueprint for changes,
downstream-first removal with --prune (and Enapter's own error when the order is broken),
config files (mode 0600, written again when missing) and credentials that never reach any
output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from enapter_world import (
    EL,
    GW,
    MASTER,
    SLAVE,
    UCM,
    UCM_MQTT,
    VUCM,
    MakeWorld,
    World,
    device,
    every_kind,
    failures,
    fleet_of,
    lua,
    pending,
    renderings,
    site_and_gateway,
    ucm,
)

from reconciler.engine.apply import ApplyReport
from reconciler.engine.config import SecretResolver
from reconciler.engine.enapter import SECRET_STORE_KEY, StoredSecret
from reconciler.engine.execute import Executors
from reconciler.engine.reconcile import Reconciler
from reconciler.engine.session import Session
from reconciler.errors import ProviderRejected
from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.providers.enapter.client import error_code

# The options of a plan for the CLI's user (its advice names the CLI's flags).
CLI = PlanOptions(audience=Audience.CLI)


def remote(world: World, hardware_id: str) -> Any:
    found = world.sims.enapter.by_hardware_id(hardware_id)
    assert found is not None, hardware_id
    return found


def remote_by_slug(world: World, slug: str) -> Any:
    return next(d for d in world.sims.enapter.devices.values() if d.slug == slug)


def enapter_calls(world: World, endpoint: str) -> int:
    return world.sims.enapter.requests[endpoint]


async def test_every_provisioning_kind_is_created_in_dependency_order(
        make_world: MakeWorld) -> None:
    world = await make_world(every_kind())
    result = await world.plan()
    changes = pending(result)
    order = list(changes)
    assert all(c.action is Action.CREATE and not c.blocked for c in changes.values()), order

    def at(name: str, kind: str = "device") -> int:
        return order.index(f"{kind}/{name}[enapter]")

    assert at("lab", "site") < at("lab-gw", "gateway") < at("lab-vucm")
    assert at("lab-ucm") < at("lab-lua") and at("lab-link") < at("lab-slave")
    assert "device/lab-ucm[enapter]" in changes["device/lab-lua[enapter]"].depends_on
    assert "device/lab-link[enapter]" in changes["device/lab-slave[enapter]"].depends_on
    assert "gateway/lab-gw[enapter]" in changes["device/lab-vucm[enapter]"].depends_on

    await world.converge()
    sim = world.sims.enapter
    gateway = remote(world, GW)
    expected = {UCM: "HARDWARE_UCM", UCM_MQTT: "HARDWARE_UCM", VUCM: "VIRTUAL_UCM",
                EL: "EMBEDDED_UCM", MASTER: "LINK_MASTER_UCM", SLAVE: "LINK_SLAVE_UCM"}
    for hardware_id, device_type in expected.items():
        device = remote(world, hardware_id)
        assert device.type == device_type, hardware_id
        if device_type != "LINK_SLAVE_UCM":
            assert sim.upstream_id(device) == gateway.id, hardware_id
    assert sim.upstream_id(remote(world, SLAVE)) == remote(world, MASTER).id
    assert gateway.properties["gateway_version"] == "3.1.0"
    lua_device = remote_by_slug(world, "gas-1")
    assert (lua_device.type, lua_device.parent_id, lua_device.blueprint_id) == (
        "LUA", remote(world, UCM).id, "bp-gas-1")
    assert remote_by_slug(world, "lab-standalone").type == "STANDALONE"
    # The embedded UCM got its declared slug, and the electrolyser behind it exists.
    assert remote(world, EL).slug == "electrolyser-1"
    assert any(d.type == "NATIVE" and d.parent_id == remote(world, EL).id
               for d in sim.devices.values())
    assert remote(world, UCM).slug == "gas-ucm"
    site = sim.sites[gateway.site_id]
    assert (site.name, site.location) == ("H2 Lab", {"name": "Crespina", "latitude": 43.57,
                                                     "longitude": 10.56})


async def test_converged_fleet_plans_nothing_and_applies_without_writes(
        make_world: MakeWorld) -> None:
    world = await make_world(every_kind())
    await world.converge()
    world.sims.reset_counts()
    result = await world.plan()
    assert not result.plan.has_changes, [c.address for c in result.plan.pending]
    assert result.plan.unmanaged == []
    assert world.sims.writes() == 0
    # Batched observation: one list of sites and one list of the site's devices.
    assert world.sims.enapter.count() == 2, dict(world.sims.enapter.requests)
    _, report = await world.apply()
    assert report.outcomes == [] and world.sims.writes() == 0


async def test_blueprint_change_is_assign_blueprint(make_world: MakeWorld) -> None:
    world = await make_world(every_kind())
    await world.converge()
    changed = fleet_of(every_kind(lua={"blueprint": "bp-gas-2"}))
    result = await world.plan(changed)
    change = pending(result)["device/lab-lua[enapter]"]
    assert (change.action, [d.path for d in change.diff]) == (Action.UPDATE, ["blueprint_id"])
    world.sims.reset_counts()
    await world.converge(changed)
    assert enapter_calls(world, "POST /v3/devices/{device_id}/assign_blueprint") == 1
    assert world.sims.enapter.writes() == 1
    assert remote_by_slug(world, "gas-1").blueprint_id == "bp-gas-2"
    assert not (await world.plan(changed)).plan.has_changes


async def test_name_and_slug_changes_are_a_patch(make_world: MakeWorld) -> None:
    world = await make_world(every_kind())
    await world.converge()
    changed = fleet_of(every_kind(ucm={"display": "Renamed UCM", "slug": "renamed-ucm"}))
    change = pending(await world.plan(changed))["device/lab-ucm[enapter]"]
    assert change.action is Action.UPDATE
    assert {d.path: d.new for d in change.diff} == {"name": "Renamed UCM", "slug": "renamed-ucm"}
    world.sims.reset_counts()
    await world.converge(changed)
    assert enapter_calls(world, "PATCH /v3/devices/{device_id}") == 1
    assert world.sims.enapter.writes() == 1  # no reprovisioning, no new config
    device = remote(world, UCM)
    assert (device.name, device.slug) == ("Renamed UCM", "renamed-ucm")
    assert not (await world.plan(changed)).plan.has_changes


async def test_a_site_renamed_in_git_is_renamed_with_every_kind_of_device_in_it(
        make_world: MakeWorld) -> None:
    """Without `siteId` the site is found by name; the one holding this Site's gateway and
    devices (each kind, and the NATIVE half Enapter makes for the embedded UCM) and nothing
    else is the same site: renamed in place, never created again with its devices moved."""
    world = await make_world(every_kind())
    await world.converge()
    [site_id] = world.sims.enapter.sites
    renamed = fleet_of(every_kind().replace("displayName: H2 Lab\n", "displayName: H2 Lab North\n"))

    result = await world.plan(renamed)
    [change] = result.plan.pending
    assert (change.address, change.action, change.external_id) == (
        "site/lab[enapter]", Action.UPDATE, site_id)
    assert [(d.path, d.old, d.new) for d in change.diff] == [("name", "H2 Lab", "H2 Lab North")]
    assert change.message.startswith(f"renamed: site {site_id} holds this Site's devices")

    world.sims.reset_counts()
    await world.converge(renamed)
    assert enapter_calls(world, "PATCH /v3/sites/{site_id}") == 1
    assert world.sims.enapter.writes() == 1
    assert [(s.id, s.name) for s in world.sims.enapter.sites.values()] == [
        (site_id, "H2 Lab North")]
    assert not (await world.plan(renamed)).plan.has_changes


def slug_changed_then_renamed(slug: str = "gas-2", display: str = "H2 Lab, Crespina") -> str:
    """The tester's fleet: the Lua device's slug changed (its old device stays, undeclared),
    then the Site's display name."""
    return every_kind().replace("slug: gas-1}", f"slug: {slug}}}").replace(
        "displayName: H2 Lab\n", f"displayName: {display}\n")


async def test_a_renamed_site_holding_an_undeclared_device_blocks_rather_than_duplicates(
        make_world: MakeWorld) -> None:
    """The old site is not taken over (it holds a device the Site does not declare), and a
    new site cannot be filled: Enapter keeps each hardware id in one site. The plan blocks,
    saying where the devices are, what is in the way and what to do; nothing is created."""
    world = await make_world(every_kind())
    await world.converge()
    await world.converge(fleet_of(slug_changed_then_renamed(display="H2 Lab")))
    [site_id] = world.sims.enapter.sites
    old_lua = remote_by_slug(world, "gas-1")

    result = await world.plan(fleet_of(slug_changed_then_renamed()))
    changes = pending(result)
    site = changes["site/lab[enapter]"]
    assert (site.action, site.blocked, site.diff) == (Action.CREATE, True, [])
    assert site.message.startswith(
        "no Enapter site named 'H2 Lab, Crespina', and creating it would leave it empty")
    for needed in (f"Enapter site {site_id} ('H2 Lab') holds hardware ids {EL}, {GW}",
                   f"LUA device {old_lua.id} ('Gas sensor', slug gas-1)",
                   f"set `siteId: {site_id}` on this Site", "or delete or declare that device"):
        assert needed in site.message
    assert all(c.blocked for c in changes.values()), "the gateway and devices wait for the site"

    world.sims.reset_counts()
    _, report = await world.apply(fleet_of(slug_changed_then_renamed()))
    assert not report.ok
    assert world.sims.enapter.writes() == 0
    assert list(world.sims.enapter.sites) == [site_id]


async def test_a_gateway_in_another_site_blocks_its_create_in_the_site_found_by_name(
        make_world: MakeWorld) -> None:
    """Where an earlier run did create the new site (empty), the plan finds it by name and
    would provision the gateway in it again on every run: it blocks instead, naming the
    site that holds the gateway."""
    world = await make_world(every_kind())
    await world.converge()
    await world.converge(fleet_of(slug_changed_then_renamed(display="H2 Lab")))
    [site_id] = world.sims.enapter.sites
    empty = world.sims.enapter.add_site("H2 Lab, Crespina", "Europe/Rome")

    result = await world.plan(fleet_of(slug_changed_then_renamed()))
    changes = pending(result)
    assert changes["site/lab[enapter]"].external_id == empty.id
    gateway = changes["gateway/lab-gw[enapter]"]
    assert (gateway.action, gateway.blocked) == (Action.CREATE, True)
    assert gateway.message.startswith(
        f"hardware id {GW} is in another Enapter site, and Enapter keeps a hardware id in one "
        f"site, so provisioning it here would fail: Enapter site {site_id} ('H2 Lab') holds ")
    assert f"set `siteId: {site_id}`" in gateway.message
    ucm_change = changes["device/lab-ucm[enapter]"]
    assert ucm_change.blocked and ucm_change.message.startswith(f"hardware id {UCM} is in another")
    assert changes["device/lab-lua[enapter]"].message.startswith("blocked by ")

    world.sims.reset_counts()
    _, report = await world.apply(fleet_of(slug_changed_then_renamed()))
    assert enapter_calls(world, "POST /v3/provisioning/{kind}") == 0
    assert not report.ok


async def test_site_id_takes_over_the_site_the_plan_pointed_to(make_world: MakeWorld) -> None:
    """Following the blocked plan's advice converges: the old site is renamed, and the
    device the Site does not declare is listed as unmanaged."""
    world = await make_world(every_kind())
    await world.converge()
    await world.converge(fleet_of(slug_changed_then_renamed(display="H2 Lab")))
    [site_id] = world.sims.enapter.sites
    pinned = fleet_of(slug_changed_then_renamed().replace(
        "enapter: {}", f"enapter: {{siteId: {site_id}}}"))

    result = await world.plan(pinned)
    assert [(c.address, c.action) for c in result.plan.pending] == [
        ("site/lab[enapter]", Action.UPDATE)]
    assert any("slug gas-1" in u["description"] for u in result.plan.unmanaged)
    await world.converge(pinned)
    assert [s.name for s in world.sims.enapter.sites.values()] == ["H2 Lab, Crespina"]


@pytest.mark.parametrize(("prune", "said"), [
    (False, "(unmanaged, below) runs the same blueprint on this runtime: if this is a slug "
            "change, both will run it until the old one is deleted: apply --prune deletes it "
            "(with every unmanaged object the plan lists), or delete it in Enapter Cloud"),
    (True, "(deleted below, --prune) runs the same blueprint on this runtime: if this is a "
           "slug change, this apply deletes the old one"),
])
async def test_a_lua_slug_change_says_the_old_device_runs_the_same_blueprint(
        make_world: MakeWorld, prune: bool, said: str) -> None:
    world = await make_world(every_kind())
    await world.converge()
    changed = fleet_of(every_kind().replace("slug: gas-1}", "slug: gas-2}"))

    result = await world.plan(changed, prune=prune)
    create = pending(result)["device/lab-lua[enapter]"]
    assert create.action is Action.CREATE
    assert create.message.endswith(f"; the device with slug gas-1 {said}")
    other = fleet_of(every_kind(lua={"blueprint": "bp-other"}).replace(
        "slug: gas-1}", "slug: gas-2}"))
    unrelated = pending(await world.plan(other, prune=prune))["device/lab-lua[enapter]"]
    assert "runs the same blueprint" not in unrelated.message

    # What the README says to do instead, to rename it: a display name changed is an update.
    renamed = fleet_of(
        every_kind().replace("displayName: Gas sensor\n", "displayName: Hydrogen sensor\n"))
    rename = pending(await world.plan(renamed, prune=prune))
    assert [(a, c.action) for a, c in rename.items()] == [
        ("device/lab-lua[enapter]", Action.UPDATE)], rename


async def test_prune_removes_undeclared_devices_downstream_first(make_world: MakeWorld) -> None:
    world = await make_world(every_kind())
    await world.converge()
    upstreams = "".join(part for part in [site_and_gateway(), device(
        "lab-vucm", "{kind: vucm}", hardware=VUCM, gateway=True)])
    smaller = fleet_of(upstreams)

    report_only = await world.plan(smaller)
    assert not report_only.plan.has_changes
    assert len(report_only.plan.unmanaged) == 7  # ucm x2, lua, embedded, master, slave, standalone

    result = await world.plan(smaller, prune=True)
    deletes = [c for c in result.plan.pending if c.action is Action.DELETE]
    assert len(deletes) == 7 and not any(c.blocked for c in deletes)
    by_id = {c.external_id: c for c in deletes}
    order = [c.external_id for c in result.plan.changes]
    lua_id, ucm_id = remote_by_slug(world, "gas-1").id, remote(world, UCM).id
    slave_id, master_id = remote(world, SLAVE).id, remote(world, MASTER).id
    assert order.index(lua_id) < order.index(ucm_id)
    assert order.index(slave_id) < order.index(master_id)
    assert by_id[lua_id].address in by_id[ucm_id].depends_on
    assert by_id[slave_id].address in by_id[master_id].depends_on

    _, report = await world.apply(smaller, prune=True)
    assert report.ok, report.as_dict()
    left = sorted(d.type for d in world.sims.enapter.devices.values())
    assert left == ["GATEWAY", "VIRTUAL_UCM"]
    assert not (await world.plan(smaller, prune=True)).plan.has_changes


async def test_deleting_an_upstream_first_surfaces_enapters_error(make_world: MakeWorld) -> None:
    world = await make_world(every_kind())
    await world.converge()
    smaller = fleet_of(site_and_gateway())
    result = await world.plan(smaller, prune=True)
    ucm_delete = next(c for c in result.plan.pending if c.external_id == remote(world, UCM).id)
    assert ucm_delete.depends_on  # the Lua device running on it goes first
    async with _executors(world, smaller) as executors:
        with pytest.raises(ProviderRejected) as caught:
            await executors.run(ucm_delete)  # out of order, on purpose
    assert error_code(caught.value) == "DEVICE_HAS_DOWNSTREAM_DEVICES"
    # Enapter's error envelope said as its code and message, not as the JSON it came in.
    assert str(caught.value).endswith(
        ": HTTP 422: DEVICE_HAS_DOWNSTREAM_DEVICES: Devices still run on this device; delete "
        "them first."), str(caught.value)
    assert caught.value.status == 422
    assert remote(world, UCM) is not None  # nothing was deleted


@contextlib.asynccontextmanager
async def _executors(world: World, fleet: Fleet) -> AsyncIterator[Executors]:
    """Executors over a fresh session, to run one change by hand."""
    session = Session(world.settings())
    try:
        yield Executors(fleet, session, SecretResolver(str(world.tmp)), None, {},
                        audience=Audience.CLI)
    finally:
        await session.aclose()


# -- communication configs -------------------------------------------------------------------------


def _secrets_in(config_file: Path) -> list[str]:
    """The credential values of a written config: private key lines, password."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    credentials = config["mqtt_credentials"]
    values = [credentials[k] for k in ("password",) if k in credentials]
    if "private_key" in credentials:
        # Every base64 line of the key: none of them may appear anywhere.
        values += [line for line in credentials["private_key"].splitlines()
                   if line and not line.startswith("-----")]
    assert values, config_file
    return values


async def _cli(world: World, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", *args, "--no-color",
        env={**os.environ, **world.env()}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return stdout.decode() + stderr.decode()


@pytest.mark.slow
async def test_configs_go_to_0600_files_and_credentials_never_to_any_output(
        make_world: MakeWorld, tmp_path: Path) -> None:
    text = every_kind()
    world = await make_world(text)
    fleet_dir = tmp_path / "fleet"
    fleet_dir.mkdir()
    (fleet_dir / "lab.yaml").write_text(text, encoding="utf-8")

    outputs = [await _cli(world, "apply", str(fleet_dir), "--auto-approve")]
    assert "Apply complete" in outputs[0], outputs[0]
    ucm_file = world.state_dir / "cfg" / "ucm.json"
    mqtt_file = world.state_dir / "cfg" / "mqtt.json"
    # Provisioning answers with a config for a UCM; a standalone device gets one generated.
    standalone_file = world.state_dir / "cfg" / "standalone.json"
    for path in (ucm_file, mqtt_file, standalone_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(mqtt_file.read_text())["mqtt_protocol"] == "MQTT"
    secrets = _secrets_in(ucm_file) + _secrets_in(mqtt_file) + _secrets_in(standalone_file)

    # A deleted config file is planned as a new config (an update), and written again.
    ucm_file.unlink()
    missing = pending(await world.plan())["device/lab-ucm[enapter]"]
    assert missing.action is Action.UPDATE and "missing" in missing.message
    world.sims.reset_counts()
    outputs.append(await _cli(world, "apply", str(fleet_dir), "--auto-approve", "-o", "json"))
    assert enapter_calls(world, "POST /v3/devices/{device_id}/generate_config") == 1
    assert enapter_calls(world, "POST /v3/provisioning/{kind}") == 0
    assert stat.S_IMODE(ucm_file.stat().st_mode) == 0o600
    secrets += _secrets_in(ucm_file)

    # The plan as text (in both applies' output above), JSON and Markdown; the report.
    outputs.append(renderings(await world.plan()))
    _, report = await world.apply()
    outputs.append(json.dumps(report.as_dict()))
    outputs.append((world.state_dir / "journal.jsonl").read_text(encoding="utf-8"))
    assert '"enapter.write_config_file"' in outputs[-1]  # the write is journaled, not its content
    everything = "\n".join(outputs)
    for secret in secrets:
        assert secret not in everything
    assert not [p for p in world.state_dir.rglob("*") if p.is_file()
                and p not in (ucm_file, mqtt_file, standalone_file)
                and any(s in p.read_text() for s in secrets)]


async def test_a_stale_create_adopts_what_an_interrupted_run_provisioned(
        make_world: MakeWorld) -> None:
    world = await make_world(site_and_gateway() + ucm() + lua())
    await world.converge(fleet_of(site_and_gateway()))
    async with Reconciler(world.fleet, world.settings()) as reconciler:
        stale = await reconciler.plan(CLI)  # the UCM and the Lua device do not exist yet
        # An earlier run provisioned both and was killed; someone then renamed the UCM.
        site_id = remote(world, GW).site_id
        async with httpx.AsyncClient(base_url=world.sims.enapter.url, headers={
                "X-Enapter-Auth-Token": world.sims.enapter_token}) as api:
            made = (await api.post("/v3/provisioning/ucm", json={
                "site_id": site_id, "hardware_id": UCM, "name": "Gas sensor UCM",
                "protocol": "MQTTS"})).json()
            await api.post("/v3/provisioning/lua_device", json={
                "runtime_id": made["device_id"], "blueprint_id": "bp-gas-1",
                "name": "Gas sensor", "slug": "gas-1"})
        world.sims.enapter.rename_device(made["device_id"], name="renamed meanwhile")
        world.sims.reset_counts()
        report = await reconciler.apply(stale)
    assert report.ok, report.as_dict()
    # The UCM: provisioning answered 409 (other name), the name was aligned, provisioning
    # again returned the same device and its config. The Lua device was found, not re-made.
    assert enapter_calls(world, "POST /v3/provisioning/{kind}") == 2
    # Not provisioned twice: one UCM, and one Lua device (which reports its runtime's id).
    assert sorted(d.type for d in world.sims.enapter.devices.values()
                  if d.hardware_id == UCM) == ["HARDWARE_UCM", "LUA"]
    assert remote(world, UCM).name == "Gas sensor UCM"
    assert (world.state_dir / "cfg" / "ucm.json").is_file()
    assert not (await world.plan()).plan.has_changes



def _ucm_writing_to(file: str, *, protocol: str = "MQTTS") -> str:
    return site_and_gateway() + device(
        "lab-ucm", f"{{kind: ucm, protocol: {protocol}, configOutput: {{file: '{file}'}}}}",
        hardware=UCM)


def _the_failure(report: ApplyReport) -> str:
    failed = failures(report)
    assert [f["address"] for f in failed] == ["device/lab-ucm[enapter]"], report.as_dict()
    return str(failed[0]["message"])


@pytest.mark.parametrize("name", ["inventory.json", "credentials.key", "journal.jsonl",
                                  "lock", "journal.jsonl.1/ucm.json"])
async def test_a_config_file_into_the_state_dir_is_refused_before_enapter_is_asked(
        make_world: MakeWorld, name: str) -> None:
    world = await make_world(_ucm_writing_to("cfg/ucm.json"))
    await world.converge()
    before = {p: p.read_bytes() for p in world.state_dir.iterdir() if p.is_file()}
    # An absolute path, which validation cannot tell is the state directory's.
    into_state = fleet_of(_ucm_writing_to(str(world.state_dir / name), protocol="MQTT"))
    world.sims.reset_counts()
    _, report = await world.apply(into_state)
    own = name.split("/")[0]
    assert f"the state directory's own {own}" in _the_failure(report)
    assert enapter_calls(world, "POST /v3/devices/{device_id}/generate_config") == 0
    assert not (world.state_dir / own).is_dir()
    for path, content in before.items():
        if path.name != "journal.jsonl" and path.name != "lock":  # appended, rewritten by runs
            assert path.read_bytes() == content, path
        assert "mqtt_credentials" not in path.read_text(encoding="utf-8"), path
    assert not (await world.plan()).plan.has_changes  # the state directory is still readable


async def test_an_unwritable_config_file_fails_before_enapter_is_asked_for_a_config(
        make_world: MakeWorld) -> None:
    world = await make_world(_ucm_writing_to("cfg/ucm.json"))
    world.state_dir.mkdir()
    (world.state_dir / "cfg").write_text("a file where a directory should be")
    # Provisioning answers with a config: nothing is provisioned while it would be lost.
    for _ in range(2):
        _, report = await world.apply()
        message = _the_failure(report)
        assert f"{world.state_dir / 'cfg'} is not a directory" in message
        assert str(world.state_dir / "cfg" / "ucm.json") in message
        assert world.sims.enapter.by_hardware_id(UCM) is None  # the gateway is provisioned
    (world.state_dir / "cfg").unlink()
    await world.converge()
    assert (world.state_dir / "cfg" / "ucm.json").is_file()

    # A missing config is generated again only once it can be written: each failed apply
    # leaves the device's old credentials alone.
    (world.state_dir / "cfg" / "ucm.json").unlink()
    (world.state_dir / "cfg").rmdir()
    (world.state_dir / "cfg").write_text("a file again")
    world.sims.reset_counts()
    for _ in range(2):
        _, report = await world.apply()
        assert "is not a directory" in _the_failure(report)
    assert enapter_calls(world, "POST /v3/devices/{device_id}/generate_config") == 0
    (world.state_dir / "cfg").unlink()
    await world.converge()
    assert enapter_calls(world, "POST /v3/devices/{device_id}/generate_config") == 1
    assert stat.S_IMODE((world.state_dir / "cfg" / "ucm.json").stat().st_mode) == 0o600


class _FakeSecrets:
    """Stands in for the operator's Secret store; `named` is the Secret each device names
    as the operator's cluster has it now (by default, the one its spec says)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}
        self.named: dict[str, str] = {}

    async def find(self, device: Any, name: str) -> StoredSecret:
        return StoredSecret(present=name in self.data)

    def names(self, device: Any, name: str) -> bool:
        return self.named.get(device.name, name) == name

    async def write(self, device: Any, name: str, data: Any, device_id: str) -> bool:
        if not self.names(device, name):
            return False
        self.data[name] = dict(data)
        return True


async def test_secret_name_outputs_use_the_store_the_operator_registers(
        make_world: MakeWorld) -> None:
    text = site_and_gateway() + device(
        "lab-vucm", "{kind: vucm, configOutput: {secretName: vucm-config}}", hardware=VUCM,
        gateway=True)
    world = await make_world(text)
    # Without a store (the CLI): provisioned, no config generated, and the plan says so.
    async with Reconciler(world.fleet, world.settings()) as reconciler:
        result = await reconciler.plan(CLI)
        assert "written only by the operator" in pending(result)["device/lab-vucm[enapter]"].message
        assert (await reconciler.apply(result)).ok
    assert enapter_calls(world, "POST /v3/devices/{device_id}/generate_config") == 0

    store = _FakeSecrets()
    async with Reconciler(world.fleet, world.settings()) as reconciler:
        reconciler.session.extra[SECRET_STORE_KEY] = store
        result = await reconciler.plan(CLI)
        change = pending(result)["device/lab-vucm[enapter]"]
        assert change.action is Action.UPDATE and "Secret vucm-config is missing" in change.message
        assert (await reconciler.apply(result)).ok
        assert json.loads(store.data["vucm-config"]["config.json"])["hardware_id"] == VUCM
        assert not (await reconciler.plan(CLI)).plan.has_changes


async def test_a_device_naming_another_secret_since_its_plan_gets_no_config_generated(
        make_world: MakeWorld) -> None:
    """A reconcile planned while the Device named vucm-config, applied after it named
    another Secret (the operator's drift check, which an edit does not wait for): no
    config is generated in Enapter for the old Secret, nor written there, and the result
    says so; the reconcile of the newest spec writes the new one."""
    text = site_and_gateway() + device(
        "lab-vucm", "{kind: vucm, configOutput: {secretName: vucm-config}}", hardware=VUCM,
        gateway=True)
    world = await make_world(text)
    store = _FakeSecrets()
    async with Reconciler(world.fleet, world.settings()) as reconciler:
        reconciler.session.extra[SECRET_STORE_KEY] = store
        assert (await reconciler.apply(await reconciler.plan(CLI))).ok
        del store.data["vucm-config"]  # deleted: a config is generated again
        result = await reconciler.plan(CLI)
        message = pending(result)["device/lab-vucm[enapter]"].message
        assert "Secret vucm-config is missing" in message
        store.named["lab-vucm"] = "vucm-new"
        world.sims.reset_counts()
        report = await reconciler.apply(result)
    assert report.ok, report
    [outcome] = [o for o in report.outcomes if o.address == "device/lab-vucm[enapter]"]
    assert outcome.detail.get("config") == (
        "not written (the device names Secret vucm-config no more: edited, deleted or created "
        "again)"), outcome
    assert store.data == {}
    assert enapter_calls(world, "POST /v3/devices/{device_id}/generate_config") == 0
