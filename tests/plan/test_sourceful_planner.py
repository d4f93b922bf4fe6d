"""The planner as a pure function: desired fleet + hand-built observed state → changes.
Each case changes one thing in the converged actual state (see plan_fixtures) and states
which changes must follow and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from plan_fixtures import (
    CABIN_SERIAL,
    HOME_SERIAL,
    ORG,
    OTHER_ORG,
    converged,
    copy_of,
    fresh,
    make_fleet,
    without_cabin_inverter_on_zap,
)

from reconciler.model.fleet import Fleet
from reconciler.plan import document
from reconciler.plan.actions import Action, Change, Reason
from reconciler.plan.advice import Audience
from reconciler.plan.observed import (
    IdentityReading,
    NovacoreDevice,
    NovacoreSite,
    Observed,
    Unreachable,
    ZapDevice,
    ZapState,
)
from reconciler.plan.planner import Plan, PlanBuilder, PlanOptions, make_plan
from reconciler.sources import loader

# The options of a plan for the CLI's user (its advice names the CLI's flags).
CLI = PlanOptions(audience=Audience.CLI)


def by_address(plan: Plan) -> dict[str, Change]:
    return {c.address: c for c in plan.changes}


def pending(plan: Plan) -> dict[str, tuple[str, bool]]:
    """address -> (action, blocked) of every change that is something to do."""
    return {c.address: (c.action.value, c.blocked) for c in plan.changes if c.is_change}


# -- convergence ------------------------------------------------------------------------------


def test_converged_state_plans_only_no_ops() -> None:
    plan = make_plan(make_fleet(), converged(), CLI)
    assert not plan.has_changes, pending(plan)
    assert plan.unmanaged == []
    assert plan.summary()["no-op"] == len(plan.changes) > 0


def test_empty_organisation_plans_every_create_in_one_site_order() -> None:
    plan = make_plan(make_fleet(), fresh(), CLI)
    assert [c.address for c in plan.changes if c.site == "cabin"] == [
        "site/cabin[novacore]",
        "gateway/cabin-zap[novacore]",
        "device/cabin-inv[identity]",
        "device/cabin-inv[zap]",
        "device/cabin-inv[novacore]",
        "device/cabin-inv[publish]",
    ], "site → claim → identity → zap → novacore → publish"
    changes = by_address(plan)
    assert changes["gateway/home-zap[novacore]"].action is Action.CLAIM
    assert changes["device/cabin-inv[zap]"].depends_on == ["device/cabin-inv[identity]"]
    assert changes["device/cabin-inv[identity]"].depends_on == ["gateway/cabin-zap[novacore]"]
    assert set(changes["device/home-inv[novacore]"].depends_on) == {
        "device/home-inv[zap]", "site/home[novacore]"}, "provisioning waits for its site"
    assert changes["device/home-inv[publish]"].depends_on == ["device/home-inv[novacore]"]
    assert plan.summary()["create"] == 8 and plan.summary()["claim"] == 2


# -- gateway claims and transfers -------------------------------------------------------------


def gateways_owned(home_owner: str | None) -> Observed:
    observed = copy_of(converged())
    observed.novacore_gateways = {ORG: {CABIN_SERIAL}, OTHER_ORG: set()}
    if home_owner is not None:
        observed.novacore_gateways[home_owner].add(HOME_SERIAL)
    return observed


@pytest.mark.parametrize(("owner", "allow_transfer", "action", "blocked", "reason"), [
    pytest.param(None, False, Action.CLAIM, False, Reason.NOT_FOUND, id="unclaimed-is-claimed"),
    pytest.param(ORG, False, Action.NO_OP, False, Reason.IN_SYNC, id="same-org-is-no-op"),
    pytest.param(OTHER_ORG, False, Action.TRANSFER, True, Reason.TRANSFER_NOT_ALLOWED,
                 id="other-org-without-allow-transfer-is-blocked"),
    pytest.param(OTHER_ORG, True, Action.TRANSFER, False, Reason.OWNED_BY_OTHER_ORG,
                 id="other-org-with-allow-transfer-transfers"),
])
def test_claim_depends_on_who_owns_the_gateway(owner: str | None, allow_transfer: bool,
                                              action: Action, blocked: bool,
                                              reason: Reason) -> None:
    plan = make_plan(make_fleet(allow_transfer=allow_transfer), gateways_owned(owner), CLI)
    claim = by_address(plan)["gateway/home-zap[novacore]"]
    assert (claim.action, claim.blocked, claim.reason) == (action, blocked, reason), claim.message
    if action is Action.TRANSFER:
        assert claim.before == {"serial": HOME_SERIAL, "org_id": OTHER_ORG}
        assert claim.after == {"serial": HOME_SERIAL, "org_id": ORG}
        assert "orphans org-b's devices" in claim.message
    if blocked:
        assert "allowTransfer: true" in claim.message, "the message says how to allow it"


def test_blocked_transfer_blocks_the_devices_that_need_the_claim() -> None:
    observed = gateways_owned(OTHER_ORG)
    observed.novacore_devices["sit-home"] = []  # the devices were provisioned by org-b
    plan = make_plan(make_fleet(), observed, CLI)
    changes = by_address(plan)
    for address in ("device/home-inv[novacore]", "device/home-p1[novacore]"):
        assert changes[address].blocked, f"{address} would provision on a gateway we do not own"
        assert changes[address].reason is Reason.DEPENDENCY_BLOCKED
        assert changes[address].message.startswith("blocked by gateway/home-zap[novacore]")
    assert not any(c.blocked for c in plan.changes if c.site == "cabin"), "other sites go on"


# -- unreachable sources defer --------------------------------------------------------------


def zap_unreachable(observed: Observed) -> Observed:
    observed.zaps["home-zap"] = Unreachable("connection refused")
    observed.novacore_devices["sit-home"] = []
    return observed


def org_sites_unreachable(observed: Observed) -> Observed:
    observed.novacore_sites[ORG] = Unreachable("HTTP 503")
    return observed


def org_gateways_unreachable(observed: Observed) -> Observed:
    observed.novacore_gateways[ORG] = Unreachable("HTTP 503")
    observed.zaps["home-zap"] = ZapState({})
    return observed


def site_devices_unreachable(observed: Observed) -> Observed:
    observed.novacore_devices["sit-home"] = Unreachable("timed out")
    observed.zaps["home-zap"] = ZapState({})
    return observed


@pytest.mark.parametrize(("breaks", "why"), [
    pytest.param(zap_unreachable, "gateway home-zap", id="gateway-offline"),
    pytest.param(org_sites_unreachable, "Novacore organisation org-a", id="org-sites-unreadable"),
    pytest.param(org_gateways_unreachable, "gateways of org-a", id="org-gateways-unreadable"),
    pytest.param(site_devices_unreachable, "Novacore devices of site sit-home",
                 id="site-devices-unreadable"),
])
def test_unreachable_source_defers_its_site_and_guesses_nothing(
        breaks: Callable[[Observed], Observed], why: str) -> None:
    plan = make_plan(make_fleet(), breaks(copy_of(converged())), CLI)
    home = [c for c in plan.changes if c.site == "home" and c.is_change]
    assert home, "something was left to do at home"
    assert all(c.action is Action.DEFER for c in home), pending(plan)
    assert all(c.reason is Reason.TARGET_UNREACHABLE for c in home)
    assert all(why in c.message for c in home), [c.message for c in home]
    assert not any(c.blocked for c in home), "deferred, not blocked"


def test_unreachable_gateway_leaves_other_sites_planned() -> None:
    observed = zap_unreachable(copy_of(converged()))
    observed.zaps["cabin-zap"] = ZapState({})  # the cabin inverter must be added again
    observed.identities["cabin-inv"] = IdentityReading("INV2")
    plan = make_plan(make_fleet(), observed, CLI)
    assert by_address(plan)["device/cabin-inv[zap]"].action is Action.CREATE
    assert plan.deferred and all(c.site == "home" for c in plan.deferred)


def test_deferred_change_says_what_it_would_have_done() -> None:
    plan = make_plan(make_fleet(), zap_unreachable(copy_of(converged())), CLI)
    change = by_address(plan)["device/home-inv[novacore]"]
    assert change.message.startswith("would create; deferred: gateway home-zap"), change.message


@pytest.mark.parametrize(("breaks", "addresses", "why"), [
    pytest.param(zap_unreachable, ["device/home-inv[zap]", "device/home-inv[publish]"],
                 "gateway home-zap", id="gateway-offline"),
    pytest.param(org_sites_unreachable, ["device/home-inv[novacore]"],
                 "Novacore organisation org-a", id="org-sites-unreadable"),
    pytest.param(site_devices_unreachable, ["device/home-inv[novacore]"],
                 "Novacore devices of site sit-home", id="site-devices-unreadable"),
])
def test_a_deferred_change_of_what_was_not_read_guesses_nothing(
        breaks: Callable[[Observed], Observed], addresses: list[str], why: str) -> None:
    """What did not answer may well be there: its changes do not say "would create"."""
    plan = make_plan(make_fleet(), breaks(copy_of(converged())), CLI)
    for address in addresses:
        change = by_address(plan)[address]
        assert change.action is Action.DEFER
        assert change.message.startswith("its state is not known; deferred: "), change.message
        assert why in change.message
        assert change.diff == (), "no field changes against a state nobody read"
        assert change.after, "what is declared is still shown"


# -- identity check ------------------------------------------------------------------------


@pytest.mark.parametrize(("reading", "blocked", "reason", "in_message"), [
    pytest.param(IdentityReading("INV2"), False, Reason.IDENTITY_CHECK, "serial matches",
                 id="serial-matches"),
    pytest.param(IdentityReading("SWAPPED-99"), True, Reason.IDENTITY_MISMATCH, "'SWAPPED-99'",
                 id="serial-mismatch-blocks"),
    pytest.param(IdentityReading(None, "no answer"), False, Reason.IDENTITY_CHECK, "no answer",
                 id="unread-serial-is-checked-at-apply"),
    pytest.param(None, False, Reason.IDENTITY_CHECK, "not read", id="not-read-at-all"),
])
def test_identity_check_before_adding(reading: IdentityReading | None, blocked: bool,
                                      reason: Reason, in_message: str) -> None:
    observed = without_cabin_inverter_on_zap(copy_of(converged()), reading)
    plan = make_plan(make_fleet(), observed, CLI)
    changes = by_address(plan)
    verify = changes["device/cabin-inv[identity]"]
    assert (verify.action, verify.blocked, verify.reason) == (Action.VERIFY, blocked, reason)
    assert in_message in verify.message, verify.message
    dependents = [f"device/cabin-inv[{c}]" for c in ("zap", "novacore", "publish")]
    assert [changes[a].blocked for a in dependents] == [blocked] * 3, \
        "a mismatch blocks adding, provisioning and publishing; otherwise nothing is blocked"
    if blocked:
        assert all(changes[a].reason is Reason.DEPENDENCY_BLOCKED for a in dependents)
        assert "hardwareId 'INV2'" in changes["device/cabin-inv[zap]"].message


def test_identity_is_not_checked_for_a_device_already_on_its_gateway() -> None:
    observed = copy_of(converged())
    observed.identities["cabin-inv"] = IdentityReading("SWAPPED-99")
    plan = make_plan(make_fleet(), observed, CLI)
    assert "device/cabin-inv[identity]" not in by_address(plan)
    assert not plan.has_changes


# -- drift ------------------------------------------------------------------------------------


def zap_device(observed: Observed, gateway: str, sn: str) -> ZapDevice:
    state = observed.zaps[gateway]
    assert isinstance(state, ZapState)
    return state.devices[sn]


def set_zap_device(observed: Observed, gateway: str, sn: str, **changes: object) -> Observed:
    state = observed.zaps[gateway]
    assert isinstance(state, ZapState)
    state.devices[sn] = replace(state.devices[sn], **changes)  # type: ignore[arg-type]
    return observed


def set_cloud_device(observed: Observed, site_id: str, hardware_id: str,
                     **changes: object) -> Observed:
    devices = observed.novacore_devices[site_id]
    assert isinstance(devices, list)
    index = next(i for i, d in enumerate(devices) if d.hardware_id == hardware_id)
    devices[index] = replace(devices[index], **changes)  # type: ignore[arg-type]
    return observed


def publishing_off(observed: Observed) -> Observed:
    ders = dict(zap_device(observed, "home-zap", "INV1").ders, pv=False)
    return set_zap_device(observed, "home-zap", "INV1", ders=ders)


def renamed_in_novacore(observed: Observed) -> Observed:
    return set_cloud_device(observed, "sit-home", "INV1", name="Renamed by hand")


def orphaned_in_novacore(observed: Observed) -> Observed:
    return set_cloud_device(observed, "sit-home", "INV1", state="orphaned")


def removed_from_zap(observed: Observed) -> Observed:
    state = observed.zaps["home-zap"]
    assert isinstance(state, ZapState)
    del state.devices["P1A"]
    return observed


def moved_to_other_ip(observed: Observed) -> Observed:
    settings = dict(zap_device(observed, "home-zap", "INV1").settings, ip="192.168.1.61")
    return set_zap_device(observed, "home-zap", "INV1", settings=settings)


def device_type_changed(observed: Observed) -> Observed:
    return set_cloud_device(observed, "sit-home", "P1A", device_type="battery")


def site_renamed(observed: Observed) -> Observed:
    sites = observed.novacore_sites[ORG]
    assert isinstance(sites, list)
    sites[0] = replace(sites[0], name="Old home")
    return observed


SITE_ID = {"novacore: {orgId: org-a}": "novacore: {orgId: org-a, siteId: sit-home}"}


def declared_der_missing(observed: Observed) -> Observed:
    devices = observed.novacore_devices["sit-home"]
    assert isinstance(devices, list)
    return set_cloud_device(observed, "sit-home", "INV1", ders=devices[0].ders[:2])


@pytest.mark.parametrize(("drift", "address", "action", "paths"), [
    pytest.param(publishing_off, "device/home-inv[publish]", Action.UPDATE, ["pv"],
                 id="publishing-turned-off-on-the-zap"),
    pytest.param(renamed_in_novacore, "device/home-inv[novacore]", Action.UPDATE, ["name"],
                 id="renamed-in-novacore"),
    pytest.param(orphaned_in_novacore, "device/home-inv[novacore]", Action.UPDATE, ["state"],
                 id="orphaned-device-is-provisioned-again"),
    pytest.param(removed_from_zap, "device/home-p1[zap]", Action.CREATE,
                 ["type", "profile", "baud_rate", "data_bits", "parity", "stop_bits"],
                 id="removed-from-the-zap-is-added-again"),
    pytest.param(moved_to_other_ip, "device/home-inv[zap]", Action.REPLACE, ["ip"],
                 id="connection-change-replaces-on-the-zap"),
    pytest.param(device_type_changed, "device/home-p1[novacore]", Action.REPLACE, ["device_type"],
                 id="device-type-change-replaces-in-novacore"),
    pytest.param(site_renamed, "site/home[novacore]", Action.UPDATE, ["name"],
                 id="site-with-site-id-renamed"),
    pytest.param(declared_der_missing, "device/home-inv[novacore]", Action.UPDATE, ["ders.grid"],
                 id="declared-der-missing-in-novacore"),
])
def test_drift_is_planned_as_the_smallest_fitting_change(
        drift: Callable[[Observed], Observed], address: str, action: Action,
        paths: list[str]) -> None:
    # A site is found by `siteId` when declared (else by name, see the next test).
    plan = make_plan(make_fleet(home_overrides=SITE_ID), drift(copy_of(converged())), CLI)
    re_added = address.replace("[zap]", "[publish]") if address.endswith("[zap]") else None
    assert list(pending(plan)) == [address] + ([re_added] if re_added else []), \
        "only the drifted component changes (a re-added device's DERs are switched on again)"
    change = by_address(plan)[address]
    assert change.action is action, change.message
    assert [d.path for d in change.diff] == paths


def test_publishing_waits_for_a_device_re_added_to_its_zap() -> None:
    plan = make_plan(make_fleet(), removed_from_zap(copy_of(converged())), CLI)
    changes = by_address(plan)
    assert changes["device/home-p1[novacore]"].action is Action.NO_OP
    assert changes["device/home-p1[publish]"].depends_on == ["device/home-p1[zap]"], \
        "a no-op is never run, so depending on it would not wait for the device to exist"


RENAMED_IN_GIT = {"displayName: Home\n": "displayName: Solna\n"}


@pytest.mark.parametrize(("fleet_overrides", "change", "old", "new"), [
    pytest.param({}, site_renamed, "Old home", "Home", id="renamed-by-hand-in-novacore"),
    pytest.param(RENAMED_IN_GIT, copy_of, "Home", "Solna", id="renamed-in-git"),
])
def test_a_renamed_site_is_renamed_not_created_again(
        fleet_overrides: dict[str, str], change: Callable[[Observed], Observed],
        old: str, new: str) -> None:
    """Without `siteId` a site is found by name; when the name differs, the site of the org
    that no other Site claims and that holds this Site's devices and nothing else is the
    same site: renaming keeps its id and devices, where creating would duplicate it."""
    plan = make_plan(make_fleet(home_overrides=fleet_overrides), change(copy_of(converged())), CLI)
    site = by_address(plan)["site/home[novacore]"]
    assert (site.action, site.external_id, site.before, site.after["name"]) == (
        Action.UPDATE, "sit-home", {"name": old, "org_id": ORG}, new)
    assert site.message.startswith("renamed: site sit-home holds this Site's devices and "
                                   "nothing else")
    assert pending(plan) == {"site/home[novacore]": ("update", False)}, \
        "its devices are found in it: nothing else to do"


def test_a_site_another_declared_site_matches_is_never_taken_for_a_renamed_one() -> None:
    """The operator plans one object's closure at a time, with the whole namespace as
    `whole_fleet`: the site another Site there matches is not a candidate."""
    peer = loader.load_texts([("peer.yaml", PEER_NAMED_HOME)]).fleet().sites["elsewhere"]
    fleet = make_fleet(home_overrides=RENAMED_IN_GIT)
    alone = by_address(make_plan(fleet, copy_of(converged()), CLI))["site/home[novacore]"]
    assert alone.action is Action.UPDATE, "without the other Site, sit-home is the renamed site"
    whole = Fleet.of([*fleet.resources(), peer])
    plan = make_plan(fleet, copy_of(converged()),
                     PlanOptions(audience=Audience.CLI, whole_fleet=whole))
    site = by_address(plan)["site/home[novacore]"]
    assert (site.action, site.message) == (Action.CREATE, "no site named 'Solna' in org-a")


def test_a_site_planned_alone_is_recognised_by_the_devices_of_the_whole_fleet() -> None:
    """The operator reconciles a Site object with only the Site in its closure; the whole
    namespace says which devices it holds."""
    fleet = make_fleet(home_overrides=RENAMED_IN_GIT)
    site_alone = Fleet.of([fleet.sites["home"]])
    without = by_address(make_plan(site_alone, copy_of(converged()), CLI))["site/home[novacore]"]
    assert without.action is Action.CREATE, "alone, the Site declares no device to go by"
    plan = make_plan(site_alone, copy_of(converged()),
                     PlanOptions(audience=Audience.CLI, whole_fleet=fleet))
    site = by_address(plan)["site/home[novacore]"]
    assert (site.action, site.external_id) == (Action.UPDATE, "sit-home")


PEER_NAMED_HOME = """\
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata: {name: elsewhere}
spec: {displayName: Home, timezone: Europe/Stockholm, novacore: {orgId: org-a}}
"""


def with_foreign_device(observed: Observed) -> Observed:
    devices = observed.novacore_devices["sit-home"]
    assert isinstance(devices, list)
    devices.append(NovacoreDevice("dev-x", "Neighbour", "inverter", "NOT-OURS"))
    return observed


def test_a_site_that_also_holds_other_devices_is_not_taken_over() -> None:
    plan = make_plan(make_fleet(), with_foreign_device(site_renamed(copy_of(converged()))), CLI)
    site = by_address(plan)["site/home[novacore]"]
    assert (site.action, site.blocked, site.message) == (
        Action.CREATE, False, "no site named 'Home' in org-a")


def split_over_two_sites(observed: Observed) -> Observed:
    """The home devices in two sites no Site claims: the renamed one, and another."""
    site_renamed(observed)
    sites, devices = observed.novacore_sites[ORG], observed.novacore_devices["sit-home"]
    assert isinstance(sites, list) and isinstance(devices, list)
    sites.append(NovacoreSite("sit-other", ORG, "Other"))
    observed.novacore_devices["sit-other"] = [devices.pop()]
    return observed


def test_two_sites_that_could_be_the_renamed_one_block_instead_of_guessing() -> None:
    plan = make_plan(make_fleet(), split_over_two_sites(copy_of(converged())), CLI)
    site = by_address(plan)["site/home[novacore]"]
    assert (site.action, site.blocked) == (Action.CREATE, True)
    assert site.message == (
        "no site named 'Home' in org-a, and this Site's devices are in several sites "
        "(sit-home ('Old home'), sit-other ('Other')); set `siteId` to the one it is")


def test_a_site_whose_devices_cannot_be_read_defers_the_search() -> None:
    observed = site_renamed(copy_of(converged()))
    observed.novacore_devices["sit-home"] = Unreachable("timed out")
    plan = make_plan(make_fleet(), observed, CLI)
    home = [c for c in plan.changes if c.site == "home" and c.is_change]
    assert {c.action for c in home} == {Action.DEFER}, "nothing is created while it is unknown"
    site = by_address(plan)["site/home[novacore]"]
    assert site.message.startswith(
        "looking for the site it was renamed from: devices of site sit-home: timed out")
    assert {c.action for c in plan.changes if c.site == "cabin"} == {Action.NO_OP}


def test_replace_is_encoded_as_delete_then_create_in_the_document() -> None:
    plan = make_plan(make_fleet(), moved_to_other_ip(copy_of(converged())), CLI)
    entry = next(e for e in document.to_document(plan)["changes"]
                 if e["address"] == "device/home-inv[zap]")
    assert entry["actions"] == ["delete", "create"]
    assert entry["diff"] == [{"op": "change", "path": "ip", "old": "192.168.1.61",
                              "new": "192.168.1.60"}]


def test_a_changed_secret_replaces_the_device_and_switches_its_ders_on_again() -> None:
    observed = copy_of(converged())
    observed.changed_secrets["home-inv"] = "the MQTT password (from environment variable PW)"
    plan = make_plan(make_fleet(), observed, CLI)
    assert pending(plan) == {"device/home-inv[zap]": ("replace", False),
                             "device/home-inv[publish]": ("update", False)}
    replace_change = by_address(plan)["device/home-inv[zap]"]
    assert (replace_change.reason, list(replace_change.diff)) == (Reason.SECRET_CHANGED, [])
    assert replace_change.message == (
        "the MQTT password (from environment variable PW) changed since it was sent to the "
        "device; it is removed and added again with the new one")


# -- only declared fields are compared ------------------------------------------------------


def api_extras(observed: Observed) -> Observed:
    """Values the APIs add or default that the spec does not declare."""
    set_cloud_device(observed, "sit-home", "P1A", manufacturer="Kaifa", model="MA105")
    settings = dict(zap_device(observed, "home-zap", "INV1").settings, last_harvest=123,
                    firmware="1.2.3")
    return set_zap_device(observed, "home-zap", "INV1", settings=settings, connected=False)


def zap_reports_less(observed: Observed) -> Observed:
    """A Zap that does not echo every connection setting back (port, unit id)."""
    return set_zap_device(observed, "home-zap", "INV1", settings={"ip": "192.168.1.60"})


def zap_reports_no_profile(observed: Observed) -> Observed:
    """A Zap that lists a device without its connection type or profile."""
    return set_zap_device(observed, "home-zap", "INV1", connection_type="", profile=None)


def undeclared_cloud_der(observed: Observed) -> Observed:
    devices = observed.novacore_devices["sit-cabin"]
    assert isinstance(devices, list)
    extra = (*devices[0].ders, replace(devices[0].ders[0], id="der-9", name="legacy"))
    return set_cloud_device(observed, "sit-cabin", "INV2", ders=extra)


@pytest.mark.parametrize("extras", [
    pytest.param(api_extras, id="undeclared-manufacturer-model-settings"),
    pytest.param(zap_reports_less, id="unreported-settings-not-compared"),
    pytest.param(zap_reports_no_profile, id="unreported-type-and-profile-not-compared"),
    pytest.param(undeclared_cloud_der, id="undeclared-novacore-der-left-alone"),
])
def test_values_the_spec_does_not_declare_are_not_drift(
        extras: Callable[[Observed], Observed]) -> None:
    plan = make_plan(make_fleet(), extras(copy_of(converged())), CLI)
    assert not plan.has_changes, pending(plan)


@pytest.mark.parametrize("prune", [False, True], ids=["plan", "prune"])
def test_undeclared_novacore_der_is_reported_as_unmanaged_without_a_change(prune: bool) -> None:
    """Novacore has no DER delete: what the plan can do is say so, where every rendering
    shows it (not in a no-op's message), and --prune cannot change that."""
    plan = make_plan(make_fleet(), undeclared_cloud_der(copy_of(converged())),
                     PlanOptions(audience=Audience.CLI, prune=prune))
    assert not plan.has_changes, pending(plan)
    assert by_address(plan)["device/cabin-inv[novacore]"].message == ""
    assert plan.unmanaged == [{
        "platform": "novacore", "site": "cabin", "device": "cabin-inv", "id": "der-9",
        "description": "DER legacy (solar, der-9) of Novacore device dev-inv2 (Device "
                       "cabin-inv) is not declared (Novacore has no DER delete; left as it is)",
        "prunable": False,
    }]
    assert plan.summary()["unmanaged"] == 1


@pytest.mark.parametrize(("options", "reported"), [
    pytest.param(PlanOptions(audience=Audience.CLI, targets=("device/cabin-inv",)),
                 True, id="its-device-targeted"),
    pytest.param(PlanOptions(audience=Audience.CLI, targets=("site/cabin",)),
                 True, id="its-site-targeted"),
    pytest.param(PlanOptions(audience=Audience.CLI, targets=("device/home-inv",)),
                 False, id="another-device"),
    pytest.param(PlanOptions(audience=Audience.CLI, excludes=("device/cabin-inv",)),
                 False, id="its-device-excluded"),
])
def test_undeclared_novacore_der_goes_with_its_device_in_a_selection(
        options: PlanOptions, reported: bool) -> None:
    plan = make_plan(make_fleet(), undeclared_cloud_der(copy_of(converged())), options)
    assert [u["id"] for u in plan.unmanaged] == (["der-9"] if reported else [])


def test_undeclared_novacore_der_of_a_device_replaced_is_not_reported() -> None:
    """A replace deletes the Novacore device, and its DERs with it."""
    observed = undeclared_cloud_der(copy_of(converged()))
    observed = set_cloud_device(observed, "sit-cabin", "INV2", device_type="battery")
    plan = make_plan(make_fleet(), observed, CLI)
    assert by_address(plan)["device/cabin-inv[novacore]"].action is Action.REPLACE
    assert plan.unmanaged == []


def test_der_the_zap_reports_but_nobody_declares_is_switched_off() -> None:
    observed = set_zap_device(copy_of(converged()), "cabin-zap", "INV2",
                              ders={"pv": True, "battery": True, "meter": False})
    change = by_address(make_plan(make_fleet(), observed, CLI))["device/cabin-inv[publish]"]
    assert change.action is Action.UPDATE
    assert [(d.path, d.old, d.new) for d in change.diff] == [("battery", True, False)]


# -- unmanaged objects and pruning ----------------------------------------------------------


def with_strangers(observed: Observed) -> Observed:
    state = observed.zaps["home-zap"]
    assert isinstance(state, ZapState)
    state.devices["STRANGER"] = ZapDevice("STRANGER", "mqtt", "ferroamp", "battery",
                                          {"broker_host": "192.168.1.70"}, {"battery": True})
    devices = observed.novacore_devices["sit-cabin"]
    assert isinstance(devices, list)
    devices.append(NovacoreDevice("dev-old", "Old meter", "energy_meter", "OLD1",
                                  gateway_serial=CABIN_SERIAL))
    return observed


def test_unmanaged_devices_are_reported_not_deleted_without_prune() -> None:
    plan = make_plan(make_fleet(), with_strangers(copy_of(converged())), CLI)
    assert not plan.has_changes, "nothing is deleted without --prune"
    assert [(u["platform"], u["id"]) for u in plan.unmanaged] == [
        ("zap", "STRANGER"), ("novacore", "dev-old")]
    assert "not declared" in plan.unmanaged[0]["description"]


def test_prune_deletes_unmanaged_devices_clouds_first() -> None:
    plan = make_plan(make_fleet(), with_strangers(copy_of(converged())),
                     PlanOptions(audience=Audience.CLI, prune=True))
    assert pending(plan) == {"device/home-zap.STRANGER[zap]": ("delete", False),
                             "device/cabin.OLD1[novacore]": ("delete", False)}
    assert plan.unmanaged == []
    changes = by_address(plan)
    assert changes["device/home-zap.STRANGER[zap]"].external_id == "STRANGER"
    assert changes["device/cabin.OLD1[novacore]"].external_id == "dev-old"


LOST_SERIAL = "zap-00000000000000ff"


def with_undeclared_gateway(observed: Observed) -> Observed:
    gateways = observed.novacore_gateways[ORG]
    assert isinstance(gateways, set)
    gateways.add(LOST_SERIAL)
    return observed


@pytest.mark.parametrize(("prune", "inventory", "released", "note"), [
    pytest.param(False, {}, False, "deletionPolicy Orphan", id="no-prune-no-inventory"),
    pytest.param(True, {}, False, "deletionPolicy Orphan", id="prune-but-unknown-policy"),
    pytest.param(True, {LOST_SERIAL: "Orphan"}, False, "deletionPolicy Orphan",
                 id="prune-with-orphan-policy"),
    pytest.param(False, {LOST_SERIAL: "Release"}, False, "use --prune",
                 id="release-policy-without-prune"),
    pytest.param(True, {LOST_SERIAL: "Release"}, True, "", id="prune-with-release-policy"),
])
def test_gateway_is_released_only_with_prune_and_release_policy(
        prune: bool, inventory: dict[str, str], released: bool, note: str) -> None:
    plan = make_plan(make_fleet(), with_undeclared_gateway(copy_of(converged())),
                     PlanOptions(audience=Audience.CLI, prune=prune, inventory=inventory))
    releases = [c for c in plan.changes if c.action is Action.RELEASE]
    if released:
        assert [c.address for c in releases] == [f"gateway/{LOST_SERIAL}[novacore]"]
        assert releases[0].reason is Reason.DELETION_POLICY
        assert plan.unmanaged == []
    else:
        assert releases == [], "a gateway is never released by default"
        assert [u["id"] for u in plan.unmanaged] == [LOST_SERIAL]
        assert note in plan.unmanaged[0]["description"]


def with_moved_copy(observed: Observed) -> Observed:
    """The cabin inverter (INV2, declared on cabin-zap) also on home-zap's Zap: the copy a
    move of its hardware left there."""
    home = observed.zaps["home-zap"]
    assert isinstance(home, ZapState)
    home.devices["INV2"] = ZapDevice("INV2", "modbus_tcp", "sungrow", "inverter",
                                     {"host": "192.168.1.61"}, {"pv": True})
    return observed


@pytest.mark.parametrize("audience", list(Audience))
def test_what_a_plan_advises_is_worded_for_the_audience_its_caller_names(
        audience: Audience) -> None:
    """The CLI's user is told of `--prune`; the operator's, who has no such flag, is told
    what stays without it (the event listing them says to remove them by hand)."""
    observed = with_moved_copy(with_undeclared_gateway(with_strangers(copy_of(converged()))))
    plan = make_plan(make_fleet(), observed,
                     PlanOptions(inventory={LOST_SERIAL: "Release"}, audience=audience))
    said = {u["id"]: u["description"] for u in plan.unmanaged}
    cli = audience is Audience.CLI
    assert said[LOST_SERIAL] == (
        f"gateway {LOST_SERIAL} is claimed by {ORG} but not declared; left claimed "
        + ("(deletionPolicy Release; use --prune to release it)" if cli
           else "(deletionPolicy Release)"))
    assert said["INV2"].endswith(
        "is declared on gateway cabin-zap (Device cabin-inv), not here"
        + ("; use --prune to remove it from this gateway" if cli else "")), said["INV2"]
    texts = [*said.values(), *(c.message for c in plan.changes)]
    assert any("--prune" in text for text in texts) is cli, texts


# -- ordering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("observed", [
    pytest.param(fresh, id="fresh"),
    pytest.param(lambda: with_strangers(copy_of(converged())), id="unmanaged"),
    pytest.param(lambda: without_cabin_inverter_on_zap(copy_of(converged()), None),
                 id="identity-check"),
])
@pytest.mark.parametrize("prune", [False, True])
def test_sites_planned_as_observed_in_any_order_make_the_same_plan(
        observed: Callable[[], Observed], prune: bool) -> None:
    """The engine plans each site as soon as its reads are in: the order sites finish in
    must not change the plan, its order, or the unmanaged report."""
    fleet, options = make_fleet(), PlanOptions(audience=Audience.CLI, prune=prune)
    at_once = make_plan(fleet, observed(), options)
    builder = PlanBuilder(fleet, observed(), options)
    for name in reversed(list(fleet.sites)):
        builder.site_observed(name)
    builder.site_observed(next(iter(fleet.sites)))  # a site reported twice is planned once
    site_by_site = builder.finish()
    assert document.to_document(site_by_site) == document.to_document(at_once)
    assert site_by_site.unmanaged == at_once.unmanaged
    assert len(fleet.sites) > 1 and (at_once.has_changes or at_once.unmanaged)




