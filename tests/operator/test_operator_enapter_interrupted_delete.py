"""An Enapter replace the operator left half done (the device deleted, its provisioning
again failed) leaves the config file written for the deleted device: as the Device names
another file now, the Site's next reconcile removes the old file (whether or not the device
was provisioned again by then), which holds only the credentials of a device that is no
more, says so in an event, and lists it in `status.unmanaged` no more. The removal is the
delete the plan holds for it, applied by the Site's reconcile as one of its changes: one
that fails (the file immutable) makes the Site not Ready, naming the file, and is tried
again without holding the Site back. Before, it stayed there until removed by hand: the
CLI leaves such a file to `apply --prune`, which the operator has not. A replace done whose
old file cannot be removed fails the Device, which is tried again (not held until its spec
changes) and removes the file once it can. An operator in observe mode shows the delete
an interrupted replace left as a change of the Site's it does not apply. On the kmock
emulator, against the Enapter simulator on loopback."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from failed_provisioning import FailedProvisioning
from fleet_yaml import LINK_SLAVE, link_slave_fleet
from harness import documents, emulated_cluster, operator
from process import operator_env, operator_process
from unremovable import unremovable

from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts


async def test_the_config_file_of_an_interrupted_replace_is_removed_by_the_sites_reconcile(
    tmp_path: Path, monkeypatch: Any
) -> None:
    failed = FailedProvisioning()
    state = tmp_path / "state"
    async with operator(link_slave_fleet(), tmp_path, monkeypatch,
                        before_start=failed.install) as (cluster, sims):
        await cluster.create_all(documents(link_slave_fleet()))
        await cluster.wait_condition("Device", "slave", "Ready", timeout=60)
        old_file = state / "cfg" / "slave.json"
        assert old_file.is_file()
        old_id = sims.enapter.by_hardware_id(LINK_SLAVE).id

        # Moved to the other master, its config to another file: a replace, whose
        # provisioning fails once the delete took effect.
        failed.failing = True
        await cluster.patch("Device", "slave", {"spec": {"enapter": {
            "masterRef": "link-b", "configOutput": {"file": "cfg/slave-b.json"}}}})

        async def deleted() -> bool:
            return sims.enapter.by_hardware_id(LINK_SLAVE) is None

        await cluster.wait_for(deleted, what="the slave deleted by its replace")
        await cluster.wait_reason("Device", "slave", "ApplyFailed")
        # The old file is not asserted on here: the Site's reconcile may already have
        # removed it, as no Device names it any more and its device is gone.
        failed.failing = False
        await cluster.wait_for(lambda: _is_file(state / "cfg" / "slave-b.json"),
                               what="the slave provisioned again, its config written")
        [removed] = await cluster.wait_events_about("h2-lab", reason="ConfigFileRemoved")
        assert removed["message"] == (
            f"Enapter device {old_id} of site h2-lab is gone, deleted by a reconcile that "
            f"stopped before it removed its config file: removed {old_file}")
        assert not old_file.exists()
        assert (state / "cfg" / "slave-b.json").is_file()
        assert old_id not in (state / "inventory.json").read_text()
        await cluster.wait_planned("Site", "h2-lab", 1)
        unmanaged = (await cluster.status("Site", "h2-lab")).get("unmanaged") or {}
        assert old_id not in str(unmanaged), unmanaged


async def test_a_config_file_an_interrupted_replace_left_that_cannot_be_removed_fails_the_site(
    tmp_path: Path, monkeypatch: Any
) -> None:
    failed = FailedProvisioning()
    state = tmp_path / "state"
    async with operator(link_slave_fleet(), tmp_path, monkeypatch,
                        before_start=failed.install) as (cluster, sims):
        await cluster.create_all(documents(link_slave_fleet()))
        await cluster.wait_condition("Device", "slave", "Ready", timeout=60)
        await cluster.wait_condition("Site", "h2-lab", "Ready")
        old_file = state / "cfg" / "slave.json"
        old_id = sims.enapter.by_hardware_id(LINK_SLAVE).id
        removal = f"device/h2-lab.{old_id}[enapter]"

        with unremovable(old_file):
            # Moved to the other master, its config to a file in another directory (the
            # old one's may be read-only): a replace whose provisioning fails once the
            # delete took effect.
            failed.failing = True
            await cluster.patch("Device", "slave", {"spec": {"enapter": {
                "masterRef": "link-b", "configOutput": {"file": "keys/slave.json"}}}})
            ready = await cluster.wait_reason("Site", "h2-lab", "ApplyFailed")
            assert ready["status"] == "False"
            assert f"{removal}: the device is deleted in Enapter Cloud, but its config file " \
                f"{old_file} could not be removed" in ready["message"], ready
            # Tried again at the next reconcile, not held until the spec changes.
            assert "annotate" not in ready["message"], ready
            last_plan = (await cluster.status("Site", "h2-lab"))["lastPlan"]
            assert f"- {removal} delete" in last_plan["actions"], last_plan
            [warning] = await cluster.wait_events_about(
                "h2-lab", reason="ConfigFileNotRemoved")
            assert warning["type"] == "Warning"
            assert warning["message"].startswith(
                f"Enapter device {old_id} of site h2-lab is gone, deleted by a reconcile "
                "that stopped before it removed its config file; "), warning
            assert old_file.is_file()
            failed.failing = False
            await cluster.wait_for(lambda: _is_file(state / "keys" / "slave.json"),
                                   what="the slave provisioned again")

        [removed] = await cluster.wait_events_about("h2-lab", reason="ConfigFileRemoved")
        assert removed["message"].endswith(f": removed {old_file}"), removed
        assert not old_file.exists()
        assert old_id not in (state / "inventory.json").read_text()
        await cluster.wait_reason("Site", "h2-lab", "Reconciled")
        site = await cluster.status("Site", "h2-lab")
        # The delete is the Site's change, not its Enapter site's id.
        assert old_id not in str(site.get("externalIds")), site
        assert old_id not in str(site.get("unmanaged") or {}), site
        # Nothing is said of it but the file: not the delete of a device gone already.
        assert not await cluster.events_about("h2-lab", reason="Deleted")


async def test_a_replace_whose_old_config_file_cannot_be_removed_is_retried_not_held(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The replace done (the device provisioned again, its config written to the file its
    Device names now), the file written for the device it replaced cannot be removed: a
    failure of this host's, no platform's refusal. The Device is not Ready, naming the
    file, and is tried again without a change of its spec, which removes the file once it
    can be removed."""
    state = tmp_path / "state"
    async with operator(link_slave_fleet(), tmp_path, monkeypatch) as (
        cluster, sims
    ):
        await cluster.create_all(documents(link_slave_fleet()))
        await cluster.wait_condition("Device", "slave", "Ready", timeout=60)
        old_file, new_file = state / "cfg" / "slave.json", state / "keys" / "slave.json"
        old_id = sims.enapter.by_hardware_id(LINK_SLAVE).id

        with unremovable(old_file):
            # Its config to a file in another directory: the old one's may be read-only.
            await cluster.patch("Device", "slave", {"spec": {"enapter": {
                "masterRef": "link-b", "configOutput": {"file": "keys/slave.json"}}}})
            ready = await cluster.wait_reason("Device", "slave", "ApplyFailed")
            assert ready["status"] == "False"
            message = ready["message"]
            assert (f"the config file an earlier apply wrote for the device, which its "
                    f"configOutput names no more, {old_file} could not be removed: ") in message
            assert message.endswith(
                "; it holds the device's credentials: remove it (or the next reconcile tries "
                "again)"), message
            # Retried, as it says: not held until the spec changes, nor left to an apply.
            assert "annotate" not in message and "next apply" not in message, message
            new_id = sims.enapter.by_hardware_id(LINK_SLAVE).id
            assert new_id != old_id
            assert old_file.is_file() and new_file.is_file()

        await cluster.wait_reason("Device", "slave", "Reconciled")
        assert not old_file.exists() and new_file.is_file()
        assert str(old_file) not in (state / "inventory.json").read_text()
        assert sims.enapter.by_hardware_id(LINK_SLAVE).id == new_id, "provisioned once"


