"""Planning for Enapter Cloud (API v3): the Enapter site, the Enapter Gateway, and devices of
every provisioning kind. Pure: the observer in `engine.enapter` fills the records it reads
(`plan.enapter_observed`); `plan.platforms` registers `plan_enapter`. Enapter's vocabulary
and natural keys are `plan.enapter_fields`, which Enapter site a Site is
`plan.enapter_sites`, and what the plan says of communication configs
`plan.enapter_configs`.

Order inside a site: site → gateway → UCM / vUCM / LINK master / embedded / standalone →
Lua device on its runtime, LINK slave on its master (each device `depends_on` what it runs
on). Removals (only with `--prune`, only devices found in a managed site that are not
declared) run the other way: downstream devices first, because Enapter refuses to delete
an upstream device with devices still running on it.

Natural keys, so no local state is needed to find remote devices: the hardware id for the
kinds that have one (the Enapter types in `HARDWARE_TYPES`), and (site, slug) for
standalone and Lua devices, whose slug defaults to the resource name.

Existing devices are never provisioned again: a name or slug change is a PATCH, a blueprint
change an `assign_blueprint`, a protocol change or a missing config output a
`generate_config`. Communication configs carry credentials; they never appear here, only
whether the declared output (a file, or a Secret where the operator can check) exists and
for which device an earlier apply wrote the file, and which file an earlier apply wrote for
a device that a delete, or its config written to another file, removes after it, or that
an update removes once the device's configOutput names it no more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.device import SLUG_KEYED, Device, EnapterKind
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan import renames
from reconciler.plan.actions import (
    Action,
    Change,
    FieldDiff,
    Reason,
    address_of,
    defer,
    update_or_in_sync,
)
from reconciler.plan.advice import PRUNED, Advice, Audience
from reconciler.plan.diff import compared_only_where_reported, declared_diff
from reconciler.plan.enapter_configs import (
    config_note,
    config_target,
    foreign_output,
    has_config,
    listed,
    others_config,
    replaced_file_note,
    superseded_file_note,
    the,
    unnamed_file_note,
    written_file_note,
    written_files,
)
from reconciler.plan.enapter_fields import (
    COMPONENT,
    EMBEDDED_UCM,
    GATEWAY,
    HARDWARE_TYPES,
    NATIVE,
    NO_CONFIG,
    TYPE_OF_KIND,
    device_fields,
    find_device,
    find_gateway,
    kind_of,
    observed_protocol,
    site_devices,
    site_fields,
)
from reconciler.plan.enapter_left_devices import LEFT_SITE, devices_in, left_device
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterSiteState, EnapterState
from reconciler.plan.enapter_sites import (
    HeldByOtherSite,
    HeldElsewhere,
    find_renamed,
    held_elsewhere,
    held_message,
    match_site,
    moved_from,
    needs_rename_search,
)
from reconciler.plan.observed import NotTheApi, Observed, Unreachable
from reconciler.plan.renames import Rename
from reconciler.printable import echo

# The diff path of a config file an earlier apply wrote for a device whose configOutput
# names it no more: its update removes it (`engine.enapter_files`).
WRITTEN_FILE = "written_config_file"
# Runtimes and masters are planned before the devices that run on them.
_RANK = {EnapterKind.LINK_SLAVE: 1, EnapterKind.LUA: 1}


# -- the planner ------------------------------------------------------------------------------


# What the plan advises, said as the CLI's user and as the operator's acts (`plan.advice`):
# the operator deletes nothing it does not declare, and lists it in `status.unmanaged`.
_UNMANAGED = "the operator deletes nothing it does not declare, and lists it in status.unmanaged"
# The delete a move waits for is the CLI's `--prune`'s.
_PRUNING = Advice(cli=", --prune", operator="")
# A device moved to another Site while its old site still holds it (`_settle_moves`).
_MOVE = Advice(
    cli="apply with --prune, Site {site} included, to delete it there and provision it here",
    operator="delete it there in Enapter Cloud (Site {site} lists it in status.unmanaged: "
    "the operator deletes nothing it does not declare), and it is provisioned here",
)
# A slug an undeclared device holds (`_slug_holders`).
_SLUG_HOLDER = Advice(cli="delete it (apply --prune)", operator="delete it in Enapter Cloud")
# The old device a Lua device's slug change leaves (`_note_twins`): where it is listed,
# and what to do about both running.
_TWIN_WHERE = Advice(cli="unmanaged, below", operator="in status.unmanaged of its Site")
_TWIN_AFTER = Advice(
    cli="both will run it until the old one is deleted: apply --prune deletes it (with every "
    "unmanaged object the plan lists), or delete it in Enapter Cloud",
    operator="both will run it until the old one is deleted: delete it in Enapter Cloud "
    f"({_UNMANAGED})",
)
# An interrupted delete's config file, which only the CLI's `--prune` finishes.
_REMOVES = Advice(cli=" (--prune removes it)", operator="")


@dataclass
class _SiteWork:
    """What one site's planning has found so far."""

    site: Site
    site_change: Change
    devices: list[EnapterDeviceState]
    gateway_changes: dict[str, Change] = field(default_factory=dict)
    device_changes: dict[str, Change] = field(default_factory=dict)
    # Remote id -> the resource name it was matched to.
    matched: dict[str, str] = field(default_factory=dict)
    # Unclaimed sites holding hardware ids the Site declares (`held_elsewhere`).
    elsewhere: list[HeldElsewhere] = field(default_factory=list)

    def held_by(self, hardware_id: str | None) -> HeldElsewhere | None:
        return next((h for h in self.elsewhere if hardware_id in h.declared), None)


