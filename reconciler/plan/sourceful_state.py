"""The state of one Sourceful plan (`SourcefulState`) and what its parts share: adding a
change, blocking and deferring changes, and the lookups between declared and observed
objects (organisations' sites, declared Sites and Gateways by Novacore id and serial, where
devices are declared). `GatewayContext` is what every device behind one gateway is planned
against. The planning itself is `plan.sourceful` and `plan.sourceful_unmanaged`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan import moves
from reconciler.plan.actions import Action, Change, FieldDiff, Reason, address_of, defer
from reconciler.plan.advice import Audience
from reconciler.plan.device_gateways import gateway_of_change
from reconciler.plan.moves import Declaration, ProvisionedIndex
from reconciler.plan.novacore_sites import SiteIndex, match_site, unclaimed_sites
from reconciler.plan.observed import NovacoreSite, Observed, ZapState
from reconciler.plan.removal import MovedCopy
from reconciler.plan.retired import LeftSite, RetiredSite
from reconciler.plan.zap_endpoint_clashes import Wait
from reconciler.printable import echo


@dataclass(slots=True)
class GatewayContext:
    """What every device behind one gateway is planned against, worked out once per gateway."""

    site: str  # the site's resource name
    gateway: str  # the gateway's resource name
    serial: str  # the gateway's serial
    in_novacore: bool  # whether the site provisions its devices in Novacore
    claim: Change  # the gateway's claim
    site_change: Change | None  # the site's Novacore change, when it has a novacore block
    zap: ZapState | None  # what the Zap reports, None when it could not be read
    org: str | None = None  # the site's Novacore organisation, when it has a novacore block
    site_id: str | None = None  # the Novacore site the site matches, when it matches one
    # What the claim and the site change mean for every device (neither changes while the
    # gateway's devices are planned): the dependencies a device starts from (read-only:
    # each change takes a copy), the site change's address where a device's provisioning
    # waits for it, and what blocks the device.
    claim_deps: list[str] = field(init=False)
    site_dep: str | None = field(init=False)
    blocked_by_claim: Change | None = field(init=False)
    blocked_by_site: Change | None = field(init=False)

    def __post_init__(self) -> None:
        claim, site_change = self.claim, self.site_change
        self.claim_deps = [claim.address] if claim.is_change else []
        self.blocked_by_claim = claim if claim.blocked else None
        self.site_dep = None
        self.blocked_by_site = None
        if site_change is not None:
            self.site_dep = site_change.address if site_change.is_change else None
            self.blocked_by_site = site_change if site_change.blocked else None


@dataclass
class SourcefulState:
    """What one Sourceful plan is built in: the fleet, what was observed, the options, the
    changes and unmanaged objects found so far, and the lookups the planner's parts share
    (each worked out once per plan)."""

    fleet: Fleet
    observed: Observed
    prune: bool = False
    # Who reads the plan: how its advice is worded (planner.PlanOptions.audience).
    audience: Audience = field(kw_only=True)
    # Gateway serial -> deletion policy remembered from earlier applies (the inventory).
    inventory: dict[str, str] = field(default_factory=dict)
    # Gateway serial -> the organisation it was declared in, remembered likewise.
    inventory_orgs: dict[str, str] = field(default_factory=dict)
    # Undeclared gateways released as with `prune` (planner.PlanOptions.release_serials).
    release_serials: frozenset[str] = frozenset()
    # Undeclared gateways as last applied (planner.PlanOptions.retired_gateways).
    retired_gateways: Mapping[str, Gateway | None] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    unmanaged: list[dict[str, Any]] = field(default_factory=list)
    # Site resource name -> the Novacore site it matched.
    _site_indexes: dict[str, SiteIndex] = field(default_factory=dict)
    _matched_site: dict[str, NovacoreSite] = field(default_factory=dict)
    # What a renamed Site is recognised by (planner.PlanOptions.whole_fleet); None: `fleet`.
    whole_fleet: Fleet | None = None
    # Where earlier applies put declared Sites (planner.PlanOptions.applied_sites).
    applied_sites: Mapping[str, RetiredSite] = field(default_factory=dict)
    # Sites that declared Sites left (planner.PlanOptions.left_sites).
    left_sites: Collection[LeftSite] = ()
    # Resource address -> the fields declared at the last apply and not now
    # (`plan.removed_fields`): a Zap connection setting among them is set back.
    removed_fields: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # Ids of the Novacore sites reported as having the name of a Site that uses another
    # (`plan.sourceful_unmanaged`): not reported again as retired or left sites.
    _duplicate_sites: set[str] = field(default_factory=set)
    # Org id -> its sites no declared Site matches (where renamed Sites are looked for).
    _unclaimed_sites: dict[str, list[NovacoreSite]] = field(default_factory=dict)
    # Site resource name -> its unmanaged objects (kept per site: sites may be planned in
    # any order, and the report lists them in the fleet's order).
    _site_unmanaged: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Where devices moved from and to (plan.moves), worked out when first needed.
    _declarations: dict[str, list[Declaration]] | None = None
    _provisioned: ProvisionedIndex | None = None
    _org_site_ids: dict[str, set[str]] = field(default_factory=dict)
    _site_orgs: dict[str, str] | None = None
    _gateway_names: dict[str, str] | None = None
    # Gateway serial -> the pruned Novacore deletes of devices bound to it: an undeclared
    # gateway is released only after them (removal runs provisioning's order backwards).
    _pruned_behind: dict[str, list[str]] = field(default_factory=dict)
    # Address of a pruned Novacore delete -> the site's declared Gateway its device is
    # bound to: it goes with that gateway in a selection (`planner`), as the device's copy
    # on the Zap does, not with the site alone.
    pruned_on: dict[str, str] = field(default_factory=dict)
    # The copies on a declared gateway's Zap of devices declared behind another gateway
    # that `--prune` removes: (that gateway's name, the copy, its removal), ordered after
    # the devices moved once every site is planned (`plan.sourceful_unmanaged`).
    _moved_copies: list[tuple[str, MovedCopy, Change]] = field(default_factory=list)
    # The adds ordered after the change that frees their endpoint on the Zap
    # (`plan.zap_endpoint_clashes`), settled again once every site is planned.
    _endpoint_waits: list[Wait] = field(default_factory=list)

    # -- helpers ---------------------------------------------------------------------------

    def _add(self, change: Change) -> Change:
        self.changes.append(change)
        return change

    def _change(
        self,
        kind: str,
        name: str,
        component: str,
        action: Action,
        reason: Reason,
        site: str,
        *,
        message: str = "",
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        diff: Sequence[FieldDiff] = (),
        external_id: str | None = None,
        depends_on: Sequence[str] = (),
        blocked: bool = False,
    ) -> Change:
        """Add a change of the site named `site`. Built here rather than through
        Change.new: a fleet-wide plan makes 30,000 of these. An empty diff or dependency
        list is left to the shared empty default."""
        # Positional, in the order of Change's fields (keywords cost a tenth of a plan).
        change = Change(
            address_of(kind, name, component),
            kind,
            name,
            component,
            action,
            reason,
            message,
            site,
            before,
            after,
            diff or (),
            external_id,
            depends_on or (),
            blocked,
        )
        self.changes.append(change)
        return change

    @property
    def _whole(self) -> Fleet:
        return self.whole_fleet or self.fleet

    def _unclaimed(self, org: str, index: SiteIndex) -> list[NovacoreSite]:
        found = self._unclaimed_sites.get(org)
        if found is None:
            found = self._unclaimed_sites[org] = unclaimed_sites(self._whole, org, index)
        return found

    # -- lookups ---------------------------------------------------------------------------

    def _org_sites(self, org: str) -> set[str] | None:
        """The ids of the listed sites of `org` (None: not listed)."""
        org_sites = self._org_site_ids.get(org)
        if org_sites is None:
            listed = self.observed.novacore_sites.get(org)
            if not isinstance(listed, list):
                return None
            org_sites = self._org_site_ids[org] = {s.id for s in listed}
        return org_sites

    def _org_of_site(self, site_id: str) -> str | None:
        """The organisation whose listed sites include `site_id`."""
        if self._site_orgs is None:
            self._site_orgs = {
                s.id: org
                for org, listed in self.observed.novacore_sites.items()
                if isinstance(listed, list)
                for s in listed
            }
        return self._site_orgs.get(site_id)

    def _declared(self) -> dict[str, list[Declaration]]:
        if self._declarations is None:
            self._declarations = moves.declarations(self._whole)
        return self._declarations

    def _bound_gateway(self, site: Site, serial: str | None) -> str | None:
        """The Gateway of `site` that has `serial` (a Novacore device's gateway), if one
        is declared."""
        name = self._gateway_name(serial) if serial else None
        gateway = self.fleet.gateways.get(name or "")
        return name if gateway is not None and gateway.spec.site_ref == site.name else None

    def _gateway_name(self, serial: str | None) -> str:
        """The declared Gateway with this serial, else the serial."""
        if self._gateway_names is None:
            self._gateway_names = {
                g.spec.zap.serial: g.name for g in self._whole.gateways.values() if g.spec.zap
            }
        return self._gateway_names.get(serial or "", serial or "")

    def _site_index(self, org: str, listed: list[NovacoreSite]) -> SiteIndex:
        """The sites listed of `org` by id and name, indexed once per plan."""
        index = self._site_indexes.get(org)
        if index is None:
            index = self._site_indexes[org] = SiteIndex(listed)
        return index

    def _site_name(self, org: str | None, site_id: str) -> str:
        """The declared Site that matches the Novacore site `site_id` of `org`, else that
        site's name and id."""
        listed = self.observed.novacore_sites.get(org or "")
        if not isinstance(listed, list):
            return site_id
        declared = self._declared_site(org or "", site_id)
        if declared is not None:
            return declared
        known = self._site_index(org or "", listed).by_id.get(site_id)
        return f"{echo(known.name)} ({site_id})" if known is not None else site_id

    def _declared_site(self, org: str, site_id: str) -> str | None:
        """The declared Site that matches the Novacore site `site_id` of `org`."""
        listed = self.observed.novacore_sites.get(org)
        if not isinstance(listed, list):
            return None
        index = self._site_index(org, listed)
        for site in self._whole.sites.values():
            novacore = site.spec.novacore
            if novacore is not None and novacore.org_id == org:
                match = match_site(site, index)
                if match is not None and match.id == site_id:
                    return site.name
        return None

    # -- cross-cutting -----------------------------------------------------------------------

    @staticmethod
    def _block(change: Change, cause: Change) -> None:
        # What is in sync has nothing to wait for: a no-op counted as blocked made a plan
        # say "5 blocked" over three blocked rows, the no-ops being hidden.
        if not change.is_change:
            return
        change.blocked = True
        change.reason = Reason.DEPENDENCY_BLOCKED
        change.message = f"blocked by {cause.address}: {cause.message}"

    def _defer(
        self, changes: Iterable[Change], why: str, offline_gateways: set[str], cloud_unread: bool
    ) -> None:
        for change in changes:
            if change.action in (Action.NO_OP, Action.DEFER):
                continue
            unread = change.kind == "Device" and (
                cloud_unread
                if change.component == "novacore"
                else gateway_of_change(self.fleet, change) in offline_gateways
            )
            defer(change, why, unread=unread)
