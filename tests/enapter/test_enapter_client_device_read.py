"""`EnapterClient.device`, Enapter's device read by id, against the Enapter simulator on
loopback: a device that is there is read; Enapter's answer for a device not found (a 404 of
code DEVICE_NOT_FOUND for it) is None, "not there"; any other 404 (here a base URL that is
not the API's, where every path is unknown) says nothing of the device: an error, never
"not there", as for its delete."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from reconciler.errors import ProviderRejected
from reconciler.providers.enapter.client import EnapterClient, api_errors, headers
from reconciler.sim.enapter import EnapterSimulator

TOKEN = "test-token"
UCM = "C8795CBA5375484E829105E959663C8B"


@pytest.fixture
async def sim() -> AsyncIterator[EnapterSimulator]:
    server = EnapterSimulator(tokens=[TOKEN], seed=7)
    await server.start()
    yield server
    await server.stop()


def _client(base_url: str) -> EnapterClient:
    return EnapterClient(httpx.AsyncClient(base_url=base_url, headers=headers(TOKEN, base_url)))


async def _ucm(client: EnapterClient) -> str:
    """A UCM provisioned in a new site; its Enapter id."""
    site = await client.create_site({"name": "H2 Lab", "timezone": "Europe/Rome"})
    made = await client.provision(
        "ucm", {"site_id": site["id"], "hardware_id": UCM, "name": "UCM", "protocol": "MQTT"})
    return str(made["device_id"])


async def test_a_device_is_read_and_one_not_found_is_none(sim: EnapterSimulator) -> None:
    client = _client(sim.url)
    try:
        device_id = await _ucm(client)
        read = await client.device(device_id)
        assert read is not None and read["id"] == device_id, read
        assert await client.device("nope") is None
    finally:
        await client.aclose()


async def test_a_404_that_is_not_the_devices_is_an_error(sim: EnapterSimulator) -> None:
    made = _client(sim.url)
    try:
        device_id = await _ucm(made)
    finally:
        await made.aclose()
    # A base URL with a path the API does not have: every request is answered 404, of the
    # simulator's code for an unknown path (NOT_FOUND), not DEVICE_NOT_FOUND.
    client = _client(f"{sim.url}/not-the-api/")
    try:
        with pytest.raises(ProviderRejected) as raised:
            await client.device(device_id)
    finally:
        await client.aclose()
    assert raised.value.status == 404
    assert (
        "not Enapter's answer for a device not found (DEVICE_NOT_FOUND), so Enapter device "
        f"{device_id} is not taken for gone"
    ) in str(raised.value), raised.value
    assert [e["code"] for e in api_errors(raised.value)] == ["NOT_FOUND"]
    assert sim.devices[device_id], "there all along"
