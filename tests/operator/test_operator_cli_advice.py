"""The operator's Events and conditions advise nothing of the CLI's flags (`--prune`,
`--target`), which its user has not: what a plan says to do with `apply --prune` is said
as the operator's user does it (delete it in the platform; the operator lists it in
`status.unmanaged`). On the kmock emulator, against the Enapter simulator on loopback: a
Lua device's slug changed leaves the old device, undeclared, whose slug another Device
then declares, and the plan blocks that Device's create, saying what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleet_yaml import document, enapter_site, stream
from harness import documents, operator

UCM, OTHER_UCM = "UCM000000000000000000000000000001", "UCM000000000000000000000000000002"


def _ucm(name: str, hardware_id: str, slug: str) -> str:
    return document("Device", name, f"""
        siteRef: h2-lab
        hardwareId: {hardware_id}
        enapter: {{kind: ucm, slug: {slug}}}
        """)


def _lua(slug: str) -> str:
    return document("Device", "lab-lua", f"""
        siteRef: h2-lab
        displayName: Gas sensor
        enapter: {{kind: lua, runtimeRef: lab-ucm, blueprintId: bp-gas-1, slug: {slug}}}
        """)


FLEET = stream(enapter_site(), _ucm("lab-ucm", UCM, "gas-ucm"), _lua("gas-1"))
# The simulators know another UCM, which is later declared with the slug the Lua device had.
SEEDED = stream(FLEET, _ucm("other-ucm", OTHER_UCM, "other-ucm"))
LATER = stream(enapter_site(), _ucm("lab-ucm", UCM, "gas-ucm"), _lua("gas-2"),
               _ucm("other-ucm", OTHER_UCM, "gas-1"))


async def test_a_blocked_change_says_what_the_operators_user_does_not_the_clis_prune(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with operator(SEEDED, tmp_path, monkeypatch) as (cluster, sims):
        await cluster.create_all(documents(FLEET))
        await cluster.wait_condition("Device", "lab-lua", "Ready", timeout=60)
        old = next(d for d in sims.enapter.devices.values() if d.slug == "gas-1")

        # A slug change: a new Lua device, the old one left running the same blueprint.
        await cluster.patch("Device", "lab-lua", {"spec": {"enapter": {"slug": "gas-2"}}})

        async def moved() -> bool:
            return any(d.slug == "gas-2" for d in sims.enapter.devices.values())

        await cluster.wait_for(moved, what="the Lua device under its new slug")
        # Another UCM declares the slug the old Lua device still holds: its create is
        # blocked until that device is deleted, which the operator never does.
        [other] = [d for d in documents(LATER) if d["metadata"]["name"] == "other-ucm"]
        await cluster.create(other)
        blocked = await cluster.wait_reason("Device", "other-ucm", "Blocked", timeout=60)
        assert blocked["message"] == (
            f"device/other-ucm[enapter]: slug gas-1 belongs to LUA device {old.id} ('Gas "
            "sensor'), which this Site does not declare, and Enapter keeps a slug unique in "
            "a site: delete it in Enapter Cloud or declare another slug"), blocked
        [failed] = await cluster.wait_events_about("other-ucm", reason="Failed")
        assert failed["message"] == blocked["message"]

        said = [e["message"] for e in await cluster.events()]
        for kind, name in (("Site", "h2-lab"), ("Device", "lab-lua"), ("Device", "lab-ucm"),
                           ("Device", "other-ucm")):
            status = await cluster.status(kind, name)
            said += [c["message"] for c in status.get("conditions", [])]
            said.append(json.dumps(status.get("unmanaged") or {}))
        for message in said:
            assert "--prune" not in message and "apply" not in message.split(":")[0], message
            assert "--target" not in message, message
