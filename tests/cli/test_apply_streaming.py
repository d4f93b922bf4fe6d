"""`reconciler apply` with its standard output a pipe, as in CI logs and `| tee`: each line
arrives as soon as what it says has happened, not when the process exits. The writes to
the gateway are held at the simulator until the test has read the line that must come
before them, so the order is checked without any timing: a line that waits in a buffer
never arrives while the write it precedes is held. And a SIGHUP (the terminal closed)
while a write is held stops the apply as Ctrl-C does: the write finishes, nothing new
starts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import ThreadedSims, load, p1_meter, serial_of, standard_site, write

from reconciler.sim.fleet import SimFleet

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]


class Gates:
    """Holds the Zap's writes until the test opens their gate: `replace` for adding and
    removing a device, `publish` for switching its DERs. Open until closed."""

    def __init__(self) -> None:
        self.replace, self.publish = asyncio.Event(), asyncio.Event()
        self.replace.set()
        self.publish.set()
        # Set (from the simulators' thread) once a write waits at a closed gate.
        self.holding = threading.Event()

    def install(self, app: web.Application) -> None:
        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method != "GET" and request.path.startswith("/api/devices"):
                gate = self.publish if request.path.endswith("/types") else self.replace
                if not gate.is_set():
                    self.holding.set()
                await gate.wait()
            return await handler(request)

        app.middlewares.append(hold)

    def close(self) -> None:
        self.replace.clear()
        self.publish.clear()


def fleet(baud_rate: int) -> list[dict[str, Any]]:
    docs = standard_site(1)
    meter = p1_meter("s1-p1", "s1-zap", "P1M0001")
    meter["spec"]["connection"] = {"p1Uart": {"baudRate": baud_rate}}
    return [meter if d["metadata"]["name"] == "s1-p1" else d for d in docs]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[ThreadedSims, Gates, dict[str, str]]]:
    gates = Gates()
    serial = serial_of(1)

    def install(sims: SimFleet) -> None:
        gates.install(sims.zaps[serial].app)

    with ThreadedSims(load(fleet(115200)), before_start=install) as sims:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        # Python buffers a pipe unless told otherwise: the reconciler must not depend on it.
        env.pop("PYTHONUNBUFFERED", None)
        env |= sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state"),
                             "NO_COLOR": "1",
                             # Were a line held back, the held write times out and the run
                             # ends soon after (and the test fails), instead of waiting long.
                             "RECONCILER_RETRIES": "1"}
        yield sims, gates, env


def start_apply(path: Path, env: dict[str, str], stderr: IO[str]) -> subprocess.Popen[str]:
    # Started from the checkout, so that this checkout's package is the one run.
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(path), "--auto-approve"],
        cwd=REPOSITORY, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=stderr, text=True, encoding="utf-8")


def apply_to_the_end(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(path), "--auto-approve"],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=120, check=False)


def applied_then_edited(
        world: tuple[ThreadedSims, Gates, dict[str, str]], tmp_path: Path) -> Path:
    """The sites applied, then given another baud rate (the meter is removed and added
    again, then its DERs switched on), with the gateway's writes held: their directory."""
    sims, gates, env = world
    sites = tmp_path / "sites"
    write(sites, fleet(115200))
    first = apply_to_the_end(sites, env)
    assert first.returncode == 0, first.stdout + first.stderr
    write(sites, fleet(9600))
    sims.call(gates.close)
    return sites


def read_until(stdout: IO[str], wanted: str) -> list[str]:
    """Lines up to and including the first that starts with `wanted` (all, at the end)."""
    lines = []
    for line in stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(wanted):
            break
    return lines


def test_apply_output_to_a_pipe_arrives_line_by_line_as_changes_finish(
        world: tuple[ThreadedSims, Gates, dict[str, str]], tmp_path: Path) -> None:
    sims, gates, env = world
    sites = applied_then_edited(world, tmp_path)
    with (tmp_path / "stderr").open("w+", encoding="utf-8") as stderr, \
            start_apply(sites, env, stderr) as process:
        # Ends the run should a line never come (the held write would time out first).
        watchdog = threading.Timer(120, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            plan = read_until(process.stdout, "Plan: ")
            # The plan arrived while the device's removal is held: it was not buffered.
            assert plan[-1] == "Plan: 1 to update, 1 to replace.", plan
            sims.call(gates.replace.set)
            replaced = read_until(process.stdout, "[")
            assert replaced[-1].endswith("✓ device/s1-p1[zap] replace"), replaced
            # ... and that line while the DERs' switch is held.
            sims.call(gates.publish.set)
            rest = process.stdout.read().splitlines()
            assert process.wait() == 0, rest
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            stderr.seek(0)
            errors = stderr.read()
    assert rest[0].endswith("✓ device/s1-p1[publish] update"), (rest, errors)
    assert rest[-1].startswith("Apply complete: 2 done, 0 failed"), (rest, errors)


def test_sighup_mid_apply_lets_the_write_in_flight_finish_and_starts_nothing_new(
        world: tuple[ThreadedSims, Gates, dict[str, str]], tmp_path: Path) -> None:
    sims, gates, env = world
    sites = applied_then_edited(world, tmp_path)
    with (tmp_path / "stderr").open("w+", encoding="utf-8") as stderr, \
            start_apply(sites, env, stderr) as process:
        try:
            assert gates.holding.wait(60), "the replacement never reached the gateway"
            process.send_signal(signal.SIGHUP)
            # Open once the apply says it stops: the held write then finishes.
            for _ in range(600):
                stderr.seek(0)
                if "SIGHUP: stopping; the writes in flight finish" in stderr.read():
                    break
                time.sleep(0.1)
            sims.call(gates.replace.set)
            sims.call(gates.publish.set)
            assert process.stdout is not None
            out = process.stdout.read()
            assert process.wait(timeout=120) == 1, out
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    stderr_text = (tmp_path / "stderr").read_text(encoding="utf-8")
    assert "SIGHUP: stopping; the writes in flight finish" in stderr_text, stderr_text
    assert "✓ device/s1-p1[zap] replace" in out, out
    assert "- device/s1-p1[publish] update" in out, out  # not started: stopping
    # The next apply finishes the job: the DERs' switch only.
    again = apply_to_the_end(sites, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Apply complete: 1 done, 0 failed" in again.stdout, again.stdout
