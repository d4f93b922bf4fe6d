"""What a Device's status remembers of the Flatpeak locations its Site had
(`status.flatpeakLocations`): the memory the CLI keeps in the state directory's inventory
of the locations its applies made or matched (`FlatpeakState.remembered`). A Site renamed
gets a new location (found by the Site's name), and one given another `locationId` moves
to it; its devices then leave the old one, which the fleet made or matched, and keep the
locations no Site of the fleet had (another system's). A renamed Site is a new object, so
the memory is kept by the Devices, which live on; every Device's counts for the whole
namespace, as the inventory does for the whole fleet. Pure: `reconcile.py` plans and
records.

The CLI reports a location its inventory remembers and no declared Site has any more, at
every plan, until it is deleted in Flatpeak or declared again (`plan.retired_locations`).
The operator's memory of it goes with the last object that holds it: a Device (its
`status.flatpeakLocations`) or a Site (the location in its `status.externalIds`). So, as
a Gateway deleted says once which gateway stays claimed, the deletion of the last object
of the namespace that remembers a location says once, by an event, that the location
stays in Flatpeak (`left_behind`). A Site remembers the locations it had too, its own last
(its `status.flatpeakLocations`, `left_by_site`): given another `locationId`, its status
names the new location (or none, when it does not exist), and with no Device to remember
the old one its deletion would say nothing of it. A Site's reconcile that reads the
account without the location its `locationId` pins records it as not found
(`status.flatpeakLocationNotFound`, `not_found_after`): the Site then remembers it no more
(`known`), as a Device forgets a location gone from the account (`current`). A location
to be created by the Site's name (the Site renamed) says nothing of the one the Site had:
that one still exists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from reconciler.model.status import FlatpeakLocation
from reconciler.plan.actions import Action, Change, Reason

# The status field (`model.status.ResourceStatus.flatpeak_locations`).
LOCATIONS = "flatpeakLocations"
# How many a Device keeps: a location gone from the account is forgotten anyway, and a
# Site renamed again and again should not grow the status without end.
LIMIT = 10


def recorded(status: Mapping[str, Any] | None) -> list[FlatpeakLocation]:
    """The locations a status records; an entry that does not parse is skipped (it names
    nothing a device could be moved off safely)."""
    entries = (status or {}).get(LOCATIONS)
    found: list[FlatpeakLocation] = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            found.append(FlatpeakLocation.model_validate(entry))
        except ValidationError:
            continue
    return found


def remembered(entries: Iterable[FlatpeakLocation]) -> dict[str, str]:
    """Location id -> the Site it was the location of (`PlanOptions.flatpeak_locations`);
    of two Devices naming one location, the first."""
    out: dict[str, str] = {}
    for entry in entries:
        out.setdefault(entry.id, entry.site)
    return out


def accounts(entries: Iterable[FlatpeakLocation]) -> dict[str, str]:
    """Location id -> the fingerprint of the Flatpeak account it was found in, where
    recorded: of the entry `remembered` takes. A location is listed by its own account
    only, so one of another account than the operator's now is neither looked for nor
    forgotten (`engine.flatpeak_accounts`, as the CLI's inventory does)."""
    first: dict[str, FlatpeakLocation] = {}
    for entry in entries:
        first.setdefault(entry.id, entry)
    return {
        location_id: entry.account_sha256
        for location_id, entry in first.items()
        if entry.account_sha256 is not None
    }


# The event that says a Device's status remembers locations of another Flatpeak account.
OTHER_ACCOUNT_REASON = "FlatpeakLocationsOfAnotherAccount"
# The most locations the event names; the rest are counted.
_NAMED = 3


def other_account(elsewhere: Mapping[str, str]) -> str | None:
    """What a Device's reconcile says of the locations its status remembers that were found
    with another Flatpeak account than the operator's now (`elsewhere`, location id ->
    Site), or None when there are none."""
    if not elsewhere:
        return None
    items = sorted(elsewhere.items())
    named = ", ".join(f"{location_id} (Site {site})" for location_id, site in items[:_NAMED])
    more = f" and {len(items) - _NAMED} more" if len(items) > _NAMED else ""
    one = len(items) == 1
    return (
        f"this Device's status.{LOCATIONS} remembers {len(items)} Flatpeak "
        f"location{'' if one else 's'} found with another Flatpeak account than "
        f"RECONCILER_FLATPEAK_ACCOUNT_ID names now: {named}{more}; "
        f"{'it is' if one else 'they are'} not looked for in this account, nor forgotten, "
        "while the Site's location is found, or created, in this account. Set "
        "RECONCILER_FLATPEAK_ACCOUNT_ID and RECONCILER_FLATPEAK_API_KEY (the chart's "
        "credentials.keys.flatpeakAccountId and flatpeakApiKey) to the account "
        f"{'it was' if one else 'they were'} found with, or delete "
        f"{'it' if one else 'them'} there"
    )


# The event that says, as an object goes, which Flatpeak location no object remembers now.
KEPT_REASON = "FlatpeakLocationKept"


def known(body: Mapping[str, Any]) -> list[FlatpeakLocation]:
    """The Flatpeak locations an object (a body, or its index document) remembers: a
    Device's `status.flatpeakLocations`, a Site's location (`status.externalIds.flatpeak`,
    or the `locationId` its spec declares), unless its last reconcile found that location
    missing from the account (`not_found`)."""
    # The locations it had and has, with the account each was found in: a Device's, and a
    # Site's (`left_by_site`). An index document holds them at its top level.
    had = recorded(body.get("status")) if LOCATIONS not in body else recorded(body)
    if body.get("kind") == "Device":
        return had
    if body.get("kind") != "Site":
        return []
    name = str((body.get("metadata") or {}).get("name"))
    ids = (body.get("status") or {}).get("externalIds")
    spec = (body.get("spec") or {}).get("flatpeak")
    found = [
        ids.get("flatpeak") if isinstance(ids, Mapping) else None,
        spec.get("locationId") if isinstance(spec, Mapping) else None,
        body.get(SITE_LOCATION),
    ]
    gone = not_found(body)
    had_ids = {entry.id for entry in had}
    return [
        entry for entry in had if entry.id != gone
    ] + [
        FlatpeakLocation(id=location_id, site=name)
        for location_id in dict.fromkeys(found)
        if isinstance(location_id, str) and location_id and location_id != gone
        and location_id not in had_ids
    ]


def left_by_site(
    name: str,
    status: Mapping[str, Any],
    external_ids: Mapping[str, str | None],
    not_found_now: Mapping[str, str | None],
    accounts: Mapping[str, str],
    account: str | None,
) -> list[dict[str, str]] | None:
    """A Site's `status.flatpeakLocations` after its reconcile, or None when unchanged: the
    locations it had, and its own now (`externalIds`) last, each with the fingerprint of
    the account it was found in. A reconcile that finds another location (the Site given
    another `locationId`, or a location made by its name) or none (the `locationId` it
    pins now is not in the account) writes that one over `externalIds`, and the Site would
    forget the location it leaves in Flatpeak, which its Devices remember only while they
    are there: so it is kept here, and its deletion says that it stays (`left_behind`), as
    the CLI's inventory reports it. The location it has now is found with the operator's
    `account`; one it had, with the account the namespace's objects recorded (`accounts`),
    else that one. Not the location its pin found missing (`not_found_now`: gone). A
    reconcile that found nothing of its location (not read, or a create not done)
    changes nothing."""
    if "flatpeak" not in external_ids:
        return None
    now = external_ids["flatpeak"]
    gone = not_found_now.get(NOT_FOUND)
    had = recorded(status)
    ids = status.get("externalIds")
    was = ids.get("flatpeak") if isinstance(ids, Mapping) else None
    entries = [entry for entry in had if entry.id not in (now, gone)]
    if (
        isinstance(was, str) and was and was not in (now, gone)
        and all(entry.id != was for entry in entries)
    ):
        entries.append(
            FlatpeakLocation(id=was, site=name, account_sha256=accounts.get(was, account))
        )
    if now:
        entries.append(FlatpeakLocation(id=now, site=name, account_sha256=account))
    entries = entries[-LIMIT:]
    if entries == had:
        return None
    return [entry.model_dump(by_alias=True, exclude_none=True) for entry in entries]


# In a Site's index document: the Flatpeak location its status records.
SITE_LOCATION = "flatpeakLocation"
# The status field (`ResourceStatus.flatpeak_location_not_found`), and its key in a Site's
# index document.
NOT_FOUND = "flatpeakLocationNotFound"


def not_found(body: Mapping[str, Any]) -> str | None:
    """The location a Site's spec pins (`locationId`) that its last reconcile found
    missing from the account, as its status records it (or its index document keeps it)."""
    gone = body[NOT_FOUND] if NOT_FOUND in body else (body.get("status") or {}).get(NOT_FOUND)
    return gone if isinstance(gone, str) and gone else None


def not_found_after(pinned: str | None, changes: Iterable[Change]) -> dict[str, str | None]:
    """What a Site's reconcile writes of `NOT_FOUND` (merge-patched: None removes it), from
    its own `changes`: the `locationId` the spec pins (`pinned`) when the read of the
    account found no such location (the Site's Flatpeak location planned as created, not
    found: blocked, as a pinned location is never created); nothing once the location was
    found. A create by the Site's name (no pin: the Site renamed, or its location's
    reference id changed there) says nothing of the location the status remembers, which
    may well exist; a reconcile that could not read the account (deferred) leaves the
    record as it is."""
    for change in changes:
        if change.kind != "Site" or change.component != "flatpeak":
            continue
        if change.action is Action.CREATE and change.reason is Reason.NOT_FOUND:
            return {NOT_FOUND: pinned} if pinned else {}
        if change.external_id:
            return {NOT_FOUND: None}
    return {}


def left_behind(
    going: Mapping[str, Any], staying: Iterable[Mapping[str, Any]]
) -> list[FlatpeakLocation]:
    """The Flatpeak locations the object `going`, being deleted, remembers (`known`) that
    none of the objects `staying` (the namespace's others, not being deleted) remembers:
    each stays in Flatpeak, with any device on it, and would no longer be reported
    anywhere (`kept_message`), unless it was deleted there since the last reconcile
    (`operator.kept_reads` reads it)."""
    kept = {entry.id for body in staying for entry in known(body)}
    left: list[FlatpeakLocation] = []
    for entry in known(going):
        if entry.id not in kept:
            kept.add(entry.id)
            left.append(entry)
    return left


def kept_message(entry: FlatpeakLocation, unread: str | None = None) -> str:
    """What is said of a location `left_behind`: read as the object goes, that it stays;
    when it could not be read (`unread` says why), what the last reconcile saw."""
    where = f"Flatpeak location {entry.id}, applied for Site {entry.site},"
    rest = (
        "and no object of this namespace remembers it any more: delete it there if it is "
        "not used, or declare a Site with its locationId to manage it again"
    )
    if unread is None:
        return (
            f"{where} stays in Flatpeak with any device on it (locations are never "
            f"deleted), {rest}"
        )
    return (
        f"{where} was in Flatpeak when last found, and could not be read now "
        f"({unread}): unless it was deleted there since, it stays with any device on it "
        f"(locations are never deleted), {rest}"
    )


def current(
    recorded: Iterable[FlatpeakLocation],
    found: Mapping[str, str],
    forget: Iterable[str],
    account: str | None = None,
) -> list[FlatpeakLocation]:
    """A Device's `status.flatpeakLocations` after a plan: those recorded, less the ones
    gone from the account (`forget`, `Plan.forget_locations`; those of another account
    are not looked for, so never among them), then its Site's location as `found` (Site
    name -> location id) by this plan, with the fingerprint of the `account` it was found
    with, last; the latest `LIMIT`."""
    gone = set(forget)
    now = [
        FlatpeakLocation(id=location_id, site=site, account_sha256=account)
        for site, location_id in found.items()
    ]
    fresh = {entry.id for entry in now}
    kept = [e for e in recorded if e.id not in gone and e.id not in fresh]
    return (kept + now)[-LIMIT:]
