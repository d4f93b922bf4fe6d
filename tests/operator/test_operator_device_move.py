"""A Device moved to a gateway of another Site through the operator (its `gatewayRef`
edited, the hardware re-wired): the operator plans it as the CLI does, one `moved` update
that keeps the Novacore device's id and DERs, not a new device. The operator plans one
object's closure, which holds the Site it moves to only: where it comes from is the Site
its status last placed it at (`status.gateway.site`)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from harness import documents, operator
from objects import BATTERY, rewire_to_the_cabin, two_sites

from reconciler.sim.novacore import Device

FLEET = two_sites()


async def moved_to_the_cabin(fleet: str, tmp_path: Path, monkeypatch: Any,
                             ) -> tuple[list[str], Device, Device, str]:
    """Declare `fleet`, then move the battery to the cabin: the events' messages, the
    Novacore device before and after, and its id in the Device's status."""
    async with operator(fleet, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "bat", "Ready")
        [old] = [copy.deepcopy(d) for d in sims.novacore.devices.values()
                 if d.hardware_id == BATTERY]
        rewire_to_the_cabin(sims)

        await cluster.patch("Device", "bat", {"spec": {"gatewayRef": "cabin-zap"}})

        async def placed_at_cabin() -> bool:
            status = await cluster.status("Device", "bat")
            return (status.get("gateway") or {}).get("site") == "cabin"

        await cluster.wait_for(placed_at_cabin, what="bat placed at the cabin")
        await cluster.wait_condition("Device", "bat", "Ready")
        messages = [e.get("message", "") for e in await cluster.events()]
        [device] = [d for d in sims.novacore.devices.values() if d.hardware_id == BATTERY]
        cabin = next(s.id for s in sims.novacore.sites.values() if s.name == "Cabin")
        assert (device.site_id, device.gateway_serial) == (cabin, "zap-00000000000000a2")
        body = await cluster.get("Device", "bat")
        assert body
        return messages, old, device, body["status"]["externalIds"]["novacore"]


async def test_a_device_moved_to_another_site_is_updated_with_its_id(
    tmp_path: Path, monkeypatch: Any
) -> None:
    messages, old, device, status_id = await moved_to_the_cabin(FLEET, tmp_path, monkeypatch)
    assert "device/bat[novacore]: update done" in messages, messages
    assert messages.count("device/bat[novacore]: create done") == 1, "only the first time"
    assert (device.id, device.der_ids, status_id) == (old.id, old.der_ids, old.id)


async def test_a_device_moved_to_a_site_of_another_organisation_is_replaced(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """As the CLI plans it (plan.moves): a new device in the other organisation, then the
    old one deleted."""
    fleet = two_sites("org-cabin")
    assert "org-cabin" in fleet
    messages, old, device, status_id = await moved_to_the_cabin(fleet, tmp_path, monkeypatch)
    assert "device/bat[novacore]: replace done" in messages, messages
    assert messages.count("device/bat[novacore]: create done") == 1, "only the first time"
    assert device.id != old.id and status_id == device.id
