"""`reconciler apply`, run as a process against the simulators, for a device whose serial
is checked and that does not answer the read within the Zap's Modbus timeout (busy,
rebooting, a slow bus): the check fails as a change that a later run may make, with a
non-zero exit, and the next apply, the device answering in time, verifies and adds it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import (  # tests/engine holds the helpers shared with the engine tests
    ThreadedSims,
    gateway,
    inverter,
    load,
    serial_of,
    site,
    write,
)

from reconciler.sim.fleet import SimFleet


def _answering_after(sims: SimFleet, seconds: float) -> None:
    for server in sims.modbus:
        server.slow_ms = seconds * 1000


def test_a_serial_read_answered_late_fails_the_apply_and_the_next_apply_verifies(
    tmp_path: Path,
) -> None:
    docs = [site("s1"), gateway("gw", "s1", serial_of(1)),
            inverter("inv", "gw", "SG1", check_serial=True)]
    fleet_dir = tmp_path / "sites"
    write(fleet_dir, docs)
    with ThreadedSims(load(docs)) as sims:
        env = os.environ | sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state"),
                                         "RECONCILER_SECRETS_DIR": str(tmp_path / "secrets")}

        def apply() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "reconciler", "apply", str(fleet_dir), "--auto-approve"],
                env=env, capture_output=True, text=True, timeout=120, check=False,
            )

        zap = sims.sims.zaps[serial_of(1)]
        late = sims.call(lambda: zap.modbus_timeout_s) + 0.5
        sims.call(_answering_after, sims.sims, late)
        first = apply()
        assert first.returncode == 1, first.stdout + first.stderr
        failed = [line for line in first.stdout.splitlines() if "device/inv[identity]" in line]
        assert any("verify failed" in line and "did not answer" in line
                   and "not retried in this run" in line for line in failed), first.stdout
        assert "SG1" not in sims.call(lambda: dict(zap.devices))

        sims.call(_answering_after, sims.sims, 0)
        second = apply()
        assert second.returncode == 0, second.stdout + second.stderr
        assert "device/inv[identity] verify" in second.stdout, second.stdout
        assert "SG1" in sims.call(lambda: dict(zap.devices))
