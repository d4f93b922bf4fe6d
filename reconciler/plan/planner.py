"""The planner: a pure function of (desired fleet, observed state, options) to an ordered
list of changes. Each platform contributes its own changes; this module filters them by
target, orders them by dependency and summarises them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan import platforms, removed_fields, targeting
from reconciler.plan.actions import Action, Change, defer
from reconciler.plan.advice import Advice, Audience
from reconciler.plan.device_gateways import gateway_of_change
from reconciler.plan.flatpeak import COMPONENT as FLATPEAK
from reconciler.plan.observed import Observed
from reconciler.plan.retired import LeftSite, RetiredSite, retired_sites
from reconciler.plan.retired_enapter_sites import COMPONENT as ENAPTER
from reconciler.plan.retired_enapter_sites import retired_enapter_sites
from reconciler.plan.retired_gateways import retired_names
from reconciler.plan.retired_locations import retired_locations
from reconciler.plan.sourceful import SourcefulPlanner


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    prune: bool = False
    # Who reads the plan (the CLI's user or the operator's): its advice is worded for them
    # (`plan.advice`). The operator names itself; the CLI's wording is the plan document's.
    # No default: a caller that names none is a type error, not a plan worded for the CLI.
    audience: Audience
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    # Gateway serial -> deletion policy remembered from earlier applies.
    inventory: dict[str, str] = field(default_factory=dict)
    # Gateway serial -> the organisation it was declared in at those applies: a Release
    # policy is for the gateway as claimed there, and releases it from there only.
    inventory_orgs: Mapping[str, str] = field(default_factory=dict)
    # Undeclared gateways released without `prune` when the inventory says Release: the
    # serials the operator's Gateway object swapped out of its spec (nothing else of what
    # its plan finds undeclared is removed).
    release_serials: frozenset[str] = frozenset()
    # Gateway serial -> the Gateway last applied for it, for undeclared ones whose
    # deletionPolicy Release the inventory remembers (`plan.retired_gateways`): their Zap
    # is read, and the copies there of devices moved elsewhere go with the release; None
    # where the inventory holds no record of its Zap. Empty: no Zap of theirs is read.
    retired_gateways: Mapping[str, Gateway | None] = field(default_factory=dict)
    # The whole declared fleet when the one planned is a part of it (the operator plans one
    # object's closure at a time): a renamed Site is recognised by everything declared for
    # it, and never takes a site that another declared Site matches.
    whole_fleet: Fleet | None = None
    # Sites of `whole_fleet` outside the fleet planned whose Novacore devices are read too:
    # where a Device was last placed (the operator keeps it in the Device's status), so a
    # Device moved from there is planned as the move it is (plan.moves), not as new.
    lookup_sites: tuple[str, ...] = ()
    # Site name -> where an earlier apply put it, for Sites declared no more (from the
    # state directory's inventory): reported while their Novacore site exists.
    retired_sites: Mapping[str, RetiredSite] = field(default_factory=dict)
    # Site name -> where an earlier apply put it, for declared Sites: a Site renamed in git
    # that matches no site by name keeps this one (`plan.novacore_sites.applied_site`).
    applied_sites: Mapping[str, RetiredSite] = field(default_factory=dict)
    # Sites that declared Sites were applied to before their orgId or siteId changed:
    # reported while they exist, as retired sites are.
    left_sites: tuple[LeftSite, ...] = ()
    # Flatpeak location id -> the Site an earlier apply made or matched it for (from the
    # inventory): reported while it exists and no declared Site matches it.
    flatpeak_locations: Mapping[str, str] = field(default_factory=dict)
    # Enapter site id -> the Site an earlier apply made or matched it for (from the
    # inventory): reported while it exists and no declared Site matches it.
    enapter_sites: Mapping[str, str] = field(default_factory=dict)
    # Device name -> the Enapter sites its device was applied in (the operator: the one its
    # status records; the CLI: those `enapter_sites` remembers for its Site): a slug-keyed
    # device its Site's site lacks is looked for there, and replaced into the new one
    # (`plan.enapter_left_devices`).
    enapter_device_sites: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Device name -> the Enapter id its device was recorded with (the operator: its
    # status's): a device found where it was left is taken for it only with that id, never
    # one of the same slug that another namespace's Device made there since.
    enapter_device_ids: Mapping[str, str] = field(default_factory=dict)
    # Resource address -> the spec fields it declared at the last apply (from the
    # inventory; `model.declared`): one declared no more is set back to its default, or
    # reported as no longer managed (`plan.removed_fields`). No record: not compared.
    last_declared: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class Plan:
    """Ordered changes (no-ops included, for completeness of the JSON document)."""

    changes: list[Change]
    unmanaged: list[dict[str, Any]]
    options: PlanOptions
    # Retired Sites (PlanOptions.retired_sites) and left sites (PlanOptions.left_sites)
    # the inventory forgets (`plan.retired`); not part of the plan document.
    forget_sites: list[str] = field(default_factory=list)
    forget_left: list[LeftSite] = field(default_factory=list)
    # Remembered Flatpeak locations gone from the account (PlanOptions.flatpeak_locations).
    forget_locations: list[str] = field(default_factory=list)
    # Remembered Enapter sites gone from the account (PlanOptions.enapter_sites).
    forget_enapter_sites: list[str] = field(default_factory=list)
    # The changes (no-ops aside) a selection (--target, --exclude) left out: a plan of the
    # selected objects with nothing to do says the rest has something, not "No changes".
    outside_selection: int = 0

    @property
    def pending(self) -> list[Change]:
        """Changes that are something to do (not no-ops)."""
        return [c for c in self.changes if c.is_change]

    @property
    def has_changes(self) -> bool:
        return any(c.is_change for c in self.changes)

    @property
    def blocked(self) -> list[Change]:
        return [c for c in self.changes if c.blocked]

    @property
    def deferred(self) -> list[Change]:
        return [c for c in self.changes if c.action is Action.DEFER]

    def novacore_site_ids(self) -> dict[str, str]:
        """The Novacore id of each Site found in the cloud, by Site name: what devices are
        provisioned into (a site created by the apply adds its id as it goes)."""
        return novacore_site_ids(self.changes)

    def summary(self) -> dict[str, int]:
        counts = Counter(c.action.value for c in self.changes)
        out = {action.value: counts.get(action.value, 0) for action in Action}
        out["blocked"] = len(self.blocked)
        out["changes"] = len(self.pending)
        out["outside_selection"] = self.outside_selection
        # Last, as before 1.5: the CI recipes users copied read its line with sed.
        out["unmanaged"] = len(self.unmanaged)
        return out


# Phase of each component, so a site's changes read (and apply) in dependency order:
# site → claim → identity check → device on the Zap → clouds → publishing flags.
_PHASE = {"identity": 2, "zap": 3, "novacore": 4, "enapter": 4, "flatpeak": 5, "publish": 6}
# Removals run the other way: clouds first, then the gateway's device, release last.
_REMOVAL_PHASE = {"novacore": 7, "enapter": 7, "flatpeak": 7, "publish": 7, "zap": 8}


# Phases are numbered from 0 to 9.
_PHASES = 10


def _phase(change: Change) -> int:
    if change.action in (Action.DELETE, Action.RELEASE):
        return 9 if change.kind in ("Gateway", "Site") else _REMOVAL_PHASE.get(change.component, 8)
    if change.kind == "Site":
        return 0
    if change.kind == "Gateway":
        return 1
    return _PHASE.get(change.component, 5)


def _order_key(fleet: Fleet) -> Callable[[Change], int]:
    """The sort key of a plan's changes: the fleet's order of their sites (changes of no
    declared site last), then their phase. One integer rather than a (site, phase) tuple,
    and `_phase` written out for the common case: a fleet-wide plan sorts 30,000 changes."""
    site_order = {name: i * _PHASES for i, name in enumerate(fleet.sites)}
    unknown = len(site_order) * _PHASES
    removals = (Action.DELETE, Action.RELEASE)
    component_phase = _PHASE.get

    def key(change: Change) -> int:
        site = site_order.get(change.site, unknown)
        kind = change.kind
        if change.action in removals or kind == "Site" or kind == "Gateway":
            return site + _phase(change)
        return site + component_phase(change.component, 5)

    return key


class PlanBuilder:
    """A plan made while the observation is still under way: `site_observed()` plans a
    site as soon as its observations are in, so planning a large fleet overlaps the
    network waits of the reads still in flight; `finish()` plans the rest and what spans
    sites. The plan is the same whatever the order sites were reported in."""

    def __init__(self, fleet: Fleet, observed: Observed, options: PlanOptions):
        self.fleet = fleet
        self.observed = observed
        self.options = options
        # Address -> the fields declared at the last apply and not now: also what the
        # observation reads a serial for (`engine.observe`), as for any other replace.
        self.removed = _removed_fields(fleet, self.options.last_declared)
        self._sourceful = SourcefulPlanner(
            fleet,
            observed,
            prune=self.options.prune,
            audience=self.options.audience,
            inventory=dict(self.options.inventory),
            inventory_orgs=dict(self.options.inventory_orgs),
            release_serials=self.options.release_serials,
            retired_gateways=self.options.retired_gateways,
            whole_fleet=self.options.whole_fleet,
            applied_sites=self.options.applied_sites,
            left_sites=self.options.left_sites,
            removed_fields=self.removed,
        )

    def site_observed(self, site_name: str) -> None:
        self._sourceful.plan_site(site_name)

    def finish(self) -> Plan:
        options = self.options
        changes, unmanaged = self._sourceful.plan()
        for extra_planner in platforms.PLANNERS:
            more, more_unmanaged = extra_planner(
                self.fleet, self.observed, options.prune, options.whole_fleet, options.audience
            )
            changes += more
            unmanaged += more_unmanaged
        # The Sites' changes, one per site and platform, picked out once: each question
        # below is of them, and a fleet-wide plan has 30 times as many changes.
        site_changes = [c for c in changes if c.kind == "Site"]
        retired = retired_sites(
            options.retired_sites,
            self.observed,
            novacore_site_ids(site_changes).values(),
            options.left_sites,
            self._sourceful.duplicate_sites,
            audience=options.audience,
        )
        unmanaged += retired.unmanaged
        locations = retired_locations(
            options.flatpeak_locations,
            self.observed,
            (c.external_id for c in site_changes if c.component == FLATPEAK and c.external_id),
        )
        unmanaged += locations.unmanaged
        enapter_sites = retired_enapter_sites(
            options.enapter_sites, self.observed, site_ids(site_changes, ENAPTER).values()
        )
        unmanaged += enapter_sites.unmanaged
        unmanaged += self._removed_notes()
        selected = targeting.select(self.fleet, list(options.targets), list(options.excludes))
        outside = 0
        if selected is not None:
            declared = {(r.KIND, r.name) for r in self.fleet.resources()}
            everything = changes
            changes = [c for c in changes if self._is_selected(c, selected, declared)]
            outside = sum(c.is_change for c in everything) - sum(c.is_change for c in changes)
            _wait_for_left_out(changes, everything, options.audience)
            unmanaged = [u for u in unmanaged if _is_owned(u, selected)]
        # Stable: within a site, changes keep the order its planning made them in.
        changes.sort(key=_order_key(self.fleet))
        return Plan(
            changes=changes,
            unmanaged=unmanaged,
            options=options,
            forget_sites=retired.forget,
            forget_left=retired.forget_left,
            forget_locations=locations.forget,
            forget_enapter_sites=enapter_sites.forget,
            outside_selection=outside,
        )

    def _removed_notes(self) -> list[dict[str, Any]]:
        """The fields declared no more that are left as they are, reported as unmanaged."""
        notes: list[dict[str, Any]] = []
        if not self.removed:
            return notes
        for resource in self.fleet.resources():
            paths = self.removed.get(resource.address)
            if not paths:
                continue
            site = ""
            if isinstance(resource, Site):
                site = resource.name
            elif isinstance(resource, Device):
                found = self.fleet.site_of_device(resource)
                site = found.name if found is not None else ""
            notes += removed_fields.notes(resource, paths, site)
        return notes

    def _is_selected(
        self, change: Change, selected: targeting.Selection, declared: set[tuple[str, str]]
    ) -> bool:
        """Whether a selection keeps a change: a declared resource's when the resource is
        selected; an undeclared object's (a `--prune` removal) when what it was found in
        is taken whole: the gateway it is on (Zap, or a Novacore device bound to a gateway
        of its site), else its site (clouds). Gateways claimed but declared nowhere have no
        site and stay out."""
        if (change.kind, change.name) in declared:
            return (change.kind, change.name) in selected.resources
        if change.component == "zap":
            retired = retired_names(self.options.retired_gateways)
            return selected.owns("Gateway", gateway_of_change(self.fleet, change, retired))
        on = self._sourceful.pruned_on.get(change.address)
        if on is not None:
            return selected.owns("Gateway", on)
        return bool(change.site) and selected.owns("Site", change.site)


# A change kept waits for one a selection left out: the operator plans one object's closure
# and selects nothing, so what it leaves out is another object's to apply.
_LEFT_OUT = Advice(cli="which is outside the selection (--target, --exclude)",
                   operator="which another object's reconcile applies")


def _wait_for_left_out(
    kept: list[Change], everything: list[Change], audience: Audience
) -> None:
    """Defer each change a selection kept that waits for a change it left out: the apply
    takes a dependency not in its plan for none, and would run it at once. So the copy a
    moved device left on the gateway targeted is not removed before the device is added
    to its new gateway, which the selection does not take."""
    addresses = {c.address for c in kept}
    left_out = {c.address for c in everything if c.is_change and c.address not in addresses}
    if not left_out:
        return
    for change in kept:
        if not change.is_change or change.blocked or change.action is Action.DEFER:
            continue
        missing = next((d for d in change.depends_on if d in left_out), None)
        if missing is not None:
            defer(change, f"it goes after {missing}, {_LEFT_OUT.to(audience)}", unread=False)


def _removed_fields(
    fleet: Fleet, last_declared: Mapping[str, frozenset[str]]
) -> dict[str, list[str]]:
    """Address -> the fields its resource declared at the last apply and declares no more."""
    if not last_declared:
        return {}
    out: dict[str, list[str]] = {}
    for address, now in fleet.declared_fields().items():
        last = last_declared.get(address)
        if last:
            paths = removed_fields.removed(last, now)
            if paths:
                out[address] = paths
    return out


def _is_owned(entry: dict[str, Any], selected: targeting.Selection) -> bool:
    """Whether a selection keeps an unmanaged object: by the declared device it is part of
    (a DER nobody declares), else the gateway it was found on, else the site it was found
    in; one of none (a gateway claimed in an organisation) is the whole fleet's to judge."""
    if "device" in entry:
        return ("Device", entry["device"]) in selected.resources
    if "gateway" in entry:
        return selected.owns("Gateway", entry["gateway"])
    return "site" in entry and selected.owns("Site", entry["site"])


def novacore_site_ids(changes: Iterable[Change]) -> dict[str, str]:
    """Site name -> the id of the Novacore site it matches, for the Sites found there."""
    return site_ids(changes, "novacore")


def site_ids(changes: Iterable[Change], component: str) -> dict[str, str]:
    """Site name -> the id of its object on `component` (a Novacore site, a Flatpeak
    location), for the Sites whose object was found there."""
    return {
        c.site: c.external_id
        for c in changes
        if c.kind == "Site" and c.component == component and c.external_id
    }


def make_plan(fleet: Fleet, observed: Observed, options: PlanOptions) -> Plan:
    """The plan of a fleet from its complete observed state."""
    return PlanBuilder(fleet, observed, options).finish()
