"""Flatpeak in the engine: its client on the session (logging in with the account's
credentials and refreshing the token), the observer (one `GET /locations` and one
`GET /devices` for the account, every page; no other call in a no-op plan), the listing of
the locations earlier applies left when no Site declares Flatpeak any more, and the
executors. `engine.platforms` registers them."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from reconciler.engine import execute
from reconciler.engine.execute import Executors
from reconciler.engine.fanout import both
from reconciler.engine.gather import Gather
from reconciler.engine.retry import RetryPolicy
from reconciler.engine.session import Session
from reconciler.errors import ProviderAuthError, ProviderRejected
from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.plan import flatpeak as flatpeak_plan
from reconciler.plan.actions import Action, Change
from reconciler.plan.flatpeak import FlatpeakState
from reconciler.plan.observed import Observed, Unreachable
from reconciler.providers.flatpeak import convert as flatpeak_convert
from reconciler.providers.flatpeak.client import FlatpeakAuth, FlatpeakClient

_FLATPEAK = "flatpeak"


def flatpeak_api(session: Session) -> FlatpeakClient:
    client = session.extra.get(_FLATPEAK)
    if not isinstance(client, FlatpeakClient):
        settings = session.settings
        auth = FlatpeakAuth(
            settings.flatpeak_url.rstrip("/") + "/login",
            settings.flatpeak_account_id,
            settings.flatpeak_api_key,
        )
        client = FlatpeakClient(session.http_client(settings.flatpeak_url, auth=auth,
                                                    url_setting="RECONCILER_FLATPEAK_URL"))
        session.extra[_FLATPEAK] = client
    return client


async def observe_flatpeak(
    fleet: Fleet, session: Session, observed: Observed, gather: Gather
) -> None:
    if not any(s.spec.flatpeak is not None for s in fleet.sites.values()):
        return
    settings = session.settings
    if not settings.flatpeak_account_id or not settings.flatpeak_api_key:
        gather.auth_errors.append(
            ProviderAuthError(
                "the fleet declares Flatpeak sites but RECONCILER_FLATPEAK_ACCOUNT_ID or "
                "RECONCILER_FLATPEAK_API_KEY is not set",
                operation="flatpeak.login",
            )
        )
        return
    client = flatpeak_api(session)
    locations, devices = await both(
        gather.read_as(client.list_locations, flatpeak_convert.locations),
        gather.read_as(client.list_devices, flatpeak_convert.devices),
    )
    observed.extra[_FLATPEAK] = FlatpeakState(locations=locations, devices=devices)


async def observe_remembered_locations(
    session: Session, observed: Observed, policy: RetryPolicy, remembered: Collection[str]
) -> None:
    """Put the locations earlier applies made or matched (`remembered`, from the inventory)
    on the state `observe_flatpeak` read, for the planner to tell them from other systems'
    (`FlatpeakState.remembered`).

    List the locations when there are some and `observe_flatpeak` read nothing, no declared
    Site having a `flatpeak` block any more: the last one removed, or its block, leaves its
    location in Flatpeak, and only the listing lets the plan report it
    (`plan.retired_locations`). Read for that report alone, a failure (rejected credentials
    included) reports nothing and stops nothing, and the devices are not read."""
    settings = session.settings
    state = observed.extra.get(_FLATPEAK)
    if isinstance(state, FlatpeakState):
        state.remembered = frozenset(remembered)
        return
    if not remembered:
        return
    if not settings.flatpeak_account_id or not settings.flatpeak_api_key:
        return
    client = flatpeak_api(session)
    locations = await Gather(policy).read_as(client.list_locations, flatpeak_convert.locations)
    if isinstance(locations, list):
        observed.extra[_FLATPEAK] = FlatpeakState(
            locations=locations,
            devices=Unreachable("not read: no Site declares Flatpeak"),
            remembered=frozenset(remembered),
        )


class _Ids:
    """Location ids an apply needs: found again with a fresh read when they were not
    created by this apply (a resumed run needs no local state), cached after."""

    def __init__(self) -> None:
        self.locations: dict[str, str] = {}  # Site name -> Flatpeak location id
        self.lock = asyncio.Lock()


def _ids(ctx: Executors) -> _Ids:
    ids = ctx.extra.get("flatpeak.ids")
    if not isinstance(ids, _Ids):
        ids = ctx.extra["flatpeak.ids"] = _Ids()
    return ids


async def _flatpeak_location_id(ctx: Executors, site: Site) -> str:
    assert site.spec.flatpeak is not None
    if site.spec.flatpeak.location_id is not None:
        return site.spec.flatpeak.location_id
    ids = _ids(ctx)
    async with ids.lock:
        if site.name not in ids.locations:
            found = await flatpeak_api(ctx.session).list_locations(reference_id=site.name)
            if not found:
                raise ProviderRejected(
                    f"the Flatpeak location of {site.name} does not exist (was it created?)",
                    address=f"site/{site.name}[flatpeak]",
                )
            ids.locations[site.name] = str(found[0]["id"])
    return ids.locations[site.name]


async def _flatpeak_site(ctx: Executors, change: Change) -> dict[str, Any]:
    site = ctx.fleet.sites[change.name]
    client = flatpeak_api(ctx.session)
    if change.action is Action.CREATE:
        # A location made since the plan, or by an attempt whose answer was lost, is adopted
        # (looked up by its reference id: one small read per location created).
        existing = await client.list_locations(reference_id=site.name)
        if existing:
            _ids(ctx).locations[site.name] = str(existing[0]["id"])
            return {"id": existing[0]["id"], "adopted": True}
        body = flatpeak_convert.location_create_body(change.after or {}, site.name)
        created = await ctx._write(
            change,
            "flatpeak.create_location",
            lambda: client.create_location(body, address=change.address),
        )
        _ids(ctx).locations[site.name] = str(created["id"])
        return {"id": created["id"]}
    location_id = change.external_id or ""
    update = flatpeak_convert.location_update_body(change.before or {}, change.after or {})
    if update:
        await ctx._write(
            change,
            "flatpeak.update_location",
            lambda: client.update_location(location_id, update, address=change.address),
        )
    return {"id": location_id}


async def _flatpeak_device(ctx: Executors, change: Change) -> dict[str, Any]:
    client = flatpeak_api(ctx.session)
    if change.action is Action.DELETE:
        device_id = change.external_id or ""
        await ctx._write(
            change,
            "flatpeak.delete_device",
            lambda: client.delete_device(device_id, address=change.address),
        )
        return {"id": device_id}
    device = ctx.fleet.devices[change.name]
    site = ctx.fleet.site_of_device(device)
    assert site is not None
    if change.action is Action.UPDATE:
        after = dict(change.after or {})
        placeholder = flatpeak_plan.location_to_create(site)
        if placeholder in after.get("locations", []):
            # Planned before the site's location existed: the one this apply created.
            location_id = await _flatpeak_location_id(ctx, site)
            after["locations"] = [
                location_id if loc == placeholder else loc for loc in after["locations"]
            ]
        return await _patch_flatpeak_device(
            ctx, change, change.external_id or "", change.before or {}, after
        )
    location_id = await _flatpeak_location_id(ctx, site)
    fields = flatpeak_plan.device_fields(device)
    # Flatpeak has no idempotency key: look for one an interrupted run created.
    existing = flatpeak_convert.devices(
        await client.list_devices(reference_id=fields["reference_id"])
    )
    if existing:
        found = existing[0]
        before = flatpeak_plan.observed_device_fields(found)
        # Not seen by the plan, the device's other locations are kept: this fleet's own
        # are planned off by the next plan, another system's are not ours to drop.
        locations = [*found.locations, *([] if location_id in found.locations else [location_id])]
        result = await _patch_flatpeak_device(
            ctx, change, found.id, before, fields | {"locations": locations}
        )
        return result | {"adopted": True}
    body = flatpeak_convert.device_create_body(fields, location_id)
    created = await ctx._write(
        change, "flatpeak.create_device", lambda: client.create_device(body, address=change.address)
    )
    return {"id": created["id"]}


async def _patch_flatpeak_device(
    ctx: Executors, change: Change, device_id: str, before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    body = flatpeak_plan.patch_body(before, after)
    if body:
        await ctx._write(
            change,
            "flatpeak.update_device",
            lambda: flatpeak_api(ctx.session).update_device(
                device_id, body, address=change.address
            ),
        )
    return {"id": device_id}


EXECUTORS: dict[tuple[str, str], execute.Executor] = {
    ("Site", "flatpeak"): _flatpeak_site,
    ("Device", "flatpeak"): _flatpeak_device,
}
