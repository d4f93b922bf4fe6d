"""The operator harness's wait for several objects' drift checks (`wait_all_planned`)
waits for every object, not for the first: one whose plans stop fails it, named."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from harness import Cluster, emulated_cluster

from reconciler.model.base import API_VERSION

SITES = (("Site", "planned"), ("Site", "stuck"))


async def _site(cluster: Cluster, name: str) -> None:
    await cluster.create({"apiVersion": API_VERSION, "kind": "Site",
                          "metadata": {"name": name}, "spec": {}})


@contextlib.asynccontextmanager
async def _planning(cluster: Cluster, *names: str) -> AsyncIterator[None]:
    """A new `lastPlan` time on each Site of `names` every few hundredths of a second, as
    a drift check writes it."""

    async def plan() -> None:
        for count in range(10**6):
            for name in names:
                await cluster.patch("Site", name, {"status": {"lastPlan": {"time": str(count)}}})
            await asyncio.sleep(0.02)

    task = asyncio.create_task(plan())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_every_object_is_waited_for() -> None:
    async with emulated_cluster() as cluster:
        for _, name in SITES:
            await _site(cluster, name)
        async with _planning(cluster, "planned", "stuck"):
            await cluster.wait_all_planned(SITES, 2)


async def test_an_object_not_planned_again_fails_the_wait_naming_it() -> None:
    async with emulated_cluster() as cluster:
        for _, name in SITES:
            await _site(cluster, name)
        async with _planning(cluster, "planned"):
            with pytest.raises(AssertionError, match="2 more plans of Site/stuck"):
                await cluster.wait_all_planned(SITES, 2, timeout=1)
