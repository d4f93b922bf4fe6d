"""Planning for Sourceful: Novacore sites, gateway claims, devices on the Zap, DER
publishing flags on the Zap, and device provisioning in Novacore.

Order inside a site: site → gateway claim → identity check → device on the Zap → cloud
provisioning → DER publishing; removals run the other way. A site with an unreachable
gateway or cloud defers as a whole: nothing is guessed.

This module plans what the fleet declares; what nobody declares is `plan.sourceful_unmanaged`,
and the plan's state and the lookups both share are `plan.sourceful_state`.
"""

from __future__ import annotations

from typing import Any

from reconciler.model.der import DerFields
from reconciler.model.device import Device
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan import removed_fields, renames
from reconciler.plan.actions import Action, Change, FieldDiff, Reason, update_or_in_sync
from reconciler.plan.diff import declared_diff
from reconciler.plan.moves import OrgMove, Provisioned, ProvisionedIndex
from reconciler.plan.novacore_claims import claim_org, no_access_message
from reconciler.plan.novacore_devices import (
    bound_device,
    cloud_drift,
    der_type_changed,
    novacore_fields,
    observed_novacore_fields,
)
from reconciler.plan.novacore_sites import applied_site, find_renamed, match_site, rename_search_ids
from reconciler.plan.observed import (
    NoAccess,
    NovacoreDevice,
    NovacoreSite,
    Unreachable,
    ZapDevice,
    ZapState,
)
from reconciler.plan.renames import Rename
from reconciler.plan.sourceful_state import GatewayContext
from reconciler.plan.sourceful_unmanaged import UnmanagedPlanner
from reconciler.plan.zap_endpoint_clashes import after_frees, settle
from reconciler.plan.zap_settings import (
    declared_zap_settings,
    observed_connection,
    publish_flags,
    zap_connection_diff,
    zap_reset_diff,
    zap_settings,
)
from reconciler.printable import echo, quoted


