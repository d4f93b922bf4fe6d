"""Reconcile one custom resource with the engine: validate it in the context of its
namespace, observe and plan what it depends on, wait for dependencies that are not ready,
apply its own changes (or only report them in observe mode) and describe the outcome as
conditions, external ids and a plan summary. Kopf-free, so it is testable on its own; the
handlers turn `ObjectResult` into status, events and kopf retries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.engine import flatpeak_accounts, plan_origin
from reconciler.engine.apply import Outcome, apply_plan
from reconciler.engine.config import SecretResolver, Settings
from reconciler.engine.credentials import CredentialLedger, mqtt_passwords
from reconciler.engine.enapter import SECRET_STORE_KEY
from reconciler.engine.execute import Executors
from reconciler.engine.fanout import unless_stopped
from reconciler.engine.host_waits import HostWaits
from reconciler.engine.reconcile import Reconciler
from reconciler.engine.retry import RetryPolicy, honoured
from reconciler.engine.state import StateDirError
from reconciler.engine.unread import asked_to_wait
from reconciler.errors import ProviderAuthError
from reconciler.model import zap_endpoints
from reconciler.model.base import Resource
from reconciler.model.declared import declared_paths
from reconciler.model.fleet import DANGLING, Fleet
from reconciler.model.gateway import DeletionPolicy, Gateway
from reconciler.model.site import Site
from reconciler.model.status import (
    ClaimedGateway,
    DeviceGateway,
    FlatpeakLocation,
)
from reconciler.operator import declared, interrupted_deletes, locations, swaps, unmanaged
from reconciler.operator.applied_secrets import PasswordFingerprint
from reconciler.operator.conditions import Cond
from reconciler.operator.config import OperatorConfig
from reconciler.operator.holds import Hold, Holds, Owner
from reconciler.operator.leftovers import Leftovers
from reconciler.operator.objects import PAUSED_ANNOTATION, NamespaceFleet, closure, is_paused
from reconciler.operator.owner_locks import done_writing, owner_lock, writing_under
from reconciler.operator.wait_lines import waiting_message
from reconciler.plan import enapter_device_site
from reconciler.plan.actions import Action, Change, Reason
from reconciler.plan.advice import Audience
from reconciler.plan.novacore_claims import claim_org
from reconciler.plan.observed import Observed
from reconciler.plan.planner import Plan, PlanOptions, site_ids
from reconciler.plan.render import summary_line
from reconciler.printable import clipped_words


@dataclass
class ObjectResult:
    conditions: list[Cond] = field(default_factory=list)
    # status.externalIds; None removes an id (the status is merge-patched): the remembered
    # Novacore site of a Site that the reconcile's read found gone (`_external_ids`), the
    # Flatpeak location of a Site whose pinned `locationId` it found missing.
    external_ids: dict[str, str | None] = field(default_factory=dict)
    # Sites: status.flatpeakLocationNotFound, the location its spec pins that the read of
    # the account found missing, or None once found; empty: left as it is
    # (`locations.not_found_after`).
    location_not_found: dict[str, str | None] = field(default_factory=dict)
    plan_lines: list[str] = field(default_factory=list)
    summary: str = ""
    changes: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    retry: str | None = None  # None, "temporary" or "permanent"
    message: str = ""
    delay: float = 0.0
    applied_secrets: dict[str, Any] | None = None  # status.appliedSecrets of a Device
    gateway: dict[str, str] | None = None  # status.gateway of a Device
    # Why nothing was observed (reason, message): the conditions of what an earlier
    # reconcile observed (`conditions.OBSERVED`) become Unknown, not kept as they were.
    unobserved: tuple[str, str] | None = None
    claims: list[dict[str, str]] | None = None  # status.claims of a Gateway (`swaps`)
    # status.flatpeakLocations of a Device whose Site is on Flatpeak (`locations`).
    flatpeak_locations: list[dict[str, str]] | None = None
    # What is said once of gateways swapped out of a Gateway's spec and left claimed.
    kept: list[str] = field(default_factory=list)
    # What a Site's reconcile said of the deletes that finish an interrupted Enapter
    # replace it applied, the config file removed or not (`interrupted_deletes`): events.
    finished: interrupted_deletes.Finished = field(default_factory=interrupted_deletes.Finished)
    # What is said once, as a Warning, of the Flatpeak locations a Device's status
    # remembers from another account than the operator's (`locations.other_account`).
    other_account: list[str] = field(default_factory=list)
    # status.declaredFields, once the reconcile converged (`declared`).
    declared_fields: list[str] | None = None
    # What is said once of fields declared no more and left as they are (`declared.notes`).
    unmanaged_fields: list[str] = field(default_factory=list)
    # What the plan says of them, converged or not (`status.lastPlan.notes`): in observe
    # mode, with other changes pending, the reconcile never converges to say it once.
    plan_notes: list[str] = field(default_factory=list)
    # status.unmanaged: what the plan found under this object that nothing declares
    # (`unmanaged`); None when it reports none, or could not read where they are.
    unmanaged: list[dict[str, str]] | None = None
    # The object itself is being deleted (or is gone), or its spec changed since this
    # reconcile began: nothing was planned or written, and nothing is to be said of it (its
    # finalizer, or the reconcile of its new spec, speaks for it now).
    going: bool = False
    # Another reconcile of the owner held its lock longer than this one was to wait for it
    # (`lock_wait`): nothing was planned or written, nothing is to be said, and the reconcile
    # is tried again at once (`message` says what it waited for).
    busy: bool = False
    # The operator stopped (`stop`) before this reconcile wrote anything: nothing is to be
    # said of it either; the next reconcile of the object, by whichever process runs then,
    # plans and applies it anew.
    stopped: bool = False
    # The Ready condition is said as a Warning too (its reason and message), once per
    # problem: what the user must act on outside the object (a file of the state directory).
    warn: bool = False


def _password_key(fleet: Fleet, device: str) -> str | None:
    """The ledger key of `device` when it is sent an MQTT password."""
    return next((key for d, _, key in mqtt_passwords(fleet) if d.name == device), None)


def _reporting(nsf: NamespaceFleet) -> set[tuple[str, str]]:
    """The Sites and Gateways whose reconcile reports what it finds (`unmanaged`), as
    (kind, name): not refused, nor paused (neither is planned)."""
    return {
        (kind, name)
        for kind in ("Site", "Gateway")
        for name, resource in nsf.fleet.table(kind).items()
        if not nsf.refusal(kind, name)
        and not is_paused({"metadata": resource.metadata.model_dump(by_alias=True)})
    }


def _owner(kind: str, name: str, nsf: NamespaceFleet) -> tuple[str, str]:
    """Whose changes this object applies: a stand-alone DER's changes are its device's."""
    if kind == "DER":
        der = nsf.fleet.ders.get(name)
        if der is not None:
            return "Device", der.spec.device_ref
    return kind, name


def _line(change: Change) -> str:
    text = f"{change.action.symbol} {change.address} {change.action.value}"
    return text + (" [blocked]" if change.blocked else "")


async def reconcile_object(
    kind: str,
    name: str,
    namespace: str,
    nsf: NamespaceFleet,
    settings: Settings,
    config: OperatorConfig,
    secrets: SecretResolver,
    config_store: object | None = None,
    credentials: PasswordFingerprint | None = None,
    holds: Holds | None = None,
    claims: Sequence[ClaimedGateway] = (),
    declared_elsewhere: Mapping[str, str] | None = None,
    had: Sequence[FlatpeakLocation] = (),
    alive: Callable[[str, str], bool] | None = None,
    lock_wait: float | None = None,
    waits: HostWaits | None = None,
    release_under_way: Callable[[str, str], bool] | None = None,
    stop: asyncio.Event | None = None,
    gateways: unmanaged.Served | None = None,
    leftovers: Leftovers | None = None,
) -> ObjectResult:
    """Reconcile object `kind`/`name` of `nsf`. For a Gateway, `claims` are the gateways
    its status says it claimed, and `declared_elsewhere` the serials other Gateway objects
    of the cluster declare (`swaps`: a serial swapped out is released, or kept). For a
    Device, `had` are the Flatpeak locations its status says its Site had (`locations`).
    `alive(kind, name)`: whether that object of `nsf` is still there, not being deleted and
    with the spec this began with, asked of the owner before and once its lock is held
    (`owner_locks`). `lock_wait`: how long to wait for that lock, held by another reconcile
    of the owner, before giving up (`busy`); None waits until it is free. `waits`: the
    servers that asked every reconcile of the process to call them later (Retry-After).
    `release_under_way(kind, name)`: whether that object is being deleted now and its
    release may be under way (not between two attempts of a finalizer that could not
    release it); a Device (and a stand-alone DER of it) whose Gateway is, to be released,
    writes nothing under it, and waits. `stop`: once set (the operator stops), no change
    starts and the changes in flight finish, as for `reconciler apply` on SIGTERM
    (`engine.apply`); a reconcile that has not begun to apply yet plans and writes nothing
    (`stopped`). `gateways`: for a Site or a Gateway, the Gateway objects the operator serves,
    of every namespace, for the gateways claimed in its organisation that none declares
    (`unmanaged`). `leftovers`: the process's record of the namespaces whose temporary
    config files killed runs left it removed; None removes none."""
    refusal = nsf.refusal(kind, name)
    if refusal and not nsf.refusal_once_deleted(kind, name):
        # Refused only for what an object being deleted declares too (a rename): no change
        # of this one's spec is needed, only that one gone, which it takes over from then.
        return waiting_result(f"waiting: {refusal}", config.retry_delay)
    if refusal:
        return _not_planned("permanent", "InvalidSpec", refusal)
    waiting = [p for p in nsf.problems_of(kind, name) if p.code == DANGLING]
    if waiting:
        message = "waiting: " + "; ".join(p.message.split(";")[0] for p in waiting)
        return waiting_result(message, config.retry_delay)
    owner_kind, owner_name = _owner(kind, name, nsf)
    refused = [p for p in nsf.problems_of(owner_kind, owner_name) if p.code != DANGLING]
    if (owner_kind, owner_name) != (kind, name) and refused:
        # A stand-alone DER applies its device's changes: not those of a refused device.
        message = f"waiting: {owner_kind} {owner_name!r} is refused: {refused[0].message}"
        return waiting_result(message, config.retry_delay)
    owner_resource = nsf.fleet.table(owner_kind).get(owner_name)
    if (owner_kind, owner_name) != (kind, name) and owner_resource is not None and is_paused(
        {"metadata": owner_resource.metadata.model_dump(by_alias=True)}
    ):
        # Nor those of a paused one: pausing the Device pauses what is written for it.
        message = (f"waiting: {owner_kind} {owner_name!r} is paused (annotation "
                   f"{PAUSED_ANNOTATION})")
        return waiting_result(message, config.retry_delay)

    result = ObjectResult()
    resource = nsf.fleet.table(kind).get(name)
    if resource is None:  # pragma: no cover - build() puts every object in one of the two
        raise RuntimeError(f"{kind}/{name} is neither valid nor invalid: {nsf.invalid}")
    sub = closure(nsf.fleet, resource)
    if alive is not None and not alive(owner_kind, owner_name):
        # Not even the lock is taken: the owner's finalizer, or the reconcile of its new
        # spec, speaks for it now.
        return _going(kind, name, owner_kind, owner_name, config)
    gateway = _gateway_of(nsf, owner_kind, owner_name)
    if gateway is not None and _released(nsf, gateway, release_under_way):
        return _gateway_going(gateway, config)
    lock = owner_lock(namespace, owner_kind, owner_name)
    # Only a Device's own reconcile keeps its password's fingerprint (in its status): the
    # others compare with nothing and record nowhere.
    password_key = _password_key(sub, name) if kind == "Device" else None
    if not await _acquired(lock, lock_wait):
        return _busy(owner_kind, owner_name)
    # Read once the lock is held: the reconcile that held it before recorded the password
    # it sent (`applied_secrets`), which kopf's copy of the status may not show yet.
    ledger = (
        credentials.ledger(password_key)
        if credentials is not None and password_key
        else CredentialLedger()
    )
    async with _holding(lock, (namespace, owner_kind, owner_name)), Reconciler(
        sub, settings, secrets=secrets, credentials=ledger, waits=waits
    ) as reconciler:
        if alive is not None and not alive(owner_kind, owner_name):
            # Deleted while this reconcile waited for the lock: its finalizer ran meanwhile
            # or runs next, and what this would write would outlive what it releases. Or
            # changed: what this would write is what the new spec no longer asks for.
            return _going(kind, name, owner_kind, owner_name, config)
        if leftovers is not None and not config.observe_only:
            # Before anything is planned or written: a config file a killed run was writing
            # is written again by this reconcile, and its temporary file holds credentials.
            leftovers.clear(namespace, settings, nsf.fleet)
        if gateway is not None:
            # Its Gateway's finalizer waits for this reconcile's writes only if it began
            # before the finalizer looked for the Devices writing under it: one begun after
            # would provision in Novacore under a gateway released meanwhile (refused, and
            # held so once the Gateway is declared again). Said here, not read from the
            # Device's spec by the finalizer: the spec may name another gateway by then.
            # Decided, and said, with no await between: the finalizer looks once the
            # Gateway is being deleted.
            if _released(nsf, gateway, release_under_way):
                return _gateway_going(gateway, config)
            writing_under(namespace, owner_kind, owner_name, gateway)
        if config_store is not None:
            # Enapter configs for `configOutput.secretName` go to Secrets of this namespace.
            reconciler.session.extra[SECRET_STORE_KEY] = config_store
        # The whole namespace: a renamed Site is recognised by its gateways and devices
        # there, or by the site its status says it was applied to, and never takes over
        # the site of another Site. A Device placed last at
        # another Site than its gateway's now moved from there: that Site's Novacore
        # devices are read too, or the device would be planned as a new one, not moved;
        # by a stand-alone DER's reconcile as well, which applies its device's changes.
        last_site = nsf.last_sites.get(owner_name) if owner_kind == "Device" else None
        lookup: tuple[str, ...] = (
            (last_site,) if last_site is not None and last_site not in sub.sites else ()
        )
        swapped = (
            swaps.swapped_out(claims, resource.spec.zap.serial, declared_elsewhere or {})
            if isinstance(resource, Gateway) and resource.spec.zap is not None
            else swaps.SwappedOut()
        )
        # Their organisations' gateways are listed (`swaps.release_step` tells who holds
        # one now); the devices that could keep one from being released are read by the
        # engine only when its release is planned (`engine.release_reads`), every site of
        # the organisation, as for the CLI's.
        policies, orgs = swaps.inventory(swapped.release)
        releasing = (
            swaps.releasable(swapped, resource.spec.zap.serial, claims)
            if isinstance(resource, Gateway) and resource.spec.zap is not None
            else frozenset()
        )
        # The Flatpeak locations this namespace's Sites had, for a device to leave those
        # that are not its Site's now; asked only where a device is planned on Flatpeak
        # (the engine lists the locations for them otherwise: `engine.flatpeak`).
        on_flatpeak = owner_kind == "Device" and any(
            site.spec.flatpeak is not None for site in sub.sites.values()
        )
        # Only those found with the account of the settings are looked for (and forgotten
        # when gone): another account lists none of them, as none of a deleted location.
        account = plan_origin.flatpeak_account(settings)
        remembered = flatpeak_accounts.split(
            nsf.flatpeak_locations, nsf.flatpeak_location_accounts, account
        )
        try:
            planning = reconciler.plan(
                PlanOptions(
                    # Its advice said as the operator's user acts (`plan.advice`).
                    audience=Audience.OPERATOR,
                    flatpeak_locations=remembered.here if on_flatpeak else {},
                    whole_fleet=nsf.fleet,
                    lookup_sites=lookup,
                    applied_sites=nsf.applied_sites,
                    inventory=policies,
                    inventory_orgs=orgs,
                    release_serials=frozenset(releasing),
                    # The fields each object's status recorded (`declared`): one declared no
                    # more is set back to its default, or reported as no longer managed.
                    last_declared=nsf.last_declared,
                    # Where its status says its Enapter device is: one its Site's Enapter
                    # site lacks is looked for there, and replaced into the new one
                    # (`plan.enapter_left_devices`); a stand-alone DER's reconcile applies
                    # its device's changes, so it is asked too.
                    enapter_device_sites=(
                        {owner_name: (nsf.enapter_sites[owner_name],)}
                        if owner_kind == "Device" and owner_name in nsf.enapter_sites
                        else {}
                    ),
                    # And with what id: only that device is replaced from there.
                    enapter_device_ids=(
                        {owner_name: nsf.enapter_ids[("Device", owner_name)]}
                        if ("Device", owner_name) in nsf.enapter_ids
                        else {}
                    ),
                )
            )
            # A plan only reads: a stop abandons it at once (a gateway that does not answer
            # would hold the stop for its timeout), as the watch agent's.
            planned = await (planning if stop is None else unless_stopped(planning, stop))
        except ProviderAuthError as error:
            # A setting must change (a token rotated in its file is read again at the
            # next reconcile): said on the object and retried, not a traceback in the log.
            hint = settings.refused_hint(error, when="at the next reconcile")
            message = f"{error}; {hint}" if hint else str(error)
            return _not_planned("temporary", "AuthError", message, config.retry_delay)
        except StateDirError as error:
            # A file of the state directory that cannot be read (damaged, or not this
            # user's): nothing is planned or written, said on the object, not a traceback,
            # and read again at the next reconcile, as no spec change repairs it.
            return _not_planned(
                "temporary", STATE_UNREADABLE, _said(f"{error}{_READ_AGAIN}"),
                config.retry_delay,
            )
        if planned is None:
            return ObjectResult(stopped=True, summary="not reconciled: stopping")
        plan = planned.plan
        if on_flatpeak and kind == "Device":
            # Only the Device's own reconcile records, as it does its password's.
            result.flatpeak_locations = [
                entry.model_dump(by_alias=True, exclude_none=True)
                for entry in locations.current(
                    had, site_ids(plan.changes, "flatpeak"), plan.forget_locations, account
                )
            ]
            # With no account set none is read, and nothing is forgotten: no other account.
            said = locations.other_account(
                {e.id: e.site for e in had if e.id in remembered.elsewhere}
            ) if settings.flatpeak_account_id else None
            result.other_account = [said] if said else []
        own = [c for c in plan.changes if c.kind == owner_kind and c.name == owner_name]
        # The object's own changes, not the release of a serial swapped out: the record of
        # its fields waits for those, not for a release that waits for devices to move.
        settles = list(own)
        steps = _swap_steps(resource, own, swapped, releasing, plan, planned.observed)
        # The ids of this object's changes only: a serial released is not its own.
        result.external_ids = _external_ids(own)
        # Where an Enapter Device's device is, recorded before anything is applied: a
        # create that fails once Enapter made it (an answer lost) leaves its site behind,
        # for its release to find it by, its id never recorded (`enapter_device_site`).
        # The Device's own status only: a stand-alone DER's has no Enapter device.
        enapter_site = (
            enapter_device_site.device_site(own, plan.changes) if kind == "Device" else None
        )
        if enapter_site is not None:
            result.external_ids[enapter_device_site.KEY] = enapter_site
        if isinstance(resource, Site) and resource.spec.flatpeak is not None:
            pinned = resource.spec.flatpeak.location_id
            # A pinned location found with another account than the operator's now is not
            # looked for in this one: not finding it here says nothing of it.
            if pinned not in remembered.elsewhere:
                result.location_not_found = locations.not_found_after(pinned, own)
            if result.location_not_found.get(locations.NOT_FOUND):
                # The location it pins is not in the account: the Site has none there, and
                # its status claims no id (the one it had is gone, or is not its own now).
                result.external_ids["flatpeak"] = None
        own += [step.change for step in steps if step.change is not None]
        # A Site applies the deletes that finish an interrupted Enapter replace in its
        # site, which no Device object's reconcile does (`interrupted_deletes`).
        finishing = (
            interrupted_deletes.of_site(resource, nsf.fleet, plan.changes)
            if isinstance(resource, Site) else []
        )
        own += finishing
        pending_elsewhere = {c.address: c for c in plan.changes if c.is_change and c not in own}
        result.plan_lines = [_line(c) for c in own if c.is_change]
        result.plan_notes = declared.notes(plan.unmanaged, resource.address)
        result.unmanaged = unmanaged.found(
            resource, nsf.fleet, plan.unmanaged, planned.observed, own,
            plan.novacore_site_ids(), gateways, _reporting(nsf),
        )
        result.changes = len(result.plan_lines)
        result.summary = _summary(own)
        blockers = [
            pending_elsewhere[d]
            for c in own
            if c.is_change
            for d in c.depends_on
            if d in pending_elsewhere
        ]
        if blockers and not config.observe_only:
            result.retry, result.delay = "temporary", config.retry_delay
            result.message = f"waiting for {blockers[0].address} ({blockers[0].action.value})"
            if blockers[0].message:
                result.message += f": {blockers[0].message}"
            result.conditions = [
                Cond("Ready", False, "WaitingForDependency", result.message),
                Cond("Synced", False, "WaitingForDependency", result.message),
            ]
            return result
        owner: Owner = (namespace, owner_kind, owner_name)
        has_work = any(c.is_change for c in own)
        # The fingerprint matters only where there is something to write: an object in
        # sync (most drift checks) has any hold released without it.
        inputs = holds.inputs(sub, reconciler.secrets) if holds is not None and has_work else ""
        held = _current_hold(holds, owner, inputs, own)
        if config.observe_only or held is not None or not has_work:
            outcomes: list[Outcome] = []
        else:
            own_plan = Plan(changes=own, unmanaged=[], options=plan.options)
            executors = Executors(
                sub,
                reconciler.session,
                reconciler.secrets,
                None,
                plan.novacore_site_ids(),
                credentials=ledger,
                whole_fleet=nsf.fleet,
                audience=Audience.OPERATOR,
            )
            report = await apply_plan(
                own_plan, executors, policy=RetryPolicy(attempts=settings.retries), stop=stop
            )
            outcomes = interrupted_deletes.retried(finishing, report.outcomes)
            if holds is not None:
                _hold_if_permanent(holds, owner, inputs, outcomes)
        if not config.observe_only:
            reconciler.adopt_credentials(plan)
        if credentials is not None:
            result.applied_secrets = credentials.block(ledger, password_key)
    result.outcomes = outcomes
    if declared.converged(settles, outcomes):
        # Recorded, and what is left as it is said, once: the next reconcile compares with
        # this record and finds the field removed no more.
        result.declared_fields = sorted(declared_paths(resource.spec))
        result.unmanaged_fields = list(result.plan_notes)
    if kind == "Device":
        result.gateway = _device_gateway(resource, sub, own, outcomes)
    if isinstance(resource, Site):
        result.finished = interrupted_deletes.said(resource, finishing, outcomes)
    # The serial released, and the device an interrupted replace deleted, are not its own.
    releases = {s.change.address for s in steps if s.change is not None}
    releases |= {c.address for c in finishing}
    for outcome in outcomes:
        if outcome.address in releases:
            continue
        for key in ("id", "sn", "serial"):
            if outcome.status == "done" and outcome.detail.get(key):
                component = outcome.address.rsplit("[", 1)[-1].rstrip("]")
                result.external_ids[component] = str(outcome.detail[key])
    if kind == "DER" and "enapter" in result.external_ids:
        # A stand-alone DER is published by its Device's Novacore and Zap devices, whose ids
        # are its own too; the Device's Enapter device is not (None: an id a DER's status
        # recorded before is removed, the status being merge-patched).
        result.external_ids["enapter"] = None
    if kind == "Device":
        # Its device replaced from the Enapter site its Site was before: in its Site's now.
        done = {o.address for o in outcomes if o.status == "done"}
        replaced = enapter_device_site.replaced_into(own, plan.changes, done)
        if replaced is not None:
            result.external_ids[enapter_device_site.KEY] = replaced
    _describe(kind, own, outcomes, config, result, held, asked_to_wait(planned.observed))
    if isinstance(resource, Gateway) and resource.spec.zap is not None:
        _describe_swaps(resource, sub, own, outcomes, claims, swapped, steps, config, result)
    return result


def _swap_steps(
    resource: Resource,
    own: list[Change],
    swapped: swaps.SwappedOut,
    releasing: frozenset[str],
    plan: Plan,
    observed: Observed,
) -> list[swaps.Step]:
    """What this reconcile does with each serial a Gateway swapped out (`swaps`);
    `releasing`: those whose release was planned (`swaps.releasable`)."""
    if not isinstance(resource, Gateway) or resource.spec.zap is None:
        return []
    claim = next((c for c in own if c.component == "novacore"), None)
    claimed = claim is not None and claim.action is Action.NO_OP
    return [
        swaps.release_step(
            old, resource.spec.zap.serial, claimed, plan.changes, observed,
            planned=old.serial in releasing,
        )
        for old in swapped.release.values()
    ]


def _describe_swaps(
    gateway: Gateway,
    fleet: Fleet,
    own: list[Change],
    outcomes: list[Outcome],
    recorded: Sequence[ClaimedGateway],
    swapped: swaps.SwappedOut,
    steps: list[swaps.Step],
    config: OperatorConfig,
    result: ObjectResult,
) -> None:
    """`status.claims` and what is said of the serials swapped out: those left claimed once
    (events), those whose release waits on the Ready condition (retried meanwhile)."""
    zap = gateway.spec.zap
    assert zap is not None
    done = {o.address for o in outcomes if o.status == "done"}
    claim = next((c for c in own if c.component == "novacore" and c.name == gateway.name), None)
    now = None
    if claim is not None and not claim.blocked and (
        claim.action is Action.NO_OP or claim.address in done
    ):
        now = ClaimedGateway(
            serial=zap.serial,
            org_id=claim_org(gateway, fleet.sites.get(gateway.spec.site_ref or "")),
            deletion_policy=str(gateway.spec.deletion_policy),
        )
    waiting = [
        s for s in steps if not s.forget and (s.change is None or s.change.address not in done)
    ]
    result.kept = swapped.kept + [s.message for s in steps if s.forget]
    claims = swaps.current_claims(zap.serial, now, recorded, [s.claim for s in waiting])
    result.claims = [c.model_dump(by_alias=True) for c in claims]
    pending = [s for s in waiting if s.change is None]
    ready = next((c for c in result.conditions if c.type == "Ready"), None)
    if pending and not config.observe_only and ready is not None and ready.status:
        message = _said("; ".join(s.message for s in pending))
        result.conditions = [c for c in result.conditions if c.type != "Ready"]
        result.conditions.append(Cond("Ready", False, "ReleasePending", message))
        result.retry, result.delay, result.message = "temporary", config.retry_delay, message


# The reason of an object not planned for a file of the state directory that cannot be
# read, and what its message adds: what the operator does meanwhile.
STATE_UNREADABLE = "StateDirUnreadable"
_READ_AGAIN = (
    "; nothing is planned or written until it can be read: the next reconcile reads it again"
)


# Said of a permanent failure, whose writes are held back (`holds`) until what they are
# made from changes.
HELD_NOTE = (
    "not tried again until the spec of this object or of one it depends on, or a password "
    "it sends, changes (annotate the object to try again)"
)


def _failure_message(failed: list[Outcome]) -> str:
    message = clipped_words("; ".join(f"{o.address}: {o.message}" for o in failed))
    if any(not o.retryable for o in failed):
        return f"{message[:800]} — {HELD_NOTE}"
    return message[:1000]


def _said(text: str) -> str:
    """`text` for a condition, an Event and kopf's log, at most 1,000 characters: each
    word a page long (an id) cut first with its length said (`clipped_words`), where the
    cut at the end would leave its start alone, with no sign that it goes on."""
    return clipped_words(text)[:1000]


def _current_hold(
    holds: Holds | None, owner: Owner, inputs: str, own: list[Change]
) -> Hold | None:
    """The hold on the owner's writes from these inputs, if any; released when nothing is
    left to do (put right outside meanwhile)."""
    hold = holds.held(owner, inputs) if holds is not None else None
    if holds is not None and hold is not None and not any(c.is_change for c in own):
        holds.release(owner)
        return None
    return hold


def _hold_if_permanent(holds: Holds, owner: Owner, inputs: str, outcomes: list[Outcome]) -> None:
    """Hold the owner's writes after a failure retrying cannot cure; release them after an
    apply without one."""
    failed = [o for o in outcomes if o.status == "failed"]
    if any(not o.retryable for o in failed):
        holds.hold(owner, inputs, _failure_message(failed))
    else:
        holds.release(owner)


def _device_gateway(
    device: Resource, fleet: Fleet, own: list[Change], outcomes: list[Outcome]
) -> dict[str, str] | None:
    """`status.gateway` of a Device that is on its gateway now (found there, or added):
    where `deletionPolicy: Release` finds it should the Gateway object be deleted first."""
    gateway = fleet.gateways.get(getattr(device.spec, "gateway_ref", None) or "")
    zap = next((c for c in own if c.component == "zap"), None)
    if gateway is None or gateway.spec.zap is None or zap is None or zap.blocked:
        return None
    done = {o.address for o in outcomes if o.status == "done"}
    placed = zap.action in (Action.CREATE, Action.UPDATE, Action.REPLACE) and zap.address in done
    if zap.action is not Action.NO_OP and not placed:
        return None
    connection = getattr(device.spec, "connection", None)
    placement = DeviceGateway(
        name=gateway.name,
        serial=gateway.spec.zap.serial,
        url=str(gateway.spec.zap.url),
        site=gateway.spec.site_ref,
        # Found or added there with this spec: the endpoint it holds (`objects`).
        endpoint=zap_endpoints.of_connection(connection).described() if connection else None,
    )
    return placement.model_dump()


async def _acquired(lock: asyncio.Lock, wait: float | None) -> bool:
    """Whether `lock` was taken within `wait` seconds (None: however long it takes)."""
    try:
        async with asyncio.timeout(wait):
            await lock.acquire()
    except TimeoutError:
        return False
    return True


@contextlib.asynccontextmanager
async def _holding(lock: asyncio.Lock, owner: Owner) -> AsyncIterator[None]:
    """Release `lock`, the owner's, taken already, once the block ends: what the reconcile
    said it writes under goes with it (`owner_locks.writing_under`)."""
    try:
        yield
    finally:
        done_writing(*owner)
        lock.release()


def _gateway_of(nsf: NamespaceFleet, owner_kind: str, owner_name: str) -> str | None:
    """The Gateway an owner Device's spec names: its reconcile writes to that gateway's Zap
    and to Novacore under it."""
    device = nsf.fleet.devices.get(owner_name) if owner_kind == "Device" else None
    return device.spec.gateway_ref if device is not None else None


def _released(
    nsf: NamespaceFleet, gateway: str, under_way: Callable[[str, str], bool] | None
) -> bool:
    """Whether `gateway` is being deleted to be released from its organisation
    (deletionPolicy Release), and its release may be under way. One that stays claimed
    (Orphan) takes what is written under it as before: a Device moving onto its serial lets
    a serial swapped out of its spec, and its finalizer, go (`swaps`). One whose release
    is blocked, between two attempts, takes it too: what is written under it is planned
    from what is claimed now, and the next attempt waits for those writes."""
    resource = nsf.fleet.gateways.get(gateway)
    return (
        resource is not None
        and resource.spec.deletion_policy == DeletionPolicy.RELEASE
        and under_way is not None
        and under_way("Gateway", gateway)
    )


def _gateway_going(gateway: str, config: OperatorConfig) -> ObjectResult:
    """The result of a reconcile of a Device (or of a stand-alone DER of it) whose Gateway is
    being deleted, to be released: nothing is written under it, and it waits, as for a
    Gateway not declared (which it is once the finalizer is done), until it is declared
    again."""
    message = f"waiting: Gateway {gateway!r} is being deleted (deletionPolicy Release)"
    return waiting_result(message, config.retry_delay)


def _busy(owner_kind: str, owner_name: str) -> ObjectResult:
    """The result of a reconcile that did not get its owner's lock in time: another
    reconcile of the owner is writing, and this one is tried again."""
    message = waiting_message(owner_kind, owner_name)  # kopf says it at INFO (`wait_lines`)
    return ObjectResult(busy=True, summary="waiting for the lock", message=message)


def _going(
    kind: str, name: str, owner_kind: str, owner_name: str, config: OperatorConfig
) -> ObjectResult:
    """The result of a reconcile whose owner is being deleted, or was changed since it
    began: the object itself says nothing more; a stand-alone DER waits, as it does for a
    device not declared, and is planned again with its owner's new spec."""
    if (owner_kind, owner_name) == (kind, name):
        return ObjectResult(going=True, summary="being deleted, or changed")
    message = f"waiting: {owner_kind} {owner_name!r} is being deleted, or was changed"
    return waiting_result(message, config.retry_delay)


