"""The config Secret an earlier attempt of a Device's release left behind: its Enapter
device was deleted, then the delete of the Secret written for it failed for good within
that attempt (refused, as once `rbac.writeConfigSecrets` is turned off, or the API server
kept failing), and the release failed. The next attempt finds no Enapter device to delete
and plans nothing of Enapter: without this, it would finish, and the Secret, which holds
the deleted device's credentials, would stay without a word.

So an attempt that plans nothing of the Device's Enapter device looks at the Secret its
`configOutput.secretName` names: one the reconciler wrote (for this Device, or for the one
a rename took the device over from) for an Enapter device Enapter says is not there, is
deleted as the device's delete would have deleted it (`ConfigSecretStore.remove`: not one
another Device names now, and only as read). Whether
it is there is known from the devices read from the Device's Enapter site, where it may
be, or else from a read of that device by its id (`engine.enapter_by_id`): after a
`siteRef` change that did not move its Enapter device, the Secret holds the credentials of
a device in another site, which stays, and so does its Secret, said (`KeptSecret`: the
user may still want it, or may have forgotten that device). One that cannot be deleted
fails the attempt, saying so: the finalizer stays, and the next attempt tries again. What
could not be read is never taken for gone: the attempt then fails, saying so, and the next
one reads it again.

The Secret goes after its device, never before: deleted first, with the device's delete
then failing for good, it would leave a device in Enapter whose credentials nobody kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reconciler.engine.apply import Outcome
from reconciler.engine.enapter import ConfigSecretStore
from reconciler.errors import ProviderAuthError, ProviderError, ProviderUnavailable
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Change, address_of
from reconciler.plan.enapter_fields import COMPONENT
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterState
from reconciler.plan.enapter_sites import match_site
from reconciler.plan.observed import Observed, Unreachable


@dataclass(frozen=True)
class KeptSecret:
    """A config Secret left as it is, as its Device goes: the Enapter device it was written
    for is still there, and may still run with it (an event says so)."""

    message: str


async def left_secret(
    device: Device,
    fleet: Fleet,
    observed: Observed,
    changes: list[Change],
    store: ConfigSecretStore | None,
    read: Callable[[str], Awaitable[EnapterDeviceState | Unreachable | None]],
) -> Outcome | KeptSecret | None:
    """The delete of `device`'s config Secret left by an earlier attempt (done, or failed
    saying why); what is said of one kept, written for an Enapter device that is still
    there; or None when there is none, or `changes` hold its Enapter device's own (whose
    delete takes its Secret, or whose wait says why). `read`: an Enapter device by its
    id, None when Enapter says it is not there."""
    name = device.config_secret_name
    if store is None or name is None:
        return None
    if any(c.kind == "Device" and c.name == device.name and c.component == COMPONENT
           for c in changes):
        return None
    address = address_of("Device", device.name, COMPONENT)
    try:
        found = await store.find(device, name)
    except KeyError as exc:
        # Not known to be there or not: said, and the next attempt reads it again.
        return Outcome(address, "delete", "failed", retryable=True, message=(
            f"whether Secret {name} still holds the config of an Enapter device deleted by an "
            f"earlier attempt is not known: {exc.args[0]}"))
    gone = found.written_for
    # Written for this Device, or for the one it took the device over from (a rename,
    # `plan.taken_over`): the Enapter device it was written for decides, as for the delete.
    if not found.present or found.foreign or not gone:
        return None
    if gone in _read_ids(device, fleet, observed):
        # Still in its Site's Enapter site, though not this Device's by its natural key (a
        # hardwareId or slug changed since it was written).
        return _kept(name, gone, "in the Enapter site of its Site")
    state = observed.extra.get(COMPONENT)
    error: ProviderError | None = None
    if isinstance(state, EnapterState) and gone in state.by_id:
        there = state.by_id[gone]  # read by the id its status recorded, its Site gone
    else:
        try:
            there = await read(gone)
        except ProviderAuthError as exc:
            there, error = Unreachable(str(exc)), exc
    if isinstance(there, Unreachable):
        return Outcome(address, "delete", "failed", retryable=error is None, error=error,
                       message=(f"whether Enapter device {gone}, whose config Secret {name} "
                                f"holds, was deleted by an earlier attempt is not known: "
                                f"{there.reason}"))
    if there is not None:
        # In another site (its siteRef changed, its device not moved): its credentials stay.
        return _kept(name, gone, f"in Enapter site {there.site_id}, where this Device no "
                     "longer declares it (a siteRef change does not move a device)")
    earlier = f"Enapter device {gone} was deleted by an earlier attempt"
    try:
        said = await store.remove(device, name, gone)
    except ProviderError as exc:
        return Outcome(address, "delete", "failed", message=f"{earlier}, but {exc}",
                       retryable=isinstance(exc, ProviderUnavailable), error=exc)
    if said is None:
        return None  # deleted meanwhile (by hand, or by another attempt)
    return Outcome(address, "delete", "done", message=earlier,
                   detail={"config_secret": said})


def _kept(name: str, device_id: str, where: str) -> KeptSecret:
    return KeptSecret(
        f"config Secret {name}, written for Enapter device {device_id}, is left as it "
        f"is: that device is still in Enapter Cloud, {where}, and may still run with it; "
        "delete that device in Enapter Cloud, then the Secret, once nothing uses them"
    )


def _read_ids(device: Device, fleet: Fleet, observed: Observed) -> set[str]:
    """The ids of the Enapter devices read from `device`'s Enapter site; none when they
    were not read (or it has no such site found)."""
    site = fleet.site_of_device(device)
    state = observed.extra.get(COMPONENT)
    if site is None or site.spec.enapter is None or not isinstance(state, EnapterState):
        return set()
    if not isinstance(state.sites, list):
        return set()
    remote = match_site(site, state.sites)
    devices = state.devices.get(remote.id) if remote is not None else None
    return {d.id for d in devices} if isinstance(devices, list) else set()
