"""The config files Enapter devices declare (`configOutput.file`), through the CLI in a
subprocess against the Enapter simulator on loopback: which paths are refused, and where
(file, line, field)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from enapter_world import UCM, MakeWorld, World, device, site_and_gateway


def _ucm_writing_to(file: str) -> str:
    return site_and_gateway() + device(
        "lab-ucm", f"{{kind: ucm, configOutput: {{file: '{file}'}}}}", hardware=UCM)


async def _cli(world: World, *args: str) -> tuple[int, str]:
    """`reconciler ARGS...` in a subprocess with the world's settings: its exit code and
    everything it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", *args,
        env={**os.environ, **world.env()}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode() + stderr.decode()


def _write_fleet(directory: Path, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "lab.yaml").write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize("file", ["~nouser/x", "~/x", "~root/x"])
async def test_a_config_file_starting_with_a_tilde_is_refused_at_the_field(
        make_world: MakeWorld, tmp_path: Path, file: str) -> None:
    world = await make_world(_ucm_writing_to("cfg/ucm.json"))
    text = _ucm_writing_to(file)
    fleet_dir = _write_fleet(tmp_path / "fleet", text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if file in row)
    column = text.splitlines()[line - 1].index(f"'{file}'") + 1
    where = f"lab.yaml:{line}:{column}: spec.enapter.configOutput.file: "
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        code, output = await _cli(world, *command, str(fleet_dir))
        assert code == 1, output
        assert "Traceback" not in output
        assert f"{where}file {file!r} starts with '~', which is not expanded" in output, output
        assert "give an absolute path" in output
    assert world.sims.enapter.writes() == 0
    assert not list(world.tmp.rglob("x"))