def waiting_result(message: str, delay: float) -> ObjectResult:
    """The result of an object not planned while it waits for another (`message` saying
    which and why), run again in `delay` seconds."""
    return _not_planned("temporary", "WaitingForDependency", message, delay)


def _not_planned(retry: str, reason: str, message: str, delay: float = 0.0) -> ObjectResult:
    """The result of an object that is not planned at all (its spec is invalid, what it
    depends on is not declared, a platform refused the credentials the plan reads with,
    or a file of the state directory cannot be read): no changes are known, and the
    summary says why."""
    why, unobserved = {
        "InvalidSpec": ("invalid spec", "the spec is invalid"),
        "AuthError": ("credentials refused", "the credentials are refused"),
        STATE_UNREADABLE: ("the state directory cannot be read",
                           "the state directory cannot be read"),
    }.get(reason, ("waiting for a dependency", "it waits for a dependency"))
    return ObjectResult(
        conditions=[Cond("Ready", False, reason, message), Cond("Synced", False, reason, message)],
        summary=f"not planned: {why}",
        retry=retry,
        message=message,
        delay=delay,
        unobserved=(reason, f"not observed while {unobserved}: {message}"),
        warn=reason == STATE_UNREADABLE,
    )


def _summary(changes: list[Change]) -> str:
    """What `changes` hold, counted per action and blocked as the CLI's plan summary
    counts them ("2 to create, 1 to update, 1 blocked"); "in sync" when nothing is to do."""
    if not any(c.is_change for c in changes):
        return "in sync"
    options = PlanOptions(audience=Audience.OPERATOR)
    return summary_line(Plan(changes=changes, unmanaged=[], options=options).summary())


