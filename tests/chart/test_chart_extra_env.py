"""`extraEnv` may not set a variable the chart itself sets in that render: a second entry of
one name would silently override the value from values.yaml (or be overridden by it), so
the render fails naming the entry and the value to set instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chart_render import SCENARIOS, Rendered, env_of, template

Render = Callable[..., Rendered]


def _with_extra_env(values: dict[str, Any], *entries: dict[str, Any]) -> dict[str, Any]:
    return {**values, "extraEnv": [*values.get("extraEnv", []), *entries]}


def _chart_set_names(rendered: Render) -> dict[str, str]:
    """Each name the chart sets in some scenario, with the first scenario that sets it."""
    found: dict[str, str] = {}
    for scenario, values in SCENARIOS.items():
        own = {e["name"] for e in values.get("extraEnv", [])}
        for _, container in rendered(values).containers():
            for name in env_of(container):
                if name not in own:
                    found.setdefault(name, scenario)
    return found


def test_extra_env_may_not_set_a_variable_the_chart_sets(helm: Path, rendered: Render) -> None:
    chart_set = _chart_set_names(rendered)
    # The scenarios hold one of each way the chart sets a variable: a fixed one, a setting,
    # a shard's, peering's, the credentials as variables and as files.
    assert {"POD_ID", "RECONCILER_TIMEOUT", "RECONCILER_OPERATOR_SHARD",
            "RECONCILER_OPERATOR_PEERING", "RECONCILER_NOVACORE_TOKEN",
            "RECONCILER_ENAPTER_TOKEN_FILE", "RECONCILER_OPERATOR_CREDENTIAL_KEY",
            } <= set(chart_set)
    problems = []
    for name, scenario in sorted(chart_set.items()):
        values = _with_extra_env(SCENARIOS[scenario], {"name": name, "value": "x"})
        done = template(helm, values, check=False)
        if done.returncode == 0:
            problems.append(f"{scenario}: extraEnv {name} rendered beside the chart's own")
        # Each name says where its value comes from (not the plain fallback message).
        elif (f"extraEnv: {name} is set by the chart " not in done.stderr
              or "set by the chart itself" in done.stderr):
            problems.append(f"{scenario}: {name}: {done.stderr.strip()}")
    assert not problems, "\n".join(problems)


def test_the_message_names_the_value_to_set_instead(helm: Path) -> None:
    values = {"limits": {"timeout": 20},
              "extraEnv": [{"name": "RECONCILER_TIMEOUT", "value": "5"}]}
    done = template(helm, values, check=False)
    assert done.returncode != 0
    assert ("extraEnv: RECONCILER_TIMEOUT is set by the chart from limits.timeout; "
            "set it there") in done.stderr, done.stderr


def test_a_credential_the_chart_leaves_out_can_come_from_extra_env(rendered: Render) -> None:
    # What the message about a credential advises: its key set to "" in credentials.keys,
    # the variable from a Secret of one's own.
    own = {"name": "RECONCILER_NOVACORE_TOKEN",
           "valueFrom": {"secretKeyRef": {"name": "novacore-rotated", "key": "token"}}}
    values = {"credentials": {"existingSecret": "reconciler-credentials",
                              "keys": {"novacoreToken": ""}},
              "extraEnv": [own]}
    [(_, container)] = rendered(values).containers()
    assert env_of(container)["RECONCILER_NOVACORE_TOKEN"] == own


def test_extra_env_may_not_list_a_name_twice(helm: Path) -> None:
    entry = {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}
    done = template(helm, {"extraEnv": [entry, {**entry, "value": "http://other:3128"}]},
                    check=False)
    assert done.returncode != 0
    assert "extraEnv: HTTPS_PROXY is listed twice" in done.stderr, done.stderr
