"""A gateway swapped for a new one (a broken Zap replaced on site: same Gateway, new serial),
against the simulators: the new Zap is claimed and given the devices, and each Novacore
device is provisioned again behind the new gateway, which rebinds it there (same id and
DERs) instead of leaving it bound to the old one or making a second one."""

from __future__ import annotations

from simworld import Doc, MakeWorld, cloud_devices, gateway, load, serial_of, standard_site

from reconciler.plan.actions import Action

OLD, NEW = serial_of(1), serial_of(9)


def swapped(docs: list[Doc]) -> list[Doc]:
    return [{**d, "spec": {**d["spec"], "zap": {**d["spec"]["zap"], "serial": NEW}}}
            if d["kind"] == "Gateway" else d for d in docs]


async def test_a_swapped_gateway_takes_over_its_devices_in_the_zap_and_in_novacore(
        make_world: MakeWorld) -> None:
    docs = standard_site(1)
    # The spare Zap exists (it is simulated) but is not declared until the swap. The P1
    # meter's cable is moved to it: its port reads the same meter.
    world = await make_world(
        [*docs, gateway("spare", "s1", NEW)],
        before_start=lambda sims: sims.lans["s1"].p1_meters.__setitem__(NEW, "P1M0001"))
    await world.apply(fleet=load(docs))
    assert {d.gateway_serial for d in cloud_devices(world.sims)} == {OLD}
    ids = {d.hardware_id: d.id for d in cloud_devices(world.sims)}
    fleet = load(swapped(docs))

    result, report = await world.apply(fleet=fleet)
    actions = {c.address: c.action for c in result.plan.pending}
    assert actions == {
        "gateway/s1-zap[novacore]": Action.CLAIM,
        "device/s1-inv[zap]": Action.CREATE,
        "device/s1-inv[novacore]": Action.UPDATE,
        "device/s1-inv[publish]": Action.UPDATE,
        "device/s1-p1[zap]": Action.CREATE,
        "device/s1-p1[novacore]": Action.UPDATE,
        "device/s1-p1[publish]": Action.UPDATE,
    }
    move = next(c for c in result.plan.pending if c.address == "device/s1-p1[novacore]")
    assert move.message.startswith(f"moves from gateway {OLD} to gateway s1-zap")
    assert move.external_id == ids["P1M0001"]
    assert report.ok, report.as_dict()

    devices = cloud_devices(world.sims)
    assert sorted((d.hardware_id, d.gateway_serial) for d in devices) == [
        ("P1M0001", NEW), ("SG0001", NEW)], "moved, not duplicated"
    assert {d.hardware_id: d.id for d in devices} == ids, "rebound: the same devices"
    assert world.sims.zaps[NEW].device("SG0001") is not None

    noop, _, writes = await world.noop_writes(fleet)
    assert not noop.plan.has_changes and writes == 0
    assert [u["id"] for u in noop.plan.unmanaged] == [OLD], "still claimed, until released"
