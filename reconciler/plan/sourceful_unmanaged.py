"""What the Sourceful plan does with objects nobody declares: devices on a Zap, Novacore
devices and their DERs, devices that move out of a site or leave its organisation, and
gateways claimed but not declared, with the release of those whose deletionPolicy is
Release after the devices bound to them and after the copies on their Zap of devices moved
to another gateway (`plan.retired_gateways`), and the Novacore sites that have the name a
Site is found by but are not the one it uses. Each is reported as unmanaged, or with
`--prune` removed (never what a move still needs; never a site). A part of
`plan.sourceful.SourcefulPlanner`.
"""

from __future__ import annotations

from reconciler.model.gateway import DeletionPolicy, Gateway
from reconciler.model.site import Site
from reconciler.plan import moves, retired_gateways
from reconciler.plan.actions import Action, Change, Reason, defer
from reconciler.plan.advice import PRUNED, Advice
from reconciler.plan.device_gateways import undeclared_device_name
from reconciler.plan.moves import Declaration, ProvisionedIndex
from reconciler.plan.novacore_claims import serial_release
from reconciler.plan.novacore_devices import observed_novacore_fields
from reconciler.plan.novacore_sites import SiteIndex, same_named
from reconciler.plan.observed import NovacoreDevice, NovacoreSite, Unreachable, ZapState
from reconciler.plan.removal import MovedCopy, copy_waits, moved_away, moved_copy_removal
from reconciler.plan.retired import LeftSite, RetiredSite
from reconciler.plan.sourceful_state import GatewayContext, SourcefulState
from reconciler.plan.zap_settings import observed_connection
from reconciler.printable import echo

# Why a gateway claimed but declared nowhere is left claimed: the CLI's `--prune` would
# release it; the operator's user releases it, or declares its Gateway.
_RELEASE = Advice(cli="use --prune to release it",
                  operator="release it in Novacore, or declare its Gateway")
_RELEASE_POLICY = Advice(cli="deletionPolicy Release; use --prune to release it",
                         operator="deletionPolicy Release")


