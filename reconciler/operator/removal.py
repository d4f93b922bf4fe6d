"""`deletionPolicy: Release` for an object being deleted (its finalizer): release the
gateway, or delete the device in Novacore and Enapter Cloud (found by its natural key,
whether or not its status recorded its id, with the config file written for it) and
remove it from its Zap, with the same engine as a reconcile. A Device is released even
when its Gateway object was deleted first, from where its status says it last was
(`status.gateway`, `status.externalIds`; an Enapter device, on no Zap, by the ids of
`status.externalIds` alone, or, its id not recorded, by its natural key in the Enapter
site its status recorded it in, or, recorded by an older operator, the one the ids its
Site's other objects, or the other Devices behind its Gateway once that is gone too,
recorded are in: `plan.enapter_witnesses`); when that is not known either, nothing is
dropped: the removal is blocked with a reason, and the finalizer stays until the user
decides. Credentials a platform refuses while the
release reads what to release stop it before anything is written, saying so. An object
deleted while its spec is invalid is released as the spec its status last recorded as
valid says (the handler chooses which spec). A Gateway deleted while a serial swapped out
of its spec still waits for its release (`status.claims`, `swaps`) releases that one too,
as recorded, once no Novacore device of its organisation is bound to it. A Gateway
released also takes off its Zap the copies of devices a Device of the namespace declares
behind another gateway now (`plan.removal.moved_copies`): a Device moved off it leaves
one, which the CLI reports and `apply --prune` removes, and the operator prunes nothing
else; when its Zap cannot be read, the gateway is released all the same, and `left`
says that such copies may stay on it. A copy goes only once its device is on the Zap of
its new gateway, read for it (`plan.removal.copy_waits`): until then, taken off, the device
would be on no Zap, so the copy and the gateway's release wait (`blocked`), retried; but
not for a new Gateway being deleted or gone, which will not get it: the copy stays on the
Zap, the gateway is released, and `left_copies` says which stay and why. A Device's
config Secret an earlier attempt left (its Enapter device deleted, the Secret's delete
failed) is deleted by the next attempt, which finds no Enapter device; one written for an
Enapter device still there (a `siteRef` change did not move it) is kept, said
(`left_secrets`).
A Device or Gateway whose device or gateway another object of the namespace declares too
(a rename, `plan.taken_over`) leaves it to that one: nothing of it is released, but for
a Device's config Secret the new one does not name, deleted once the new one's config
is written (`renamed_configs`; a config file such, the new one's reconcile removes). A Gateway's
serials swapped out of its spec are not that one's: they are released as recorded all
the same, and the finalizer waits for them before it says who took over (`taken_over`).
The other object is looked for as the release begins, again in kopf's live index once it
has read (one created meanwhile: nothing is released), and while it writes: the writes
sent land, no other is sent, and the other object makes again what was released
(`_stop_for_heir`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pydantic import ValidationError

from reconciler.engine.apply import Outcome, apply_plan
from reconciler.engine.config import SecretResolver, Settings
from reconciler.engine.enapter import SECRET_STORE_KEY, ConfigSecretStore
from reconciler.engine.enapter_by_id import observe_by_id, observe_site, read_by_id
from reconciler.engine.execute import Executors
from reconciler.engine.fanout import all_of, ended
from reconciler.engine.gather import Gather
from reconciler.engine.host_waits import HostWaits
from reconciler.engine.observe import confirm_zap_serial, observe, read_zap
from reconciler.engine.reconcile import Reconciler
from reconciler.engine.release_reads import read_org_devices
from reconciler.engine.retry import RetryPolicy, read_policy
from reconciler.engine.state import StateDirError
from reconciler.errors import ProviderAuthError
from reconciler.model.base import API_VERSION, Resource
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import DeletionPolicy, Gateway
from reconciler.model.kinds import KINDS
from reconciler.model.status import ClaimedGateway, DeviceGateway
from reconciler.operator import swaps
from reconciler.operator.left_secrets import KeptSecret, left_secret
from reconciler.operator.objects import NamespaceFleet, closure
from reconciler.operator.renamed_configs import config_left
from reconciler.plan import enapter_device_site, enapter_witnesses
from reconciler.plan.actions import Change
from reconciler.plan.advice import Audience
from reconciler.plan.observed import Observed
from reconciler.plan.planner import Plan, PlanOptions
from reconciler.plan.removal import (
    MovedCopy,
    behind_undeclared,
    copy_waits,
    left_on_zap,
    moved_away,
    moved_copy_removal,
    removal_changes,
)
from reconciler.plan.retired_gateways import unread_note
from reconciler.plan.taken_over import natural_key, taken_over_by
from reconciler.printable import echo

# What may take over what a Device or Gateway being deleted leaves (`plan.taken_over`).
Heir = TypeVar("Heir", Device, Gateway)

# The plans a removal applies speak to the operator's user (`plan.advice`).
_OPTIONS = PlanOptions(audience=Audience.OPERATOR)


@dataclass
class Removal:
    outcomes: list[Outcome] = field(default_factory=list)
    # Why the object cannot be released now, and what would let it be; "" when it can.
    blocked: str = ""
    # A platform refused the credentials (401/403) while what to release was read: which,
    # and what to do; nothing was written. "" when none was refused.
    refused: str = ""
    # A file of the state directory could not be read while what to release was read (a
    # damaged inventory): which, why and what to do; nothing was written. "" when read.
    unreadable: str = ""
    # What is said of serials swapped out of a Gateway's spec that stay claimed (events).
    kept: list[str] = field(default_factory=list)
    # What is said of a device or gateway left to another object that declares it (a
    # rename, `plan.taken_over`; an event); "" when it was released, or nothing declares it.
    taken_over: str = ""
    # The name of the object that takes it over (`taken_over`); "" when none does.
    heir: str = ""
    # The config Secret the heir deletes once it has written its own config
    # (`renamed_configs.ConfigLeft.handed`); "" when none is left to it.
    handed: str = ""
    # `taken_over` as said when the heir could not be told of `handed`.
    not_told: str = ""
    # What is said of a released Gateway's Zap that could not be read: copies of devices
    # moved to another gateway may stay on it (an event); "" when it was read.
    left: str = ""
    # What is said of each device left on a released Gateway's Zap as its new Gateway is
    # being deleted or gone (`MovedCopies.left_copies`; a Warning).
    left_copies: list[str] = field(default_factory=list)
    # What is said of a released Device's Enapter device that was not looked for, its Site
    # gone, its id and site not recorded, and no Enapter site said by the other objects of
    # its Site: it may be left in Enapter Cloud (a Warning); "" when it was looked for
    # (`plan.enapter_witnesses.unknown_device`).
    unknown: str = ""
    # What is said of a released Device's config Secret left as it is, written for an
    # Enapter device that is still there (`left_secrets.KeptSecret`; an event); "" when
    # none is.
    secret_kept: str = ""


async def remove_object(
    kind: str,
    name: str,
    nsf: NamespaceFleet,
    settings: Settings,
    secrets: SecretResolver,
    status: Mapping[str, Any] | None = None,
    claims: Iterable[ClaimedGateway] = (),
    declared_elsewhere: Mapping[str, str] | None = None,
    waits: HostWaits | None = None,
    stop: asyncio.Event | None = None,
    config_store: ConfigSecretStore | None = None,
    now: Callable[[], NamespaceFleet] | None = None,
    say: Callable[[str], None] | None = None,
) -> Removal:
    """Apply `deletionPolicy: Release` for a resource being deleted; nothing for Orphan.
    `status` is the object's status: where it was last found. A Gateway's `claims`
    (`status.claims`) are honoured too: a serial swapped out of its spec and waiting for
    its release is released as recorded, or kept when `declared_elsewhere` (serial ->
    Gateway object) says another object declares it (`swaps`). `waits`: the servers that
    asked the process to call them later (Retry-After). `stop`: once set (the operator
    stops), the writes in flight land and no other starts (`engine.admission`).
    `config_store`: where the config Secrets of the namespace are, for a released Device's
    to be deleted with its Enapter device (`engine.enapter`). `now`: the namespace as it
    is now (kopf's live index), looked at again for an heir before anything is written,
    and while it is; `say` is told when one appears then."""
    resource = nsf.fleet.table(kind).get(name)
    policy = getattr(resource.spec, "deletion_policy", None) if resource else None
    if isinstance(resource, Gateway):
        swapped = _swapped_out(resource, claims, declared_elsewhere or {})
        if swapped.release or swapped.kept:
            return await _remove_gateway(resource, nsf, settings, secrets, swapped, waits, stop)
    if resource is None or policy != DeletionPolicy.RELEASE:
        return Removal()
    if (kept := await _left_to_heir(resource, nsf, status, config_store, settings)) is not None:
        return kept
    status = status or {}
    external_ids: Mapping[str, Any] = status.get("externalIds") or {}
    fleet = nsf.fleet
    # An Enapter device is on no Zap (validation refuses one behind a Zap gateway): with its
    # Gateway gone there is nothing to remove it from, and its clouds' records go by the
    # ids its status recorded.
    if (
        isinstance(resource, Device)
        and resource.spec.enapter is None
        and _gateway_gone(resource, fleet)
    ):
        gateway = _last_gateway(resource, status.get("gateway"))
        if gateway is None:
            if not external_ids:
                return Removal()  # never found outside: nothing to release
            ref = resource.spec.gateway_ref
            return Removal(
                blocked=f"deletionPolicy Release: Gateway {ref} is deleted, and which gateway "
                "holds this device is not recorded in its status, so it cannot be removed "
                f"from it. Re-create Gateway {ref} (with deletionPolicy Orphan to leave the "
                "gateway itself as it is) to let the device be released"
            )
        fleet = Fleet.of([*fleet.resources(), gateway])
    if isinstance(resource, Gateway) and _site_gone(resource, fleet):
        site = _last_site(resource, claims)
        if site is None:
            return Removal()  # no claim of its serial recorded: never claimed by it
        fleet = Fleet.of([*fleet.resources(), site])
    sub = closure(fleet, resource)
    novacore_id = external_ids.get("novacore")
    enapter_id = external_ids.get("enapter")
    site_gone = (
        resource if isinstance(resource, Device) and resource.spec.enapter is not None
        and sub.site_of_device(resource) is None else None
    )
    by_id = [str(enapter_id)] if site_gone is not None and enapter_id else []
    # Its id not recorded either: the Enapter site its status recorded its device in says
    # where to look for it by its natural key; recorded by an older operator, which did not
    # record it, the ids the other objects of its Site (its Gateway gone too: the other
    # Devices behind it) recorded say it (`plan.enapter_witnesses`).
    recorded_site = external_ids.get(enapter_device_site.KEY)
    own_site = (
        str(recorded_site) if site_gone is not None and not enapter_id and recorded_site
        else None
    )
    witness_ids = (
        enapter_witnesses.witnesses(site_gone, fleet, nsf.enapter_ids)
        if site_gone is not None and not enapter_id and own_site is None else []
    )
    async with Reconciler(sub, settings, secrets=secrets, waits=waits) as reconciler:
        try:
            observed = await observe(
                sub, reconciler.session, read_policy(settings.retries),
                audience=Audience.OPERATOR,
            )
            if by_id or witness_ids:
                # Its Site gone, no Enapter site says where to look: read by the id its
                # status recorded, or by those of its Site's other objects, with the
                # devices of their site (`engine.enapter_by_id`).
                await observe_by_id(
                    reconciler.session, observed, read_policy(settings.retries),
                    by_id or witness_ids,
                )
            if own_site is not None:
                await observe_site(
                    reconciler.session, observed, read_policy(settings.retries), own_site
                )
        except ProviderAuthError as error:
            # A setting must change (a token rotated in its file is read again at the next
            # attempt): said on the object, not a traceback, and nothing released half-way.
            hint = settings.refused_hint(error, when="at the next attempt")
            return Removal(refused=f"{error}; {hint}" if hint else str(error))
        except StateDirError as error:
            # Its Enapter observer reads the inventory: said on the object, not a traceback.
            return Removal(unreadable=str(error))
        seen = (
            enapter_witnesses.own_site(own_site) if own_site is not None
            else enapter_witnesses.witnessed(observed, witness_ids)
            if site_gone is not None and not enapter_id else None
        )
        unknown = (
            enapter_witnesses.unknown_device(site_gone, seen, fleet)
            if site_gone is not None and seen is not None and seen.site_id is None
            and seen.unread is None else ""
        )
        changes = removal_changes(
            resource, sub, observed, novacore_id=str(novacore_id) if novacore_id else None,
            enapter_id=str(enapter_id) if enapter_id else None, witnessed=seen,
            others=_recorded_by_others(nsf, resource),
        )
        left = ""
        blocked = ""
        left_copies: list[str] = []
        if isinstance(resource, Gateway):
            moved = await _moved_copies(resource, nsf, observed, reconciler, settings)
            left, left_copies = moved.left, moved.left_copies
            blocked = _copies_blocked(moved.waiting)
            # While a copy waits, the gateway stays claimed: released, its Zap would be read
            # no more, and the copy never removed.
            changes = moved.removals if moved.waiting else changes + moved.removals
        # A config Secret an earlier attempt left, its Enapter device deleted (`left_secrets`).
        left_behind = (
            await left_secret(
                resource, sub, observed, changes, config_store,
                lambda device_id: read_by_id(
                    reconciler.session, read_policy(settings.retries), device_id),
            )
            if isinstance(resource, Device) else None
        )
        earlier = [left_behind] if isinstance(left_behind, Outcome) else []
        secret_kept = left_behind.message if isinstance(left_behind, KeptSecret) else ""
        if not changes:
            return Removal(earlier, blocked=blocked, left=left, left_copies=left_copies,
                           unknown=unknown, secret_kept=secret_kept)
        if now is not None:
            # An heir created while this release read (its reads retried, a server not
            # answering) takes over, as it would have had it been there as the release
            # began: nothing is released.
            later = await _left_to_heir(resource, now(), status, config_store, settings)
            if later is not None:
                return later
        if config_store is not None:
            reconciler.session.extra[SECRET_STORE_KEY] = config_store
        executors = Executors(
            sub, reconciler.session, reconciler.secrets, None, {}, audience=Audience.OPERATOR,
            # What the namespace declares once the object is gone: the config file only the
            # Device deleted names goes with its Enapter device (`engine.enapter_files`).
            whole_fleet=Fleet.of(r for r in nsf.fleet.resources() if r is not resource),
        )
        async with _stop_for_heir(resource, now, stop, say) as stopping:
            report = await apply_plan(
                Plan(changes=changes, unmanaged=[], options=_OPTIONS),
                executors,
                policy=RetryPolicy(attempts=settings.retries),
                stop=stopping.event,
            )
        if stopping.heir:
            # One created while it wrote, or by the time its writes ended: the writes sent
            # landed, the others are left to it, which makes again what was released.
            done = [o for o in report.outcomes if o.status == "done"]
            later = await _left_to_heir(resource, stopping.heir, status, config_store,
                                        settings, released=bool(done))
            if later is not None:
                # What is said of what stays (copies left on a Zap, a Secret kept...) holds
                # all the same.
                return replace(later, outcomes=earlier + done, left=left,
                               left_copies=left_copies, unknown=unknown,
                               secret_kept=secret_kept)
    blocked = "; ".join(b for b in (blocked, _held(report.outcomes)) if b)
    outcomes = earlier + report.outcomes
    return Removal(
        outcomes, blocked=blocked, left=left, left_copies=left_copies, unknown=unknown,
        secret_kept=secret_kept,
    )


# How often a release that writes looks for an heir created meanwhile: a rebuild of the
# namespace only when kopf's index changed (`namespace_fleets`).
HEIR_LOOK_EVERY = 0.5


@dataclass
class _Stopping:
    """The stop a release's writes are given: set when the operator stops, or when an heir
    appears (`heir`: the namespace it was found in)."""

    event: asyncio.Event | None
    heir: NamespaceFleet | None = None


@contextlib.asynccontextmanager
async def _stop_for_heir(
    resource: Resource,
    now: Callable[[], NamespaceFleet] | None,
    stop: asyncio.Event | None,
    say: Callable[[str], None] | None,
) -> AsyncIterator[_Stopping]:
    """While a release writes: a stop set once `stop` is, or once `now()` holds an heir of
    `resource` (told to `say`), so that its writes not yet sent are not
    (`engine.admission`): those sent land, the heir takes over the rest. Looked for once
    more as the writes end: one created since the last look takes over what is left (it
    waits for the object to be gone, `taken_over_from`, and is told to take over by its
    Kept event and annotation rather than left to find it released). With no `now`,
    `stop` alone."""
    if now is None:
        yield _Stopping(stop)
        return
    event = asyncio.Event()
    stopping = _Stopping(event)
    operator_stops = stop or asyncio.Event()

    async def look() -> None:
        while not operator_stops.is_set():
            nsf = now()
            if (heir := _heir(resource, nsf)) is not None:
                stopping.heir = nsf
                if say is not None:
                    say(f"{heir.KIND} {echo(heir.name)} declares it too and takes it over: "
                        "the release's writes not sent yet are left to it")
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(operator_stops.wait(), HEIR_LOOK_EVERY)
        event.set()

    looking = asyncio.create_task(look())
    try:
        yield stopping
    finally:
        looking.cancel()
        await ended(looking)
    if stopping.heir is None and _heir(resource, nsf := now()) is not None:
        stopping.heir = nsf


def _heir(resource: Resource, nsf: NamespaceFleet) -> Resource | None:
    """The Device or Gateway of `nsf` that takes over what `resource` declares (a rename:
    `plan.taken_over`); None when none does."""
    # The object as `nsf` holds it (taken_over_by tells it from the others by identity).
    resource = nsf.fleet.table(resource.KIND).get(resource.name) or resource
    if isinstance(resource, Device):
        return taken_over_by(
            resource, nsf.fleet, _by_name(nsf.fleet.devices), lambda d: _may_take_over(nsf, d)
        )
    if isinstance(resource, Gateway):
        return _gateway_heir(resource, nsf)
    return None


def taken_over_from(
    kind: str, name: str, nsf: NamespaceFleet, among: Collection[tuple[str, str]]
) -> tuple[str, str] | None:
    """The kind and name of the object of `among` (objects of `nsf` being deleted) whose
    device or gateway `kind`/`name` takes over (`_heir`: a rename); None when none is.
    While that one's release runs, it may still write to what it declares: the heir is to
    wait for it, as one told to take over waits (`takeovers.leaving`)."""
    if not among:
        return None  # the common case, every drift check of a namespace deleting nothing
    resource = nsf.fleet.table(kind).get(name)
    if not isinstance(resource, Device | Gateway):
        return None
    key = natural_key(resource, nsf.fleet)
    if key is None:
        return None
    for other_kind, other_name in sorted(among):
        other = nsf.fleet.table(other_kind).get(other_name) if other_kind == kind else None
        if (
            other is not None and other is not resource
            and isinstance(other, Device | Gateway) and natural_key(other, nsf.fleet) == key
            and _heir(other, nsf) is resource
        ):
            return (other_kind, other_name)
    return None


async def _left_to_heir(
    resource: Resource,
    nsf: NamespaceFleet,
    status: Mapping[str, Any] | None,
    config_store: ConfigSecretStore | None,
    settings: Settings,
    *,
    released: bool = False,
) -> Removal | None:
    """The Removal of a Device or Gateway whose device or gateway another object of `nsf`
    declares and takes over (a rename: `plan.taken_over`), nothing of it released, or only
    what the writes it had sent as the heir appeared released (`released`); None when none
    does."""
    heir = _heir(resource, nsf)
    if isinstance(heir, Device) and isinstance(resource, Device):
        # The config Secret it wrote that the heir does not name goes (`renamed_configs`).
        recorded = ((status or {}).get("externalIds") or {}).get("enapter")
        config = await config_left(
            resource, heir, config_store, str(recorded) if recorded else None, settings,
        )
        taken_over = (_taken_over_in_part(heir) if released
                      else _taken_over_message(resource, heir))
        return Removal(
            taken_over=taken_over + config.said, heir=heir.name,
            handed=config.handed, not_told=taken_over + config.unhanded,
        )
    if isinstance(heir, Gateway):
        taken_over = _taken_over_in_part(heir) if released else _gateway_taken_over_message(heir)
        return Removal(taken_over=taken_over, heir=heir.name)
    return None


def _taken_over_in_part(heir: Resource) -> str:
    """What a release says when `heir`, declaring what it releases, appeared while it
    wrote: the writes it had sent landed (each said in an event of its own, before this
    one), and the heir makes again what they released."""
    return (
        f"deletionPolicy Release: {heir.KIND} {echo(heir.name)}, created while the release "
        "wrote, declares it too and takes over what is left of it: the writes the release "
        "had sent land (the events before this one), no other is sent, and "
        f"{heir.KIND} {echo(heir.name)} makes again what they released"
    )


def _recorded_by_others(nsf: NamespaceFleet, resource: Resource) -> frozenset[str]:
    """The Enapter ids the namespace's objects but `resource` recorded as theirs: a device
    found by its natural key that is one of these is not its."""
    own = (resource.KIND, resource.name)
    return frozenset(i for key, i in nsf.enapter_ids.items() if key != own)


def _by_name(table: Mapping[str, Heir]) -> list[Heir]:
    """The objects of `table` (name -> object), by name: the first of two heirs takes over."""
    return [table[name] for name in sorted(table)]


def _may_take_over(nsf: NamespaceFleet, heir: Resource) -> bool:
    """Whether `heir` may take over what an object being deleted leaves (`plan.taken_over`):
    not being deleted itself (deleted together, neither keeps it for the other), and valid
    once the objects being deleted are gone. One refused for more would not take it over:
    what it declares would be left to nobody."""
    return (heir.kind, heir.name) not in nsf.deleting and not nsf.refusal_once_deleted(
        heir.kind, heir.name
    )


def _gateway_heir(gateway: Gateway, nsf: NamespaceFleet) -> Gateway | None:
    """The Gateway of the namespace that takes over the gateway of `gateway`, being
    released (a rename: `plan.taken_over`); None when none does."""
    return taken_over_by(
        gateway, nsf.fleet, _by_name(nsf.fleet.gateways), lambda g: _may_take_over(nsf, g)
    )


def _gateway_taken_over_message(heir: Gateway) -> str:
    """What the release of a Gateway says when `heir` declares its gateway (a rename)."""
    return (
        f"deletionPolicy Release: its gateway is not released: Gateway {echo(heir.name)} "
        "declares it too and takes it over, as it is, claimed, with the devices on its Zap"
    )


def _taken_over_message(device: Device, heir: Device) -> str:
    """What the release of `device` says when `heir` declares its device (a rename)."""
    spec = device.spec
    if spec.enapter is not None:
        where = "its Enapter device"
    else:
        where = (
            f"its device (hardwareId {echo(spec.hardware_id)} on Gateway "
            f"{echo(spec.gateway_ref)})"
        )
    return (
        f"deletionPolicy Release: {where} is not released: Device {echo(heir.name)} declares "
        "it too and takes it over, as it is, with its ids"
    )


def _held(outcomes: list[Outcome]) -> str:
    """`Removal.blocked` for changes the plan blocked (an Enapter device others run on),
    when nothing else failed: they wait for the user, not for a retry to pass; the changes
    held behind them are said with them. "" when none is blocked, or another failed (said
    as a failure)."""
    if not any(o.status == "blocked" for o in outcomes):
        return ""
    if any(o.status in ("failed", "skipped") for o in outcomes):
        return ""
    held = "; ".join(f"{o.address}: {o.message}" for o in outcomes if o.status != "done")
    return f"deletionPolicy Release: {held}"


@dataclass
class MovedCopies:
    """What the release of a Gateway does with the copies of devices moved off it."""

    # The removals from its Zap of the copies whose device is on its new gateway's Zap.
    removals: list[Change] = field(default_factory=list)
    # What is said of each copy whose device is not there yet: it stays, and so does the
    # gateway's claim, until the next attempt.
    waiting: list[str] = field(default_factory=list)
    # What is said when its Zap could not be read: copies may stay on it ("" when read).
    left: str = ""
    # What is said of each copy that stays on it, its device's new Gateway being deleted or
    # gone (`plan.removal.left_on_zap`).
    left_copies: list[str] = field(default_factory=list)


async def _moved_copies(
    gateway: Gateway, nsf: NamespaceFleet, observed: Observed, reconciler: Reconciler,
    settings: Settings,
) -> MovedCopies:
    """The removals from the Zap of `gateway`, released, of the copies of devices moved to
    another Gateway (`plan.removal.moved_copies`), those that wait, and what is said when
    they were not looked for (`left`). Its devices are taken for its own only once what
    answers at its URL reports its serial: another Zap there (a DHCP lease moved) holds
    devices declared on it, whose removal its serial would refuse at every attempt, holding
    the release back. A copy goes only once the Zap of its new gateway, read once for all
    its copies (and its serial confirmed, as this one's), holds the device: no change of
    the device is made here, so `copy_waits` is given none (`_new_zaps`).

    A copy whose device's new Gateway is being deleted, or is gone, does not wait: that
    Gateway will not get the device (its Device reconciles under it no more once it is
    gone), so the wait could last for ever, holding a release that the user asked for by
    deleting both. Nothing is lost by going ahead: the copy stays on this Zap, where it
    may be the device's only place (taken off, it could be on no Zap), and `left_copies`
    says so, as Kubernetes tools let a deletion through and say what it left behind
    rather than hold it on a condition nothing will meet. Being deleted counts as gone,
    so that of two Gateways deleted together, neither release waits on which finalizer
    runs first (a copy whose device is on that Zap already goes, as before)."""
    fleet = nsf.fleet
    gather = Gather(read_policy(settings.retries))
    undeclared = behind_undeclared(gateway, fleet, observed)
    if moved_away(gateway, fleet, observed) or undeclared:
        await confirm_zap_serial(reconciler.session, gather, gateway, observed)
    copies = moved_away(gateway, fleet, observed)
    await _new_zaps(copies, fleet, observed, reconciler, gather)
    moved = MovedCopies(left=unread_note(gateway, observed))
    for copy in copies:
        why = copy_waits(copy, (), observed)
        if why is None:
            moved.removals.append(moved_copy_removal(gateway, copy))
        elif ("Gateway", copy.to.gateway) in nsf.deleting:
            moved.left_copies.append(left_on_zap(gateway.name, copy, "being deleted"))
        else:
            moved.waiting.append(f"{copy.description(gateway.name)}: the copy on this one is {why}")
    # Read again: a Zap whose serial is not this gateway's holds none of its devices.
    for copy in behind_undeclared(gateway, fleet, observed):
        moved.left_copies.append(left_on_zap(gateway.name, copy, "deleted or not declared"))
    return moved


async def _new_zaps(
    copies: Iterable[MovedCopy], fleet: Fleet, observed: Observed, reconciler: Reconciler,
    gather: Gather,
) -> None:
    """Read into `observed` the Zap of each gateway a copy's device is declared on now,
    once each, and confirm its serial: what answers at its URL holding the device is the
    device on its new gateway only if it is that gateway's Zap."""
    names = dict.fromkeys(copy.to.gateway for copy in copies)
    gateways = [fleet.gateways[name] for name in names]

    async def read(new: Gateway) -> None:
        if await read_zap(reconciler.session, gather, new, observed) is not None:
            await confirm_zap_serial(reconciler.session, gather, new, observed)

    await all_of(*(read(new) for new in gateways))


def _copies_blocked(waiting: list[str]) -> str:
    """`Removal.blocked` for copies of moved devices waiting for them; "" when none waits."""
    if not waiting:
        return ""
    return (
        "deletionPolicy Release: waiting for a device moved off this gateway to be on its "
        "new one (taken off first, it would be on no Zap): " + "; ".join(waiting)
        + "; this gateway is released once the copies are removed"
    )


def _swapped_out(
    gateway: Gateway, claims: Iterable[ClaimedGateway], declared_elsewhere: Mapping[str, str]
) -> swaps.SwappedOut:
    zap = gateway.spec.zap
    return swaps.swapped_out(claims, zap.serial, declared_elsewhere) if zap else swaps.SwappedOut()


async def _remove_gateway(
    gateway: Gateway,
    nsf: NamespaceFleet,
    settings: Settings,
    secrets: SecretResolver,
    swapped: swaps.SwappedOut,
    waits: HostWaits | None = None,
    stop: asyncio.Event | None = None,
) -> Removal:
    """The deletion of a Gateway that still holds serials swapped out of its spec: its own
    serial as its deletionPolicy says, and each of those as recorded when it was claimed,
    once no device of its organisation is bound to it; the finalizer stays while one
    waits (`blocked` says why). Its own serial, with `deletionPolicy: Release`, is left to
    another Gateway of the namespace that declares it (a rename, `plan.taken_over`), as
    `remove_object` leaves it: neither released nor its Zap's copies taken off, since the
    heir takes it over as it is. The serials swapped out are not the heir's: they go as
    recorded all the same (or are kept, `swaps.swapped_out`), and what is said of the
    heir (`taken_over`) waits with the finalizer until they are done."""
    zap = gateway.spec.zap
    assert zap is not None
    releasing_own = gateway.spec.deletion_policy == DeletionPolicy.RELEASE
    heir = _gateway_heir(gateway, nsf) if releasing_own else None
    sub = closure(nsf.fleet, gateway)
    orgs = {claim.org_id for claim in swapped.release.values()}
    async with Reconciler(sub, settings, secrets=secrets, waits=waits) as reconciler:
        policy = read_policy(settings.retries)
        try:
            observed = await observe(
                sub, reconciler.session, policy, audience=Audience.OPERATOR, release_orgs=orgs
            )
            # Novacore names no device of a gateway: every site of its organisation is
            # read, for the serials whose release is planned, those still claimed where
            # they were (one claimed elsewhere or by nobody now is not released).
            releasing = {
                claim.org_id
                for claim in swapped.release.values()
                if swaps.ownership_step(claim, zap.serial, observed) is None
            }
            if releasing:
                await read_org_devices(reconciler.session, observed, policy, releasing)
        except ProviderAuthError as error:
            hint = settings.refused_hint(error, when="at the next attempt")
            return Removal(refused=f"{error}; {hint}" if hint else str(error))
        except StateDirError as error:
            return Removal(unreadable=str(error))
        own: list[Change] = []
        left = ""
        copies_waiting: list[str] = []
        left_copies: list[str] = []
        if releasing_own and heir is None:
            moved = await _moved_copies(gateway, nsf, observed, reconciler, settings)
            left, copies_waiting, left_copies = moved.left, moved.waiting, moved.left_copies
            # Its own serial stays claimed while a copy waits (`remove_object`).
            own = ([] if moved.waiting else removal_changes(gateway, sub, observed)) + (
                moved.removals
            )
        steps = [swaps.deletion_step(c, zap.serial, observed) for c in swapped.release.values()]
        changes = own + [s.change for s in steps if s.change is not None]
        waiting = [s.message for s in steps if s.change is None and not s.forget]
        kept = swapped.kept + [s.message for s in steps if s.forget]
        outcomes: list[Outcome] = []
        if changes:
            executors = Executors(
                sub, reconciler.session, reconciler.secrets, None, {},
                audience=Audience.OPERATOR,
            )
            report = await apply_plan(
                Plan(changes=changes, unmanaged=[], options=_OPTIONS),
                executors,
                policy=RetryPolicy(attempts=settings.retries),
                stop=stop,
            )
            outcomes = report.outcomes
    blocked = "; ".join(
        b for b in (_copies_blocked(copies_waiting),
                    "deletionPolicy Release: " + "; ".join(waiting) if waiting else "") if b
    )
    return Removal(
        outcomes, blocked=blocked, kept=kept, left=left, left_copies=left_copies,
        taken_over=_gateway_taken_over_message(heir) if heir is not None else "",
        heir=heir.name if heir is not None else "",
    )


def has_deletion_policy(kind: str) -> bool:
    """Whether objects of `kind` say in their spec what their deletion does outside."""
    spec = KINDS[kind].model_fields["spec"].annotation
    return "deletion_policy" in getattr(spec, "model_fields", {})


def _gateway_gone(device: Device, fleet: Fleet) -> bool:
    return bool(device.spec.gateway_ref) and device.spec.gateway_ref not in fleet.gateways


def _site_gone(gateway: Gateway, fleet: Fleet) -> bool:
    return bool(gateway.spec.site_ref) and gateway.spec.site_ref not in fleet.sites


def _last_site(gateway: Gateway, claims: Iterable[ClaimedGateway]) -> Resource | None:
    """For a Gateway whose Site went first (a namespace's deletion removes its objects in
    no order), a stand-in Site of the name it refers to, in the organisation its
    `status.claims` records its serial claimed into: it is only read, to find the gateway
    there and release it. None when no claim of its serial is recorded."""
    zap = gateway.spec.zap
    claim = next((c for c in claims if zap is not None and c.serial == zap.serial), None)
    if claim is None:
        return None
    return KINDS["Site"].model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "Site",
            "metadata": {"name": gateway.spec.site_ref},
            "spec": {
                "displayName": gateway.spec.site_ref,
                "timezone": "UTC",
                "novacore": {"orgId": claim.org_id},
            },
        }
    )


def _last_gateway(device: Device, recorded: object) -> Resource | None:
    """The gateway `status.gateway` says the device was last on, as a Gateway of the name
    the device refers to (deletion policy Orphan: it is only read); None when nothing
    usable is recorded."""
    try:
        last = DeviceGateway.model_validate(recorded)
        return Gateway.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": "Gateway",
                "metadata": {"name": device.spec.gateway_ref},
                "spec": {"siteRef": last.site, "zap": {"serial": last.serial, "url": last.url}},
            }
        )
    except ValidationError:
        return None
