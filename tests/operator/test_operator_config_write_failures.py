"""A LINK slave's config file that cannot be written, for a while, by the operator (a
process, against the kmock emulator and the Enapter simulator on loopback): its directory
read-only, so that Enapter is not asked for a config, or the state directory read-only,
so that the device is provisioned and its config cannot be recorded. Neither is a
platform's refusal nor anything the spec says: the Device is not Ready, with a Warning
naming the file, what failed and that it is tried again; it is tried again without a
change of its spec, and once the directory can be written it converges, the slave
provisioned once (the retry finds the device made and generates its config for it)."""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from denied import denied_as_anyone
from fleet_yaml import document, enapter_gateway, enapter_site, link_master, stream
from harness import Cluster, documents, emulated_cluster
from process import operator_env, operator_process

from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

MASTER, SLAVE = "LA0000000000000000000000000000001", "LS0000000000000000000000000000001"
SLAVE_ADDRESS = "device/slave[enapter]"


def _fleet(config_file: Path) -> str:
    return stream(
        enapter_site(),
        enapter_gateway(),
        link_master("link-a", MASTER),
        document("Device", "slave", f"""
            gatewayRef: h2-gw
            hardwareId: {SLAVE}
            enapter:
              kind: link_slave
              masterRef: link-a
              configOutput: {{file: '{config_file}'}}
            """),
    )


class SlaveProvisionings:
    """Counts Enapter's LINK slave provisioning requests (installed before the simulator
    serves): each one asks Enapter for the device again."""

    def __init__(self) -> None:
        self.count = 0

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "POST" and request.path.endswith("/provisioning/link_slave"):
                self.count += 1
            return await handler(request)

        sims.enapter.app.middlewares.append(count)


@contextlib.asynccontextmanager
async def _running(tmp_path: Path, config_file: Path,
                   provisionings: SlaveProvisionings) -> AsyncIterator[tuple[Cluster, SimFleet]]:
    text = _fleet(config_file)
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", text)]).fleet())
    provisionings.install(sims)
    denied = denied_as_anyone()
    async with emulated_cluster() as cluster, sims:
        env = operator_env(sims, cluster.url, tmp_path)
        async with operator_process(env, tmp_path / "operator.log", preexec_fn=denied):
            await cluster.create_all(documents(text))
            yield cluster, sims


async def _held_back_then_converged(
    cluster: Cluster, sims: SimFleet, provisionings: SlaveProvisionings, read_only: Path,
    said: str, *, provisioned: bool,
) -> None:
    """The slave fails, saying `said` in its Ready condition and a Warning, and is tried
    again as it is (its condition set again, the directory `read_only` still so); then,
    `read_only` writable again, it converges, provisioned once in all."""
    ready = await cluster.wait_reason("Device", "slave", "ApplyFailed")
    assert ready["status"] == "False"
    message = ready["message"]
    assert message.startswith(f"{SLAVE_ADDRESS}: {said}"), message
    assert message.endswith("; the next reconcile tries again"), message
    # Retried: not held until the spec changes, nor left to a CLI's apply.
    assert "annotate" not in message and "next apply" not in message, message
    [warning, *_] = await cluster.wait_events_about("slave", reason="ApplyFailed")
    assert warning["type"] == "Warning"
    assert said in warning["message"], warning
    assert (sims.enapter.by_hardware_id(SLAVE) is not None) is provisioned
    first = sims.enapter.by_hardware_id(SLAVE).id if provisioned else None
    # Tried again, the spec unchanged: planned again and failing again the same way.
    await cluster.wait_planned("Device", "slave", 2)
    assert (await cluster.condition("Device", "slave", "Ready"))["reason"] == "ApplyFailed"

    await asyncio.to_thread(read_only.chmod, 0o700)
    await cluster.wait_reason("Device", "slave", "Reconciled")
    device = sims.enapter.by_hardware_id(SLAVE)
    assert device is not None
    assert first is None or device.id == first
    assert provisionings.count == 1, "the slave was provisioned again"
    slaves = [d for d in sims.enapter.devices.values() if d.hardware_id == SLAVE]
    assert len(slaves) == 1, slaves


