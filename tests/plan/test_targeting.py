"""`--target` / `--exclude` by address and by label selector: a target brings what it
holds (a site its gateways and devices) and what it depends on (a device its gateway and
site); an exclusion takes what depends on it along."""

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
    assert targeting.unknown_targets(make_fleet(), ["device/home-inv", "device/nope",
                                                    "region=west", "region=north"]) == [
        "device/nope", "region=west"]