class UnmanagedPlanner(SourcefulState):
    """Plans the unmanaged objects of one fleet (`SourcefulPlanner` plans the rest)."""

    def _same_named_sites(self, site: Site, match: NovacoreSite, index: SiteIndex) -> None:
        """The other sites of the organisation named as `site`, which is found by name and
        uses `match`, the first of them: said, so that the ambiguity is seen, and left as
        they are (a site holds its devices' history; which one to keep is the user's call).
        The match stays the first, so that what is applied does not change. One a declared
        Site names by `siteId` is that Site's; one another Site takes in this plan (renamed
        into it) is dropped once every site is planned (`_drop_taken_duplicates`)."""
        novacore = site.spec.novacore
        assert novacore is not None
        org = novacore.org_id
        for other in same_named(site, index):
            if self._declared_site(org, other.id) is not None:
                continue
            description = (
                f"site {other.id} ({echo(other.name)} in {org}) has the same name as site "
                f"{match.id}, which Site {site.name} uses (a Site without `siteId` is found "
                "by name, and the first site of the name is used)"
            )
            where = RetiredSite(org, other.id)
            if (
                self.applied_sites.get(site.name) == where
                or LeftSite(site.name, where) in self.left_sites
            ):
                # Why the user may have expected this one: the inventory still says so.
                description += (
                    f"; an earlier apply with this state directory put Site {site.name} in "
                    f"{other.id} (another state directory's apply may have made site "
                    f"{match.id} at the same time)"
                )
            description += (
                f"; set `spec.novacore.siteId` of Site {site.name} to the site to use, and "
                "delete the other in Novacore (or move its devices to the one used)"
            )
            self._duplicate_sites.add(other.id)
            self.unmanaged.append(
                {
                    "platform": "novacore",
                    "site": site.name,
                    "id": other.id,
                    "description": description,
                    "prunable": False,
                }
            )

    def _drop_taken_duplicates(self) -> None:
        """Drop what `_same_named_sites` said of a site that another declared Site uses in
        this plan (it was renamed in git, and the plan renames that site for it)."""
        taken = {m.id for m in self._matched_site.values()} & self._duplicate_sites
        if not taken:
            return
        self._duplicate_sites -= taken
        self.unmanaged = [
            e for e in self.unmanaged
            if not (e.get("platform") == "novacore" and "site" in e and e.get("id") in taken)
        ]

    def _unmanaged_zap_devices(
        self, site: Site, gateway: Gateway, state: ZapState, declared: set[str | None]
    ) -> None:
        """Devices on the Zap that no hardware id `declared` on the gateway names."""
        for sn, zap_device in state.devices.items():
            if sn in declared:
                continue
            description = f"{zap_device.device_type or 'device'} {sn} on gateway {gateway.name}"
            elsewhere = [d for d in self._declared().get(sn, ()) if d.gateway != gateway.name]
            if elsewhere:
                # Moved with its hardware: the new gateway gets it; this one keeps a copy
                # that reads nothing until it is pruned.
                description += (
                    f" is declared on gateway {elsewhere[0].gateway} (Device "
                    f"{elsewhere[0].device}), not here"
                )
                if not self.prune:
                    description += retired_gateways.COPY_PRUNED.to(self.audience)
            else:
                description += " is not declared"
            entry = {
                "platform": "zap",
                "gateway": gateway.name,
                "id": sn,
                "description": description,
            }
            if self.prune:
                removal = self._change(
                    "Device",
                    undeclared_device_name(gateway.name, sn),
                    "zap",
                    Action.DELETE,
                    Reason.MOVED if elsewhere else Reason.NOT_DECLARED,
                    site.name,
                    external_id=sn,
                    before=observed_connection(zap_device),
                    message=f"{entry['description']}; removed{PRUNED.to(self.audience)}",
                    depends_on=[],
                )
                if elsewhere:
                    # Ordered after its device's changes on the new gateway once every site
                    # is planned: that gateway's site may be planned after this one.
                    self._moved_copies.append(
                        (gateway.name, MovedCopy(sn, zap_device, elsewhere[0]), removal)
                    )
            else:
                self.unmanaged.append(entry | {"prunable": True})

    def _unmanaged_cloud_devices(
        self, site: Site, devices: list[NovacoreDevice], matched: set[str]
    ) -> dict[str, str]:
        """Reports (or with --prune deletes) the site's Novacore devices no declared device
        is; returns the address of each delete by hardware id."""
        novacore = site.spec.novacore
        assert novacore is not None
        pruned: dict[str, str] = {}
        for cloud in devices:
            if cloud.id in matched:
                continue
            moving = moves.declared_elsewhere(
                self._declared(), cloud.hardware_id, site.name, novacore.org_id
            )
            if moving:
                # The site it moves to provisions it again, which rebinds it (plan.moves):
                # deleting it here, before or after that, would lose the device.
                self._site_moving_out(site, cloud, moving[0])
                continue
            leaving = moves.declared_in_other_org(
                self._declared(), cloud.hardware_id, novacore.org_id
            )
            if leaving:
                self._site_leaving_org(site, cloud, leaving[0])
                continue
            entry = {"platform": "novacore", "site": site.name}
            on = self._bound_gateway(site, cloud.gateway_serial)
            if on is not None:
                entry["gateway"] = on
            description = (
                f"Novacore device {cloud.id} ({cloud.hardware_id}, {echo(cloud.name)}) in site "
                f"{site.name} is not declared"
            )
            if cloud.state == "orphaned":
                # Not something someone added: it was bound to a gateway that has since left
                # the organisation, and says why it is still there.
                description += (
                    " and is orphaned (its gateway was released or transferred to another "
                    "organisation)"
                )
            entry |= {"id": cloud.id, "description": description}
            if self.prune:
                delete = self._delete_cloud_device(
                    site, cloud, Reason.NOT_DECLARED,
                    f"{entry['description']}; deleted{PRUNED.to(self.audience)}",
                )
                pruned[cloud.hardware_id] = delete.address
                if on is not None:
                    self.pruned_on[delete.address] = on
                if cloud.gateway_serial:
                    self._pruned_behind.setdefault(cloud.gateway_serial, []).append(
                        delete.address
                    )
            else:
                self.unmanaged.append(entry | {"prunable": True})
        return pruned

    def _delete_cloud_device(
        self, site: Site, cloud: NovacoreDevice, reason: Reason, message: str
    ) -> Change:
        """The deletion of `cloud`, a Novacore device of `site` no Device declares there."""
        return self._change(
            "Device",
            f"{site.name}.{cloud.hardware_id}",
            "novacore",
            Action.DELETE,
            reason,
            site.name,
            external_id=cloud.id,
            before=observed_novacore_fields(cloud),
            message=message,
        )

    def _unmanaged_ders(
        self, at: GatewayContext, name: str, cloud: NovacoreDevice, declared: dict[str, str]
    ) -> None:
        """DERs of the Novacore device of Device `name` that it does not declare (removed
        from the desired state, or added in Novacore). Novacore has no DER delete, so no
        plan can remove one, `--prune` included: each is reported, which is all the plan
        can do, rather than left in a no-op's message that the text and Markdown plans do
        not show."""
        for der in cloud.ders:
            if der.name in declared:
                continue
            self.unmanaged.append(
                {
                    "platform": "novacore",
                    "site": at.site,
                    "device": name,
                    "id": der.id,
                    "description": f"DER {der.name} ({der.type}, {der.id}) of Novacore device "
                    f"{cloud.id} (Device {name}) is not declared (Novacore has no DER delete; "
                    "left as it is)",
                    "prunable": False,
                }
            )

    def _site_moving_out(self, site: Site, cloud: NovacoreDevice, to: Declaration) -> None:
        """A Novacore device of `site` that the fleet declares in another site: said, never
        deleted (not even with --prune); the site it moves to plans the move."""
        self.unmanaged.append(
            {
                "platform": "novacore",
                "site": site.name,
                "id": cloud.id,
                "description": f"Novacore device {cloud.id} ({cloud.hardware_id}, "
                f"{echo(cloud.name)}) in site {site.name} is declared in site {to.site} "
                f"(Device {to.device}, gateway {to.gateway}); it moves there with "
                f"device/{to.device}[novacore] and is never pruned here",
                "prunable": False,
            }
        )

    def _site_leaving_org(self, site: Site, cloud: NovacoreDevice, to: Declaration) -> None:
        """A Novacore device of `site` that the fleet declares in a Site of another
        organisation only (plan.moves): the site it moves to replaces it, new one first,
        and deletes it here. Never deleted by this site before the new one exists, pruning
        or not; once it does (its replace made it but failed to delete this one), this
        site deletes it (the engine plans this site after every site's devices are read)."""
        novacore = site.spec.novacore
        assert novacore is not None and to.org is not None
        what = (
            f"Novacore device {cloud.id} ({cloud.hardware_id}, {echo(cloud.name)}) in site "
            f"{site.name}"
        )
        org_sites = self._org_sites(to.org)
        if self._provisioned is None:
            self._provisioned = ProvisionedIndex(self.observed)
        there = (
            self._provisioned.elsewhere(cloud.hardware_id, org_sites, None)
            if org_sites is not None
            else None
        )
        if there is not None:
            self._delete_cloud_device(
                site,
                cloud,
                Reason.MOVED,
                f"{what} moved to site {to.site} of {to.org} (Device {to.device}), "
                f"where it is device {there.device.id}; deleted from {novacore.org_id}",
            )
            return
        self.unmanaged.append(
            {
                "platform": "novacore",
                "site": site.name,
                "id": cloud.id,
                "description": f"{what} is declared in site {to.site} of {to.org} (Device "
                f"{to.device}, gateway {to.gateway}); device/{to.device}[novacore] provisions "
                f"it there as a new device and it is deleted here once provisioned in "
                f"{to.org}, never before",
                "prunable": False,
            }
        )

    def _unmanaged_gateways(self) -> None:
        declared = self.fleet.zap_serials()
        for org, gateways in sorted(self.observed.novacore_gateways.items()):
            if isinstance(gateways, Unreachable):
                continue
            for serial in sorted(gateways - declared):
                policy = self.inventory.get(serial, DeletionPolicy.ORPHAN.value)
                description = f"gateway {serial} is claimed by {org} but not declared"
                declared_in = self.inventory_orgs.get(serial, org)
                if policy == DeletionPolicy.RELEASE.value and declared_in != org:
                    # Claimed into another organisation since (someone else's transfer):
                    # the policy was for our claim, and releasing theirs would orphan
                    # their devices on it.
                    self.unmanaged.append(
                        {
                            "platform": "novacore",
                            "id": serial,
                            "description": f"{description}; left claimed (its deletionPolicy "
                            f"Release was declared for it in {declared_in})",
                            "prunable": False,
                        }
                    )
                elif (
                    self.prune or serial in self.release_serials
                ) and policy == DeletionPolicy.RELEASE.value:
                    release = serial_release(
                        serial, org, description + "; released (deletionPolicy Release)"
                    )
                    copies = self._retired_copies(serial)
                    self._release_after_devices(release, serial, org)
                    self._release_after_copies(release, serial, copies)
                    self._add(release)
                else:
                    why = (
                        "deletionPolicy Orphan"
                        if policy == DeletionPolicy.ORPHAN.value
                        else _RELEASE.to(self.audience)
                    )
                    if not self.prune and policy == DeletionPolicy.RELEASE.value:
                        why = _RELEASE_POLICY.to(self.audience)
                    description = f"{description}; left claimed ({why})"
                    retired = self.retired_gateways.get(serial)
                    if policy == DeletionPolicy.ORPHAN.value and retired is not None:
                        # Never written: what is not known of its Zap is only said.
                        note = retired_gateways.unread_note(retired, self.observed)
                        description += f"; {note}" if note else ""
                    self.unmanaged.append(
                        {
                            "platform": "novacore",
                            "id": serial,
                            "description": description,
                            # Without --prune, Release is what a prune would release.
                            "prunable": policy == DeletionPolicy.RELEASE.value,
                        }
                    )
                    if retired is not None:
                        # What `--prune` would take off its Zap with the release, or (Orphan)
                        # what stays on it.
                        self.unmanaged += retired_gateways.moved_copies_reported(
                            retired, self._whole, self.observed, self.audience
                        )

    def _retired_copies(self, serial: str) -> list[Change]:
        """The removals from the Zap of `serial`, a gateway declared no more that is
        released, of the copies of devices moved to another gateway (`plan.retired_gateways`):
        added to the plan, each ordered before the release."""
        retired = self.retired_gateways.get(serial)
        if retired is None:
            return []
        return [
            self._add(self._copy_after_move(retired, copy))
            for copy in moved_away(retired, self._whole, self.observed)
        ]

    def _copy_after_move(self, gateway: Gateway, copy: MovedCopy) -> Change:
        """The removal of `copy` from the Zap of `gateway`, a retired one, ordered after
        the device moved (`_after_move`): while it waits, the release waits too, which
        would leave the device still bound in Novacore to the gateway it is taken off."""
        return self._after_move(moved_copy_removal(gateway, copy), gateway.name, copy)

    def _copies_after_moves(self) -> None:
        """Order each copy `--prune` removes from a declared gateway's Zap after its
        device moved (`_after_move`); called once every site is planned."""
        for gateway, copy, removal in self._moved_copies:
            self._after_move(removal, gateway, copy)

    def _after_move(self, removal: Change, gateway: str, copy: MovedCopy) -> Change:
        """`removal` of `copy` from the Zap of `gateway`, after the changes of the Device
        it is a copy of (put on its new gateway, rebound in Novacore), and deferred while
        the device is not on its new gateway yet (`plan.removal.copy_waits`): taken off
        first, the device would be on no Zap."""
        moving = [
            c
            for c in self.changes
            if c.kind == "Device" and c.name == copy.to.device and c.is_change
        ]
        removal.depends_on = sorted({*removal.depends_on, *(c.address for c in moving)})
        why = copy_waits(copy, moving, self.observed)
        if why is not None and removal.action is not Action.DEFER:
            defer(removal, why, unread=False)
            removal.message = f"{copy.description(gateway)}; {removal.message}"
        return removal

    def _release_after_copies(self, release: Change, serial: str, copies: list[Change]) -> None:
        """Release `serial` after the copies of moved devices are off its Zap, which is
        read no more once it is released (while one waits for its device to move, the
        release waits too); when its Zap could not be read (or is not known), released all
        the same, saying a copy may stay."""
        if copies:
            release.depends_on = sorted({*release.depends_on, *(c.address for c in copies)})
        waiting = next((c for c in copies if c.action is Action.DEFER), None)
        if waiting is not None and release.action is Action.RELEASE and not release.blocked:
            # Released first, its Zap would be read no more, and the copy stay on it.
            defer(release, f"the copies of moved devices go first, and {waiting.address} is "
                  "deferred", unread=False)
            return
        if serial not in self.retired_gateways:
            return
        note = retired_gateways.unread_note(self.retired_gateways[serial], self.observed)
        if note and release.action is Action.RELEASE and not release.blocked:
            release.message = f"{release.message}; {note}"

    def _release_after_devices(self, release: Change, serial: str, org: str) -> None:
        """Release `serial` only after the Novacore devices bound to it are deleted
        (--prune) or moved behind another gateway (a swapped gateway): a release orphans
        whatever is still bound to it. While one of those changes is blocked or deferred
        (the new gateway not claimable yet, or offline), or the devices of a site of `org`
        could not be read, the release waits with it instead of orphaning them."""
        waits_for = set(self._pruned_behind.get(serial, []))
        for change in self.changes:
            if (
                change.kind == "Device"
                and change.component == "novacore"
                and change.is_change
                and (change.before or {}).get("gateway_serial") == serial
            ):
                waits_for.add(change.address)
        waiting = [c for c in self.changes if c.address in waits_for]
        release.depends_on = sorted(waits_for)
        blocked = next((c for c in waiting if c.blocked), None)
        if blocked is not None:
            self._block(release, blocked)
            return
        deferred = next((c for c in waiting if c.action is Action.DEFER), None)
        if deferred is not None:
            defer(
                release,
                f"the devices bound to it go first, and {deferred.address} is deferred",
                unread=False,
            )
            return
        org_sites = self._org_sites(org)
        if org_sites is None:
            listed = self.observed.novacore_sites.get(org)
            why = listed.reason if isinstance(listed, Unreachable) else "not read yet"
            defer(release, f"the sites of {org}, whose devices may be bound to it, could "
                  f"not be listed: {why}", unread=False)
            return
        handled = {c.external_id for c in waiting if c.external_id}
        bound: list[str] = []
        for site_id in sorted(org_sites):
            devices = self.observed.novacore_devices.get(site_id)
            if isinstance(devices, Unreachable) or devices is None:
                # Every site of the organisation is read once a release is planned
                # (`engine.release_reads`): one not read is one that could not be.
                why = devices.reason if devices is not None else "not read yet"
                defer(
                    release,
                    f"the Novacore devices of site {site_id}, which may be bound to it, "
                    f"could not be read: {why}",
                    unread=False,
                )
                return
            bound += [
                f"device {d.id} ({d.hardware_id}) in site {self._site_name(org, site_id)}"
                for d in devices
                if d.gateway_serial == serial and d.state != "orphaned" and d.id not in handled
            ]
        if bound:
            # Nothing this plan does takes them off it (a site no Site declares, or a device
            # no Device declares without --prune): releasing it would orphan them.
            release.blocked = True
            release.reason = Reason.DEPENDENCY_BLOCKED
            release.message = (
                f"{release.message}; blocked: Novacore devices are bound to it that this plan "
                f"does not move or delete, and a release orphans them: {', '.join(bound[:5])}"
                + (f" and {len(bound) - 5} more" if len(bound) > 5 else "")
                + "; delete them or move them to another gateway first"
            )
