"""The delete of a released Device's Enapter device answered 404, through the real operator
(kopf against kmock's emulator, the Enapter simulator on loopback): only Enapter's answer
for a device not found (DEVICE_NOT_FOUND) takes it for deleted. A 404 for a path the API
does not have (here a proxy in front of it that does not route the DELETE, answering as
the simulator answers an unknown path) says nothing of the device: the release fails,
the device and its config Secret stay, and a later attempt that reaches the API deletes
both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_yaml import enapter_site, enapter_ucm, stream
from harness import documents, operator
from refused_calls import RefusedCalls, enapter_error

from reconciler.operator.config import OperatorConfig

UCM = "A8795CBA5375484E829105E959663C8B"
QUIET = OperatorConfig(interval=3600.0, retry_delay=0.5)


UCM_A = enapter_ucm("ucm-a", UCM, secret_name="ucm-a-config", extra="deletionPolicy: Release")


async def test_a_404_that_is_not_the_devices_is_no_delete(
    tmp_path: Path, monkeypatch: Any
) -> None:
    text = stream(enapter_site(), UCM_A)
    # A proxy that does not route the delete: its 404 is no answer of Enapter's.
    unrouted = RefusedCalls("DELETE", "/v3/devices/", 404, enapter_error("NOT_FOUND", "Not Found"))

    async with operator(
        text, tmp_path, monkeypatch, config=QUIET,
        before_start=lambda sims: unrouted.install(sims.enapter.app),
    ) as (cluster, sims):
        await cluster.create_all(documents(text))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        await cluster.wait_for(lambda: cluster.secret("ucm-a-config"), what="its Secret")
        device = sims.enapter.by_hardware_id(UCM)
        assert device is not None
        unrouted.refusing = True

        await cluster.delete("Device", "ucm-a")
        failed = await cluster.wait_reason("Device", "ucm-a", "ReleaseFailed")
        assert (
            f"HTTP 404: NOT_FOUND: Not Found; not Enapter's answer for a device not found "
            f"(DEVICE_NOT_FOUND), so Enapter device {device.id} is not taken for deleted"
        ) in failed["message"], failed
        assert sims.enapter.by_hardware_id(UCM) is not None, "still in Enapter Cloud"
        assert await cluster.secret("ucm-a-config") != {}, "its credentials stay with it"

        unrouted.refusing = False
        await cluster.wait_gone("Device", "ucm-a")
        assert sims.enapter.by_hardware_id(UCM) is None, "deleted once the API was reached"
        assert await cluster.secret("ucm-a-config") == {}, "deleted with its device"
