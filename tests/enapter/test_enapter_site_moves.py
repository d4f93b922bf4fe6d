"""A device moved in git from one declared Enapter Site to another, against the simulator
on loopback: Enapter keeps a hardware id in one site of the organisation, so the device is
provisioned in its new site only after `--prune` deleted it from the old one, and without
`--prune` the create is blocked, saying why, instead of failing with Enapter's 409."""

from __future__ import annotations

from enapter_world import API, UCM, MakeWorld, World, device, fleet_of, pending, site_and_gateway

from reconciler.plan.actions import Action

SECOND_SITE = f"""---
{API}
kind: Site
metadata: {{name: annex}}
spec:
  displayName: H2 Annex
  timezone: Europe/Rome
  enapter: {{}}
"""


def ucm_in(site: str) -> str:
    text = device("lab-ucm", "{kind: ucm, configOutput: {file: cfg/ucm.json}}", hardware=UCM,
                  display="Gas sensor UCM")
    return text.replace("siteRef: lab\n", f"siteRef: {site}\n")


def site_of(world: World, hardware_id: str) -> str:
    found = world.sims.enapter.by_hardware_id(hardware_id)
    assert found is not None
    return world.sims.enapter.sites[found.site_id].name


async def test_a_device_moved_to_another_site_is_deleted_there_first_with_prune(
        make_world: MakeWorld) -> None:
    world = await make_world(site_and_gateway() + SECOND_SITE + ucm_in("lab"))
    await world.converge()
    assert site_of(world, UCM) == "H2 Lab"
    old_id = world.sims.enapter.by_hardware_id(UCM).id  # type: ignore[union-attr]
    moved = fleet_of(site_and_gateway() + SECOND_SITE + ucm_in("annex"))

    result = await world.plan(moved)
    create = pending(result)["device/lab-ucm[enapter]"]
    assert (create.action, create.blocked) == (Action.CREATE, True)
    assert create.message.startswith(f"hardware id {UCM} is in Enapter site ")
    for needed in ("('H2 Lab') of Site lab, which declares it no more",
                   f"HARDWARE_UCM device {old_id}", "apply with --prune"):
        assert needed in create.message
    world.sims.reset_counts()
    _, report = await world.apply(moved)
    assert not report.ok
    assert world.sims.enapter.writes() == 0, "nothing is provisioned to fail with a 409"

    result = await world.plan(moved, prune=True)
    changes = pending(result)
    delete = changes[f"device/lab.{world.sims.enapter.devices[old_id].slug}[enapter]"]
    create = changes["device/lab-ucm[enapter]"]
    assert (delete.action, delete.blocked) == (Action.DELETE, False)
    assert (create.action, create.blocked) == (Action.CREATE, False)
    assert delete.address in create.depends_on
    assert f"it is deleted there first ({delete.address}, --prune)" in create.message

    _, report = await world.apply(moved, prune=True)
    assert report.ok, report.as_dict()
    assert site_of(world, UCM) == "H2 Annex"
    assert (world.state_dir / "cfg" / "ucm.json").is_file()
    assert not (await world.plan(moved, prune=True)).plan.has_changes
