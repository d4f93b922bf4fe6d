"""The Enapter planner as a pure function of (fleet, observed records): no simulator, no
I/O. Each case starts from a site that is in sync and changes one thing about what
Enapter reports (or what is declared)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from enapter_world import GW, UCM, device, fleet_of, lua, site_and_gateway, ucm

from reconciler.plan import renames
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.enapter_observed import (
    ConfigOutputState,
    EnapterDeviceState,
    EnapterSiteState,
    EnapterState,
)
from reconciler.plan.observed import Observed, Unreachable
from reconciler.plan.planner import PlanOptions, make_plan

# The options of a plan for the CLI's user (its advice names the CLI's flags).
CLI = PlanOptions(audience=Audience.CLI)

SITE = EnapterSiteState("s1", "H2 Lab", "Europe/Rome",
                        {"name": "Crespina", "latitude": 43.57, "longitude": 10.56})
GATEWAY = EnapterDeviceState("gw", "s1", "GATEWAY", "Enapter Gateway", "enapter-gateway",
                             hardware_id=GW, communication_type="MQTT_V1_TLS",
                             properties={"gateway_version": "3.1.0"})
UCM_DEVICE = EnapterDeviceState("u1", "s1", "HARDWARE_UCM", "Gas sensor UCM", "gas-ucm",
                                hardware_id=UCM, upstream_id="gw",
                                communication_type="MQTT_V1_TLS")
LUA_DEVICE = EnapterDeviceState("l1", "s1", "LUA", "Gas sensor", "gas-1", blueprint_id="bp-gas-1",
                                hardware_id=UCM, upstream_id="u1", communication_type="UCM_LUA")
FLEET = site_and_gateway() + ucm() + lua()
# The UCM's config in a Secret (the operator's store), with what the store says of it.
SECRET_FLEET = FLEET.replace("configOutput: {file: cfg/ucm.json}",
                             "configOutput: {secretName: ucm-config}")


def _secret(**stored: object) -> Mutate:
    return _set(secret_store=True, config_outputs={
        "lab-ucm": ConfigOutputState("Secret ucm-config", True, **stored)})  # type: ignore[arg-type]

Mutate = Callable[[EnapterState], None]


def in_sync() -> EnapterState:
    return EnapterState(sites=[SITE], devices={"s1": [GATEWAY, UCM_DEVICE, LUA_DEVICE]},
                        config_outputs={"lab-ucm": ConfigOutputState("/state/cfg/ucm.json", True)})


def replace_device(old: EnapterDeviceState, **changes: object) -> Mutate:
    def mutate(state: EnapterState) -> None:
        devices = state.devices["s1"]
        assert isinstance(devices, list)
        devices[devices.index(old)] = dataclasses.replace(old, **changes)  # type: ignore[arg-type]
    return mutate


def add_device(new: EnapterDeviceState) -> Mutate:
    def mutate(state: EnapterState) -> None:
        devices = state.devices["s1"]
        assert isinstance(devices, list)
        devices.append(new)
    return mutate


def plan_of(state: EnapterState, fleet_text: str = FLEET, *,
            prune: bool = False) -> dict[str, tuple[str, bool]]:
    plan = make_plan(fleet_of(fleet_text), Observed(extra={"enapter": state}),
                     PlanOptions(audience=Audience.CLI, prune=prune))
    return {c.address: (c.action.value, c.blocked) for c in plan.pending}


def test_in_sync_site_plans_nothing() -> None:
    assert plan_of(in_sync()) == {}


def _set(**values: object) -> Mutate:
    def mutate(state: EnapterState) -> None:
        for key, value in values.items():
            setattr(state, key, value)
    return mutate


CASES = [
    pytest.param(_set(sites=Unreachable("timed out")), FLEET, {
        "site/lab[enapter]": ("defer", False), "gateway/lab-gw[enapter]": ("defer", False),
        "device/lab-ucm[enapter]": ("defer", False), "device/lab-lua[enapter]": ("defer", False),
    }, "an unreadable site list defers everything; nothing is guessed", id="sites-unreachable"),
    pytest.param(_set(devices={"s1": Unreachable("HTTP 503")}), FLEET, {
        "gateway/lab-gw[enapter]": ("defer", False), "device/lab-ucm[enapter]": ("defer", False),
        "device/lab-lua[enapter]": ("defer", False),
    }, "unreadable devices defer the site's devices, not the site", id="devices-unreachable"),
    pytest.param(replace_device(UCM_DEVICE, name="renamed"), FLEET, {
        "device/lab-ucm[enapter]": ("update", False),
    }, "a rename is an update (PATCH), never a reprovision", id="renamed"),
    pytest.param(replace_device(GATEWAY, properties={"gateway_version": "3.0.0"}), FLEET, {
        "gateway/lab-gw[enapter]": ("update", False),
    }, "a firmware version change is recorded by provisioning the gateway again",
        id="gateway-version"),
    pytest.param(replace_device(UCM_DEVICE, type="VIRTUAL_UCM"), FLEET, {
        "device/lab-ucm[enapter]": ("create", True),
        "device/lab-lua[enapter]": ("replace", True),
    }, "a hardware id held by another device type blocks the create (and what runs on it)",
        id="hardware-id-of-another-type"),
    pytest.param(replace_device(LUA_DEVICE, upstream_id="elsewhere"), FLEET, {
        "device/lab-lua[enapter]": ("replace", False),
    }, "a Lua device on another runtime is deleted and provisioned again", id="lua-moved"),
    pytest.param(replace_device(UCM_DEVICE, communication_type="MQTT_V1_PLAINTEXT"), FLEET, {
        "device/lab-ucm[enapter]": ("update", False),
    }, "a protocol change with a config file is generate_config", id="protocol-with-output"),
    pytest.param(replace_device(UCM_DEVICE, communication_type="MQTT_V1_PLAINTEXT"),
                 site_and_gateway() + device("lab-ucm", "{kind: ucm, slug: gas-ucm}",
                                             hardware=UCM, display="Gas sensor UCM"), {
        "device/lab-ucm[enapter]": ("update", True),
    }, "a protocol change with nowhere to write the new config is blocked",
        id="protocol-without-output"),
    pytest.param(_set(config_outputs={"lab-ucm": ConfigOutputState("/state/cfg/ucm.json", False)}),
                 FLEET, {"device/lab-ucm[enapter]": ("update", False)},
                 "a missing config file plans a new config", id="config-file-missing"),
    pytest.param(_secret(written_for="u1"), SECRET_FLEET, {},
                 "a Secret written for the device holds its config", id="config-secret-own"),
    pytest.param(_secret(written_for="x9"), SECRET_FLEET, {
        "device/lab-ucm[enapter]": ("update", False)},
                 "a Secret written for another Enapter device is written again with a config "
                 "of this one", id="config-secret-of-another-device"),
    pytest.param(_secret(foreign=True), SECRET_FLEET, {
        "device/lab-ucm[enapter]": ("update", True)},
                 "a Secret the reconciler did not write is not written over",
                 id="config-secret-not-ours"),
    pytest.param(_set(sites=[dataclasses.replace(SITE, id="other")]),
                 FLEET.replace("enapter: {}", "enapter: {siteId: s1}"), {
        "site/lab[enapter]": ("create", True), "gateway/lab-gw[enapter]": ("create", True),
        "device/lab-ucm[enapter]": ("create", True), "device/lab-lua[enapter]": ("create", True),
    }, "a declared siteId that does not exist blocks the site and all in it",
        id="site-id-missing"),
    pytest.param(add_device(EnapterDeviceState("x1", "s1", "HARDWARE_UCM", "Old", "old",
                                               hardware_id="OLD", upstream_id="gw")), FLEET, {},
                 "an undeclared device is only reported without --prune", id="undeclared-kept"),
]


@pytest.mark.parametrize("mutate", [
    pytest.param(_set(sites=Unreachable("timed out")), id="sites-unreachable"),
    pytest.param(_set(devices={"s1": Unreachable("HTTP 503")}), id="devices-unreachable"),
])
def test_deferred_changes_guess_nothing_about_what_was_not_read(mutate: Mutate) -> None:
    state = in_sync()
    mutate(state)
    plan = make_plan(fleet_of(FLEET), Observed(extra={"enapter": state}), CLI)
    # The site itself too, when the sites could not be listed: said as `defer` says it.
    deferred = [c for c in plan.changes if c.action is Action.DEFER]
    assert deferred
    for change in deferred:
        assert change.message.startswith("its state is not known; deferred: "), change.message


@pytest.mark.parametrize("mutate", [
    pytest.param(_set(sites=Unreachable("timed out")), id="sites-unreachable"),
    pytest.param(_set(devices={"s1": Unreachable("HTTP 503")}), id="devices-unreachable"),
])
def test_a_blocked_change_deferred_keeps_its_cause_first(mutate: Mutate) -> None:
    """As `actions.defer` says it: the cause that blocks it, which reaching Enapter would
    not lift, then the deferral."""
    state = in_sync()
    _secret(foreign=True)(state)
    mutate(state)
    plan = make_plan(fleet_of(SECRET_FLEET), Observed(extra={"enapter": state}), CLI)
    ucm_change = next(c for c in plan.changes if c.address == "device/lab-ucm[enapter]")
    assert (ucm_change.action, ucm_change.blocked) == (Action.DEFER, True)
    cause, deferral = ucm_change.message.split("; its state is not known; deferred: ")
    assert "Secret ucm-config" in cause and "not written by the reconciler" in cause, cause
    assert deferral in ("Enapter sites: timed out", "devices of Enapter site s1: HTTP 503"), \
        deferral


@pytest.mark.parametrize(("mutate", "fleet_text", "expected", "reason"), CASES)
def test_planner_decisions(mutate: Mutate, fleet_text: str, expected: dict[str, tuple[str, bool]],
                           reason: str) -> None:
    state = in_sync()
    mutate(state)
    assert plan_of(state, fleet_text) == expected, reason


def test_prune_refuses_to_delete_an_upstream_that_declared_devices_run_on() -> None:
    state = in_sync()
    other = EnapterDeviceState("x1", "s1", "HARDWARE_UCM", "Old", "old", hardware_id="OLD",
                               upstream_id="gw")
    add_device(other)(state)
    add_device(EnapterDeviceState("x2", "s1", "LUA", "Old script", "old-script",
                                  hardware_id="OLD", upstream_id="x1"))(state)
    # Undeclared: the old UCM with its script (deleted, script first).
    assert plan_of(state, prune=True) == {"device/lab.old-script[enapter]": ("delete", False),
                                          "device/lab.old[enapter]": ("delete", False)}
    # Undeclared gateway, declared UCM on it: Enapter would refuse, so the plan does.
    without_gateway = FLEET.split("---\n")[0] + "".join(
        "---\n" + part for part in FLEET.split("---\n")[2:])
    plan = plan_of(in_sync(), without_gateway, prune=True)
    assert plan == {"device/lab.enapter-gateway[enapter]": ("delete", True)}


# -- a Site renamed in git --------------------------------------------------------------------

RENAMED = FLEET.replace("displayName: H2 Lab\n", "displayName: H2 Lab North\n")


def unclaimed(*sites: EnapterSiteState, contents: dict[str, object]) -> EnapterState:
    """The observer's record when no site has the Site's name: the unclaimed sites it read."""
    state = in_sync()
    state.sites = list(sites)
    state.devices = dict(contents)  # type: ignore[arg-type]
    state.unclaimed = tuple(s.id for s in sites)
    return state


def test_the_unclaimed_site_holding_only_this_sites_objects_is_renamed() -> None:
    state = unclaimed(SITE, contents={"s1": [GATEWAY, UCM_DEVICE, LUA_DEVICE]})
    assert plan_of(state, RENAMED) == {"site/lab[enapter]": ("update", False)}


def test_two_sites_that_could_be_the_renamed_one_block_it() -> None:
    other = EnapterSiteState("s2", "Lab annex", "Europe/Rome")
    lua_elsewhere = dataclasses.replace(LUA_DEVICE, id="l2", site_id="s2")
    state = unclaimed(SITE, other, contents={"s1": [GATEWAY, UCM_DEVICE], "s2": [lua_elsewhere]})
    plan = make_plan(fleet_of(RENAMED), Observed(extra={"enapter": state}), CLI)
    site = next(c for c in plan.changes if c.address == "site/lab[enapter]")
    assert (site.action.value, site.blocked) == ("create", True)
    assert site.message == (
        "no Enapter site named 'H2 Lab North', and this Site's devices are in several sites "
        "(s1 ('H2 Lab'), s2 ('Lab annex')); set `siteId` to the one it is")


def test_an_unclaimed_site_that_cannot_be_read_defers_the_site() -> None:
    state = unclaimed(SITE, contents={"s1": Unreachable("timed out")})
    assert set(plan_of(state, RENAMED).values()) == {("defer", False)}


def test_no_search_among_more_unclaimed_sites_than_the_limit() -> None:
    many = [EnapterSiteState(f"x{i}", f"Other {i}", "Europe/Rome")
            for i in range(renames.SEARCH_LIMIT + 1)]
    state = unclaimed(*many, contents={})
    plan = make_plan(fleet_of(RENAMED), Observed(extra={"enapter": state}), CLI)
    site = next(c for c in plan.changes if c.address == "site/lab[enapter]")
    assert (site.action.value, site.blocked) == ("create", False)
    assert site.message.startswith(
        f"no Enapter site named 'H2 Lab North'; the {renames.SEARCH_LIMIT + 1} sites no Site "
        "claims were not searched")
