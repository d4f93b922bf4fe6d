"""A Gateway object's `spec.zap.serial` changed (a broken Zap swapped for a new one) through
the operator: the new Zap is claimed, the Device moves to it (same Novacore device), and
the old gateway, which the Gateway's status remembers it claimed (`status.claims`), is
released with `deletionPolicy: Release` once no device is bound to it any more, as `apply
--prune` does with the CLI's inventory; kept with Orphan, saying so in an event. Never
while the move waits, nor when another Gateway object declares it or it is claimed by its
organisation no more. A Gateway deleted while an old serial waits releases that one too,
and leaves its own to the Gateway that declares it now (a rename). The releases are
counted at the Novacore simulator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from fleet_yaml import novacore_site, stream, zap_gateway
from harness import API_VERSION, OTHER_NAMESPACE, Cluster, documents, operator
from objects import HOME_INVERTER, RELEASE, ZAP
from takeover_marks import takeover_cleared

from reconciler.engine.config import load_settings
from reconciler.engine.reconcile import Reconciler
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sim.novacore import Device
from reconciler.sources.loader import load_texts

OLD, NEW = ZAP, "zap-00000000000000a9"
NEW_URL = "http://192.168.1.9"
RELEASED = "DELETE /gateways/{serial}"  # the simulator counts requests by route
PAUSED = "energy.reconciler.dev/paused"


def _fleet(policy: str) -> str:
    return stream(novacore_site(), zap_gateway(extra=policy), HOME_INVERTER)


def _seeded(fleet: str) -> str:
    """`fleet` and the spare Zap on the same LAN, which is declared only by the swap."""
    return stream(fleet, zap_gateway("spare", serial=NEW, url=NEW_URL))


def _inverter(sims: SimFleet) -> Device:
    [device] = [d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001"]
    return device


def _owner(sims: SimFleet, serial: str) -> str | None:
    return sims.novacore.gateways[serial].org_id


async def _declared(cluster: Cluster, fleet: str, sims: SimFleet) -> Device:
    await cluster.create_all(documents(fleet))
    await cluster.wait_condition("Gateway", "home-zap", "Ready")
    await cluster.wait_condition("Device", "home-inverter", "Ready")
    device = _inverter(sims)
    assert (device.gateway_serial, _owner(sims, OLD)) == (OLD, "org-home")
    sims.reset_counts()
    return Device(**vars(device))


async def _swap(cluster: Cluster) -> None:
    await cluster.patch("Gateway", "home-zap", {"spec": {"zap": {"serial": NEW, "url": NEW_URL}}})


async def _moved(cluster: Cluster, sims: SimFleet, old: Device) -> None:
    """Wait until the inverter is the same Novacore device, bound to the new gateway."""

    async def moved() -> bool:
        return _inverter(sims).gateway_serial == NEW

    await cluster.wait_for(moved, what="the inverter moved to the new gateway")
    device = _inverter(sims)
    assert (device.id, device.der_ids, device.state) == (old.id, old.der_ids, "active")
    assert sims.zaps[NEW].device("SG0001") is not None


async def _claims(cluster: Cluster) -> list[str]:
    return [c["serial"] for c in (await cluster.status("Gateway", "home-zap")).get("claims", [])]


async def test_a_swapped_out_gateway_is_released_once_its_device_moved_off_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        old = await _declared(cluster, fleet, sims)
        assert await _claims(cluster) == [OLD]
        await _swap(cluster)

        async def released() -> bool:
            return _owner(sims, OLD) is None

        await cluster.wait_for(released, what=f"{OLD} released")
        await _moved(cluster, sims, old)
        assert sims.novacore.requests[RELEASED] == 1
        assert _owner(sims, NEW) == "org-home"
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        status = await cluster.status("Gateway", "home-zap")
        assert status["claims"] == [
            {"serial": NEW, "orgId": "org-home", "deletionPolicy": "Release"}
        ]
        assert status["externalIds"]["novacore"] == NEW
        messages = [e["message"] for e in await cluster.events_about("home-zap")]
        assert f"gateway/{OLD}[novacore]: release done" in messages, messages


async def test_a_swapped_out_gateway_with_deletion_policy_orphan_stays_claimed(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = _fleet("")
    assert fleet.count("deletionPolicy") == 1, "the inverter's only: the gateway's is Orphan"
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        old = await _declared(cluster, fleet, sims)
        await _swap(cluster)
        await _moved(cluster, sims, old)
        [event] = await cluster.wait_for(
            lambda: cluster.events_about("home-zap", reason="GatewayKept"),
            what="the event saying the old gateway is kept",
        )
        assert f"gateway {OLD}, swapped out of the spec for {NEW}, stays claimed by " \
            "org-home (deletionPolicy Orphan)" in event["message"]
        assert await _claims(cluster) == [NEW]
        await cluster.wait_planned("Gateway", "home-zap", 2)
        assert sims.novacore.requests[RELEASED] == 0
        assert _owner(sims, OLD) == "org-home"
        assert len(await cluster.events_about("home-zap", reason="GatewayKept")) == 1, "once"
        # Forgotten by the Gateway, it is one claimed that nothing declares: its Site says so.
        await cluster.wait_planned("Site", "home", 1)
        assert (await cluster.status("Site", "home"))["unmanaged"]["objects"] == [{
            "platform": "novacore",
            "id": OLD,
            "description": f"gateway {OLD} is claimed by org-home but not declared; left "
            "claimed (deletionPolicy Orphan)",
        }]


async def test_a_swapped_out_gateway_is_not_released_while_its_device_waits_to_move(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        old = await _declared(cluster, fleet, sims)
        # The Device paused: its move waits, whatever the Gateway's reconcile does.
        await cluster.patch("Device", "home-inverter",
                            {"metadata": {"annotations": {PAUSED: "true"}}})
        await cluster.wait_reason("Device", "home-inverter", "Paused", type_="Synced")
        await _swap(cluster)

        waiting = (f"gateway {OLD}, swapped out of the spec for {NEW}, is released once the "
                   f"Novacore devices bound to it move to gateway {NEW}")

        async def pending() -> dict[str, Any] | None:
            cond = await cluster.condition("Gateway", "home-zap", "Ready")
            return cond if cond and waiting in cond.get("message", "") else None

        # First it waits for the new gateway's claim, then for the device.
        cond = await cluster.wait_for(pending, what="the release waiting")
        assert (cond["status"], cond["reason"]) == ("False", "ReleasePending")
        assert f"{old.id} (SG0001)" in cond["message"]
        await cluster.wait_planned("Gateway", "home-zap", 2)
        assert sims.novacore.requests[RELEASED] == 0
        assert (_owner(sims, OLD), _owner(sims, NEW)) == ("org-home", "org-home")
        assert (_inverter(sims).gateway_serial, _inverter(sims).state) == (OLD, "active")
        assert await _claims(cluster) == [NEW, OLD]
        # The Gateway says the old one waits to be released: its Site does not report it as
        # a gateway nothing declares.
        await cluster.wait_planned("Site", "home", 2)
        assert (await cluster.status("Site", "home"))["unmanaged"] == {"count": 0, "objects": []}

        await cluster.patch("Device", "home-inverter",
                            {"metadata": {"annotations": {PAUSED: None}}})
        await _moved(cluster, sims, old)

        async def released() -> bool:
            return _owner(sims, OLD) is None

        await cluster.wait_for(released, what=f"{OLD} released")
        assert sims.novacore.requests[RELEASED] == 1
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        assert await _claims(cluster) == [NEW]


async def test_a_swapped_out_gateway_is_not_released_while_the_new_one_is_not_claimed(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        await _declared(cluster, fleet, sims)
        await sims.zaps[NEW].set_offline("refuse")
        await _swap(cluster)
        await cluster.wait_reason("Gateway", "home-zap", "Deferred")
        await cluster.wait_planned("Gateway", "home-zap", 2)
        assert sims.novacore.requests[RELEASED] == 0
        assert _owner(sims, OLD) == "org-home" and _owner(sims, NEW) is None
        assert await _claims(cluster) == [OLD]

        await sims.zaps[NEW].set_offline("online")

        async def released() -> bool:
            return _owner(sims, OLD) is None

        await cluster.wait_for(released, what=f"{OLD} released")
        assert sims.novacore.requests[RELEASED] == 1
        assert _inverter(sims).gateway_serial == NEW


async def test_a_swapped_out_gateway_another_gateway_object_declares_is_kept(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        old = await _declared(cluster, fleet, sims)
        # The old unit, mended, declared in another namespace (its Site not yet).
        await cluster.create(
            {
                "apiVersion": API_VERSION,
                "kind": "Gateway",
                "metadata": {"name": "bench-zap"},
                "spec": {"siteRef": "bench", "zap": {"serial": OLD, "url": "http://10.0.0.2"}},
            },
            OTHER_NAMESPACE,
        )
        await _swap(cluster)
        await _moved(cluster, sims, old)
        [event] = await cluster.wait_for(
            lambda: cluster.events_about("home-zap", reason="GatewayKept"),
            what="the event saying the old gateway is kept",
        )
        assert event["message"].endswith(f"Gateway {OTHER_NAMESPACE}/bench-zap declares it")
        assert await _claims(cluster) == [NEW]
        await cluster.wait_planned("Gateway", "home-zap", 2)
        assert sims.novacore.requests[RELEASED] == 0
        assert _owner(sims, OLD) == "org-home"


async def test_a_swapped_out_gateway_released_by_someone_else_is_forgotten(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        await _declared(cluster, fleet, sims)
        await cluster.patch("Device", "home-inverter",
                            {"metadata": {"annotations": {PAUSED: "true"}}})
        await cluster.wait_reason("Device", "home-inverter", "Paused", type_="Synced")
        # The new unit offline while the old one is released by someone else: no reconcile
        # can plan a release from a reading of Novacore made before that and act after it
        # (its release waits for the new unit's claim).
        await sims.zaps[NEW].set_offline("refuse")
        await _swap(cluster)
        await cluster.wait_reason("Gateway", "home-zap", "Deferred")
        sims.novacore.release_gateway(OLD)  # released in Novacore meanwhile
        await sims.zaps[NEW].set_offline("online")

        [event] = await cluster.wait_for(
            lambda: cluster.events_about("home-zap", reason="GatewayKept"),
            what="the event saying the old gateway is forgotten",
        )
        assert "is claimed by org-home no more: nothing to release" in event["message"]
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        assert await _claims(cluster) == [NEW]
        assert sims.novacore.requests[RELEASED] == 0


async def test_a_gateway_deleted_while_its_old_serial_waits_releases_that_one_too(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The finalizer honours every serial `status.claims` holds: the old one, still bound
    to the paused Device's inverter, keeps the finalizer (saying so) until nothing is bound
    to it, then is released as recorded, not left claimed and forgotten."""
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        old = await _declared(cluster, fleet, sims)
        await cluster.patch("Device", "home-inverter",
                            {"metadata": {"annotations": {PAUSED: "true"}}})
        await cluster.wait_reason("Device", "home-inverter", "Paused", type_="Synced")
        await _swap(cluster)

        async def both_claimed() -> bool:
            return await _claims(cluster) == [NEW, OLD]

        await cluster.wait_for(both_claimed, what="the old serial waiting")
        await cluster.delete("Gateway", "home-zap")
        cond = await cluster.wait_reason("Gateway", "home-zap", "ReleaseBlocked",
                                         what="the old serial's release waiting")
        assert (f"gateway {OLD}, swapped out of the spec for {NEW}, is released once no "
                "Novacore device is bound to it") in cond["message"]
        assert f"{old.id} (SG0001)" in cond["message"]
        assert _owner(sims, NEW) is None, "its own serial is released (deletionPolicy Release)"
        assert _owner(sims, OLD) == "org-home"
        assert (_inverter(sims).gateway_serial, _inverter(sims).state) == (OLD, "active")
        assert sims.novacore.requests[RELEASED] == 1

        # The Device goes (deletionPolicy Release): nothing is bound to the old one then.
        await cluster.delete("Device", "home-inverter")
        await cluster.wait_gone("Gateway", "home-zap")
        assert _owner(sims, OLD) is None
        assert sims.novacore.requests[RELEASED] == 2
        assert not [d for d in sims.novacore.devices.values() if d.hardware_id == "SG0001"]


