"""`reconciler sim up` as a real command line, given an --env-file or --state that names a
file the reconciler reads or keeps: a site file of the --fleet, a YAML file in the
--write-fleet directory of a generated fleet, or (for --env-file) one of the state
directory's files. Each is refused naming it and what to name instead, and left as it is;
no simulator starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sim_up_running import RUNNING, sim_up_running

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sites"


def sim_up(cwd: Path, *options: str,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "sim", "up", *options],
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A copy of the examples: the files refused are the test's own."""
    return Path(shutil.copytree(EXAMPLES, tmp_path / "sites"))


def _a_site_file(fleet: Path) -> Path:
    return sorted(fleet.rglob("*.yaml"))[0]


@pytest.mark.parametrize(("option", "writer", "instead"), [
    ("--env-file", "the env file", "--env-file sim.env"),
    ("--state", "the simulators' state", "--state sim-state.json"),
])
def test_a_site_file_of_the_fleet_is_refused_and_left_as_it_is(
        tmp_path: Path, fleet: Path, option: str, writer: str, instead: str) -> None:
    """The env file is removed and written whole, and the simulators' state written over
    its name: either would replace the user's YAML (a --state one was refused only as no
    saved world, advising to delete it)."""
    site_file = _a_site_file(fleet)
    before = site_file.read_bytes()
    done = sim_up(tmp_path, "--fleet", "sites", option, str(site_file.relative_to(tmp_path)))
    named = site_file.relative_to(tmp_path)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.splitlines() == [
        f"error: {option}: cannot write {named}: it is a file of the desired state ({named}), "
        f"which {writer} would replace; name a file of its own ({instead})",
        "invalid arguments: 1 problem"]
    assert site_file.read_bytes() == before


@pytest.mark.parametrize(("state_dir", "named_by"), [
    (None, ""), ("kept", "variable"), ("kept", "settings file")])
def test_an_env_file_over_a_file_of_the_state_directory_is_refused(
        tmp_path: Path, fleet: Path, state_dir: str | None, named_by: str) -> None:
    """The state directory RECONCILER_STATE_DIR names, or the settings file RECONCILER_CONFIG
    names, or the default `.reconciler`: the one `plan` would use."""
    directory = tmp_path / (state_dir or ".reconciler")
    directory.mkdir()
    inventory = directory / "inventory.json"
    inventory.write_text('{"gateways": {}}\n')
    env = {"RECONCILER_STATE_DIR": state_dir} if named_by == "variable" and state_dir else {}
    if named_by == "settings file":
        (tmp_path / "reconciler.toml").write_text(f'state_dir = "{state_dir}"\n')
        env = {"RECONCILER_CONFIG": "reconciler.toml"}
    env_file = f"{state_dir or '.reconciler'}/inventory.json"
    done = sim_up(tmp_path, "--fleet", "sites", "--env-file", env_file, env=env)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.splitlines() == [
        f"error: --env-file: cannot write {env_file}: it is the state directory's "
        "inventory.json, which holds what earlier applies did and would be replaced by the "
        "env file; name a file of its own (--env-file sim.env)",
        "invalid arguments: 1 problem"]
    assert inventory.read_text() == '{"gateways": {}}\n'


@pytest.mark.parametrize(("option", "named", "writer", "instead"), [
    ("--env-file", "fleet/sim.yaml", "the env file", "--env-file sim.env"),
    # The name of the generated fleet's first file, which would replace it.
    ("--env-file", "fleet/sites-00000.yaml", "the env file", "--env-file sim.env"),
    ("--env-file", "fleet/more/sim.YML", "the env file", "--env-file sim.env"),
    ("--state", "fleet/state.yaml", "the simulators' state", "--state sim-state.json"),
])
@pytest.mark.parametrize("fleet_there", [False, True], ids=["new-fleet", "fleet-there"])
def test_a_yaml_file_in_the_write_fleet_directory_is_refused_before_the_fleet_is_written(
        tmp_path: Path, option: str, named: str, writer: str, instead: str,
        fleet_there: bool) -> None:
    """Checked before the fleet is written, whose files are not there to compare yet: the
    fleet would replace it or be read with it, by this command at its next start and by
    every plan of the folder. Nothing is written, whether the directory is new or holds
    an earlier fleet."""
    if fleet_there:
        (tmp_path / "fleet").mkdir()
    done = sim_up(tmp_path, "--sites", "2", "--write-fleet", "fleet", option, named)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.splitlines() == [
        f"error: {option}: cannot write {named}: it is a YAML file in the --write-fleet "
        f"directory (fleet), which holds the generated fleet: a plan of the fleet would read "
        f"{writer} there as site documents (or a fleet file of that name replace it); name a "
        f"file of its own ({instead})",
        "invalid arguments: 1 problem"]
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert written == (["fleet"] if fleet_there else []), "nothing written"


@pytest.mark.parametrize("fleet_there", [True, False], ids=["folder-there", "folder-new"])
def test_an_env_file_in_the_write_fleet_directory_not_named_as_yaml_is_written(
        tmp_path: Path, fleet_there: bool) -> None:
    """`fleet/sim.env` is no file the loader reads: the simulators start, the env file is
    written beside the fleet, and the fleet still validates. A `fleet` not there yet is
    made with the fleet, so the env file (and a --state above it) can be written there."""
    if fleet_there:
        (tmp_path / "fleet").mkdir()
    with sim_up_running("--sites", "1", "--devices-per-site", "1", "--write-fleet",
                        "fleet/generated", "--env-file", "fleet/generated/sim.env",
                        "--state", "fleet/sim-state.json", cwd=tmp_path) as said:
        assert said[-1] == RUNNING, "".join(said)
    generated = tmp_path / "fleet" / "generated"
    assert "export RECONCILER_NOVACORE_URL=" in (generated / "sim.env").read_text()
    assert '"ports"' in (tmp_path / "fleet" / "sim-state.json").read_text()
    validated = subprocess.run([sys.executable, "-m", "reconciler", "validate", "fleet"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=60,
                               check=False)
    assert validated.returncode == 0, validated.stderr
