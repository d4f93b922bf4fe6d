"""Helpers for the watch-agent tests: a simulated world for a copy of an example site
(simulators started in the test's own event loop, so they serve while the test awaits a
subprocess), and `Proc`, a `reconciler` subprocess whose output lines are collected as
they arrive so a test can wait for a given line."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.sim.fleet import SimFleet
from reconciler.sim.novacore import Device as NovacoreDevice
from reconciler.sources import loader

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "sites"
INVERTER = "home-solna-inverter"
INVERTER_SN = "A2231234567"
ZAP_SERIAL = "zap-3c61a4f0b2d8e917"


def base_env() -> dict[str, str]:
    """The process environment without any RECONCILER_* setting of the developer's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    # Let the subprocesses cache bytecode (__pycache__ is git-ignored): without it every
    # start compiles the package again, about half a second each.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update({"NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    return env


@dataclass
class World:
    sims: SimFleet
    sites: Path  # the tmp copy of the desired state the agent watches
    env: dict[str, str]
    cwd: Path

    @property
    def devices_file(self) -> Path:
        return self.sites / "devices.yaml"

    @property
    def journal(self) -> Path:
        return Path(self.env["RECONCILER_STATE_DIR"]) / "journal.jsonl"

    def cloud_device(self, hardware_id: str = INVERTER_SN) -> NovacoreDevice | None:
        return next((d for d in self.sims.novacore.devices.values()
                     if d.hardware_id == hardware_id), None)

    def cloud_name(self, hardware_id: str = INVERTER_SN) -> str | None:
        device = self.cloud_device(hardware_id)
        return device.name if device is not None else None

    def zap_der_enabled(self, der_type: str, sn: str = INVERTER_SN) -> bool | None:
        device = self.sims.zaps[ZAP_SERIAL].device(sn)
        if device is None:
            return None
        return any(d.get("type") == der_type and d.get("enabled") for d in device.ders)

    def secrets(self) -> list[str]:
        """Credential values that must never appear in any output."""
        return [v for k, v in self.sims.env().items()
                if k.endswith(("_TOKEN", "_API_KEY")) and v]

    def edit(self, old: str, new: str, path: Path | None = None) -> None:
        path = path or self.devices_file
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


async def start_world(tmp_path: Path, site: str = "home-solna", *,
                      before_start: Callable[[SimFleet], None] | None = None) -> World:
    """Simulators for a copy of `site`; `before_start` may change them before they serve
    (add a middleware, for instance)."""
    sites = tmp_path / "sites"
    shutil.copytree(EXAMPLES / site, sites)
    sims = SimFleet()
    sims.seed_fleet(loader.load_fleet([sites]))
    if before_start is not None:
        before_start(sims)
    await sims.start()
    env = base_env() | sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state"),
                                     "RECONCILER_SECRETS_DIR": str(tmp_path / "secrets")}
    return World(sims, sites, env, tmp_path)


# How long a test waits for what a `reconciler watch` does next (a line it logs, its exit):
# each starts Python, plans against simulators and applies, and on a 2-core machine running
# four test workers and more that takes many times what it takes on an idle one. Only a
# failing test waits this long: what it waits for comes as soon as it is done.
WAIT_S = 60.0


class Proc:
    """A running `python -m reconciler ...` with its stdout and stderr lines collected."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []
        assert process.stdout is not None and process.stderr is not None
        self._readers = [asyncio.ensure_future(self._read(process.stdout, self.out)),
                         asyncio.ensure_future(self._read(process.stderr, self.err))]

    @staticmethod
    async def _read(stream: asyncio.StreamReader, into: list[str]) -> None:
        async for raw in stream:
            into.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def text(self) -> str:
        return "\n".join(self.out + self.err)

    async def wait_for(self, pattern: str | Callable[[str], bool], *, within: float = WAIT_S,
                       count: int = 1) -> list[str]:
        """The first `count` stdout lines matching `pattern` (a regex or a predicate)."""
        match = (lambda line: re.search(pattern, line) is not None) if isinstance(pattern, str) \
            else pattern
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = [line for line in self.out if match(line)]
            if len(found) >= count:
                return found[:count]
            if self.process.returncode is not None and all(r.done() for r in self._readers):
                raise AssertionError(f"exited with {self.process.returncode} before {pattern!r}:"
                                     f"\n{self.text}")
            if loop.time() > deadline:
                raise AssertionError(f"no {pattern!r} within {within}s:\n{self.text}")
            await asyncio.sleep(0.05)

    async def finish(self, within: float = WAIT_S) -> int:
        """Wait for the exit and the end of its output; the exit code."""
        try:
            await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            raise AssertionError(f"still running after {within}s:\n{self.text}") from None
        await asyncio.gather(*self._readers)
        return self.process.returncode or 0

    async def terminate(self, within: float = WAIT_S) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await self.finish(within)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


# `spawn(*args, env=..., cwd=...)`: start `python -m reconciler ARGS...` (see conftest).
Spawn = Callable[..., Awaitable[Proc]]