def _external_ids(changes: list[Change]) -> dict[str, str | None]:
    """The ids the object's changes found. A Site whose Novacore site is to be created
    (`not_found`: its organisation's sites were read, and neither its `siteId`, its name
    nor the site its status remembers is among them, or that one is another Site's now)
    forgets the remembered one: it is gone from the Site, so the deletion of the Site says
    nothing of it (`sites_kept`), as the CLI's plans stop reporting a site deleted there.
    The create, once done, records the new one (`reconcile_object`)."""
    ids: dict[str, str | None] = {
        c.component: c.external_id for c in changes if c.external_id
    }
    for change in changes:
        if (
            change.kind == "Site"
            and change.component == "novacore"
            and change.action is Action.CREATE
            and change.reason is Reason.NOT_FOUND
        ):
            ids["novacore"] = None
    return ids


def _describe(
    kind: str,
    own: list[Change],
    outcomes: list[Outcome],
    config: OperatorConfig,
    result: ObjectResult,
    held: Hold | None = None,
    read_wait: float | None = None,
) -> None:
    """Conditions, message and retry of an object from its changes and their outcomes.
    `read_wait`: the Retry-After a server that could not be read asked for, longer than a
    run waits (`engine.unread.asked_to_wait`). The retry comes no sooner than a server
    asked to be called again, a failed change's or a read's, and a day later at most
    (`retry.honoured`): kopf would otherwise call a platform whose quota is spent every
    `retry_delay`."""
    pending = [c for c in own if c.is_change]
    by_address = {o.address: o for o in outcomes}
    failed = [o for o in outcomes if o.status == "failed"]
    deferred = [c for c in pending if c.action is Action.DEFER]
    blocked = [c for c in pending if c.blocked]
    done = [
        c for c in pending if by_address.get(c.address) and by_address[c.address].status == "done"
    ]
    remaining = [c for c in pending if c not in done]
    conds: list[Cond] = []
    if deferred:
        why = deferred[0].message
        conds.append(Cond("Reachable", False, "Unreachable", why))
    elif kind in ("Gateway", "Device"):
        conds.append(Cond("Reachable", True, "Observed", "gateway and clouds answered"))
    if kind == "Gateway":
        claim = next((c for c in own if c.component == "novacore"), None)
        if claim is not None:
            claimed = claim.action is Action.NO_OP or claim in done
            reason = (
                "Claimed" if claimed else ("TransferNotAllowed" if claim.blocked else "NotClaimed")
            )
            conds.append(Cond("Claimed", claimed, reason, claim.message or "claimed"))
    verify = next((c for c in own if c.component == "identity"), None)
    zap = next((c for c in own if c.component == "zap"), None)
    if verify is not None:
        ok = not verify.blocked and (verify in done)
        conds.append(
            Cond(
                "Verified",
                ok if verify.blocked or verify in done else None,
                "SerialMismatch" if verify.blocked else ("SerialMatches" if ok else "Pending"),
                verify.message,
            )
        )
    elif zap is not None and zap.action is Action.NO_OP:
        conds.append(
            Cond("Verified", True, "SerialMatches", "the gateway reports the declared hardwareId")
        )
    if failed:
        message = _failure_message(failed)
        # One failure retrying cannot cure holds the object's writes back (`holds`).
        retryable = all(o.retryable for o in failed)
        result.retry, result.message = ("temporary" if retryable else "permanent"), message
        result.delay = max([config.retry_delay,
                            *(honoured(o.retry_after or 0.0) for o in failed)])
        conds += [
            Cond("Synced", False, "ApplyFailed", message),
            Cond("Ready", False, "ApplyFailed", message),
        ]
    elif skipped := [o for o in outcomes if o.status == "skipped"]:
        # Without a failure, only a stop skips a change (`engine.apply`): the operator
        # stopped before it started. Not Ready: whichever process runs next applies it.
        message = _said(
            "the operator stopped before these changes started: "
            + "; ".join(f"{o.address}: {o.message}" for o in skipped)
        )
        result.retry, result.delay, result.message = "temporary", config.retry_delay, message
        conds += [
            Cond("Synced", False, "Interrupted", message),
            Cond("Ready", False, "Interrupted", message),
        ]
    elif blocked:
        message = _said("; ".join(f"{c.address}: {c.message}" for c in blocked))
        result.retry, result.message = "permanent", message
        conds += [
            Cond("Synced", False, "Blocked", message),
            Cond("Ready", False, "Blocked", message),
        ]
    elif deferred:
        result.retry, result.delay, result.message = (
            "temporary",
            max(config.retry_delay, honoured(read_wait or 0.0)),
            deferred[0].message,
        )
        conds += [
            Cond("Synced", False, "Deferred", deferred[0].message),
            Cond("Ready", False, "Deferred", deferred[0].message),
        ]
    elif held is not None:
        # The same condition as the failure's: nothing new to report.
        result.retry, result.message = "permanent", held.message
        conds += [
            Cond("Synced", False, "ApplyFailed", held.message),
            Cond("Ready", False, "ApplyFailed", held.message),
        ]
    elif config.observe_only and remaining:
        message = f"observe mode: {_summary(remaining)} not applied"
        conds += [
            Cond("Synced", True, "Observed", message),
            Cond("Ready", False, "ChangesPending", message),
        ]
    else:
        applied = f"applied {len(done)} change(s)" if done else "in sync"
        conds += [
            Cond("Synced", True, "Reconciled", applied),
            Cond("Ready", True, "Reconciled", applied),
        ]
    result.conditions = conds


def status_patch(result: ObjectResult, *, now: str) -> dict[str, Any]:
    """Status fields other than conditions (those are merged by the handler)."""
    patch: dict[str, Any] = {
        "externalIds": result.external_ids,
        "lastPlan": {
            "summary": result.summary,
            "changes": result.changes,
            "actions": result.plan_lines[:20],
            "notes": result.plan_notes[:20],
            "time": now,
        },
    }
    if result.applied_secrets is not None:
        patch["appliedSecrets"] = result.applied_secrets
    if result.gateway is not None:
        patch["gateway"] = result.gateway
    if result.claims is not None:
        patch[swaps.CLAIMS] = result.claims
    if result.flatpeak_locations is not None:
        patch[locations.LOCATIONS] = result.flatpeak_locations
    patch.update(result.location_not_found)
    if result.declared_fields is not None:
        patch[declared.DECLARED] = result.declared_fields
    if result.unmanaged is not None:
        patch[unmanaged.UNMANAGED] = unmanaged.block(result.unmanaged)
    return patch
