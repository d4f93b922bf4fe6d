"""What pymodbus logs of its own stays off the CLI's stderr: a serial read directly from a
device that refuses the connection is said once, by the plan, with the device's address,
and not also by pymodbus's "Failed to connect" warnings. The CLI runs as a subprocess
against simulators of the home-solna example, its inverter read directly (`via: direct`)
at a loopback port that refuses connections."""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ci"))

from ci_helpers import EXAMPLES, ci_env, run  # shared with tests/ci

from reconciler.sim.fleet import SimFleet
from reconciler.sources import loader

pytestmark = pytest.mark.slow


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound and not listening: a connection to it is refused, and no
    other process takes the port while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def test_a_device_refusing_the_serial_read_is_said_without_pymodbus_lines(
        tmp_path: Path, refusing_port: int) -> None:
    sites = tmp_path / "sites"
    shutil.copytree(EXAMPLES / "home-solna", sites)
    devices = sites / "devices.yaml"
    text = devices.read_text()
    for old, new in (("via: gateway", "via: direct"), ("host: 192.168.1.60", "host: 127.0.0.1"),
                     ("port: 502", f"port: {refusing_port}")):
        assert old in text
        text = text.replace(old, new)
    devices.write_text(text)
    sims = SimFleet()
    sims.seed_fleet(loader.load_fleet([sites]))
    await sims.start()
    try:
        env = ci_env(**sims.env(), RECONCILER_STATE_DIR=str(tmp_path / "state"),
                     RECONCILER_MODBUS_TIMEOUT="1")
        planned = await run([sys.executable, "-m", "reconciler", "plan", str(sites)],
                            env=env, cwd=tmp_path, within=60)
    finally:
        await sims.stop()
    assert planned.code == 0, planned.text
    assert (f"serial not read yet (cannot connect to Modbus device 127.0.0.1:{refusing_port}"
            in planned.stdout), planned.text
    assert planned.stderr == "", planned.text
