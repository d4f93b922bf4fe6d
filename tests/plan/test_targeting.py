"""`--target` / `--exclude` by address and by label selector: a target brings what it
holds (a site its gateways and devices) and what it depends on (a device its gateway and
site); an exclusion takes what depends on it along. Selectors follow kubectl's syntax and
judge a resource by its labels merged over those of what holds it; a pattern that cannot
select anything is reported with what is wrong. Undeclared objects go with the gateway or
site they were found in, when that is taken whole."""

from __future__ import annotations

import pytest
from plan_fixtures import (
    CABIN_SERIAL,
    ORG,
    P1_SETTINGS,
    converged,
    fresh,
    make_fleet,
)

from reconciler.plan import targeting
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.observed import NovacoreDevice, Observed, ZapDevice
from reconciler.plan.planner import PlanOptions, make_plan

HOME = {"site/home", "gateway/home-zap", "device/home-inv", "device/home-p1"}
CABIN = {"site/cabin", "gateway/cabin-zap", "device/cabin-inv"}


def planned(targets: tuple[str, ...] = (), excludes: tuple[str, ...] = ()) -> set[str]:
    """`kind/name` of every resource with a change in the plan of a fresh fleet."""
    options = PlanOptions(audience=Audience.CLI, targets=targets, excludes=excludes)
    plan = make_plan(make_fleet(), fresh(), options)
    return {f"{c.kind.lower()}/{c.name}" for c in plan.changes}


@pytest.mark.parametrize(("targets", "excludes", "expected"), [
    pytest.param((), (), HOME | CABIN, id="everything-by-default"),
    pytest.param(("device/home-inv",), (), {"site/home", "gateway/home-zap", "device/home-inv"},
                 id="address-brings-its-gateway-and-site"),
    pytest.param(("Device/home-inv",), (), {"site/home", "gateway/home-zap", "device/home-inv"},
                 id="kind-is-case-insensitive"),
    pytest.param(("region=north",), (), HOME, id="labelled-site-brings-what-it-holds"),
    pytest.param(("site/cabin",), (), CABIN, id="site-address-brings-the-whole-site"),
    pytest.param(("gateway/home-zap",), (), HOME, id="gateway-brings-its-devices-and-site"),
    pytest.param(("kind=inverter",), (), {"site/home", "gateway/home-zap", "device/home-inv"},
                 id="device-label-brings-its-parents"),
    pytest.param(("region!=north,region",), (), CABIN,
                 id="terms-of-one-selector-all-hold"),
    pytest.param(("region!=north",), (), CABIN,
                 id="negated-label-judges-a-device-by-its-site-too"),
    pytest.param(("!region",), (), set(), id="absent-label-judges-a-device-by-its-site-too"),
    pytest.param(("region!=south",), (), HOME, id="negated-label-keeps-out-the-other-site"),
    pytest.param(("region=north,kind=inverter",), (),
                 {"site/home", "gateway/home-zap", "device/home-inv"},
                 id="inherited-and-own-labels-together"),
    pytest.param(("region in (north, west)",), (), HOME, id="set-based-in"),
    pytest.param((), ("region notin (north)",), HOME,
                 id="notin-exclusion-keeps-what-the-site-holds"),
    pytest.param((), ("region!=north",), HOME, id="negated-exclusion-keeps-what-the-site-holds"),
    pytest.param(("kind==inverter",), (), {"site/home", "gateway/home-zap", "device/home-inv"},
                 id="double-equals-as-in-kubectl"),
    pytest.param(("region in (south),!kind",), (), CABIN, id="set-term-joined-with-others"),
    pytest.param(("device/home-p1", "device/cabin-inv"), (),
                 {"site/home", "gateway/home-zap", "device/home-p1"} | CABIN,
                 id="targets-add-up"),
    pytest.param((), ("site/home",), CABIN, id="excluding-a-site-excludes-what-it-holds"),
    pytest.param((), ("device/home-inv",), (HOME - {"device/home-inv"}) | CABIN,
                 id="excluding-a-device-keeps-its-site"),
    pytest.param((), ("region=south",), HOME, id="exclude-by-label"),
    pytest.param(("region=north", "device/home-p1"), ("device/home-p1",),
                 HOME - {"device/home-p1"}, id="exclude-wins-over-target"),
])
def test_selection(targets: tuple[str, ...], excludes: tuple[str, ...],
                   expected: set[str]) -> None:
    assert planned(targets, excludes) == expected


def test_a_resources_own_label_wins_over_the_one_it_inherits() -> None:
    fleet = make_fleet(home_overrides={"{name: home-p1}": "{name: home-p1, labels: "
                                                          "{region: south}}"})
    plan = make_plan(fleet, fresh(), PlanOptions(audience=Audience.CLI, targets=("region=south",)))
    assert {f"{c.kind.lower()}/{c.name}" for c in plan.changes} == CABIN | {
        "site/home", "gateway/home-zap", "device/home-p1"}
    assert targeting.inherited_labels(fleet)[("Device", "home-inv")] == {
        "region": "north", "kind": "inverter"}