class SourcefulPlanner(UnmanagedPlanner):
    """Plans one fleet. Construct, then call `plan()`; `plan_site()` before that plans a
    site as soon as its observations are in (the engine does so while it still observes
    the rest). Its fields are `SourcefulState`'s."""

    @property
    def duplicate_sites(self) -> frozenset[str]:
        """The Novacore sites reported as having the name of a Site that uses another."""
        return frozenset(self._duplicate_sites)

    def plan(self) -> tuple[list[Change], list[dict[str, Any]]]:
        """Every site not planned yet, then what spans sites. The changes come in the order
        sites were planned; the caller sorts them (`planner.PlanBuilder.finish`)."""
        for name in self.fleet.sites:
            self.plan_site(name)
        self.unmanaged = [
            entry for name in self.fleet.sites for entry in self._site_unmanaged.get(name, [])
        ]
        self._drop_taken_duplicates()
        self._copies_after_moves()
        self._unmanaged_gateways()
        # Last: whether a removal that frees an endpoint goes is known only now.
        after_frees(self._endpoint_waits, self.changes, self._block)
        return self.changes, self.unmanaged

    def plan_site(self, name: str) -> None:
        """Plan one site (once). Call it only when everything the site reads is observed:
        every organisation's sites and gateways, the Zaps of its gateways (and the serials
        read from their new devices), and the Novacore devices of the site it matches."""
        if name in self._site_unmanaged:
            return
        site = self.fleet.sites[name]
        first = len(self.unmanaged)
        gateways = self.fleet.gateways_of(name)
        if site.spec.novacore is not None or gateways:
            self._plan_site(site, gateways)
        self._site_unmanaged[name] = self.unmanaged[first:]
        del self.unmanaged[first:]

    # -- site ------------------------------------------------------------------------------

    def _plan_site(self, site: Site, gateways: list[Gateway]) -> None:
        first = len(self.changes)
        site_name = site.name
        site_change = self._plan_novacore_site(site)
        novacore_site = self._matched_site.get(site_name)
        devices_obs: list[NovacoreDevice] | Unreachable | None = None
        if novacore_site is not None:
            devices_obs = self.observed.novacore_devices.get(novacore_site.id, [])
        unreachable: list[str] = []
        if isinstance(devices_obs, Unreachable):
            unreachable.append(f"Novacore devices of site {novacore_site.id}: {devices_obs.reason}")  # type: ignore[union-attr]
        if site_change is not None and site_change.action is Action.DEFER:
            unreachable.append(site_change.message)
        by_hardware: dict[str, list[NovacoreDevice]] = {}
        if isinstance(devices_obs, list):
            for cloud_device in devices_obs:
                by_hardware.setdefault(cloud_device.hardware_id, []).append(cloud_device)
        matched: set[str] = set()  # ids of the Novacore devices declared devices are
        offline: set[str] = set()  # gateways whose Zap did not answer
        for gateway in gateways:
            zap = gateway.spec.zap
            if zap is None:
                continue
            gateway_name = gateway.name
            claim = self._plan_claim(site, gateway)
            if (
                claim.reason is Reason.NO_ACCESS
                and site_change is not None
                and site_change.reason is Reason.NO_ACCESS
                and not zap.org_id
            ):
                # One organisation out of reach: said once, at the site.
                self._block(claim, site_change)
            if claim.action is Action.DEFER:
                # Who owns the gateway is unknown: adding devices to it would be a guess.
                unreachable.append(claim.message)
            observed_zap = self.observed.zaps.get(gateway_name)
            if observed_zap is None:
                observed_zap = Unreachable("not observed")
            zap_obs: ZapState | None = None
            if isinstance(observed_zap, Unreachable):
                called = observed_zap.url or zap.url  # an override, where one was used
                unreachable.append(f"gateway {gateway_name} ({called}): {observed_zap.reason}")
                offline.add(gateway_name)
            else:
                zap_obs = observed_zap
            at = GatewayContext(
                site=site_name,
                gateway=gateway_name,
                serial=zap.serial,
                in_novacore=site.spec.novacore is not None,
                claim=claim,
                site_change=site_change,
                zap=zap_obs,
                org=site.spec.novacore.org_id if site.spec.novacore is not None else None,
                site_id=novacore_site.id if novacore_site is not None else None,
            )
            # Every hardware id declared on the gateway: what the Zap holds beyond is unmanaged.
            on_gateway: set[str | None] = set()
            gateway_first = len(self.changes)
            for device, ders in self.fleet.devices_and_ders_of(gateway_name):
                spec = device.spec
                hardware_id = spec.hardware_id
                on_gateway.add(hardware_id)
                if hardware_id is None or spec.connection is None:
                    continue
                cloud = bound_device(by_hardware.get(hardware_id, []), zap.serial)
                cloud_site = at.site_id
                left: OrgMove | None = None
                if cloud is not None:
                    matched.add(cloud.id)
                elif at.in_novacore:
                    # Not in its own site: it may be in another one, and move here with its
                    # hardware (Novacore rebinds a hardware id it has; plan.moves).
                    found = self._provisioned_elsewhere(at, hardware_id)
                    if found is not None:
                        cloud, cloud_site = found.device, found.site_id
                    else:
                        # Or in another organisation, which no rebinding leaves.
                        left = self._provisioned_in_other_org(at, hardware_id)
                self._plan_device(at, device, ders, cloud, cloud_site, left)
            if zap_obs is not None:
                self._unmanaged_zap_devices(site, gateway, zap_obs, on_gateway)
                # An add where a device of the Zap is waits for the removal that frees its
                # endpoint, or is blocked: the Zap would refuse it (409) on every apply.
                self._endpoint_waits += settle(
                    gateway_name, zap_obs, self.changes[gateway_first:], self._whole,
                    self._block, self.audience,
                )
        if isinstance(devices_obs, list):
            pruned = self._unmanaged_cloud_devices(site, devices_obs, matched)
            for change in self.changes[first:]:
                # A device pruned from its Zap goes after its Novacore record: deleted the
                # other way round, a failed delete would leave a record reading nothing.
                if (
                    change.component == "zap"
                    and change.action is Action.DELETE
                    and change.external_id in pruned
                ):
                    change.depends_on = [pruned[change.external_id]]
        if unreachable:
            # The site's devices in Novacore are not known when they, or the site list
            # that says which site is this Site's, could not be read.
            cloud_unread = isinstance(devices_obs, Unreachable) or (
                site_change is not None and site_change.action is Action.DEFER
            )
            self._defer(self.changes[first:], "; ".join(unreachable), offline, cloud_unread)

    def _plan_novacore_site(self, site: Site) -> Change | None:
        novacore = site.spec.novacore
        if novacore is None:
            return None
        after = {"name": site.spec.display_name, "org_id": novacore.org_id}

        def site_change(action: Action, reason: Reason, **kwargs: Any) -> Change:
            return self._change("Site", site.name, "novacore", action, reason, site.name,
                                after=after, **kwargs)

        observed = self.observed.novacore_sites.get(novacore.org_id)
        if isinstance(observed, NoAccess):
            # Blocked, not deferred: reading again gives the same answer, and each apply
            # would retry a site whose claim and provisioning can only fail. Nothing of the
            # site is written (its claim and devices wait on this); other sites go on.
            return site_change(
                Action.VERIFY,
                Reason.NO_ACCESS,
                blocked=True,
                message=no_access_message(
                    novacore.org_id, observed, f"`spec.novacore.orgId` of Site {site.name}"
                ),
            )
        if isinstance(observed, Unreachable) or observed is None:
            reason = observed.reason if isinstance(observed, Unreachable) else "not observed"
            return site_change(
                Action.DEFER,
                Reason.TARGET_UNREACHABLE,
                message=f"Novacore organisation {novacore.org_id}: {reason}",
            )
        index = self._site_index(novacore.org_id, observed)
        match = match_site(site, index)
        if match is not None:
            self._same_named_sites(site, match, index)
        remembered = None
        if match is None:
            remembered = applied_site(
                self._whole, site, index, self.applied_sites,
                lambda: self._unclaimed(novacore.org_id, index),
            )
        not_found = f"no site named {echo(site.spec.display_name)} in {novacore.org_id}"
        rename: Rename[NovacoreSite] | None = None
        # Hardware ids to recognise the site it was renamed from by, if it is looked for.
        search_ids = (
            rename_search_ids(self._whole, site) if match is None and remembered is None
            else set()
        )
        if search_ids:
            rename = find_renamed(
                self._whole, site, self._unclaimed(novacore.org_id, index),
                self.observed.novacore_devices, search_ids,
            )
            if rename.unreachable:
                return site_change(
                    Action.DEFER,
                    Reason.TARGET_UNREACHABLE,
                    message=f"looking for the site it was renamed from: {rename.problem}",
                )
            if rename.problem is not None:
                return site_change(
                    Action.CREATE,
                    Reason.NOT_FOUND,
                    blocked=True,
                    message=f"{not_found}, and {rename.problem}",
                )
            match = rename.site
        match = match or remembered
        if match is None:
            if novacore.site_id is not None:
                return site_change(
                    Action.CREATE,
                    Reason.NOT_FOUND,
                    blocked=True,
                    message=f"site {novacore.site_id} does not exist in "
                    f"{novacore.org_id}; remove `siteId` to create a new site",
                )
            if rename is not None:
                not_found = rename.not_found(not_found)
            return site_change(
                Action.CREATE, Reason.NOT_FOUND, diff=declared_diff(after, None), message=not_found
            )
        self._matched_site[site.name] = match
        before = {"name": match.name, "org_id": match.org_id}
        diff = declared_diff(after, before)
        action, reason = update_or_in_sync(diff)
        # Matched here only through a rename search (the site was found by what it holds),
        # or through the inventory (an earlier apply put the Site there).
        message = ""
        if rename is not None:
            message = renames.RENAMED_MESSAGE.format(id=match.id)
        elif remembered is not None:
            message = renames.REMEMBERED_MESSAGE.format(id=match.id)
        return site_change(
            action, reason, before=before, diff=diff, external_id=match.id, message=message
        )

    # -- gateway claim ---------------------------------------------------------------------

    def _owner_of(self, serial: str) -> tuple[str | None, str | None]:
        """(owning org among the observed ones, reason it is unknown)."""
        for org, gateways in self.observed.novacore_gateways.items():
            if isinstance(gateways, Unreachable):
                continue
            if serial in gateways:
                return org, None
        return None, None

    def _plan_claim(self, site: Site, gateway: Gateway) -> Change:
        zap = gateway.spec.zap
        assert zap is not None
        target = claim_org(gateway, site)
        after = {"serial": zap.serial, "org_id": target}
        target_obs = self.observed.novacore_gateways.get(target)
        if isinstance(target_obs, NoAccess):
            field_name = (
                f"`spec.zap.orgId` of Gateway {gateway.name}"
                if zap.org_id
                else f"`spec.novacore.orgId` of Site {site.name}"
            )
            return self._change(
                "Gateway",
                gateway.name,
                "novacore",
                Action.CLAIM,
                Reason.NO_ACCESS,
                site.name,
                after=after,
                blocked=True,
                message=no_access_message(target, target_obs, field_name),
            )
        if isinstance(target_obs, Unreachable) or target_obs is None:
            reason = target_obs.reason if isinstance(target_obs, Unreachable) else "not observed"
            return self._change(
                "Gateway",
                gateway.name,
                "novacore",
                Action.DEFER,
                Reason.TARGET_UNREACHABLE,
                site.name,
                after=after,
                message=f"gateways of {target}: {reason}",
            )
        owner, _ = self._owner_of(zap.serial)
        if owner == target:
            return self._change(
                "Gateway",
                gateway.name,
                "novacore",
                Action.NO_OP,
                Reason.IN_SYNC,
                site.name,
                before=after,
                after=after,
                external_id=zap.serial,
            )
        if owner is not None:
            before = {"serial": zap.serial, "org_id": owner}
            message = (
                f"gateway {zap.serial} is owned by {owner}; claiming it into {target} "
                f"orphans {owner}'s devices on it"
            )
            if not zap.allow_transfer:
                return self._change(
                    "Gateway",
                    gateway.name,
                    "novacore",
                    Action.TRANSFER,
                    Reason.TRANSFER_NOT_ALLOWED,
                    site.name,
                    before=before,
                    after=after,
                    diff=declared_diff(after, before),
                    blocked=True,
                    message=message + "; set `allowTransfer: true` on the Gateway to allow it",
                )
            return self._change(
                "Gateway",
                gateway.name,
                "novacore",
                Action.TRANSFER,
                Reason.OWNED_BY_OTHER_ORG,
                site.name,
                before=before,
                after=after,
                diff=declared_diff(after, before),
                message=message,
            )
        return self._change(
            "Gateway",
            gateway.name,
            "novacore",
            Action.CLAIM,
            Reason.NOT_FOUND,
            site.name,
            after=after,
            diff=declared_diff(after, None),
            message=f"gateway {zap.serial} is not claimed by {target}",
        )

    # -- devices ---------------------------------------------------------------------------

    def _plan_device(
        self,
        at: GatewayContext,
        device: Device,
        ders: list[DerFields],
        cloud: NovacoreDevice | None,
        cloud_site: str | None,
        left: OrgMove | None = None,
    ) -> None:
        """The changes of one declared device behind the gateway of `at`, which declares
        `ders` (`Fleet.ders_of`): on the Zap, in Novacore (`cloud`, found in the Novacore
        site `cloud_site`; or none, and `left` in another organisation), its DER
        publishing."""
        # Each model attribute is read once here and passed on: a fleet-wide plan reads
        # 10,000 devices, and every read of a pydantic field is a lookup in a cold object.
        name = device.name
        spec = device.spec
        connection = spec.connection
        hardware_id = spec.hardware_id
        assert connection is not None and hardware_id is not None
        zap_obs = at.zap.devices.get(hardware_id) if at.zap is not None else None
        desired = zap_settings(connection)
        deps = at.claim_deps
        blocked_by = at.blocked_by_claim

        before = observed_connection(zap_obs) if zap_obs is not None else None
        # What the Zap reports is what would be sent, as for most devices: nothing differs,
        # and the settings the spec declares need not be told from the defaults.
        in_sync = before == desired
        diff = (zap_connection_diff(declared_zap_settings(connection, desired), before)
                if before is not None and not in_sync else [])
        reset: list[str] = []
        # Looked up only where the last apply declared fields that are gone (seldom): the
        # address is not formatted for every device of every plan.
        removed_paths = (
            self.removed_fields.get(f"device/{name}") if self.removed_fields else None
        )
        if removed_paths and before is not None:
            more, reset = zap_reset_diff(desired, before, removed_paths)
            diff += more
        if (
            (zap_obs is None or diff)
            and spec.verification.check_serial
            and connection.modbus_tcp is not None
            and at.zap is not None
        ):
            # Read the serial at the address about to be added, before anything is written:
            # a replace removes the device that works first.
            verify = self._plan_verify(at.site, device, deps)
            deps = [verify.address]
            if verify.blocked:
                blocked_by = verify

        zap_change: Change | None = None
        if zap_obs is None:
            zap_change = self._change(
                "Device",
                name,
                "zap",
                Action.CREATE,
                Reason.NOT_FOUND,
                at.site,
                after=desired,
                diff=declared_diff(desired, None),
                depends_on=list(deps),
                message=f"not configured on gateway {at.gateway}",
            )
        elif diff or name in self.observed.changed_secrets:
            # The Zap reports no password, so a changed one is known only from the
            # credential ledger (engine.credentials); it is sent again the same way.
            message = (
                "the Zap cannot change a device's connection; it is removed and added again"
                if diff
                else f"{self.observed.changed_secrets[name]} changed since it was sent to "
                "the device; it is removed and added again with the new one"
            )
            reason = Reason.CANNOT_UPDATE if diff else Reason.SECRET_CHANGED
            if reset:
                fields = ", ".join(f"spec.{path}" for path in reset)
                message = (
                    f"{fields} {removed_fields.REASON_TEXT}: the Zap's default is set again; "
                    f"{message}"
                )
                if len(reset) == len(diff):
                    reason = Reason.FIELD_REMOVED
            zap_change = self._change(
                "Device",
                name,
                "zap",
                Action.REPLACE,
                reason,
                at.site,
                before=before,
                after=desired,
                diff=diff,
                depends_on=list(deps),
                external_id=zap_obs.sn,
                message=message,
            )
        elif name in self.observed.missing_secrets:
            # In place, but whether its password changed cannot be checked: said, as for a
            # device to add, instead of taken for in sync. What does not send the password
            # (the cloud record, the DERs) goes on.
            zap_change = self._change(
                "Device",
                name,
                "zap",
                Action.VERIFY,
                Reason.SECRET_MISSING,
                at.site,
                before=before,
                after=desired,
                external_id=zap_obs.sn,
                blocked=True,
                message=f"{self.observed.missing_secrets[name]}; whether the device still has "
                "the declared password cannot be checked: provide it",
            )
        else:
            self._change(
                "Device",
                name,
                "zap",
                Action.NO_OP,
                Reason.IN_SYNC,
                at.site,
                # One dict for both where the Zap reports what is declared, as it does for
                # most devices: a fleet-wide plan keeps 10,000 of these.
                before=desired if in_sync else before,
                after=desired,
                external_id=zap_obs.sn,
            )
        if zap_change is not None and zap_change.action is not Action.VERIFY:
            deps = [zap_change.address]
            if blocked_by is not None:
                self._block(zap_change, blocked_by)
            elif name in self.observed.missing_secrets:
                # Adding the device sends its password: without it nothing can be done.
                zap_change.blocked = True
                zap_change.message = (
                    f"{self.observed.missing_secrets[name]}; provide it before applying"
                )
                blocked_by = zap_change

        cloud_deps = list(deps)
        if at.site_dep is not None:
            cloud_deps.append(at.site_dep)
        cloud_change = self._plan_cloud_device(
            at, name, device, ders, cloud, cloud_site, cloud_deps, left
        )
        if blocked_by is None:
            blocked_by = at.blocked_by_site
        if cloud_change is not None and blocked_by is not None:
            self._block(cloud_change, blocked_by)
        # Depend only on changes: a no-op is never run, so waiting on it waits on nothing
        # (a device re-added to its Zap must be there before its DERs are switched).
        publish_deps = list(deps)
        if cloud_change is not None and cloud_change.is_change:
            publish_deps = [cloud_change.address]
        publish = self._plan_publish(
            at.site,
            name,
            hardware_id,
            ders,
            zap_obs,
            publish_deps,
            added_again=zap_change is not None and zap_change.action is Action.REPLACE,
        )
        if publish is not None and blocked_by is not None:
            self._block(publish, blocked_by)

    def _plan_verify(self, site: str, device: Device, deps: list[str]) -> Change:
        expected = device.spec.hardware_id
        reading = self.observed.identities.get(device.name)
        after = {"serial": expected}
        if reading is None or reading.error is not None:
            why = reading.error if reading is not None else "not read"
            return self._change(
                "Device",
                device.name,
                "identity",
                Action.VERIFY,
                Reason.IDENTITY_CHECK,
                site,
                after=after,
                depends_on=list(deps),
                message=f"serial not read yet ({why}); it is checked before the device is added",
            )
        if reading.serial != expected:
            serial = reading.serial or ""
            # Said, as the escape alone is easily read past: not padding, but more text.
            nul = ", which goes on after a NUL byte (\\x00)" if "\0" in serial else ""
            return self._change(
                "Device",
                device.name,
                "identity",
                Action.VERIFY,
                Reason.IDENTITY_MISMATCH,
                site,
                before={"serial": reading.serial},
                after=after,
                blocked=True,
                depends_on=list(deps),
                message=f"the device reports serial {quoted(serial)}{nul}, not "
                f"hardwareId {expected!r}; it is not provisioned. Check "
                "the address or correct `hardwareId`",
            )
        return self._change(
            "Device",
            device.name,
            "identity",
            Action.VERIFY,
            Reason.IDENTITY_CHECK,
            site,
            before={"serial": reading.serial},
            after=after,
            depends_on=list(deps),
            message="serial matches hardwareId; checked again before adding",
        )

    def _plan_cloud_device(
        self,
        at: GatewayContext,
        name: str,
        device: Device,
        ders: list[DerFields],
        cloud: NovacoreDevice | None,
        cloud_site: str | None,
        deps: list[str],
        left: OrgMove | None = None,
    ) -> Change | None:
        if not at.in_novacore:
            return None
        after = novacore_fields(device, ders)
        if cloud is None and left is not None:
            return self._plan_org_move(at, name, after, deps, left)
        if cloud is None:
            return self._change(
                "Device",
                name,
                "novacore",
                Action.CREATE,
                Reason.NOT_FOUND,
                at.site,
                after=after,
                diff=declared_diff(after, None),
                depends_on=deps,
                message="not provisioned in Novacore",
            )
        before = observed_novacore_fields(cloud)
        for key in cloud.unset:
            # Declared, and reported empty: a value to set, not a field left unreported.
            if key in after:
                before[key] = None
        moved = self._moved_from(at, cloud, cloud_site, before, after)
        # In sync, as most devices are: one comparison settles every field and DER (made
        # once: the records hold nested dicts), and the change keeps one dict for both.
        same = before == after
        replaced_because = ""
        if not same and (
            before["device_type"] != after["device_type"]
            or der_type_changed(after["ders"], before["ders"])
        ):
            replaced_because = (
                "device type or a DER type changed; Novacore cannot update them in place"
            )
            if moved:
                replaced_because = f"{moved}; {replaced_because}"
        if replaced_because:
            return self._replace_device(
                at, name, Reason.CANNOT_UPDATE, before, after, deps, cloud.id, replaced_because
            )
        if not same:
            # Kept, with what it has: a DER nobody declares stays (a replace would drop
            # it). In sync, it has only the DERs declared.
            self._unmanaged_ders(at, name, cloud, after["ders"])
        if moved:
            return self._plan_move(at, name, device, cloud, before, after, deps, moved)
        if same:
            diff: list[FieldDiff] = []
        else:
            diff = cloud_drift(after, before)
        message = ""
        if cloud.state == "orphaned":
            # Its gateway left the organisation and came back: provisioning binds it again.
            before["state"], after["state"] = "orphaned", "active"
            diff.append(FieldDiff("change", "state", "orphaned", "active"))
            message = "device is orphaned (its gateway changed organisation); provisioned again"
        action, reason = update_or_in_sync(diff)
        return self._change(
            "Device",
            name,
            "novacore",
            action,
            reason,
            at.site,
            before=after if same and not message else before,
            after=after,
            diff=diff,
            depends_on=deps,
            external_id=cloud.id,
            message=message,
        )

    def _moved_from(
        self,
        at: GatewayContext,
        cloud: NovacoreDevice,
        cloud_site: str | None,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> str:
        """Where a Novacore device is that is declared behind another gateway or in another
        site ("" when it is where it is declared). The gateway and the site it is bound to
        are set in `before` and the declared ones in `after`, so the diff shows the move."""
        other_gateway = cloud.gateway_serial not in (None, at.serial)
        other_site = cloud_site is not None and cloud_site != at.site_id
        if not (other_gateway or other_site):
            return ""
        old_gateway = self._gateway_name(cloud.gateway_serial) if other_gateway else at.gateway
        if other_gateway:
            before["gateway_serial"], after["gateway_serial"] = cloud.gateway_serial, at.serial
        if not other_site:
            return f"moves from gateway {old_gateway} to gateway {at.gateway}"
        assert cloud_site is not None
        old_site = self._site_name(at.org, cloud_site)
        before["site"], after["site"] = old_site, at.site
        if cloud_site in self._duplicate_sites:
            # Bound into a site of the Site's own name that it does not use (another state
            # directory's apply): it goes back to the one used, which is named so that the
            # two are told apart.
            return (
                f"moves from site {old_site} (gateway {old_gateway}), which has the name of "
                f"Site {at.site} too, to site {at.site} ({at.site_id}, the one it uses; "
                f"gateway {at.gateway})"
            )
        return (
            f"moves from site {old_site} (gateway {old_gateway}) to site {at.site} "
            f"(gateway {at.gateway})"
        )

    def _plan_move(
        self,
        at: GatewayContext,
        name: str,
        device: Device,
        cloud: NovacoreDevice,
        before: dict[str, Any],
        after: dict[str, Any],
        deps: list[str],
        moved: str,
    ) -> Change:
        """One change that moves a Novacore device to the gateway and site it is declared
        behind: provisioning its hardware id there rebinds it, with its id and DERs."""
        # The gateway and site it moves between are in both `before` and `after`: the
        # drift shows them with any field that changes too.
        diff = cloud_drift(after, before)
        message = f"{moved}: provisioned there, Novacore rebinds device {cloud.id} (same id)"
        # A hardware id is one device in Novacore: declared twice, each declaration would
        # take it from the other on every apply.
        twice = [
            d
            for d in self._declared().get(device.spec.hardware_id or "", ())
            if d.device != name and d.org == at.org
        ]
        if twice:
            other = twice[0]
            message = (
                f"hardwareId {device.spec.hardware_id!r} is declared by Device {other.device} "
                f"too (gateway {other.gateway}, site {other.site}); Novacore has one device "
                f"per hardware id in an organisation, so it is not moved. Declare it once"
            )
        return self._change(
            "Device",
            name,
            "novacore",
            Action.UPDATE,
            Reason.MOVED,
            at.site,
            before=before,
            after=after,
            diff=diff,
            depends_on=deps,
            external_id=cloud.id,
            blocked=bool(twice),
            message=message,
        )

    def _plan_org_move(
        self, at: GatewayContext, name: str, after: dict[str, Any], deps: list[str],
        left: OrgMove,
    ) -> Change:
        """A device provisioned in a site of another organisation, which no longer declares
        it: replaced, new one first. Provisioning it here makes a new device (Novacore
        rebinds a hardware id within an organisation only); the old one is deleted after
        that, so the hardware is never without a device, and never twice for good."""
        cloud = left.provisioned.device
        before = observed_novacore_fields(cloud)
        old_gateway = self._gateway_name(cloud.gateway_serial) if cloud.gateway_serial else "none"
        before |= {"org_id": left.org, "site": left.site, "gateway_serial": cloud.gateway_serial}
        after = after | {"org_id": at.org, "site": at.site, "gateway_serial": at.serial}
        message = (
            f"moves from site {left.site} (gateway {old_gateway}) in {left.org} to site "
            f"{at.site} (gateway {at.gateway}) in {at.org}: Novacore does not move a device "
            f"between organisations, so it is provisioned in {at.org} as a new device (new "
            f"device and DER ids), then device {cloud.id} is deleted from {left.org}"
        )
        return self._replace_device(at, name, Reason.MOVED, before, after, deps, cloud.id,
                                    message)

    def _replace_device(
        self, at: GatewayContext, name: str, reason: Reason, before: dict[str, Any],
        after: dict[str, Any], deps: list[str], device_id: str, message: str,
    ) -> Change:
        """The replace of Novacore device `device_id` by a new one provisioned for `name`.
        The new one has the declared DERs only: those the old one has that nobody declares
        (otherwise reported and left, `_unmanaged_ders`) are deleted with it, and said so."""
        diff = declared_diff(after, before)
        dropped = [n for n in before.get("ders", {}) if n not in after.get("ders", {})]
        if dropped:
            diff += [FieldDiff("remove", f"ders.{n}", before["ders"][n], None) for n in dropped]
            message += (
                f"; DER{'s' if len(dropped) > 1 else ''} {', '.join(dropped)}, not declared, "
                f"{'go' if len(dropped) > 1 else 'goes'} with device {device_id}"
            )
        return self._change(
            "Device",
            name,
            "novacore",
            Action.REPLACE,
            reason,
            at.site,
            before=before,
            after=after,
            diff=diff,
            depends_on=deps,
            external_id=device_id,
            message=message,
        )

    def _provisioned_in_other_org(self, at: GatewayContext, hardware_id: str) -> OrgMove | None:
        """The Novacore device with `hardware_id` in a declared Site of another organisation
        that declares it nowhere (`moves.declared_in_other_org`): the one a Device declared
        behind `at`'s gateway moves here from. Of several, the lowest id."""
        if at.org is None or self._org_sites(at.org) is None:
            return None
        if self._provisioned is None:
            self._provisioned = ProvisionedIndex(self.observed)
        declared = self._declared().get(hardware_id, ())
        found: list[OrgMove] = []
        for provisioned in self._provisioned.outside(hardware_id, self._org_sites(at.org) or ()):
            org = self._org_of_site(provisioned.site_id)
            if org is None or any(d.org == org for d in declared):
                continue  # not listed, or still declared there: it stays
            site = self._declared_site(org, provisioned.site_id)
            if site is not None:  # a site nobody declares is left alone
                found.append(OrgMove(org, site, provisioned))
        return min(found, key=lambda m: m.provisioned.device.id) if found else None

    def _provisioned_elsewhere(self, at: GatewayContext, hardware_id: str) -> Provisioned | None:
        """The Novacore device with `hardware_id` in another site of the organisation of
        `at`, which provisioning it behind `at`'s gateway moves here."""
        if at.org is None:
            return None
        org_sites = self._org_sites(at.org)
        if org_sites is None:
            return None
        if self._provisioned is None:
            self._provisioned = ProvisionedIndex(self.observed)
        return self._provisioned.elsewhere(hardware_id, org_sites, at.site_id)

    def _plan_publish(
        self,
        site: str,
        name: str,
        hardware_id: str,
        ders: list[DerFields],
        zap_obs: ZapDevice | None,
        deps: list[str],
        *,
        added_again: bool = False,
    ) -> Change | None:
        """The DER publishing flags of device `name` (site `site`), declared as `ders`."""
        if added_again:
            # Removed and added again, the device starts with every DER switched off.
            flags = publish_flags(ders)
            before: dict[str, bool] | None = dict.fromkeys(flags, False)
        elif zap_obs is None:
            flags = publish_flags(ders)
            before = None
        else:
            flags = publish_flags(ders, zap_obs.ders)
            # In sync, as most devices are: the flags stand for what the Zap reports too.
            before = flags if flags == zap_obs.ders else dict(zap_obs.ders)
        # In sync (`before` is the flags themselves): nothing to compare.
        diff = [] if before is flags else declared_diff(flags, before)
        if before is None and not any(flags.values()):
            return None  # new devices start with every DER disabled: nothing to switch
        action, reason = update_or_in_sync(diff)
        return self._change(
            "Device",
            name,
            "publish",
            action,
            reason,
            site,
            before=before,
            after=flags,
            diff=diff,
            depends_on=deps if action is Action.UPDATE else [],
            external_id=hardware_id,
            message="added again with every DER switched off" if added_again and diff else "",
        )
