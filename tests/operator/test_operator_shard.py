"""A shard's selector (RECONCILER_OPERATOR_SHARD) as the filter of kopf's handlers, each
term the operator takes matched as the API server would match it, and as the label
selector of the lists and watches the API server answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kopf
import pytest
from harness import operator
from objects import HOME

from reconciler.model.base import API_GROUP
from reconciler.model.schema import CRD_NAMES
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


async def test_a_shard_lists_and_watches_only_its_objects_on_the_api_server(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The selector goes to the API server with every list and watch of the group's
    resources, so a shard is not sent the other shards' objects to drop them itself."""
    selector = "energy.reconciler.dev/shard=north"
    shard = config.OperatorConfig(interval=1.0, retry_delay=0.5, shard=selector)
    async with operator(HOME, tmp_path, monkeypatch, config=shard) as (cluster, _):
        assert cluster.emulator is not None
        plurals = {names["plural"] for names in CRD_NAMES.values()}

        def reads() -> list[Any]:
            """The lists and watches of the group's resources (GETs of no one object)."""
            return [request for request in cluster.emulator  # type: ignore[union-attr]
                    if request.method == "GET"
                    and request.url.path.startswith(f"/apis/{API_GROUP}/")
                    and request.url.path.rsplit("/", 1)[-1] in plurals]

        for _ in range(100):  # kopf starts a watch of each resource soon after it is ready
            if {request.url.path.rsplit("/", 1)[-1] for request in reads()} == plurals:
                break
            await asyncio.sleep(0.1)
        assert {request.url.path.rsplit("/", 1)[-1] for request in reads()} == plurals
        assert {request.params.get("labelSelector") for request in reads()} == {selector}