@dataclass
class EnapterPlanner:
    """Plans the Enapter part of one fleet. Construct, then call `plan()`."""

    fleet: Fleet
    state: EnapterState | None
    prune: bool = False
    changes: list[Change] = field(default_factory=list)
    unmanaged: list[dict[str, Any]] = field(default_factory=list)
    # What a renamed Site is recognised by (planner.PlanOptions.whole_fleet); None: `fleet`.
    whole_fleet: Fleet | None = None
    # Who reads the plan: how its advice is worded (planner.PlanOptions.audience).
    audience: Audience = field(kw_only=True)
    # Creates of hardware ids another declared Site's Enapter site holds (`moved_from`),
    # settled once every site is planned, as they wait for that site's delete.
    moves: list[tuple[Change, HeldByOtherSite]] = field(default_factory=list)

    def plan(self) -> tuple[list[Change], list[dict[str, Any]]]:
        for site in self.fleet.sites.values():
            if site.spec.enapter is not None:
                self._plan_site(site)
        self._settle_moves()
        return self.changes, self.unmanaged

    def _moved(self, work: _SiteWork, change: Change, hardware_id: str | None) -> None:
        """Note a create whose hardware id another declared Site's Enapter site holds."""
        if self.state is None or change.blocked:
            return
        held = moved_from(self.whole_fleet or self.fleet, work.site, self.state, hardware_id)
        if held is not None:
            self.moves.append((change, held))

    def _settle_moves(self) -> None:
        """A device moved between Sites in git is provisioned in its new site only after
        `--prune` deleted it from its old one: Enapter refuses (409) a hardware id another
        site holds, and the two sites' changes would otherwise run side by side. Without
        that delete in this plan the create is blocked, saying what to do."""
        by_address = {c.address: c for c in self.changes}
        for change, held in self.moves:
            if change.action is not Action.CREATE or change.blocked:
                continue  # deferred, or blocked since (by what it depends on)
            delete = by_address.get(held.delete_address)
            if delete is not None and delete.action is Action.DELETE and not delete.blocked:
                change.depends_on = [*change.depends_on, delete.address]
                change.message = (
                    f"{held.where()}: it is deleted there first "
                    f"({delete.address}{_PRUNING.to(self.audience)}), then provisioned here; "
                    f"{change.message}"
                )
            elif delete is not None and delete.blocked:
                _block(change, delete)
            else:
                change.blocked = True
                change.message = (
                    f"{held.where()}, so provisioning it here would fail until it is deleted "
                    f"there: {_MOVE.to(self.audience, site=held.owner.name)}"
                )

    def _change(
        self, kind: str, name: str, action: Action, reason: Reason, site: Site, **kwargs: Any
    ) -> Change:
        change = Change.new(kind, name, COMPONENT, action, reason, site=site.name, **kwargs)
        self.changes.append(change)
        return change

    # -- site ------------------------------------------------------------------------------

    def _plan_site(self, site: Site) -> None:
        first = len(self.changes)
        why: list[str] = []
        sites = self.state.sites if self.state is not None else Unreachable("not observed")
        remote: EnapterSiteState | None = None
        elsewhere: list[HeldElsewhere] = []
        if isinstance(sites, NotTheApi):
            # Blocked, not deferred: reading again gives the same 404, and a plan that
            # defers exits 0 as if all were well. What the site holds waits on it.
            site_change = self._change(
                "Site",
                site.name,
                Action.VERIFY,
                Reason.NOT_THE_API,
                site,
                after=site_fields(site),
                blocked=True,
                message=not_the_api_message(sites),
            )
        elif isinstance(sites, Unreachable):
            why.append(f"Enapter sites: {sites.reason}")
            site_change = self._change(
                "Site",
                site.name,
                Action.DEFER,
                Reason.TARGET_UNREACHABLE,
                site,
                after=site_fields(site),
            )
        else:
            remote = match_site(site, sites)
            rename = None
            whole = self.whole_fleet or self.fleet
            if remote is None and self.state is not None and needs_rename_search(whole, site):
                rename = find_renamed(whole, site, self.state)
                remote = rename.site
            site_change = self._site_change(site, remote, rename)
            if rename is not None and rename.unreachable:
                why.append(f"looking for the site it was renamed from: {rename.problem}")
            elif self.state is not None:
                elsewhere = held_elsewhere(whole, site, self.state, remote.id if remote else None)
                if elsewhere and remote is None and not site_change.blocked:
                    # A new site would stay empty: its gateway's and devices' provisioning
                    # fails (409) while their hardware ids are in another site, and every
                    # later plan, finding the empty site by name, would try again.
                    site_change.blocked = True
                    site_change.diff = []
                    site_change.message = (
                        f"{site_change.message}, and creating it would leave it empty: "
                        "Enapter keeps a hardware id in one site of the organisation. "
                        + "; ".join(h.message(self.audience) for h in elsewhere)
                    )
        devices: list[EnapterDeviceState] = []
        devices_unread = False
        if remote is not None:
            observed = (
                self.state.devices.get(remote.id, Unreachable("not observed"))
                if self.state is not None
                else Unreachable("not observed")
            )
            if isinstance(observed, Unreachable):
                why.append(f"devices of Enapter site {remote.id}: {observed.reason}")
                devices_unread = True
            else:
                devices = observed
        work = _SiteWork(site, site_change, devices, elsewhere=elsewhere)
        for gateway in self.fleet.gateways_of(site.name):
            if gateway.spec.enapter is not None:
                self._plan_gateway(work, gateway)
        for device in self._devices_of(site):
            self._plan_device(work, device)
        if isinstance(sites, NotTheApi):
            for change in self.changes[first + 1:]:
                if change.action is not Action.NO_OP:
                    _block(change, site_change)
        elif why:
            sites_unread = isinstance(sites, Unreachable)
            _defer(
                self.changes[first:],
                "; ".join(why),
                lambda change: sites_unread or (devices_unread and change.kind != "Site"),
            )
        else:
            self._note_twins(work)
            self._undeclared(work)
            self._slug_holders(work)

    def _slug_holders(self, work: _SiteWork) -> None:
        """A slug a Device declares that another device of the site has: Enapter keeps a
        slug unique in a site and refuses (409) to give it to a second device, on every
        apply. The change waits for the change that frees the slug (the other declared
        Device's own slug change, or its delete with --prune) or, with none, is blocked,
        naming the device that has it."""
        by_address = {c.address: c for c in self.changes}
        waiting: list[tuple[Change, Change]] = []
        for name, change in work.device_changes.items():
            device = self.fleet.devices[name]
            slug = device.spec.enapter.slug if device.spec.enapter is not None else None
            if not slug or change.blocked or kind_of(device) in SLUG_KEYED:
                continue  # a slug-keyed device with that slug is this one
            if change.action is Action.UPDATE and not any(d.path == "slug" for d in change.diff):
                continue
            if change.action not in (Action.CREATE, Action.UPDATE):
                continue
            holder = next(
                (d for d in work.devices if d.slug == slug and d.id != change.external_id), None
            )
            if holder is None:
                continue
            owner = work.matched.get(holder.id)
            whose = f"Device {owner}'s" if owner is not None else "which this Site does not declare"
            held = (
                f"slug {slug} belongs to {holder.type} device {holder.id} ({echo(holder.name)}), "
                f"{whose}, and Enapter keeps a slug unique in a site"
            )
            if owner is not None:
                frees = work.device_changes.get(owner)
                if frees is not None and not any(d.path == "slug" for d in frees.diff):
                    frees = None
            else:
                delete = address_of("Device", f"{work.site.name}.{holder.slug}", COMPONENT)
                frees = by_address.get(delete)
            if frees is None or frees.blocked or _waits_for(frees, change, by_address):
                change.blocked = True
                change.message = f"{held}: " + (
                    "give one of them another slug"
                    if owner is not None
                    else f"{_SLUG_HOLDER.to(self.audience)} or declare another slug"
                )
                continue
            change.depends_on = [*change.depends_on, frees.address]
            change.message += f"; {held}: this waits for {frees.address}, which frees it"
            waiting.append((change, frees))
        # One blocked since (each of two swapping their slugs waits for the other) blocks
        # what waits for it, which would otherwise run and fail.
        while blocked := [(c, f) for c, f in waiting if f.blocked and not c.blocked]:
            for change, frees in blocked:
                _block(change, frees)

    def _note_twins(self, work: _SiteWork) -> None:
        """A Lua device's slug is its key, so a slug changed in git creates a second device
        and leaves the old one, undeclared: say so on the create where an undeclared Lua
        device runs the same blueprint on the same runtime, as both will run."""
        for name, change in work.device_changes.items():
            enapter = self.fleet.devices[name].spec.enapter
            runtime = work.device_changes.get(enapter.runtime_ref or "") if enapter else None
            if change.action is not Action.CREATE or change.blocked:
                continue
            if runtime is None or runtime.external_id is None:
                continue  # a new runtime runs nothing yet
            twin = next(
                (
                    d
                    for d in work.devices
                    if d.type == TYPE_OF_KIND[EnapterKind.LUA]
                    and d.id not in work.matched
                    and d.upstream_id == runtime.external_id
                    and d.blueprint_id == (change.after or {}).get("blueprint_id")
                ),
                None,
            )
            if twin is None:
                continue
            where, after = (
                (f"deleted below{_PRUNING.to(self.audience)}", "this apply deletes the old one")
                if self.prune
                else (_TWIN_WHERE.to(self.audience), _TWIN_AFTER.to(self.audience))
            )
            change.message += (
                f"; the device with slug {twin.slug} ({where}) runs the same blueprint on "
                f"this runtime: if this is a slug change, {after}"
            )

    def _site_change(
        self,
        site: Site,
        remote: EnapterSiteState | None,
        rename: Rename[EnapterSiteState] | None = None,
    ) -> Change:
        enapter = site.spec.enapter
        assert enapter is not None
        after = site_fields(site)
        if remote is None:
            not_found = f"no Enapter site named {echo(site.spec.display_name)}"
            blocked_because = None
            if rename is not None and rename.problem is not None and not rename.unreachable:
                blocked_because = f"{not_found}, and {rename.problem}"
            elif enapter.site_id is not None:
                blocked_because = (
                    f"Enapter site {enapter.site_id} does not exist (or this token cannot see "
                    "it); remove `siteId` to create a new site"
                )
            return self._change(
                "Site",
                site.name,
                Action.CREATE,
                Reason.NOT_FOUND,
                site,
                after=after,
                blocked=blocked_because is not None,
                diff=declared_diff(after, None) if blocked_because is None else [],
                message=blocked_because or (rename.not_found(not_found) if rename else not_found),
            )
        before: dict[str, Any] = {"name": remote.name, "timezone": remote.timezone}
        if remote.location is not None:
            before["location"] = dict(remote.location)
        diff = declared_diff(after, before)
        return self._change(
            "Site",
            site.name,
            *update_or_in_sync(diff),
            site,
            before=before,
            after=after,
            diff=diff,
            external_id=remote.id,
            message=renames.RENAMED_MESSAGE.format(id=remote.id) if rename is not None else "",
        )

    # -- gateway ---------------------------------------------------------------------------

    def _plan_gateway(self, work: _SiteWork, gateway: Gateway) -> None:
        spec = gateway.spec.enapter
        assert spec is not None
        site = work.site
        after = {"hardware_id": spec.hardware_id, "firmware_version": spec.firmware_version}
        deps = [work.site_change.address] if work.site_change.is_change else []
        remote = find_gateway(gateway, work.devices)
        if remote is None:
            other = next((d for d in work.devices if d.type == GATEWAY), None)
            change = self._change(
                "Gateway",
                gateway.name,
                Action.CREATE,
                Reason.NOT_FOUND,
                site,
                after=after,
                diff=declared_diff(after, None),
                depends_on=deps,
                message="not provisioned in Enapter Cloud; the gateway's "
                "communication config is not kept (a Gateway has no "
                "configOutput)",
            )
            if other is not None:
                change.blocked = True
                change.message = (
                    f"the Enapter site already has gateway {other.id} (hardware id "
                    f"{other.hardware_id}) and a site has one gateway: remove it "
                    "first or declare that one"
                )
            held = work.held_by(spec.hardware_id)
            if held is not None:
                change.blocked = True
                change.message = held_message(spec.hardware_id, held, self.audience)
            self._moved(work, change, spec.hardware_id)
        else:
            work.matched[remote.id] = gateway.name
            before: dict[str, Any] = {"hardware_id": remote.hardware_id}
            if remote.properties.get("gateway_version") is not None:
                before["firmware_version"] = remote.properties["gateway_version"]
            diff = compared_only_where_reported(after, before)
            if diff:
                change = self._change(
                    "Gateway",
                    gateway.name,
                    Action.UPDATE,
                    Reason.DRIFT,
                    site,
                    before=before,
                    after=after,
                    diff=diff,
                    depends_on=deps,
                    external_id=remote.id,
                    message="the firmware version is recorded by provisioning the gateway again "
                    "with the same hardware id (its new config is not kept)",
                )
            else:
                change = self._change(
                    "Gateway",
                    gateway.name,
                    Action.NO_OP,
                    Reason.IN_SYNC,
                    site,
                    before=before,
                    after=after,
                    external_id=remote.id,
                )
        if work.site_change.blocked and change.is_change:
            _block(change, work.site_change)
        work.gateway_changes[gateway.name] = change

    # -- devices ---------------------------------------------------------------------------

    def _devices_of(self, site: Site) -> list[Device]:
        devices = site_devices(self.fleet, site)
        return sorted(devices, key=lambda d: _RANK.get(kind_of(d), 0))  # stable: fleet order

    def _dependencies(self, work: _SiteWork, device: Device) -> list[Change]:
        enapter = device.spec.enapter
        assert enapter is not None
        out = [work.site_change]
        if device.spec.gateway_ref is not None:
            gateway = work.gateway_changes.get(device.spec.gateway_ref)
            out += [gateway] if gateway is not None else []
        else:
            # Modules of a site run on its gateway (when it has one): provision that first.
            out += list(work.gateway_changes.values())
        for ref in (enapter.runtime_ref, enapter.master_ref):
            upstream = work.device_changes.get(ref or "")
            if upstream is not None:
                out.append(upstream)
        return out

    def _plan_device(self, work: _SiteWork, device: Device) -> None:
        dependencies = self._dependencies(work, device)
        deps = [c.address for c in dependencies if c.is_change]
        remote, problem = find_device(device, work.devices)
        if remote is None:
            change = self._create_device(work, device, deps, problem)
        else:
            work.matched[remote.id] = device.name
            change = self._compare_device(work, device, remote, deps)
        blocker = next((c for c in dependencies if c.blocked), None)
        if blocker is not None and change.is_change and not change.blocked:
            _block(change, blocker)
        work.device_changes[device.name] = change

    def _create_device(
        self, work: _SiteWork, device: Device, deps: list[str], problem: str | None
    ) -> Change:
        after = device_fields(device)
        change = self._change(
            "Device",
            device.name,
            Action.CREATE,
            Reason.NOT_FOUND,
            work.site,
            after=after,
            diff=declared_diff(after, None),
            depends_on=deps,
            message="not provisioned in Enapter Cloud; " + config_note(self.state, device),
        )
        held = None if kind_of(device) in SLUG_KEYED else work.held_by(device.spec.hardware_id)
        foreign = foreign_output(self.state, device) if kind_of(device) not in NO_CONFIG else None
        if problem is not None:
            change.blocked = True
            change.message = problem
        elif foreign is not None:
            # Provisioned now, its config would go nowhere (and may not be asked again).
            change.blocked = True
            change.message = f"not provisioned in Enapter Cloud: {foreign}"
        elif held is not None:
            change.blocked = True
            change.message = held_message(device.spec.hardware_id or "", held, self.audience)
        elif kind_of(device) not in SLUG_KEYED:
            self._moved(work, change, device.spec.hardware_id)
        else:
            self._left_behind(work, device, change)
        return change

    def _left_behind(self, work: _SiteWork, device: Device, change: Change) -> None:
        """A slug-keyed device its Site's Enapter site lacks, found in the site its Site
        was before (`plan.enapter_left_devices`): Enapter cannot move a device between
        sites, and a create would leave the old one running there, unseen by later plans,
        so it is replaced: deleted there, then provisioned in its Site's site. Whether it
        is there not known (that site unread), the create is deferred, not guessed."""
        if self.state is None:
            return
        left = left_device(device, self.state, work.site_change.external_id)
        if left is None:
            return
        if isinstance(left, Unreachable):
            defer(change, left.reason, unread=False)
            return
        remote, own = left.device, work.site_change.external_id
        change.action, change.reason = Action.REPLACE, Reason.MOVED
        change.external_id = remote.id
        change.before = {
            "type": remote.type, "name": remote.name, "slug": remote.slug, LEFT_SITE: left.site.id
        }
        change.message = (
            f"{left.where()}, and Enapter cannot move a device to another site: it is "
            "deleted there, then provisioned again in "
            + (f"Enapter site {own}, its Site's now; " if own else "its Site's new Enapter site; ")
            + config_note(self.state, device)
            + replaced_file_note(self.state, remote.id)
        )

    def _observed_fields(
        self, work: _SiteWork, device: Device, remote: EnapterDeviceState
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"type": remote.type, "name": remote.name, "slug": remote.slug}
        if remote.hardware_id is not None and remote.type in HARDWARE_TYPES:
            out["hardware_id"] = remote.hardware_id
        if remote.blueprint_id is not None:
            out["blueprint_id"] = remote.blueprint_id
        if remote.properties.get("device_type") is not None:
            out["embedded_type"] = remote.properties["device_type"]
        protocol = observed_protocol(remote)
        if protocol is not None:
            out["protocol"] = protocol
        upstream = work.matched.get(remote.upstream_id or "", remote.upstream_id)
        enapter = device.spec.enapter
        assert enapter is not None
        if enapter.runtime_ref is not None:
            out["runtime"] = upstream
        if enapter.master_ref is not None:
            out["master"] = upstream
        if has_config(self.state, device, remote):
            after = device_fields(device)
            for key in ("config_file", "config_secret"):
                if key in after:
                    out[key] = after[key]
        return out

    def _compare_device(
        self, work: _SiteWork, device: Device, remote: EnapterDeviceState, deps: list[str]
    ) -> Change:
        after = device_fields(device)
        before = self._observed_fields(work, device, remote)
        presence = self.state.config_outputs.get(device.name) if self.state is not None else None
        compared = {
            k: v for k, v in after.items() if k not in ("protocol", "config_file", "config_secret")
        }
        diff = declared_diff(compared, before)
        diff += compared_only_where_reported(
            {k: v for k, v in after.items() if k == "protocol"}, before
        )
        if presence is not None and not has_config(self.state, device, remote):
            key = "config_file" if "config_file" in after else "config_secret"
            diff.append(FieldDiff("add", key, None, after[key]))
        if not any(d.path == "config_file" for d in diff):
            # Files its configOutput names no more (it names a Secret, none, or another
            # file that holds its config already, or removing one failed before): the
            # update removes them. One whose config is written to another file says so in
            # the note of that write.
            diff += [
                FieldDiff("remove", WRITTEN_FILE, p, None)
                for p in written_files(self.state, remote.id)
            ]
        kwargs: dict[str, Any] = {
            "before": before,
            "after": after,
            "diff": diff,
            "external_id": remote.id,
        }
        if not diff:
            return self._change(
                "Device", device.name, Action.NO_OP, Reason.IN_SYNC, work.site, **kwargs
            )
        paths = {d.path for d in diff}
        if "embedded_type" in paths:
            return self._change(
                "Device",
                device.name,
                Action.REPLACE,
                Reason.CANNOT_UPDATE,
                work.site,
                depends_on=deps,
                blocked=True,
                **kwargs,
                message=f"hardware id {device.spec.hardware_id} is registered as "
                f"{before.get('embedded_type')}; Enapter cannot change an "
                "embedded device's type: delete it in Enapter Cloud or "
                "correct `embeddedType`",
            )
        moved = paths & {"runtime", "master"}
        if moved:
            upstream = after.get("runtime") or after.get("master")
            return self._change(
                "Device",
                device.name,
                Action.REPLACE,
                Reason.CANNOT_UPDATE,
                work.site,
                depends_on=deps,
                **kwargs,
                message=f"Enapter cannot move a device to another "
                f"{'runtime' if 'runtime' in moved else 'LINK master'}: it "
                f"is deleted and provisioned again on {upstream}; "
                + config_note(self.state, device)
                + replaced_file_note(self.state, remote.id),
            )
        return self._update_device(work, device, remote, deps, paths, kwargs)

    def _update_device(
        self,
        work: _SiteWork,
        device: Device,
        remote: EnapterDeviceState,
        deps: list[str],
        paths: set[str],
        kwargs: dict[str, Any],
    ) -> Change:
        enapter = device.spec.enapter
        assert enapter is not None
        notes = []
        if paths & {"name", "slug"}:
            notes.append("renamed with PATCH")
        if "blueprint_id" in paths:
            notes.append("blueprint changed with assign_blueprint")
        blocked = False
        if paths & {"protocol", "config_file", "config_secret"}:
            other = others_config(self.state, device, remote)
            if "config_file" in paths and other is not None:
                notes.append(
                    f"the config file {config_target(self.state, device)} holds the "
                    f"communication config an earlier apply wrote for another Enapter device "
                    f"({other}), not this one's: a new communication config is generated and "
                    "written there; install it on the device"
                )
            elif "config_file" in paths:
                notes.append(
                    f"the config file {config_target(self.state, device)} is missing (the one "
                    "local file a plan looks at): a new communication config is generated "
                    "and written there; install it on the device"
                )
            elif "config_secret" in paths and other is not None:
                notes.append(
                    f"{config_target(self.state, device)} holds the communication config "
                    f"written for another Enapter device ({other}), not this one's: a new "
                    "communication config is generated and written there; install it on the "
                    "device"
                )
            elif "config_secret" in paths and foreign_output(self.state, device) is None:
                notes.append(
                    f"{config_target(self.state, device)} is missing: a new communication "
                    "config is generated and written there; install it on the device"
                )
            else:
                notes.append(
                    f"switching to {enapter.protocol} needs a new communication config "
                    "(generate_config); " + config_note(self.state, device)
                )
            blocked = enapter.config_output is None or (
                enapter.config_output.file is None
                and not (self.state is not None and self.state.secret_store)
            )
            foreign = foreign_output(self.state, device)
            if blocked:
                notes = [
                    f"switching to {enapter.protocol} needs a new communication config, "
                    "and this run has nowhere to write it: add configOutput.file"
                ]
            elif foreign is not None:
                blocked, notes = True, [foreign]
            elif "config_file" in paths:
                notes[-1] += superseded_file_note(self.state, remote.id)
        if WRITTEN_FILE in paths and not blocked:
            notes.append(unnamed_file_note(self.state, device, remote.id))
        return self._change(
            "Device",
            device.name,
            Action.UPDATE,
            Reason.DRIFT,
            work.site,
            depends_on=deps,
            blocked=blocked,
            message="; ".join(notes),
            **kwargs,
        )

    # -- undeclared devices ------------------------------------------------------------------

    def _undeclared(self, work: _SiteWork) -> None:
        by_id = {d.id: d for d in work.devices}

        def goes_with_parent(device: EnapterDeviceState) -> bool:
            # The NATIVE half of an embedded UCM is deleted with it and cannot be alone.
            parent = by_id.get(device.upstream_id or "")
            return device.type == NATIVE and parent is not None and parent.type == EMBEDDED_UCM

        self._interrupted_deletes(work)
        kept = [d for d in work.devices if not goes_with_parent(d)]
        undeclared = [d for d in kept if d.id not in work.matched]
        if not undeclared:
            return
        if not self.prune:
            for device in undeclared:
                self.unmanaged.append(
                    {
                        "platform": "enapter",
                        "site": work.site.name,
                        "id": device.id,
                        "description": f"Enapter {device.type} device {device.id} "
                        f"({echo(device.name)}, slug {device.slug}) in site {work.site.name} "
                        "is not declared",
                        "prunable": True,
                    }
                )
            return
        children: dict[str, list[EnapterDeviceState]] = {}
        for device in kept:
            children.setdefault(device.upstream_id or "", []).append(device)
        planned: dict[str, Change] = {}
        for device in undeclared:
            self._delete_subtree(work, device, children, planned)

    def _interrupted_deletes(self, work: _SiteWork) -> None:
        """The config files of devices of this site whose delete an earlier apply sent and
        that are gone now, the apply having stopped before it removed their file: removed
        (a delete again, which finds the device gone, then the removal) with --prune, or
        without it when the delete was a replace's (the device deleted to be provisioned
        again, which its Device is, with a config of its own)."""
        interrupted = self.state.interrupted_deletes if self.state is not None else {}
        present = {d.id for d in work.devices} | self._left_ids()
        for device_id, (site_name, paths, replaced) in sorted(interrupted.items()):
            if site_name != work.site.name or device_id in present:
                continue
            how = "replacing it deleted it" if replaced else "deleted it"
            description = (
                f"Enapter device {device_id} of site {work.site.name} is gone: an apply "
                f"{how} and stopped before it removed {listed(paths)}, "
                f"{the(paths, 'config file')} written for it"
            )
            if not replaced and not self.prune:
                self.unmanaged.append(
                    {
                        "platform": "enapter",
                        "site": work.site.name,
                        "id": device_id,
                        "description": description + _REMOVES.to(self.audience),
                        "prunable": True,
                    }
                )
                continue
            reason, removed = ((Reason.MOVED, "; removed, as the replace would have")
                               if replaced
                               else (Reason.NOT_DECLARED, f"; removed{PRUNED.to(self.audience)}"))
            self._change(
                "Device",
                f"{work.site.name}.{device_id}",
                Action.DELETE,
                reason,
                work.site,
                external_id=device_id,
                before={"id": device_id},
                message=description + removed,
            )

    def _left_ids(self) -> set[str]:
        """The ids of the devices read in the sites Devices' devices were left in: one
        whose replace an apply stopped before its delete took effect is still there, and
        the replace planned again deletes it (`_left_behind`)."""
        if self.state is None:
            return set()
        sites = {s for left in self.state.left_sites.values() for s in left}
        return {device.id for device in devices_in(self.state, sites)}

    def _delete_subtree(
        self,
        work: _SiteWork,
        device: EnapterDeviceState,
        children: dict[str, list[EnapterDeviceState]],
        planned: dict[str, Change],
    ) -> Change | None:
        """Plan the deletion of `device` after everything running on it (post-order)."""
        if device.id in planned:
            return planned[device.id]
        if device.id in work.matched:
            return None  # declared: kept
        below = [
            self._delete_subtree(work, child, children, planned)
            for child in children.get(device.id, [])
        ]
        kept = [work.matched[c.id] for c in children.get(device.id, []) if c.id in work.matched]
        name = f"{work.site.name}.{device.slug}"
        description = (
            f"Enapter {device.type} device {device.id} ({echo(device.name)}, slug "
            f"{device.slug}) in site {work.site.name} is not declared"
        )
        change = self._change(
            "Device",
            name,
            Action.DELETE,
            Reason.NOT_DECLARED,
            work.site,
            external_id=device.id,
            before={"type": device.type, "name": device.name, "slug": device.slug},
            depends_on=[c.address for c in below if c is not None],
            message=f"{description}; deleted{PRUNED.to(self.audience)}, after the devices "
            "running on it"
            + written_file_note(self.state, device.id),
        )
        blocker = next((c for c in below if c is not None and c.blocked), None)
        if kept:
            change.blocked = True
            change.message = (
                f"{description}, but declared devices run on it "
                f"({', '.join(sorted(kept))}); Enapter refuses to delete it "
                "while they do"
            )
        elif blocker is not None:
            _block(change, blocker)
        planned[device.id] = change
        return change