def with_undeclared_objects() -> Observed:
    """The converged state, and beyond it: a meter on the home Zap, a device in the cabin's
    Novacore site, and a gateway claimed in the organisation, none of them declared."""
    observed = converged()
    observed.zaps["home-zap"].devices["STRAY1"] = ZapDevice(  # type: ignore[union-attr]
        "STRAY1", "p1_uart", "p1_meter", "energy_meter", dict(P1_SETTINGS), {"meter": True})
    observed.novacore_devices["sit-cabin"].append(  # type: ignore[union-attr]
        NovacoreDevice("dev-stray", "stray", "inverter", "STRAY2", gateway_serial=CABIN_SERIAL))
    observed.novacore_gateways[ORG].add("zap-00000000000000ff")  # type: ignore[union-attr]
    return observed


# Each undeclared object as the plan reports it (unmanaged) and as --prune removes it.
STRAY_ON_HOME_ZAP = ("zap", "STRAY1", "device/home-zap.STRAY1[zap]")
STRAY_IN_CABIN = ("novacore", "dev-stray", "device/cabin.STRAY2[novacore]")
CLAIMED_GATEWAY = ("novacore", "zap-00000000000000ff",
                   "gateway/zap-00000000000000ff[novacore]")


@pytest.mark.parametrize(("targets", "excludes", "expected"), [
    pytest.param((), (), {STRAY_ON_HOME_ZAP, STRAY_IN_CABIN, CLAIMED_GATEWAY}, id="all"),
    pytest.param(("site/home",), (), {STRAY_ON_HOME_ZAP}, id="a-targeted-site"),
    pytest.param(("region=south",), (), {STRAY_IN_CABIN}, id="a-site-targeted-by-label"),
    pytest.param(("gateway/home-zap",), (), {STRAY_ON_HOME_ZAP}, id="a-targeted-gateway"),
    pytest.param(("device/cabin-inv",), (), set(),
                 id="not-a-site-a-target-only-needs"),
    pytest.param((), ("site/home",), {STRAY_IN_CABIN}, id="not-an-excluded-site"),
    pytest.param((), ("gateway/home-zap",), {STRAY_IN_CABIN},
                 id="not-on-an-excluded-gateway"),
    pytest.param((), ("device/home-inv",), {STRAY_ON_HOME_ZAP, STRAY_IN_CABIN},
                 id="a-site-with-an-excluded-device"),
])
@pytest.mark.parametrize("prune", [False, True], ids=["unmanaged", "pruned"])
def test_undeclared_objects_go_with_the_gateway_or_site_they_were_found_in(
        targets: tuple[str, ...], excludes: tuple[str, ...],
        expected: set[tuple[str, str, str]], prune: bool) -> None:
    """An undeclared object on a selected gateway or in a selected site is reported (and
    removed with --prune); one of a site a target only needs, or of an excluded one, is
    not; a gateway claimed in the organisation belongs to no site and needs the whole
    fleet. Policy Release makes the claimed gateway a --prune release."""
    inventory = {"zap-00000000000000ff": "Release"}
    plan = make_plan(make_fleet(), with_undeclared_objects(),
                     PlanOptions(audience=Audience.CLI, prune=prune, targets=targets,
                                 excludes=excludes, inventory=inventory))
    removed = {c.address for c in plan.pending
               if c.action in (Action.DELETE, Action.RELEASE)}
    unmanaged = {(u["platform"], u["id"]) for u in plan.unmanaged}
    if prune:
        assert (removed, unmanaged) == ({address for _, _, address in expected}, set())
    else:
        assert (removed, unmanaged) == (set(), {(p, i) for p, i, _ in expected})


def test_patterns_that_match_nothing_are_reported() -> None:
    assert targeting.pattern_problems(make_fleet(), ["device/home-inv", "device/nope",
                                                     "region=west", "region=north"]) == [
        "'device/nope' matches no resource",
        "'region=west' matches no resource (region has the values north, south)"]


@pytest.mark.parametrize(("pattern", "problem"), [
    pytest.param("devise/home-inv", "'devise/home-inv': unknown kind 'devise'; an address is "
                 "kind/name, the kind one of site, gateway, device, der", id="unknown-kind"),
    pytest.param("region in (north,south", "'region in (north,south': opens a parenthesis it "
                 "never closes", id="unclosed-set"),
    pytest.param("region=north)", "'region=north)': closes a parenthesis it never opened",
                 id="stray-parenthesis"),
    pytest.param("region=north,,kind", "'region=north,,kind': has an empty term",
                 id="empty-term"),
    pytest.param("region=a=b", "'region=a=b': 'a=b' is not a label value", id="bad-value"),
    pytest.param("two words", "'two words': 'two words' is not a label key", id="bad-key"),
    # kubectl refuses an empty set; read as the empty value, `notin ()` excluded everything.
    pytest.param("region notin ()", "'region notin ()': 'notin ()' lists no value; list at "
                 "least one, as in region notin (north,west)", id="empty-set"),
])
def test_patterns_that_cannot_select_say_what_is_wrong(pattern: str, problem: str) -> None:
    [reported] = targeting.pattern_problems(make_fleet(), [pattern])
    assert reported.startswith(problem)
    if "unknown kind" not in problem:
        assert "key in (a,b)" in reported  # the syntax that would be valid


def test_a_label_key_with_a_dns_prefix_is_a_selector_not_an_address() -> None:
    assert targeting.pattern_problems(make_fleet(), ["example.com/tier"]) == [
        "'example.com/tier' matches no resource (no resource has the label "
        "'example.com/tier')"]
