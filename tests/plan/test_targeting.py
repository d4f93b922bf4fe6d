"""`--target` / `--exclude` by address and by label selector: a target brings what it
holds (a site its gateways and devices) and what it depends on (a device its gateway and
site); an exclusion takes what depends on it along. Selectors follow kubectl's syntax; a pattern
that cannot select anything is reported with what is wrong."""

from __future__ import annotations

import pytest
from plan_fixtures import fresh, make_fleet

from reconciler.plan import targeting
from reconciler.plan.planner import PlanOptions, make_plan

HOME = {"site/home", "gateway/home-zap", "device/home-inv", "device/home-p1"}
CABIN = {"site/cabin", "gateway/cabin-zap", "device/cabin-inv"}


def planned(targets: tuple[str, ...] = (), excludes: tuple[str, ...] = ()) -> set[str]:
    """`kind/name` of every resource with a change in the plan of a fresh fleet."""
    plan = make_plan(make_fleet(), fresh(), PlanOptions(targets=targets, excludes=excludes))
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
    pytest.param(("region!=north",), (), HOME | CABIN,
                 id="negated-label-also-matches-unlabelled-as-in-kubernetes"),
    pytest.param(("region in (north, west)",), (), HOME, id="set-based-in"),
    pytest.param((), ("region notin (north)",), {"site/home", "gateway/home-zap"},
                 id="notin-also-matches-unlabelled-as-in-kubernetes"),
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


def test_targeted_plan_reports_no_unmanaged_objects() -> None:
    """Unmanaged objects belong to the whole fleet; a partial plan cannot judge them."""
    observed = fresh()
    observed.novacore_gateways["org-a"] = {"zap-00000000000000ff"}  # type: ignore[union-attr]
    assert make_plan(make_fleet(), observed).unmanaged
    assert make_plan(make_fleet(), observed, PlanOptions(targets=("site/home",))).unmanaged == []


def test_patterns_that_match_nothing_are_reported() -> None:
    assert targeting.pattern_problems(make_fleet(), ["device/home-inv", "device/nope",
                                                     "region=west", "region=north"]) == [
        "'device/nope' matches no resource", "'region=west' matches no resource"]


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
])
def test_patterns_that_cannot_select_say_what_is_wrong(pattern: str, problem: str) -> None:
    [reported] = targeting.pattern_problems(make_fleet(), [pattern])
    assert reported.startswith(problem)
    if "unknown kind" not in problem:
        assert "key in (a,b)" in reported  # the syntax that would be valid


def test_a_label_key_with_a_dns_prefix_is_a_selector_not_an_address() -> None:
    assert targeting.pattern_problems(make_fleet(), ["example.com/tier"]) == [
        "'example.com/tier' matches no resource"]
