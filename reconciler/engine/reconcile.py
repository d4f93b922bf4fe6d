"""observe → plan → apply, as one facade for the CLI, the watch agent and the operator."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import hashlib
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.engine import enapter_files, flatpeak_accounts, plan_origin
from reconciler.engine import platforms as _platforms  # noqa: F401 - registers Enapter, Flatpeak
from reconciler.engine.apply import ApplyReport, Progress, apply_plan
from reconciler.engine.config import SecretResolver, Settings
from reconciler.engine.credentials import CredentialLedger, mqtt_passwords
from reconciler.engine.enapter import observe_remembered_enapter_sites
from reconciler.engine.enapter_left import observe_left_devices
from reconciler.engine.execute import Executors
from reconciler.engine.flatpeak import observe_remembered_locations
from reconciler.engine.host_waits import HostWaits
from reconciler.engine.observe import observe
from reconciler.engine.release_reads import read_org_devices, releasing_orgs
from reconciler.engine.retry import RetryPolicy, read_policy
from reconciler.engine.session import Session, TransportFactory
from reconciler.engine.state import Inventory, StateDir, StateDirError
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import DeletionPolicy
from reconciler.plan import document, enapter_left_devices
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.novacore_claims import claim_org
from reconciler.plan.observed import Observed
from reconciler.plan.planner import Plan, PlanBuilder, PlanOptions, make_plan, site_ids
from reconciler.plan.retired import RetiredSite
from reconciler.plan.retired_gateways import RememberedZap, retired_gateways

_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """What `json` cannot encode by itself: a dataclass as a shallow dict of its fields (json
    recurses into the values), a set sorted, anything else as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS.get(type(value))
        if names is None:
            names = _FIELDS[type(value)] = tuple(f.name for f in dataclasses.fields(value))
        return {name: getattr(value, name) for name in names}
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    return str(value)


