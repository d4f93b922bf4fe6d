"""The chart takes the shard selectors the operator takes, and refuses the others at
`helm install` with a message naming the value, not with an operator that serves nothing
or stops."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_render import template

from reconciler.operator import config

SELECTORS = [
    "energy.reconciler.dev/shard=north", "energy.reconciler.dev/shard=south,tier",
    "tier==gold, zone", "tier=", "tier!=test", "tier in (gold,silver)", "!tier", "tier=a=b",
    "tier,",
]


def _operator_takes(selector: str) -> bool:
    try:
        config.load({"RECONCILER_OPERATOR_SHARD": selector})
    except config.OperatorConfigError:
        return False
    return True


@pytest.mark.parametrize("selector", SELECTORS)
@pytest.mark.parametrize("place", ["shard", "shards"])
def test_the_chart_takes_the_shard_selectors_the_operator_takes(
        helm: Path, selector: str, place: str) -> None:
    values = ({"shard": {"selector": selector}} if place == "shard"
              else {"shards": [{"name": "north", "selector": selector}]})
    done = template(helm, values, check=False)
    if _operator_takes(selector):
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0 and "selector" in done.stderr, done.stderr


def test_an_empty_shard_selector_serves_every_object_but_a_shard_needs_one(helm: Path) -> None:
    assert template(helm, {"shard": {"selector": ""}}, check=False).returncode == 0
    done = template(helm, {"shards": [{"name": "north", "selector": ""}]}, check=False)
    assert done.returncode != 0 and "selector" in done.stderr, done.stderr
