"""What an object's deletion reads of what it is about to say stays outside: the Novacore
site a Site leaves (`sites_kept`) and the Flatpeak locations no object of the namespace
remembers any more (`locations.left_behind`). The status names what the last reconcile
saw; one deleted by hand since would be named as staying. So each is read once more, one
call each (`GET /sites/{id}`, `GET /locations/{id}`), as the finalizer runs: one found is
said to stay, one the platform answers 404 for is gone and not named.

A read that fails (the platform does not answer, refuses the credentials, or none is set)
never holds the deletion: what the last reconcile saw is said, worded so, with why it was
not read. Nor is a location read that was found with another Flatpeak account than the
operator's now (`locations.accounts`): that account does not list it, as it does not list
a deleted one, so a 404 there says nothing of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.engine.config import Settings
from reconciler.engine.fanout import all_of, unexpected
from reconciler.engine.flatpeak import flatpeak_api
from reconciler.engine.host_waits import HostWaits
from reconciler.engine.plan_origin import flatpeak_account
from reconciler.engine.session import Session
from reconciler.errors import ProviderError
from reconciler.model.status import FlatpeakLocation
from reconciler.operator import locations, sites_kept

# What `_read` found: the object is there (None), gone, or not read (why, a string).
_GONE = "gone"


@dataclass
class Said:
    """What the deletion says: of the Flatpeak locations that stay, and of the Novacore
    site (`sites_kept.KEPT_REASON`, `locations.KEPT_REASON`)."""

    locations: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)


async def _read(call: Callable[[], Awaitable[Any]]) -> str | None:
    """None when the object was read, `_GONE` when the platform says it does not exist,
    else why it could not be read. A 404 under a base URL with a path (`url_setting` set)
    may be the path not found, not the object: not read."""
    try:
        await call()
    except ProviderError as error:
        if error.status == 404 and not error.url_setting:
            return _GONE
        return str(error)
    except Exception as error:  # a read must never hold the deletion
        return unexpected(error)
    return None


def _flatpeak_unread(settings: Settings, entry: FlatpeakLocation) -> str | None:
    """Why the location `entry` is not read with the operator's settings, or None."""
    if not settings.flatpeak_account_id or not settings.flatpeak_api_key:
        return "RECONCILER_FLATPEAK_ACCOUNT_ID or RECONCILER_FLATPEAK_API_KEY is not set"
    if entry.account_sha256 is not None and entry.account_sha256 != flatpeak_account(settings):
        return (
            "it was found with another Flatpeak account than RECONCILER_FLATPEAK_ACCOUNT_ID "
            "names now, which does not list it"
        )
    return None


async def said(
    settings: Settings,
    left: Sequence[FlatpeakLocation],
    site: sites_kept.KeptSite | None,
    waits: HostWaits | None = None,
) -> Said:
    """What to say of the locations `left` and the Novacore site `site` a deletion leaves:
    each read at once, those gone left out."""
    out = Said()
    if not left and site is None:
        return out
    session = Session(settings, waits=waits)
    try:

        async def location(entry: FlatpeakLocation) -> str | None:
            why = _flatpeak_unread(settings, entry)
            if why is not None:
                return why
            return await _read(lambda: flatpeak_api(session).get_location(entry.id))

        async def novacore(kept: sites_kept.KeptSite) -> str | None:
            if not settings.novacore_token:
                return "RECONCILER_NOVACORE_TOKEN is not set"
            return await _read(lambda: session.novacore.get_site(kept.site_id))

        found = await all_of(*(location(entry) for entry in left))
        for entry, why in zip(left, found, strict=True):
            if why != _GONE:
                out.locations.append(locations.kept_message(entry, why))
        if site is not None:
            why = await novacore(site)
            if why != _GONE:
                out.sites.append(sites_kept.kept_message(site, why))
    finally:
        await session.aclose()
    return out
