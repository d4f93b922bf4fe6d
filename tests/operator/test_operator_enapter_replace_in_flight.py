"""An Enapter replace still under way (the device deleted, its provisioning not answered
yet) is no interrupted one: the Site's reconciles meanwhile leave the config file written
for the deleted device to it, say nothing of it and stay Ready. Once the device is
provisioned again, the replace removes that file; one that cannot be removed then fails
the Device, naming it, which is tried again and removes it once it can, and the Site says
nothing of it. Before, a Site's reconcile between the delete and the provisioning took the
replace for one that had stopped: it tried to remove the file itself (failing the Site, a
Warning saying the reconcile stopped before it removed it), and the Device's replace,
provisioned meanwhile, took the file over and removed it, leaving the Site's Warning the
last word of it. On the kmock emulator, against the Enapter simulator on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleet_yaml import LINK_SLAVE, link_slave_fleet
from harness import PATIENT_SETTINGS, documents, operator
from held_requests import HeldRequests
from unremovable import unremovable

_FLEET = link_slave_fleet()

_FILE_REASONS = ("ConfigFileRemoved", "ConfigFileNotRemoved")


def _held_provisioning() -> HeldRequests:
    """Enapter's provisioning requests, held once armed: a replace then has deleted the
    device and waits for its provisioning, its reconcile in flight."""
    return HeldRequests(
        "enapter", lambda r: r.method == "POST" and "/provisioning/" in r.path)


@contextlib.contextmanager
def _answered_at_the_end(held: HeldRequests) -> Iterator[None]:
    """The provisioning `held` is answered when the block ends, however it ends: a failed
    assertion leaves no request held as the operator stops."""
    try:
        yield
    finally:
        held.release()


async def test_the_config_file_of_a_replace_under_way_is_the_replaces_not_the_sites(
    tmp_path: Path, monkeypatch: Any
) -> None:
    held = _held_provisioning()
    state = tmp_path / "state"
    # Patient: the provisioning is held while the Site is reconciled twice.
    async with operator(_FLEET, tmp_path, monkeypatch, before_start=held.install,
                        settings=PATIENT_SETTINGS) as (cluster, sims):
        await cluster.create_all(documents(_FLEET))
        await cluster.wait_condition("Device", "slave", "Ready", timeout=60)
        await cluster.wait_condition("Site", "h2-lab", "Ready")
        old_file = state / "cfg" / "slave.json"
        old_id = sims.enapter.by_hardware_id(LINK_SLAVE).id
        removal = f"device/h2-lab.{old_id}[enapter]"

        with unremovable(old_file), _answered_at_the_end(held):
            # Moved to the other master, its config to a file in another directory (the
            # old one's may be read-only): a replace, held once its delete took effect.
            held.armed = True
            await cluster.patch("Device", "slave", {"spec": {"enapter": {
                "masterRef": "link-b", "configOutput": {"file": "keys/slave.json"}}}})

            async def provisioning() -> bool:
                return held.arrived > 0 and sims.enapter.by_hardware_id(LINK_SLAVE) is None

            await cluster.wait_for(provisioning, what="the replace's delete, then its "
                                   "provisioning held")
            # Twice: the second reconcile began once the first was over, after the delete.
            await cluster.wait_planned("Site", "h2-lab", 2)
            ready = await cluster.condition("Site", "h2-lab", "Ready")
            assert ready is not None and ready["status"] == "True", ready
            last_plan = (await cluster.status("Site", "h2-lab"))["lastPlan"]
            assert removal not in str(last_plan), last_plan
            for reason in _FILE_REASONS:
                assert not await cluster.events_about("h2-lab", reason=reason), reason
            assert old_file.is_file()

            held.release()
            ready = await cluster.wait_reason("Device", "slave", "ApplyFailed")
            assert ready["status"] == "False"
            assert (f"the config file an earlier apply wrote for the device, which its "
                    f"configOutput names no more, {old_file} could not be removed: "
                    ) in ready["message"], ready
            new_id = sims.enapter.by_hardware_id(LINK_SLAVE).id
            assert new_id != old_id
            assert (state / "keys" / "slave.json").is_file()

        await cluster.wait_reason("Device", "slave", "Reconciled")
        assert not old_file.exists()
        assert old_id not in (state / "inventory.json").read_text()
        assert sims.enapter.by_hardware_id(LINK_SLAVE).id == new_id, "provisioned once"
        # The Device says it: its update done, and the file it removed.
        slave = await cluster.get("Device", "slave")
        assert slave is not None
        await cluster.events_posted(slave)
        updated = [e["message"] for e in await cluster.events_about("slave", reason="Updated")]
        assert updated == [f"device/slave[enapter]: update done; removed {old_file}"], updated
        # The Site's reconciles since, and what they said, posted: nothing of the file.
        await cluster.wait_planned("Site", "h2-lab", 2)
        site = await cluster.get("Site", "h2-lab")
        assert site is not None
        await cluster.events_posted(site)
        for reason in _FILE_REASONS:
            assert not await cluster.events_about("h2-lab", reason=reason), reason
        ready = await cluster.condition("Site", "h2-lab", "Ready")
        assert ready is not None and ready["status"] == "True", ready