def observed_fingerprint(observed: Observed) -> str:
    """Stable hash of the observed state, to detect that reality moved under a saved plan.

    Encoded in one pass: `dataclasses.asdict` deep-copies every record first, which cost
    seconds of CPU per plan for a fleet of 1,000 sites."""
    text = json.dumps(observed, default=_plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.contextmanager
def collector_paused(*, freeze_survivors: bool = False) -> Iterator[None]:
    """Pause CPython's cyclic garbage collector for one plan (as the loader does for one
    load). A plan allocates hundreds of thousands of objects, which triggers full
    collections, and each rescans the whole desired fleet: for 1,000 sites that was a
    third of the plan's CPU. What a plan discards is freed by reference counting; the few
    cycles (asyncio internals) wait for the collector, which resumes right after.

    Its first pass would scan everything the plan leaves alive (100,000 objects for 1,000
    sites: 0.1 s). `freeze_survivors` moves them out of its sight instead (`gc.freeze`),
    for a process that exits after this run (`reconciler plan`, `apply`): they live until
    then anyway, and a few cycles among them are freed at exit rather than collected. Not
    for the watch agent or the operator, which plan again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze_survivors:
            gc.freeze()
        if was_enabled:
            gc.enable()


def desired_fingerprint(fleet: Fleet) -> str:
    """Stable hash of the desired state (every resource as pydantic serialises it, in
    order). `model_dump_json` runs in pydantic-core: ten times faster than dumping to
    Python and encoding again, which took most of a second for 1,000 sites."""
    digest = hashlib.sha256()
    for resource in fleet.resources():
        digest.update(resource.model_dump_json(by_alias=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


class NotRecorded(StateDirError):
    """An apply whose changes were made (`report` says which, and what failed) and whose
    record in the state directory could not be written after them (the message names the
    file and why)."""

    def __init__(self, message: str, report: ApplyReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(repr=False)
class PlanResult:
    plan: Plan
    observed: Observed
    fleet: Fleet
    paths: list[str]
    # Where it was made (`engine.plan_origin`): for `apply PLANFILE` to check.
    endpoints: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    # The state directory it was made with (as the settings name it): `apply PLANFILE`
    # uses no other.
    state_dir: str = ""
    # The secrets directory its MQTT passwords were read from: `apply PLANFILE` uses no other.
    secrets_dir: str = ""
    # What the plan could not look at, for the caller to say as `warning:` lines (the
    # inventory's Flatpeak locations of another account: `engine.flatpeak_accounts`).
    warnings: list[str] = dataclasses.field(default_factory=list)

    @functools.cached_property
    def inputs(self) -> dict[str, Any]:
        """What the plan was made from: the paths, the fingerprints of the desired and
        observed state, the endpoints it read and the state directory it used (for `apply
        PLANFILE`). Computed on first use: hashing a large fleet costs a good part of a
        no-op plan, and a plan that is only shown needs none of it."""
        with collector_paused():
            return {
                # Sorted: the files are read in one sorted order whatever order the paths
                # were given in, and the same plan saves the same document.
                "paths": sorted(self.paths),
                # Where relative paths are read from by `apply PLANFILE` (`cli.saved_paths`).
                **({"working_directory": os.getcwd()} if self.paths else {}),
                # What the plan took from earlier applies (deletion policies, retired
                # sites, ...) and where an apply records: `cli.saved_paths` refuses another.
                **({"state_directory": os.path.abspath(self.state_dir)}
                   if self.paths and self.state_dir else {}),
                # Where the passwords of `passwordFrom.secretKeyRef` were read: the plan
                # says whether each changed since it was sent, and the apply sends them.
                **({"secrets_directory": os.path.abspath(self.secrets_dir)}
                   if self.paths and self.secrets_dir else {}),
                "desired_sha256": desired_fingerprint(self.fleet),
                "observed_sha256": observed_fingerprint(self.observed),
                "endpoints": self.endpoints,
            }

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run() reprs the result of its main task when it restores
        # the SIGINT handler, and the full repr of a fleet-wide plan took a second of CPU.
        return f"PlanResult({len(self.plan.changes)} changes, {len(self.fleet)} resources)"

    def document(self, *, with_inputs: bool = True) -> dict[str, Any]:
        """The plan document; `with_inputs=False` leaves the fingerprints out (a rendering
        for people needs none of them)."""
        return document.to_document(self.plan, inputs=self.inputs if with_inputs else None)


class Reconciler:
    """One engine over one fleet. Use as an async context manager."""

    def __init__(
        self,
        fleet: Fleet,
        settings: Settings,
        *,
        transport_factory: TransportFactory | None = None,
        secrets: SecretResolver | None = None,
        credentials: CredentialLedger | None = None,
        short_lived: bool = False,
        waits: HostWaits | None = None,
    ) -> None:
        self.fleet = fleet
        self.settings = settings
        # `waits`: the servers that asked to be called later, kept by a caller that
        # outlives this run (the operator, the watch agent); else this run's own.
        self.session = Session(settings, transport_factory=transport_factory, waits=waits)
        self.state = StateDir(Path(settings.state_dir))
        # Where passwordFrom values come from: files and variables (CLI), or Secrets read
        # ahead by the operator.
        self.secrets = secrets or SecretResolver(settings.secrets_dir)
        # The process exits after this run (the CLI): see `collector_paused`.
        self.short_lived = short_lived
        # The credential ledger (`engine.credentials`): the state directory's, read again by
        # each plan, unless the caller keeps its own (the operator, in each Device's status).
        self._ledger_in_state = credentials is None
        self.credentials = credentials or CredentialLedger()
        # Whether `clear_leftovers` ran for the apply under way (see `remember`).
        self._leftovers_cleared = False

    async def __aenter__(self) -> Reconciler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.aclose()

    async def plan(
        self, options: PlanOptions, *, paths: list[str] | None = None
    ) -> PlanResult:
        inventory = self.state.read_inventory(options.audience)
        warnings: list[str] = []
        if not options.inventory:
            options = dataclasses.replace(
                options, inventory=inventory.policies, inventory_orgs=inventory.orgs
            )
        if options.whole_fleet is None and not options.retired_sites:
            # Only when this fleet is the whole desired state: a part of it (the operator's
            # one object) would take every other Site for one declared no more.
            locations = flatpeak_accounts.split(
                inventory.flatpeak_locations,
                inventory.flatpeak_location_accounts,
                plan_origin.flatpeak_account(self.settings),
            )
            # With no account set none is read, and nothing is forgotten: no other account.
            said = flatpeak_accounts.warning(self.settings.state_dir, locations.elsewhere)
            if said is not None and self.settings.flatpeak_account_id:
                warnings.append(said)
            options = dataclasses.replace(
                options,
                retired_sites=inventory.retired_sites(self.fleet.sites),
                applied_sites=inventory.applied_sites(self.fleet.sites),
                left_sites=tuple(inventory.left_sites),
                flatpeak_locations=locations.here,
                enapter_sites=dict(inventory.enapter_sites),
                enapter_device_sites=enapter_left_devices.remembered_sites(
                    self.fleet, inventory.enapter_sites
                ),
                last_declared=dict(inventory.declared),
            )
        if options.whole_fleet is None and not options.retired_gateways:
            # The gateways a release may remove the moved devices' copies from: read only
            # once their release is planned or reported (`engine.observe`).
            options = dataclasses.replace(
                options,
                retired_gateways=retired_gateways(
                    inventory.retired_zaps(self.fleet.zap_serials()),
                    options.inventory_orgs,
                    options.inventory,
                    self.fleet,
                ),
            )
        if self._ledger_in_state:
            self.credentials = self.state.read_credentials()
        with collector_paused(freeze_survivors=self.short_lived):
            missing, changed = self._check_passwords()
            observed = Observed(missing_secrets=missing, changed_secrets=changed)
            # Each site is planned as soon as its reads are in, while the rest are in flight.
            builder = PlanBuilder(self.fleet, observed, options)
            await observe(
                self.fleet,
                self.session,
                read_policy(self.settings.retries),
                audience=options.audience,
                into=observed,
                on_site=builder.site_observed,
                whole_fleet=options.whole_fleet,
                release_orgs=_release_orgs(options, self.fleet.zap_serials()),
                site_orgs={site.org_id for site in options.retired_sites.values()}
                | {left.where.org_id for left in options.left_sites},
                applied_sites=options.applied_sites,
                lookup_sites=options.lookup_sites,
                removed_fields=builder.removed,
                retired_gateways=options.retired_gateways.values(),
            )
            await observe_remembered_locations(
                self.session,
                observed,
                read_policy(self.settings.retries),
                options.flatpeak_locations,
            )
            await observe_remembered_enapter_sites(
                self.session, observed, read_policy(self.settings.retries), options.enapter_sites
            )
            await observe_left_devices(
                self.session,
                observed,
                read_policy(self.settings.retries),
                self.fleet,
                options.whole_fleet or self.fleet,
                options.enapter_device_sites,
                options.enapter_device_ids,
                options.audience,
            )
            plan = builder.finish()
            orgs = releasing_orgs(plan)
            # A release orphans every device bound to the gateway, in sites no Site declares
            # too: those are read, and the plan made again, only when one is planned.
            if orgs and await read_org_devices(
                self.session, observed, read_policy(self.settings.retries), orgs
            ):
                plan = make_plan(self.fleet, observed, options)
        return PlanResult(
            plan,
            observed,
            self.fleet,
            list(paths or []),
            plan_origin.record(self.settings, self.fleet),
            self.settings.state_dir,
            self.settings.secrets_dir,
            warnings,
        )

    def _check_passwords(self) -> tuple[dict[str, str], dict[str, str]]:
        """Devices whose MQTT password cannot be had (the plan says so before anything is
        written, instead of the apply failing half-way), and devices whose password changed
        since it was sent to them (`engine.credentials`). Values are read and dropped."""
        missing, changed = {}, {}
        for device, source, key in mqtt_passwords(self.fleet):
            where = self.secrets.describe(source)
            try:
                value = self.secrets.resolve(source)
            except KeyError as exc:
                missing[device.name] = f"MQTT password {where}: {exc.args[0]}"
                continue
            if self.credentials.changed(key, value):
                changed[device.name] = f"the MQTT password {where}"
        return missing, changed

    async def apply(
        self,
        result: PlanResult,
        *,
        progress: Progress | None = None,
        stop: asyncio.Event | None = None,
    ) -> ApplyReport:
        """Apply a plan made by `plan()` (the caller holds the state lock). Once `stop` is
        set, the changes in flight finish and no new one starts (see `apply_plan`)."""
        journal = self.state.journal()
        report: ApplyReport | None = None
        try:
            executors = Executors(
                self.fleet,
                self.session,
                self.secrets,
                journal,
                result.plan.novacore_site_ids(),
                credentials=self.credentials,
                retired_gateways=result.plan.options.retired_gateways.values(),
                audience=result.plan.options.audience,
            )
            report = await apply_plan(
                result.plan,
                executors,
                policy=RetryPolicy(attempts=self.settings.retries),
                progress=progress,
                stop=stop,
            )
        finally:
            journal.close()
            if report is None:
                # Even after a failure: what was sent is on the devices.
                self._store_credentials()
        try:
            self.remember(result.plan, report)  # the credential ledger too
        except StateDirError as error:
            # The changes are made whatever the state directory says: the report of them
            # must reach the user all the same.
            raise NotRecorded(str(error), report) from error
        return report

    def adopt_credentials(self, plan: Plan) -> None:
        """Record the MQTT password of each device in sync on its Zap that the ledger has no
        entry for (added before it kept one, or by hand): taken to be the one in place, so
        that a later change of it is seen."""
        in_sync = {c.name for c in plan.changes if c.component == "zap" and not c.is_change}
        for device, source, key in mqtt_passwords(self.fleet):
            if device.name in in_sync and not self.credentials.knows(key):
                with contextlib.suppress(KeyError):
                    self.credentials.record(key, self.secrets.resolve(source))

    def _store_credentials(self) -> None:
        if self._ledger_in_state:
            self.state.write_credentials(self.credentials)

    def remember(self, plan: Plan, report: ApplyReport | None = None) -> None:
        """What the next runs need to know of this one (the caller holds the state lock);
        an apply with nothing to do calls this too.

        The inventory: each declared gateway's deletion policy and organisation (a policy
        changed in git alone changes nothing remote, and would otherwise be unknown once
        the gateway is removed), and its Zap (read when it is released); gateways released
        by the apply that made `report` are forgotten (a release that failed keeps its
        entry, so it is tried again).

        The credential ledger: see `adopt_credentials`."""
        self.adopt_credentials(plan)
        self._store_credentials()
        # Once an apply: `apply` and `watch` clear them before they plan, to say what they
        # removed; code that applies a plan without that (the demo, tests, benchmarks) has
        # them cleared here. Nothing is left for a second pass to find: this process's
        # own temporary files are never taken for leftovers, and no other writes here
        # while the lock is held. The next apply of this Reconciler clears them again.
        if not self._leftovers_cleared:
            self.clear_leftovers(plan.options.audience)
        self._leftovers_cleared = False
        inventory = self.state.read_inventory(plan.options.audience)
        for gateway in self.fleet.gateways.values():
            if gateway.spec.zap is not None:
                site = self.fleet.sites.get(gateway.spec.site_ref or "")
                inventory.remember(
                    gateway.spec.zap.serial,
                    str(gateway.spec.deletion_policy),
                    claim_org(gateway, site),
                )
                inventory.zaps[gateway.spec.zap.serial] = RememberedZap(
                    gateway.name, gateway.spec.site_ref, str(gateway.spec.zap.url)
                )
        declared = self.fleet.zap_serials()
        whole = not plan.options.targets and not plan.options.excludes
        for serial in [s for s in inventory.zaps if s not in declared and whole]:
            if inventory.policies.get(serial) == DeletionPolicy.ORPHAN.value:
                # Its plan said what a move left on its Zap (`plan.retired_gateways`): an
                # orphaned Zap, perhaps unplugged, is not read on every plan after. Only
                # a plan of the whole fleet says it: one with --target or --exclude leaves
                # gateways declared nowhere to it, and forgets nothing.
                del inventory.zaps[serial]
        done = {o.address for o in report.outcomes if o.status == "done"} if report else set()
        for change in plan.changes:
            if change.action is Action.RELEASE and change.address in done:
                inventory.forget(change.external_id or "")
        self._remember_sites(inventory, plan, report)
        self._remember_locations(inventory, plan, report)
        self._remember_enapter_sites(inventory, plan, report)
        self._remember_declared(inventory, plan, report)
        self.state.write_inventory(inventory)

    def _remember_declared(
        self, inventory: Inventory, plan: Plan, report: ApplyReport | None
    ) -> None:
        """The fields each resource the plan covered declares, once every change of it is
        in sync or done: one whose change failed, was skipped or deferred keeps the record
        of its last apply, so that a field it declares no more is set back by the next one
        (`plan.removed_fields`). A resource no longer declared is forgotten, when the plan
        is of the whole fleet (a --target leaves the others' records as they are)."""
        done = {o.address for o in report.outcomes if o.status == "done"} if report else set()
        covered: dict[tuple[str, str], bool] = {}
        for change in plan.changes:
            key = (change.kind, change.name)
            settled = not change.is_change or change.address in done
            covered[key] = covered.get(key, True) and settled
        declared = self.fleet.declared_fields()
        for resource in self.fleet.resources():
            if covered.get((resource.KIND, resource.name)):
                inventory.declared[resource.address] = declared[resource.address]
        if not plan.options.targets and not plan.options.excludes:
            addresses = {resource.address for resource in self.fleet.resources()}
            for address in set(inventory.declared) - addresses:
                del inventory.declared[address]

    def clear_leftovers(self, audience: Audience) -> list[str]:
        """Remove the temporary Enapter config files that killed runs left, each holding a
        device's credentials (`engine.enapter_files.clear_leftovers`); what was done. The
        caller holds the state lock, or is the one process writing there. Called before
        the plan, it is not called again for the apply that follows (`remember`)."""
        said = enapter_files.clear_leftovers(self.settings, self.fleet, audience)
        self._leftovers_cleared = True
        return said

    def leftovers(self, audience: Audience) -> list[str]:
        """The temporary Enapter config files that killed runs left, which the next apply
        removes (`engine.enapter_files.leftovers`): what a plan says of them, writing
        nothing."""
        return enapter_files.leftovers(self.settings, self.fleet, audience)

    def _remember_sites(
        self, inventory: Inventory, plan: Plan, report: ApplyReport | None
    ) -> None:
        """Each Site's Novacore site, found by the plan or created by the apply; a Site
        declared no more is forgotten once its site is gone or another Site's
        (`plan.retired`)."""
        for name, site_id in _applied_site_ids(plan, report, "novacore").items():
            site = self.fleet.sites.get(name)
            if site is not None and site.spec.novacore is not None:
                inventory.apply_site(name, RetiredSite(site.spec.novacore.org_id, site_id))
        for name in plan.forget_sites:
            inventory.sites.pop(name, None)
        gone = set(plan.forget_left)
        inventory.left_sites = [left for left in inventory.left_sites if left not in gone]

    def _remember_locations(
        self, inventory: Inventory, plan: Plan, report: ApplyReport | None
    ) -> None:
        """Each Site's Flatpeak location, found by the plan or created by the apply, with
        the account it is in, so that one no declared Site matches any more is reported
        (`plan.retired_locations`); one gone from the account is forgotten (the plan looks
        for those of its own account only: `engine.flatpeak_accounts`)."""
        account = plan_origin.flatpeak_account(self.settings)
        for name, location_id in _applied_site_ids(plan, report, "flatpeak").items():
            inventory.flatpeak_locations[location_id] = name
            inventory.flatpeak_location_accounts[location_id] = account
        for location_id in plan.forget_locations:
            inventory.flatpeak_locations.pop(location_id, None)
            inventory.flatpeak_location_accounts.pop(location_id, None)

    @staticmethod
    def _remember_enapter_sites(
        inventory: Inventory, plan: Plan, report: ApplyReport | None
    ) -> None:
        """Each Site's Enapter site, found by the plan or created by the apply, so that one
        no declared Site is any more is reported (`plan.retired_enapter_sites`); one gone
        from Enapter is forgotten."""
        for name, site_id in _applied_site_ids(plan, report, "enapter").items():
            inventory.enapter_sites[site_id] = name
        for site_id in plan.forget_enapter_sites:
            inventory.enapter_sites.pop(site_id, None)


def _applied_site_ids(
    plan: Plan, report: ApplyReport | None, component: str
) -> dict[str, str]:
    """Site name -> the id of its object on `component`: as the plan found it, or as the
    apply made it."""
    ids = site_ids(plan.changes, component)
    sites_by_address = {
        c.address: c.name for c in plan.changes if c.kind == "Site" and c.component == component
    }
    for outcome in report.outcomes if report else []:
        name = sites_by_address.get(outcome.address)
        if name and outcome.status == "done" and outcome.detail.get("id"):
            ids[name] = str(outcome.detail["id"])
    return ids


def _release_orgs(options: PlanOptions, declared: Collection[str]) -> set[str]:
    """Organisations of the undeclared gateways the inventory of `options` (the state
    directory's, or what the operator's Gateway object remembers) says Release for: their
    gateways are listed, declared Site there or not (`state.Inventory.release_orgs`)."""
    return {
        options.inventory_orgs[serial]
        for serial, policy in options.inventory.items()
        if policy == DeletionPolicy.RELEASE.value
        and serial not in declared
        and serial in options.inventory_orgs
    }
