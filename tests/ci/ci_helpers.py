"""Helpers for the CI-recipe tests: simulators for a tmp copy of an example site (started in
the test's event loop, so they answer while the test awaits a subprocess), the environment
a CI job would have (the reconciler on PATH, endpoints of the simulators), and a
subprocess runner that never leaves a process behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.sim.fleet import SimFleet
from reconciler.sources import loader

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "sites"
BIN = str(Path(sys.executable).parent)  # where the `reconciler` script is installed


def ci_env(**extra: str) -> dict[str, str]:
    """The environment of a CI job: no RECONCILER_* of the developer's own, the reconciler
    on PATH, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["NO_COLOR"] = "1"
    # Let the subprocesses cache bytecode (__pycache__ is git-ignored): without it every
    # start compiles the package again, about half a second each.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | extra


@dataclass
class World:
    sims: SimFleet
    root: Path  # the checkout: desired state under root/sites
    env: dict[str, str]


async def start_world(tmp_path: Path, site: str = "home-solna") -> World:
    root = tmp_path / "checkout"
    shutil.copytree(EXAMPLES / site, root / "sites")
    sims = SimFleet()
    sims.seed_fleet(loader.load_fleet([root / "sites"]))
    await sims.start()
    env = ci_env(**sims.env(), RECONCILER_STATE_DIR=str(tmp_path / "state"))
    return World(sims, root, env)


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


async def run(argv: Sequence[str], *, env: dict[str, str], cwd: Path,
              within: float = 30.0) -> Completed:
    """Run `argv` without blocking the event loop (the simulators live in it)."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Completed(process.returncode or 0, stdout.decode(), stderr.decode())