async def test_a_config_directory_that_cannot_be_written_is_retried_until_it_can(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o500)
    config_file = keys / "slave.json"
    provisionings = SlaveProvisionings()
    try:
        async with _running(tmp_path, config_file, provisionings) as (
            cluster, sims
        ):
            await _held_back_then_converged(
                cluster, sims, provisionings, keys,
                f"cannot write the communication config to {config_file}: the directory "
                f"{keys} is not writable; Enapter Cloud was not asked for a config",
                provisioned=False,
            )
            assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    finally:
        keys.chmod(0o700)


async def test_a_state_directory_that_cannot_be_written_is_retried_until_it_can(
    tmp_path: Path,
) -> None:
    """The config file's own directory can be written: the slave is provisioned, and the
    record of its config file cannot be made. Tried again, the device is found by its
    hardware id and its config generated and written; it is not provisioned again."""
    state = tmp_path / "state"
    state.mkdir(mode=0o500)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    config_file = keys / "slave.json"
    provisionings = SlaveProvisionings()
    try:
        async with _running(tmp_path, config_file, provisionings) as (
            cluster, sims
        ):
            await _held_back_then_converged(
                cluster, sims, provisionings, state,
                f"cannot write the communication config to {config_file}: the state "
                f"directory's record of the files it writes cannot be written "
                f"({state / 'inventory.json'}: ",
                provisioned=True,
            )
            assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
            device_id = sims.enapter.by_hardware_id(SLAVE).id
            assert device_id in (state / "inventory.json").read_text()
    finally:
        state.chmod(0o700)


MASTER_B = "LB0000000000000000000000000000001"


def _two_masters(config_file: Path) -> str:
    """`_fleet`, and a second LINK master for the slave to be moved to (a replace)."""
    return stream(_fleet(config_file), document("Device", "link-b", f"""
        gatewayRef: h2-gw
        hardwareId: {MASTER_B}
        enapter: {{kind: link_master}}
        """))


async def test_a_replace_whose_records_cannot_be_marked_says_the_next_reconcile_tries_again(
    tmp_path: Path,
) -> None:
    """Before a replace's delete, the records of the config files written for the device
    are marked as a deleting device's (`mark_deleting`): the state directory read-only,
    that fails before anything is deleted, and the Device's condition and Warning say that
    the next reconcile tries again, not a next run of the CLI; it does, without a change of
    the spec, and the slave is replaced once the directory can be written."""
    state = tmp_path / "state"
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    config_file = keys / "slave.json"
    text = _two_masters(config_file)
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", text)]).fleet())
    denied = denied_as_anyone()
    async with emulated_cluster() as cluster, sims:
        env = operator_env(sims, cluster.url, tmp_path)
        async with operator_process(env, tmp_path / "operator.log", preexec_fn=denied):
            await cluster.create_all(documents(text))
            await cluster.wait_reason("Device", "slave", "Reconciled")
            old_id = sims.enapter.by_hardware_id(SLAVE).id
            state.chmod(0o500)
            try:
                await cluster.patch("Device", "slave", {"spec": {"enapter": {
                    "masterRef": "link-b"}}})
                ready = await cluster.wait_reason("Device", "slave", "ApplyFailed")
                message = ready["message"]
                assert message.startswith(
                    f"{SLAVE_ADDRESS}: cannot write {state / 'inventory.json'}, the inventory"
                ), message
                assert message.endswith(
                    "; the changes already made stay, and the next reconcile tries again, "
                    "finding them by their natural keys, once the file can be written"
                ), message
                assert "next run" not in message and "next apply" not in message, message
                [warning, *_] = await cluster.wait_events_about("slave", reason="ApplyFailed")
                assert warning["type"] == "Warning"
                assert "the next reconcile tries again" in warning["message"], warning
                assert sims.enapter.by_hardware_id(SLAVE).id == old_id, "deleted all the same"
                await cluster.wait_planned("Device", "slave", 2)
            finally:
                state.chmod(0o700)
            await cluster.wait_reason("Device", "slave", "Reconciled")
            assert sims.enapter.by_hardware_id(SLAVE).id != old_id
            assert config_file.is_file()
