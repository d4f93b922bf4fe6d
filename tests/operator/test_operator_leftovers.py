"""The temporary config file an operator killed while it wrote a Device's config file
left behind (holding the device's credentials), with its pending record: the next
operator on that state directory removes it, saying so in its log, and the Device
converges with its config file written anew (the operator, a process, against the kmock
emulator and the Enapter simulator on loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

from fleet_yaml import document, enapter_site, stream
from harness import WAIT, documents, emulated_cluster
from killed_writes import KILLED_AT_A_RENAME
from process import operator_env, operator_process

from reconciler.engine import enapter_files
from reconciler.engine.config import Settings
from reconciler.engine.state import StateDir, write_temporary
from reconciler.operator.leftovers import Leftovers
from reconciler.plan.advice import Audience
from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

UCM = "A8795CBA5375484E829105E959663C8B"
FLEET = stream(enapter_site(), document("Device", "ucm", f"""
    siteRef: h2-lab
    hardwareId: {UCM}
    displayName: UCM
    deviceType: battery
    enapter:
      kind: ucm
      protocol: MQTT
      configOutput: {{file: cfg/ucm.json}}
    """))


def _temporaries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".tmp"))


def _inventory(state: Path) -> dict[str, dict[str, dict[str, object]]]:
    return dict(json.loads((state / "inventory.json").read_text()))


async def test_the_temporary_config_file_a_killed_operator_left_is_removed_by_the_next(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    config_file = state / "cfg" / "ucm.json"
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", FLEET)]).fleet())
    async with emulated_cluster() as cluster, sims:
        env = operator_env(sims, cluster.url, tmp_path)
        await cluster.create_all(documents(FLEET))
        log = tmp_path / "operator.log"
        # Killed (SIGKILL) as it is about to rename the config file into place: its
        # temporary file holds the config, and the inventory its pending record.
        killed_at_the_rename = ("-c", KILLED_AT_A_RENAME, "before", str(config_file))
        async with operator_process(env, log, launcher=killed_at_the_rename) as killed:
            assert await asyncio.wait_for(killed.wait(), timeout=WAIT) == -9, "not killed"
        [leftover] = _temporaries(config_file.parent)
        assert leftover.name.startswith("ucm.json.") and not config_file.exists()
        assert '"mqtt_credentials"' in leftover.read_text()
        assert list(_inventory(state)["enapter_config_files_pending"]) == [str(leftover)]
        device = sims.enapter.by_hardware_id(UCM)
        assert device is not None

        async with operator_process(env, log):
            await cluster.wait_reason("Device", "ucm", "Reconciled")
            assert _temporaries(config_file.parent) == []
            assert config_file.is_file()
            assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
            assert UCM in config_file.read_text(), "the device's own config"
            assert str(leftover) not in _inventory(state)["enapter_config_files_pending"]
            # The file written anew is recorded as its device's.
            files = StateDir(state).read_inventory(Audience.OPERATOR).enapter_config_files
            assert files[str(config_file)].device_id == device.id
        said = (f"removed {leftover}, the temporary file a killed run left holding the "
                f"config it was writing to {config_file} for Enapter device {device.id}")
        assert said in log.read_text(), log.read_text()
        assert "mqtt_credentials" not in log.read_text()
        # Found again by its hardware id: provisioned once.
        assert [d.hardware_id for d in sims.enapter.devices.values()].count(UCM) == 1


def test_a_config_file_this_operator_is_writing_is_no_leftover(tmp_path: Path) -> None:
    """Another reconcile of the same process writing a config file (its temporary file made,
    recorded and locked, not yet renamed into place) as the first reconcile of a namespace
    clears the leftovers: that file and its record stay, for its write to put in place."""
    state = tmp_path / "state"
    settings = Settings(state_dir=str(state))
    config_file = state / "cfg" / "ucm.json"
    config_file.parent.mkdir(parents=True)
    tmp = enapter_files.reserve(settings, "device-1", config_file, Audience.OPERATOR)
    held: list[int] = []
    write_temporary(config_file, '{"mqtt_credentials": {}}', private=True, tmp=tmp,
                    opened=lambda descriptor: held.append(enapter_files.hold(descriptor)))
    try:
        Leftovers().clear("fleet", settings, load_texts([("fleet.yaml", FLEET)]).fleet())
        assert tmp.is_file()
        assert str(tmp) in _inventory(state)["enapter_config_files_pending"]
    finally:
        for descriptor in held:
            os.close(descriptor)
