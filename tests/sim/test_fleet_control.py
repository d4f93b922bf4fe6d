"""The simulator fleet's control API (`sim.control`): a simulator whose port `offline:
"refuse"` closed, its own admin API with it, is brought back from the control port that
`reconciler sim up` prints; the same for a cloud; an unknown name is a 404 naming the
known ones."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_fleet

SOLNA = Path(__file__).resolve().parents[2] / "examples" / "sites" / "home-solna"
ZAP = "zap-3c61a4f0b2d8e917"


async def refused(url: str) -> bool:
    """Whether connections to `url` are refused, once the port is closed (a port is closed
    right after the answer that asked for it: asked a bounded number of times)."""
    for _ in range(200):
        async with httpx.AsyncClient() as fresh:
            try:
                await fresh.get(url)
            except httpx.ConnectError:
                return True
        await asyncio.sleep(0.01)
    return False


async def answers(url: str) -> int:
    async with httpx.AsyncClient() as fresh:  # no connection kept from before
        return (await fresh.get(url)).status_code


@pytest.fixture
async def sims(no_leaked_tasks: None) -> AsyncIterator[SimFleet]:
    fleet = SimFleet()
    fleet.seed_fleet(load_fleet([SOLNA]))
    await fleet.start()
    yield fleet
    await fleet.stop()


async def test_sim_up_prints_the_control_port_that_brings_a_refusing_gateway_back(
        tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", "sim", "up", "--fleet", str(SOLNA),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path)
    assert process.stderr is not None
    try:
        listing: list[str] = []
        while not listing or listing[-1] != "simulators running; Ctrl-C to stop":
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, "sim up ended:\n" + "\n".join(listing)
            listing.append(line.decode().rstrip("\n"))
        [zap_url] = [line.split()[2] for line in listing if line.startswith(f"Zap       {ZAP} ")]
        [control] = [m[1] for m in map(re.compile(r"Control +(\S+) ").match, listing) if m]

        async with httpx.AsyncClient() as http:
            closing = await http.put(f"{zap_url}/_sim/faults", json={"offline": "refuse"})
        assert closing.status_code == 200
        back_online = f"{control}/_sim/gateways/{ZAP}/faults"
        assert closing.json()["back_online"] == f'PUT {back_online} {{"offline": "online"}}'
        assert await refused(f"{zap_url}/api/devices"), "the gateway refuses connections"
        assert await refused(f"{zap_url}/_sim/faults"), "its own admin API with it"

        async with httpx.AsyncClient() as http:
            seen = await http.get(back_online)
            assert seen.json()["offline"] == "refuse"
            back = await http.put(back_online, json={"offline": "online"})
        assert (back.status_code, back.json()["offline"]) == (200, "online")
        assert await answers(f"{zap_url}/api/devices") == 200, "back, on the same port"
    finally:
        process.terminate()
        await process.communicate()


async def test_a_cloud_refused_and_brought_back_through_the_control_api(
        sims: SimFleet) -> None:
    faults = f"{sims.control.url}/_sim/clouds/novacore/faults"
    async with httpx.AsyncClient() as http:
        closed = await http.put(faults, json={"offline": "refuse", "latency_ms": 5})
        assert (closed.status_code, closed.json()["offline"]) == (200, "refuse")
        assert await refused(f"{sims.novacore.url}/_sim/state")
        back = await http.put(faults, json={"offline": "online", "latency_ms": 0})
        assert back.status_code == 200
    assert await answers(f"{sims.novacore.url}/_sim/state") == 200


async def test_the_control_api_lists_the_simulators_and_names_the_known_ones(
        sims: SimFleet) -> None:
    async with httpx.AsyncClient(base_url=sims.control.url) as http:
        listed = (await http.get("/_sim/servers")).json()
        unknown = await http.put("/_sim/gateways/zap-0000/faults", json={"offline": "online"})
        invalid = await http.put(f"/_sim/gateways/{ZAP}/faults", json={"offline": "sleep"})
    assert listed == {"gateways": {ZAP: sims.zaps[ZAP].url},
                      "clouds": {"novacore": sims.novacore.url, "enapter": sims.enapter.url,
                                 "flatpeak": sims.flatpeak.url}}
    assert (unknown.status_code, unknown.json()) == (404, {
        "error": "not_found", "message": f"no gateway 'zap-0000'; known: {ZAP}"})
    assert invalid.status_code == 400 and invalid.json()["error"] == "invalid_fault"
    assert await answers(f"{sims.zaps[ZAP].url}/api/devices") == 200, "nothing changed"
