"""A slug a Device declares that another device of its Enapter site has, against the
simulator on loopback: Enapter keeps a slug unique in a site (409 SLUG_ALREADY_EXISTS), so
the change waits for the change that frees the slug, or is blocked, naming the device that
has it, instead of failing on every apply."""

from __future__ import annotations

from enapter_world import UCM, VUCM, MakeWorld, device, fleet_of, pending, site_and_gateway, ucm

from reconciler.plan.actions import Action


def vucm(slug: str | None) -> str:
    declared = f"{{kind: vucm, slug: {slug}}}" if slug else "{kind: vucm}"
    return device("lab-vucm", declared, hardware=VUCM, gateway=True)


async def test_a_slug_an_undeclared_device_has_waits_for_its_delete(
        make_world: MakeWorld) -> None:
    world = await make_world(site_and_gateway() + ucm() + vucm("spare"))
    await world.converge()
    spare = world.sims.enapter.by_hardware_id(VUCM)
    assert spare is not None and spare.slug == "spare"
    taken = fleet_of(site_and_gateway() + ucm(slug="spare"))

    result = await world.plan(taken)
    update = pending(result)["device/lab-ucm[enapter]"]
    assert (update.action, update.blocked) == (Action.UPDATE, True)
    assert update.message == (
        f"slug spare belongs to VIRTUAL_UCM device {spare.id} ('lab-vucm'), which this Site "
        "does not declare, and Enapter keeps a slug unique in a site: delete it (apply "
        "--prune) or declare another slug")
    world.sims.reset_counts()
    _, report = await world.apply(taken)
    assert not report.ok and world.sims.enapter.writes() == 0

    result = await world.plan(taken, prune=True)
    update = pending(result)["device/lab-ucm[enapter]"]
    assert not update.blocked and "device/lab.spare[enapter]" in update.depends_on
    _, report = await world.apply(taken, prune=True)
    assert report.ok, report.as_dict()
    assert world.sims.enapter.by_hardware_id(UCM).slug == "spare"  # type: ignore[union-attr]
    assert not (await world.plan(taken, prune=True)).plan.has_changes


async def test_a_slug_another_device_declares_away_waits_for_that_change(
        make_world: MakeWorld) -> None:
    world = await make_world(site_and_gateway() + ucm() + vucm("spare"))
    await world.converge()
    holder = world.sims.enapter.by_hardware_id(VUCM)
    assert holder is not None

    # Its Device declares no slug: it keeps the one it has.
    both = fleet_of(site_and_gateway() + ucm(slug="spare") + vucm(None))
    update = pending(await world.plan(both))["device/lab-ucm[enapter]"]
    assert update.blocked
    assert update.message.startswith(
        f"slug spare belongs to VIRTUAL_UCM device {holder.id} ('lab-vucm'), Device lab-vucm's")
    assert update.message.endswith("give one of them another slug")

    swapped = fleet_of(site_and_gateway() + ucm(slug="spare") + vucm("gas-ucm"))
    changes = pending(await world.plan(swapped))
    assert all(c.blocked for c in changes.values()), "a swap would wait on itself: blocked"

    freed = fleet_of(site_and_gateway() + ucm(slug="spare") + vucm("spare-2"))
    changes = pending(await world.plan(freed))
    assert "device/lab-vucm[enapter]" in changes["device/lab-ucm[enapter]"].depends_on
    await world.converge(freed)
    assert world.sims.enapter.by_hardware_id(UCM).slug == "spare"  # type: ignore[union-attr]
    assert not (await world.plan(freed)).plan.has_changes
