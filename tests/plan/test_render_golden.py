"""Golden files pin the three renderings (text, JSON, Markdown) of one representative plan,
built purely from the test fleet plus three more sites and a hand-built observed state, so
every action the planner has appears: create, claim, update, replace, transfer (blocked),
verify (blocked), defer, delete, release, and an unmanaged gateway.

Refresh after an intended change with `pytest tests/plan --update-golden` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plan_fixtures import (
    CABIN_SERIAL,
    HOME_SERIAL,
    ORG,
    OTHER_ORG,
    converged,
    fleet_text,
    without_cabin_inverter_on_zap,
)

from reconciler.plan import document, markdown, render
from reconciler.plan.actions import Action
from reconciler.plan.advice import Audience
from reconciler.plan.observed import (
    IdentityReading,
    NovacoreSite,
    Observed,
    Unreachable,
    ZapDevice,
    ZapState,
)
from reconciler.plan.planner import Plan, PlanOptions, make_plan
from reconciler.sources import loader

# The options of a plan for the CLI's user (its advice names the CLI's flags).
CLI = PlanOptions(audience=Audience.CLI)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

MORE_SITES = """\
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata: {name: barn}
spec: {displayName: Barn, timezone: Europe/Stockholm, novacore: {orgId: org-a}}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Gateway
metadata: {name: barn-zap}
spec: {siteRef: barn, zap: {serial: zap-00000000000000c3, url: "http://192.168.3.40"}}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata: {name: barn-meter}
spec:
  gatewayRef: barn-zap
  hardwareId: P1BARN
  deviceType: energy_meter
  connection: {p1Uart: {}}
  ders: [{name: grid, type: meter}]
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata: {name: shed}
spec: {displayName: Shed | garden, timezone: Europe/Stockholm, novacore: {orgId: org-a}}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Gateway
metadata: {name: shed-zap}
spec: {siteRef: shed, zap: {serial: zap-00000000000000d4, url: "http://192.168.4.40"}}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata: {name: shed-battery}
spec:
  gatewayRef: shed-zap
  hardwareId: FERRO-SHED
  deviceType: battery
  connection:
    mqtt:
      profile: ferroamp
      brokerHost: 192.168.4.70
      username: extapi
      passwordFrom: {env: SHED_MQTT_PASSWORD}
  ders: [{name: battery, type: battery}]
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata: {name: attic}
spec: {displayName: Attic, timezone: Europe/Stockholm, novacore: {orgId: org-a}}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Gateway
metadata: {name: attic-zap}
spec: {siteRef: attic, zap: {serial: zap-00000000000000e5, url: "http://192.168.5.40"}}
---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata: {name: attic-meter}
spec:
  gatewayRef: attic-zap
  hardwareId: P1ATTIC
  deviceType: energy_meter
  connection: {p1Uart: {}}
  ders: [{name: grid, type: meter}]
