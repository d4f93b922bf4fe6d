"""A shard's selector (RECONCILER_OPERATOR_SHARD) as the filter of kopf's handlers: each
term the operator takes is matched as the API server would match it."""

from __future__ import annotations

import kopf
import pytest

from reconciler.operator import config


@pytest.mark.parametrize(("selector", "expected"), [
    ("energy.reconciler.dev/shard=north", {"energy.reconciler.dev/shard": "north"}),
    ("energy.reconciler.dev/shard=south,tier", {"energy.reconciler.dev/shard": "south",
                                                "tier": kopf.PRESENT}),
    # `==` is `=` to the API server, not a value starting with "=".
    ("tier==gold", {"tier": "gold"}),
    (" tier = gold , zone ", {"tier": "gold", "zone": kopf.PRESENT}),
    ("tier=", {"tier": ""}),
    ("", {}),
])
def test_shard_selector_terms_become_label_filters(selector: str,
                                                   expected: dict[str, object]) -> None:
    loaded = config.load({"RECONCILER_OPERATOR_SHARD": selector})
    assert loaded.label_filter() == expected


@pytest.mark.parametrize("selector", [
    "tier!=test", "tier in (gold,silver)", "tier notin (test)", "!tier", "tier=a=b",
    "tier gold", "-tier=gold", "tier,,zone",
])
def test_a_shard_selector_the_operator_cannot_match_is_refused(selector: str) -> None:
    with pytest.raises(config.OperatorConfigError) as caught:
        config.load({"RECONCILER_OPERATOR_SHARD": selector})
    [problem] = caught.value.problems
    assert problem.startswith("RECONCILER_OPERATOR_SHARD must be a label selector of "
                              "`key=value` and `key` terms"), problem