def test_removals_run_after_creates_and_in_reverse_dependency_order() -> None:
    observed = with_undeclared_gateway(with_strangers(copy_of(converged())))
    observed = publishing_off(removed_from_zap(observed))
    plan = make_plan(make_fleet(), observed,
                     PlanOptions(audience=Audience.CLI, prune=True,
                                 inventory={LOST_SERIAL: "Release"}))
    order = [c.address for c in plan.changes if c.is_change]
    assert order == [
        "device/home-p1[zap]",  # home: add before publish,
        "device/home-inv[publish]",
        "device/home-p1[publish]",
        "device/home-zap.STRANGER[zap]",  # then removals
        "device/cabin.OLD1[novacore]",  # cabin
        f"gateway/{LOST_SERIAL}[novacore]",  # release last (belongs to no declared site)
    ]


def test_site_with_unknown_site_id_is_blocked_not_created() -> None:
    fleet = make_fleet(home_overrides={"novacore: {orgId: org-a}":
                                       "novacore: {orgId: org-a, siteId: sit-gone}"})
    plan = make_plan(fleet, converged(), CLI)
    site = by_address(plan)["site/home[novacore]"]
    assert (site.action, site.blocked) == (Action.CREATE, True)
    assert "remove `siteId`" in site.message


# -- the Zap's device body --------------------------------------------------------------------