"""

RELEASED_SERIAL = "zap-00000000000000ff"
ORPHANED_SERIAL = "zap-00000000000000ee"  # undeclared, policy unknown: left claimed


def representative_plan() -> Plan:
    fleet = loader.load_texts([("fleet.yaml", fleet_text() + "---\n" + MORE_SITES)]).fleet()
    observed: Observed = without_cabin_inverter_on_zap(converged(),
                                                       IdentityReading("SWAPPED-99"))
    home = observed.zaps["home-zap"]
    assert isinstance(home, ZapState)
    inverter = home.devices["INV1"]
    home.devices["INV1"] = ZapDevice("INV1", "modbus_tcp", "sungrow", "inverter",
                                     {**inverter.settings, "ip": "192.168.1.61"},
                                     {"pv": False, "battery": True, "meter": False})
    home.devices["STRANGER"] = ZapDevice("STRANGER", "mqtt", "ferroamp", "battery",
                                         {"broker_host": "192.168.1.70"}, {"battery": False})
    sites = observed.novacore_sites[ORG]
    assert isinstance(sites, list)
    sites.append(NovacoreSite("sit-barn", ORG, "Barn"))
    observed.novacore_devices["sit-barn"] = []
    observed.novacore_gateways = {ORG: {HOME_SERIAL, CABIN_SERIAL, RELEASED_SERIAL,
                                        ORPHANED_SERIAL},
                                  OTHER_ORG: {"zap-00000000000000c3"}}
    observed.zaps |= {"barn-zap": ZapState({}), "shed-zap": ZapState({}),
                      "attic-zap": Unreachable("GET /api/devices: cannot reach "
                                               "http://192.168.5.40: connection refused")}
    return make_plan(fleet, observed, PlanOptions(audience=Audience.CLI, prune=True,
                                                  inventory={RELEASED_SERIAL: "Release"}))


def the_document() -> dict[str, object]:
    return document.to_document(representative_plan(), inputs={"paths": ["sites/"]})


def check_golden(name: str, actual: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"{path} is missing; create it with `pytest tests/plan --update-golden`"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (f"{name} differs from the golden file; if the change is "
                                "intended, run `pytest tests/plan --update-golden` and review")


def test_representative_plan_has_every_action() -> None:
    plan = representative_plan()
    actions = {c.action for c in plan.changes}
    assert actions == set(Action), f"missing: {set(Action) - actions}"
    assert plan.blocked and plan.deferred and plan.unmanaged


@pytest.mark.parametrize(("name", "render_document"), [
    pytest.param("plan.txt", lambda doc: render.render_text(doc), id="text"),
    pytest.param("plan.json", lambda doc: json.dumps(doc, indent=2) + "\n", id="json"),
    pytest.param("plan.md", lambda doc: markdown.render_markdown(doc), id="markdown"),
])
def test_rendering_matches_golden_file(name: str, render_document: object,
                                       update_golden: bool) -> None:
    check_golden(name, render_document(the_document()), update_golden)  # type: ignore[operator]


def test_renderings_name_the_secret_source_never_a_value() -> None:
    doc = the_document()
    for text in (render.render_text(doc), markdown.render_markdown(doc), json.dumps(doc)):
        assert "password" not in text.lower(), "no password field, not even its name"
        assert "SHED_MQTT_PASSWORD" not in text, "not even the variable's name"


def test_saved_document_renders_like_a_fresh_one() -> None:
    doc = the_document()
    reloaded = json.loads(json.dumps(doc))
    assert render.render_text(reloaded) == render.render_text(doc)
    assert markdown.render_markdown(reloaded) == markdown.render_markdown(doc)


def test_colour_only_on_request() -> None:
    doc = the_document()
    assert "\x1b[" not in render.render_text(doc)
    coloured = render.render_text(doc, color=True)
    assert "\x1b[31m" in coloured and "[BLOCKED]" in coloured


def test_no_op_plan_renders_as_no_changes() -> None:
    doc = document.to_document(make_plan(
        loader.load_texts([("fleet.yaml", fleet_text())]).fleet(), converged(), CLI))
    assert render.render_text(doc).startswith("No changes. The actual state matches")
    assert render.render_text(doc).endswith("Plan: no changes.\n")
    assert markdown.render_markdown(doc).startswith("### Reconciler plan\n\nNo changes.\n")
    assert doc["summary"]["changes"] == 0


def test_no_changes_with_undeclared_objects_does_not_claim_all_matches() -> None:
    doc = document.to_document(make_plan(
        loader.load_texts([("fleet.yaml", fleet_text())]).fleet(), converged(), CLI))
    doc["unmanaged"] = [{"description": "energy_meter X on gateway g is not declared",
                         "prunable": True}]
    assert render.render_text(doc).splitlines()[:2] == [
        "No changes. The declared objects match the actual state; 1 object found that nothing "
        "declares (apply --prune removes it):",
        "  ! unmanaged: energy_meter X on gateway g is not declared",
    ]


@pytest.mark.parametrize(("prunable", "said"), [
    ([True, False], "2 objects found that nothing declares (apply --prune removes 1 of them, "
                    "the others as each says):"),
    ([False, False], "2 objects found that nothing declares (apply --prune leaves them, as "
                     "each says):"),
    # A plan saved before format 1.4 does not say which: as it was said then.
    ([None, None], "2 objects found that nothing declares (apply --prune removes them where "
                   "their policy allows):"),
])
def test_the_header_says_what_prune_does_with_what_is_listed(
        prunable: list[bool | None], said: str) -> None:
    doc = document.to_document(make_plan(
        loader.load_texts([("fleet.yaml", fleet_text())]).fleet(), converged(), CLI))
    doc["unmanaged"] = [{"description": f"object {n}"} | ({} if p is None else {"prunable": p})
                        for n, p in enumerate(prunable)]
    assert render.render_text(doc).splitlines()[0] == (
        f"No changes. The declared objects match the actual state; {said}")