async def test_a_renamed_gateway_deleted_while_its_old_serial_waits_leaves_its_own_to_the_heir(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Renamed in git while a serial swapped out of its spec waits for its release: the new
    name (refused while the old one declares the same serial) takes over the gateway it
    declares, claimed, as for any rename; the old one's finalizer still releases the
    swapped-out serial as recorded once nothing is bound to it, and says who took over
    its own serial only as it goes."""
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        await _declared(cluster, fleet, sims)
        await cluster.patch("Device", "home-inverter",
                            {"metadata": {"annotations": {PAUSED: "true"}}})
        await cluster.wait_reason("Device", "home-inverter", "Paused", type_="Synced")
        await _swap(cluster)

        async def both_claimed() -> bool:
            return await _claims(cluster) == [NEW, OLD]

        await cluster.wait_for(both_claimed, what="the old serial waiting")
        assert _owner(sims, NEW) == "org-home"

        # The rename: the new name first (Argo CD and Flux apply before they prune), its
        # Device moved to it, then the old name deleted.
        [renamed] = [d for d in documents(stream(novacore_site(), zap_gateway(
            "home-zap-2", serial=NEW, url=NEW_URL, extra=RELEASE))) if d["kind"] == "Gateway"]
        await cluster.create(renamed)
        await cluster.wait_reason("Gateway", "home-zap-2", "InvalidSpec",
                                  what="the new name refused")
        await cluster.patch("Device", "home-inverter", {"spec": {"gatewayRef": "home-zap-2"}})
        await cluster.delete("Gateway", "home-zap")
        cond = await cluster.wait_reason("Gateway", "home-zap", "ReleaseBlocked",
                                         what="the old serial's release waiting")
        assert (f"gateway {OLD}, swapped out of the spec for {NEW}, is released once no "
                "Novacore device is bound to it") in cond["message"]
        assert _owner(sims, NEW) == "org-home", "left to home-zap-2, not released"
        assert _owner(sims, OLD) == "org-home"
        assert sims.novacore.requests[RELEASED] == 0
        assert not await cluster.events_about("home-zap", reason="GatewayKept"), (
            "said as the object goes, not at each attempt that waits"
        )

        # The Device goes (deletionPolicy Release): nothing is bound to the old one then.
        await cluster.delete("Device", "home-inverter")
        await cluster.wait_gone("Gateway", "home-zap")
        assert _owner(sims, OLD) is None
        assert _owner(sims, NEW) == "org-home"
        assert sims.novacore.requests[RELEASED] == 1, "the swapped-out serial's alone"
        kept = [e["message"] for e in
                await cluster.wait_events_about("home-zap", reason="GatewayKept")]
        assert kept == [
            "deletionPolicy Release: its gateway is not released: Gateway 'home-zap-2' "
            "declares it too and takes it over, as it is, claimed, with the devices on its Zap"
        ], kept
        messages = [e["message"] for e in await cluster.events_about("home-zap")]
        assert (f"gateway/{OLD}[novacore]: gateway {OLD}, swapped out of the spec for {NEW}, "
                "released from org-home (deletionPolicy Release)") in messages, messages

        await cluster.wait_condition("Gateway", "home-zap-2", "Ready")
        heir = await takeover_cleared(cluster, "Gateway", "home-zap-2")
        assert [c["serial"] for c in heir["status"]["claims"]] == [NEW]
        assert _owner(sims, NEW) == "org-home"
        assert sims.novacore.requests[RELEASED] == 1


async def test_a_swapped_out_gateway_waits_for_a_device_bound_to_it_in_a_site_no_site_declares(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Novacore names no device a gateway has: with a release planned, every site of its
    organisation is read, and one bound to it in a site no Site declares keeps it."""
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        old = await _declared(cluster, fleet, sims)
        warehouse = sims.novacore.add_site("org-home", "Warehouse")
        async with httpx.AsyncClient(
            base_url=sims.novacore.url,
            headers={"Authorization": f"Bearer {sims.novacore_token}"},
        ) as client:
            made = await client.post("/devices/provision", json={
                "gateway_serial": OLD, "hardware_id": "WH0001", "device_type": "energy_meter",
                "site_id": warehouse, "name": "Warehouse meter"})
        assert made.status_code == 201, made.text
        stranger = made.json()["device_id"]
        await _swap(cluster)
        await _moved(cluster, sims, old)
        waiting = (f"gateway {OLD}, swapped out of the spec for {NEW}, is released once the "
                   f"Novacore devices bound to it move")

        async def pending() -> dict[str, Any] | None:
            cond = await cluster.condition("Gateway", "home-zap", "Ready")
            return cond if cond and waiting in cond.get("message", "") else None

        cond = await cluster.wait_for(pending, what="the release waiting")
        assert f"{stranger} (WH0001)" in cond["message"]
        await cluster.wait_planned("Gateway", "home-zap", 2)
        assert sims.novacore.requests[RELEASED] == 0
        assert _owner(sims, OLD) == "org-home"
        assert sims.novacore.devices[stranger].state == "active", "not orphaned"

        sims.novacore.remove_device(stranger)

        async def released() -> bool:
            return _owner(sims, OLD) is None

        await cluster.wait_for(released, what=f"{OLD} released")
        assert sims.novacore.requests[RELEASED] == 1
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        assert await _claims(cluster) == [NEW]


async def test_a_device_orphaned_on_a_swapped_out_gateway_does_not_keep_it_as_the_cli_does_not(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A device still naming the old serial but orphaned already (the gateway was released
    and claimed again since) has nothing more to lose: `apply --prune` of the swapped fleet
    plans the release unblocked, and the operator releases it too, instead of waiting
    for that device forever."""
    fleet = _fleet(RELEASE)
    async with operator(_seeded(fleet), tmp_path, monkeypatch) as (cluster, sims):
        old = await _declared(cluster, fleet, sims)
        warehouse = sims.novacore.add_site("org-home", "Warehouse")
        async with httpx.AsyncClient(
            base_url=sims.novacore.url,
            headers={"Authorization": f"Bearer {sims.novacore_token}"},
        ) as client:
            made = await client.post("/devices/provision", json={
                "gateway_serial": OLD, "hardware_id": "WH0001", "device_type": "energy_meter",
                "site_id": warehouse, "name": "Warehouse meter"})
        assert made.status_code == 201, made.text
        orphan = made.json()["device_id"]
        sims.novacore.devices[orphan].state = "orphaned"

        # The CLI, with the swap in git and the old serial in its inventory.
        swapped = load_texts([("fleet.yaml", stream(
            novacore_site(), zap_gateway(serial=NEW, url=NEW_URL, extra=RELEASE),
            HOME_INVERTER))]).fleet()
        settings = load_settings(sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "cli")})
        async with Reconciler(swapped, settings) as cli:
            planned = await cli.plan(PlanOptions(audience=Audience.CLI,
                prune=True, inventory={OLD: "Release"}, inventory_orgs={OLD: "org-home"}))
        [release] = [c for c in planned.plan.changes if c.address == f"gateway/{OLD}[novacore]"]
        assert (release.action, release.blocked) == (Action.RELEASE, False), release.message

        await _swap(cluster)
        await _moved(cluster, sims, old)

        async def released() -> bool:
            return _owner(sims, OLD) is None

        await cluster.wait_for(released, what=f"{OLD} released")
        assert sims.novacore.requests[RELEASED] == 1
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        assert await _claims(cluster) == [NEW]


class PathReads:
    """Counts the Novacore requests by path (the simulator counts them by route, which
    does not tell one site's devices from another's); installed before it serves."""

    def __init__(self) -> None:
        self.paths: Counter[str] = Counter()

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            self.paths[request.path] += 1
            return await handler(request)

        sims.novacore.app.middlewares.append(count)


async def test_a_release_waiting_for_the_new_gateways_claim_reads_no_other_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """While the new Zap cannot be claimed the release waits for that, whatever the
    devices: the Gateway's retries read the devices of no other Site of the organisation.
    Once the release is planned, those of every site are read, as for the CLI's
    (`engine.release_reads`), and it goes on."""
    fleet = stream(_fleet(RELEASE), novacore_site("cabin", "Cabin"))
    reads = PathReads()
    async with operator(_seeded(fleet), tmp_path, monkeypatch,
                        before_start=reads.install) as (cluster, sims):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Site", "cabin", "Ready")
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        [cabin] = [i for i, s in sims.novacore.sites.items() if s.name == "Cabin"]
        # Paused, the cabin's own reconciles read nothing: what is read of it is the
        # Gateway's.
        await cluster.patch("Site", "cabin", {"metadata": {"annotations": {PAUSED: "true"}}})
        await cluster.wait_reason("Site", "cabin", "Paused", type_="Synced")
        await sims.zaps[NEW].set_offline("refuse")
        await _swap(cluster)
        await cluster.wait_reason("Gateway", "home-zap", "Deferred")
        reads.paths.clear()
        await cluster.wait_planned("Gateway", "home-zap", 3)
        assert reads.paths[f"/sites/{cabin}/devices"] == 0
        assert sims.novacore.requests[RELEASED] == 0

        await sims.zaps[NEW].set_offline("online")

        async def released() -> bool:
            return _owner(sims, OLD) is None

        await cluster.wait_for(released, what=f"{OLD} released")
        assert reads.paths[f"/sites/{cabin}/devices"] >= 1, "read once the release is planned"
        assert sims.novacore.requests[RELEASED] == 1