async def test_an_operator_in_observe_mode_shows_the_delete_an_interrupted_replace_left(
    tmp_path: Path,
) -> None:
    """The operator applying, as a process: a replace whose provisioning fails once the
    delete took effect, the old file immutable, so that the Site cannot finish it; then,
    stopped, started again in observe mode on the same state directory. The Site shows the
    delete as a change it does not apply; the file stays, and nothing is said of it as
    removed."""
    failed = FailedProvisioning()
    state = tmp_path / "state"
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", link_slave_fleet())]).fleet())
    failed.install(sims)
    async with emulated_cluster() as cluster, sims:
        env = operator_env(sims, cluster.url, tmp_path)
        log = tmp_path / "operator.log"
        await cluster.create_all(documents(link_slave_fleet()))
        old_file = state / "cfg" / "slave.json"
        async with operator_process(env, log) as applying:
            await cluster.wait_condition("Device", "slave", "Ready", timeout=60)
            await cluster.wait_condition("Site", "h2-lab", "Ready")
            old_id = sims.enapter.by_hardware_id(LINK_SLAVE).id
            removal = f"device/h2-lab.{old_id}[enapter]"
            with unremovable(old_file):
                failed.failing = True
                await cluster.patch("Device", "slave", {"spec": {"enapter": {
                    "masterRef": "link-b", "configOutput": {"file": "keys/slave.json"}}}})
                await cluster.wait_events_about("h2-lab", reason="ConfigFileNotRemoved")
                applying.send_signal(signal.SIGTERM)
                assert await applying.wait() == 0
        assert old_file.is_file() and sims.enapter.by_hardware_id(LINK_SLAVE) is None

        async with operator_process(env | {"RECONCILER_OPERATOR_MODE": "observe"}, log):
            ready = await cluster.wait_reason("Site", "h2-lab", "ChangesPending", timeout=60)
            assert ready["status"] == "False"
            assert ready["message"] == "observe mode: 1 to delete not applied", ready
            synced = await cluster.condition("Site", "h2-lab", "Synced")
            assert synced is not None and synced["reason"] == "Observed", synced
            last_plan = (await cluster.status("Site", "h2-lab"))["lastPlan"]
            assert f"- {removal} delete" in last_plan["actions"], last_plan
            await cluster.wait_planned("Site", "h2-lab", 1)
        assert old_file.is_file(), "observe mode writes nothing"
        assert str(old_file) in (state / "inventory.json").read_text()
        assert not await cluster.events_about("h2-lab", reason="ConfigFileRemoved")


async def _is_file(path: Path) -> bool:
    return await asyncio.to_thread(path.is_file)