def not_the_api_message(sites: NotTheApi) -> str:
    """Why nothing is planned in Enapter Cloud when its site list was not found, and what
    to fix: the URL, since every token has a site list."""
    return (
        f"Enapter Cloud's site list was not found ({sites.reason}); nothing is created or "
        f"provisioned in Enapter Cloud. Check {sites.url_setting}: every token has a site "
        "list, so a 404 says the URL is not the Enapter Cloud API's base URL "
        "(https://api.enapter.com)"
    )


def _waits_for(change: Change, other: Change, by_address: dict[str, Change]) -> bool:
    """Whether `change` depends on `other`, directly or through what it depends on."""
    seen: set[str] = set()
    queue = list(change.depends_on)
    while queue:
        address = queue.pop()
        if address == other.address:
            return True
        if address not in seen and address in by_address:
            seen.add(address)
            queue += by_address[address].depends_on
    return False


def _block(change: Change, cause: Change) -> None:
    change.blocked = True
    change.reason = Reason.DEPENDENCY_BLOCKED
    change.message = f"blocked by {cause.address}: {cause.message}"


def _defer(changes: Iterable[Change], why: str, unread: Callable[[Change], bool]) -> None:
    """Defer every change (`defer`, which keeps a blocked change's cause first, the site
    planned as a deferral included); `unread` says which objects were not read."""
    for change in changes:
        if change.action is not Action.NO_OP:
            defer(change, why, unread=unread(change))


def plan_enapter(
    fleet: Fleet,
    observed: Observed,
    prune: bool,
    whole_fleet: Fleet | None,
    audience: Audience,
) -> tuple[list[Change], list[dict[str, Any]]]:
    """The registered planner: reads `observed.extra["enapter"]` (an `EnapterState`)."""
    state = observed.extra.get(COMPONENT)
    known = state if isinstance(state, EnapterState) else None
    return EnapterPlanner(fleet, known, prune, whole_fleet=whole_fleet, audience=audience).plan()
