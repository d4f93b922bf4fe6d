"""What a plan of a converged fleet leaves undone: the whole-fleet work it needs only when
something moves or is declared elsewhere is not done for a fleet where everything is as
declared (a no-op plan of 1,000 sites spent a tenth of its planning on it), and what it
keeps of the changes in sync is kept once. Each test plans a converged world against the
simulators; the work counted is left to run as ever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from simworld import ORG_B, MakeWorld, load, mqtt_battery, standard_site

from reconciler.model.fleet import Fleet
from reconciler.plan import moves, sourceful, zap_endpoint_clashes
from reconciler.plan.document import to_document


def counted(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Count the calls of `owner.name` (the function itself still runs)."""
    calls: list[int] = []
    real: Callable[..., Any] = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


async def test_a_no_op_plan_works_out_no_fleet_wide_declarations(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    world = await make_world([*standard_site(1), *standard_site(2),
                              *standard_site(3, org=ORG_B)])
    assert (await world.apply())[1].ok
    declarations = counted(monkeypatch, moves, "declarations")
    result, _, writes = await world.noop_writes()
    assert not result.plan.has_changes and writes == 0
    assert declarations == []


async def test_a_device_declared_in_another_organisation_still_waits_for_every_site(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other side: a Novacore device of a site that the fleet declares in another
    organisation only is looked up in the whole fleet's declarations (`plan.moves`)."""
    world = await make_world([*standard_site(1), mqtt_battery("bat", "s1-zap", "FERRO-1"),
                              *standard_site(2, org=ORG_B)])
    assert (await world.apply())[1].ok
    moved = [*standard_site(1), *standard_site(2, org=ORG_B),
             mqtt_battery("bat", "s2-zap", "FERRO-1")]
    declarations = counted(monkeypatch, moves, "declarations")
    result = await world.plan(fleet=load(moved))
    assert declarations
    planned = {c.address: c.action.value for c in result.plan.pending}
    assert planned["device/bat[novacore]"] == "replace"


async def test_a_device_in_sync_keeps_one_record_for_what_is_and_what_is_declared(
        make_world: MakeWorld) -> None:
    """A fleet-wide plan keeps 30,000 of these: where what a platform reports is what is
    declared, a no-op change holds one dict as both, and its plan document says both."""
    world = await make_world([*standard_site(1), mqtt_battery("bat", "s1-zap", "FERRO-1")])
    assert (await world.apply())[1].ok
    result, _, _ = await world.noop_writes()
    devices = [c for c in result.plan.changes if c.kind == "Device"]
    assert {c.component for c in devices} == {"zap", "novacore", "publish"}
    for change in devices:
        assert not change.is_change
        assert change.before is change.after, change.address
    entry = next(e for e in to_document(result.plan)["changes"]
                 if e["address"] == "device/bat[novacore]")
    assert entry["before"] == entry["after"] != {}


async def test_a_device_the_zap_reports_as_declared_is_not_compared_setting_by_setting(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal as a whole, the connection the Zap reports and the one it would be sent hold
    no difference: which settings the spec declares (`declared_zap_settings`) is worked
    out only for a connection that differs somewhere."""
    world = await make_world([*standard_site(1), mqtt_battery("bat", "s1-zap", "FERRO-1")])
    assert (await world.apply())[1].ok
    declared = counted(monkeypatch, sourceful, "declared_zap_settings")
    result, _, _ = await world.noop_writes()
    assert not result.plan.has_changes
    assert declared == []


async def test_a_no_op_plan_looks_no_device_up_again_for_its_ders(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each gateway's Devices come with their DERs (`Fleet.devices_and_ders_of`): no Device
    is looked up again by its name, nor the fleet's index checked, once per device."""
    world = await make_world([*standard_site(1), *standard_site(2)])
    assert (await world.apply())[1].ok
    ders_of = counted(monkeypatch, Fleet, "ders_of")
    result, _, _ = await world.noop_writes()
    assert not result.plan.has_changes
    assert ders_of == []
    flags = {c.address: c.after for c in result.plan.changes if c.component == "publish"}
    assert flags["device/s2-inv[publish]"] == {"pv": True, "battery": True, "meter": False}


async def test_endpoint_clashes_are_looked_for_only_where_a_device_is_added(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where nothing is added to a Zap, as on every gateway of a no-op plan, no endpoint
    can clash and nothing waits for one: what is planned for its devices is not gone
    through again (`zap_endpoint_clashes.settle`)."""
    world = await make_world([*standard_site(1)])
    gone_through = counted(monkeypatch, zap_endpoint_clashes, "_block_dependents")
    result, applied = await world.apply()
    assert applied.ok and result.plan.has_changes
    assert gone_through == [1]
    result, _, _ = await world.noop_writes()
    assert not result.plan.has_changes
    assert gone_through == [1]


async def test_an_in_sync_novacore_device_is_not_searched_for_undeclared_ders(
        make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Novacore device equal to what is declared has the declared DERs only: its DERs
    are not gone through again for one nobody declares (`test_sourceful_planner` has the
    device that holds one)."""
    world = await make_world([*standard_site(1), mqtt_battery("bat", "s1-zap", "FERRO-1")])
    assert (await world.apply())[1].ok
    searched = counted(monkeypatch, sourceful.SourcefulPlanner, "_unmanaged_ders")
    result, _, _ = await world.noop_writes()
    assert not result.plan.has_changes and result.plan.unmanaged == []
    assert searched == []
