"""A platform that asks, by Retry-After, to be called again later than a run waits (a quota
spent for the day) is not called again by the operator before then, end to end (kopf
against kmock's emulator and the simulators): neither kopf's retry of the object nor its
drift timer (every second here) calls it every `retry_delay`. An edit of the object still
reconciles at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fleet_yaml import novacore_site
from harness import documents, operator

FLEET = novacore_site()


async def test_a_server_asking_to_wait_a_day_is_left_alone_until_then(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(FLEET, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(FLEET))
        await cluster.wait_condition("Site", "home", "Ready", timeout=30)

        novacore = sims.novacore
        novacore.faults.throttle_next, novacore.faults.retry_after_s = 1000, 86400
        novacore.requests.clear()
        deferred = await cluster.wait_reason("Site", "home", "Deferred", timeout=30)
        assert "86400 s (Retry-After)" in deferred["message"], deferred
        asked = sum(novacore.requests.values())
        assert asked > 0
        # The timer runs every second and kopf retries after 0.5 s: neither calls it.
        await asyncio.sleep(4)
        assert sum(novacore.requests.values()) == asked, novacore.requests

        # An edit is someone's: reconciled at once, calling the server once more.
        await cluster.patch("Site", "home", {"spec": {"displayName": "Home 2"}})
        for _ in range(100):
            if sum(novacore.requests.values()) > asked:
                break
            await asyncio.sleep(0.1)
        edited = sum(novacore.requests.values())
        assert edited > asked, "the edit was not reconciled"
        await asyncio.sleep(3)
        assert sum(novacore.requests.values()) == edited, novacore.requests