ZAP_BODY_FLEET = """\
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata: {name: lab}
spec: {displayName: Lab, timezone: Europe/Stockholm, novacore: {orgId: org-a}}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Gateway
metadata: {name: lab-zap}
spec: {siteRef: lab, zap: {serial: zap-00000000000000c1, url: "http://192.168.9.2"}}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata: {name: dev}
spec:
  gatewayRef: lab-zap
  hardwareId: HW1
  deviceType: %(type)s
  connection: %(connection)s
"""


@pytest.mark.parametrize(("device_type", "connection", "body"), [
    pytest.param("inverter", "{modbusRtu: {unitId: 3, profile: sungrow, parity: even}}",
                 {"type": "modbus_rtu", "baud_rate": 9600, "unit_id": 3, "profile": "sungrow",
                  "parity": 2, "data_bits": 8, "stop_bits": 1},
                 id="rtu-parity-is-numeric"),
    pytest.param("energy_meter", "{p1Uart: {manufacturer: Kaifa}}",
                 {"type": "p1_uart", "profile": "p1_meter", "baud_rate": 115200, "data_bits": 8,
                  "parity": "none", "stop_bits": 1, "manufacturer": "Kaifa"},
                 id="p1-parity-is-text"),
    pytest.param("battery",
                 "{mqtt: {profile: ferroamp, brokerHost: 10.0.0.7, username: u, clientId: c, "
                 "passwordFrom: {env: PW}}}",
                 {"type": "mqtt", "profile": "ferroamp", "broker_host": "10.0.0.7",
                  "broker_port": 1883, "username": "u", "client_id": "c"},
                 id="mqtt-without-password"),
])
def test_zap_body_per_connection_type(device_type: str, connection: str,
                                      body: dict[str, object]) -> None:
    from reconciler.plan.zap_settings import zap_settings
    from reconciler.sources import loader

    text = ZAP_BODY_FLEET % {"type": device_type, "connection": connection}
    fleet = loader.load_texts([("lab.yaml", text)]).fleet()
    device_connection = fleet.devices["dev"].spec.connection
    assert device_connection is not None
    assert zap_settings(device_connection) == body


def test_gateway_not_observed_at_all_defers_its_site() -> None:
    observed = copy_of(converged())
    del observed.zaps["cabin-zap"]
    plan = make_plan(make_fleet(), observed, CLI)
    cabin = [c for c in plan.changes if c.site == "cabin" and c.is_change]
    assert cabin and all(c.action is Action.DEFER for c in cabin), pending(plan)
    assert all("gateway cabin-zap" in c.message and "not observed" in c.message for c in cabin)
    assert not any(c.is_change for c in plan.changes if c.site == "home")
