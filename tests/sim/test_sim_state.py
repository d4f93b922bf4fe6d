"""`SimFleet(state_file=...)` / `reconciler sim up --state FILE`: the simulated world is
saved on change and restored on the next start, with its ports and credentials; a file that
is not a saved world stops the start with an error naming it, not a traceback."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reconciler.cli import main as cli
from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_fleet

EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples" / "sites")


def novacore_client(env: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=env["RECONCILER_NOVACORE_URL"],
        headers={"Authorization": f"Bearer {env['RECONCILER_NOVACORE_TOKEN']}"},
    )


async def novacore_site_names(env: dict[str, str], org: str) -> list[str]:
    async with novacore_client(env) as client:
        response = await client.get("/sites", params={"org_id": org})
        response.raise_for_status()
        return sorted(site["name"] for site in response.json())


async def create_novacore_site(env: dict[str, str], org: str, name: str) -> None:
    async with novacore_client(env) as client:
        created = await client.post("/sites", json={"org_id": org, "name": name})
        assert created.status_code in (200, 201), created.text


async def test_a_saved_world_is_restored_with_its_credentials(tmp_path: Path) -> None:
    fleet = load_fleet([EXAMPLES])
    org = next(s.spec.novacore.org_id for s in fleet.sites.values() if s.spec.novacore)
    state = tmp_path / "sim-state.json"

    first = SimFleet(state_file=str(state))
    first.seed_fleet(fleet)
    async with first:
        before = first.env()
        await create_novacore_site(before, org, "Kept site")

    second = SimFleet(state_file=str(state))
    second.seed_fleet(fleet)
    async with second:
        after = second.env()
        assert "Kept site" in await novacore_site_names(after, org)
        for name in ("RECONCILER_ENAPTER_TOKEN", "RECONCILER_FLATPEAK_ACCOUNT_ID",
                     "RECONCILER_FLATPEAK_API_KEY"):
            assert after[name] == before[name], name
    assert state.stat().st_mode & 0o077 == 0, "it holds keys: readable by its owner only"


async def test_the_state_file_is_private_from_its_creation_and_no_symlink_is_written_through(
        tmp_path: Path) -> None:
    """The world is written beside the file under a temporary name, then renamed: a symlink
    of that name (left in a shared directory by someone else), whichever suffix it has, must
    not have the keys written where it points, nor that file's mode changed."""
    state = tmp_path / "sim-state.json"
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("someone else's file\n")
    elsewhere.chmod(0o644)
    for name in ("sim-state.tmp", "sim-state.json.tmp"):
        (tmp_path / name).symlink_to(elsewhere)
    world = SimFleet(state_file=str(state))
    world.seed_fleet(load_fleet([EXAMPLES]))
    async with world:
        token = world.env()["RECONCILER_ENAPTER_TOKEN"]
    assert elsewhere.read_text() == "someone else's file\n"
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o644
    assert not state.is_symlink() and stat.S_IMODE(state.stat().st_mode) == 0o600
    assert token in state.read_text()
    assert not (tmp_path / "sim-state.json.tmp").exists()


@pytest.mark.parametrize(("content", "problem"), [
    pytest.param("{bad", ":1:2: not valid JSON: Expecting property name enclosed in double "
                 "quotes", id="not-json"),
    pytest.param(json.dumps({"ports": {}}), ": not a simulator state file (missing 'novacore')",
                 id="not-a-world"),
    pytest.param("[]", ": not a simulator state file (", id="not-an-object"),
    pytest.param("[" * 100_000 + "]" * 100_000, ": not a simulator state file: it holds "
                 "arrays or objects nested too deeply to read", id="nested-too-deeply"),
    pytest.param('{"ports": {"a": ' + "9" * 5000 + "}}", ": not a simulator state file: it "
                 "holds a number of more than 4,300 digits, too long to read",
                 id="number-too-long"),
])
def test_a_state_file_that_is_not_a_saved_world_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str) -> None:
    state = tmp_path / "sim-state.json"
    state.write_text(content)
    code = cli.main(["sim", "up", "--fleet", EXAMPLES, "--state", str(state)])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    first, last = err.splitlines()
    assert first.startswith(f"error: {state}{problem}")
    assert first.endswith("; delete it to start afresh, or pass another --state")
    assert last == "invalid simulator state: 1 problem"
    assert state.read_text() == content, "left as it was"


@pytest.mark.parametrize("option", ["--env-file", "--state"])
def test_a_file_that_cannot_be_written_is_refused_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str) -> None:
    """Also the simulators' state, which was first written at the first change or at the
    stop, and then not at all (the failure unsaid)."""
    missing = tmp_path / "no-such-dir" / "sim.out"
    code = cli.main(["sim", "up", "--fleet", EXAMPLES, option, str(missing)])
    assert (code, capsys.readouterr().err.splitlines()) == (1, [
        f"error: {option}: cannot write {missing}: the directory {missing.parent} does not "
        "exist", "invalid arguments: 1 problem"])


def test_a_state_that_is_no_file_of_its_own_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    """/dev/null (or a FIFO) named as the state: saving it renames a file over the name,
    which, run as root, would replace the device with a file of keys."""
    code = cli.main(["sim", "up", "--fleet", EXAMPLES, "--state", os.devnull])
    assert (code, capsys.readouterr().err.splitlines()) == (1, [
        f"error: --state: cannot write {os.devnull}: it is not a regular file (a FIFO, socket "
        "or device); name a file of its own", "invalid arguments: 1 problem"])
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


async def test_a_save_that_fails_is_logged_and_the_simulators_go_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The state's folder removed while they run: each change's save fails, which is logged
    with the file and why (no keys), and the simulators still answer; the stop's save too."""
    folder = tmp_path / "kept"
    folder.mkdir()
    state = folder / "sim-state.json"
    fleet = load_fleet([EXAMPLES])
    org = next(s.spec.novacore.org_id for s in fleet.sites.values() if s.spec.novacore)
    world = SimFleet(state_file=str(state))
    world.seed_fleet(fleet)
    async with world:
        env = world.env()
        state.unlink(missing_ok=True)
        folder.rmdir()
        await create_novacore_site(env, org, "Unsaved")
        # The save runs in the same event loop as the servers, woken by the change: before
        # this next request is answered.
        assert "Unsaved" in await novacore_site_names(env, org)
        assert len(caplog.records) == 1, caplog.records
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2, said  # the change's save, and the stop's
    assert set(said) == {
        f"cannot save the simulators' state to {state}: No such file or directory"}
    assert not folder.exists()


def _text_if_any(path: Path) -> str:
    """The file's text; empty while it is absent (`sim up` removes a stale env file before
    it writes the new one)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_the_env_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds the simulators' tokens and keys."""
    env_file = tmp_path / "sim.env"
    env_file.write_text("stale\n")
    env_file.chmod(0o644)  # an existing file does not keep a wider mode
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sim", "up", "--fleet", EXAMPLES,
         "--env-file", str(env_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "RECONCILER_NOVACORE_TOKEN" not in _text_if_any(env_file):
            assert process.poll() is None, "sim up stopped before writing its env file"
            assert time.monotonic() < deadline, "no env file after 30 s"
            time.sleep(0.05)
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def _sim_up_output(tmp_path: Path, *extra: str) -> tuple[str, str, dict[str, str]]:
    """stdout and stderr of `sim up` run until its env file is written, and the file's
    secret values."""
    env_file = tmp_path / "sim.env"
    env_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sim", "up", "--fleet", EXAMPLES,
         "--env-file", str(env_file), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists() or "_API_KEY" not in env_file.read_text():
            assert process.poll() is None, "sim up stopped before writing its env file"
            assert time.monotonic() < deadline, "no env file after 30 s"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    values = dict(line.removeprefix("export ").split("=", 1)
                  for line in env_file.read_text().splitlines())
    secrets = {k: v for k, v in values.items() if k.endswith(("_TOKEN", "_API_KEY"))}
    assert len(secrets) == 3, values
    return out, err, secrets


def test_the_simulators_tokens_are_printed_with_print_env_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err, secrets = _sim_up_output(tmp_path)
    for name, value in secrets.items():
        assert value not in out + err, f"{name} printed without --print-env"
    out, err, secrets = _sim_up_output(tmp_path, "--print-env")
    for name, value in secrets.items():
        assert f"export {name}={value}\n" in out
        assert value not in err
    with pytest.raises(SystemExit):
        cli.main(["sim", "up", "--help"])
    assert ("with the simulators' own tokens and keys (accepted by nothing else); nothing "
            "else prints them") in " ".join(capsys.readouterr().out.split())


def test_a_symlink_left_as_the_env_files_temporary_is_not_written_through(
        tmp_path: Path) -> None:
    """The file is written as `sim.env.tmp`, then renamed: a symlink of that name (left in
    a shared directory by someone else) must not have the tokens written where it points."""
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("someone else's file\n")
    elsewhere.chmod(0o644)
    (tmp_path / "sim.env.tmp").symlink_to(elsewhere)
    _, _, secrets = _sim_up_output(tmp_path)
    assert elsewhere.read_text() == "someone else's file\n"
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o644
    env_file = tmp_path / "sim.env"
    assert not env_file.is_symlink() and stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert all(value in env_file.read_text() for value in secrets.values())
    assert not (tmp_path / "sim.env.tmp").exists()


def test_an_earlier_env_file_is_removed_before_the_simulators_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A script that waits for the env file must not find the last run's ports in it: the
    file goes at start, before the simulators listen (here they never do: the --state file
    is refused in start()). A start refused for its fleet leaves it as it was."""
    env_file = tmp_path / "sim.env"
    earlier = "export RECONCILER_NOVACORE_URL=http://127.0.0.1:1\n"
    env_file.write_text(earlier)
    code = cli.main(["sim", "up", "--fleet", str(tmp_path / "no-such-fleet"),
                     "--env-file", str(env_file)])
    assert code == 1 and env_file.read_text() == earlier
    state = tmp_path / "sim-state.json"
    state.write_text("{bad")
    code = cli.main(["sim", "up", "--fleet", EXAMPLES, "--state", str(state),
                     "--env-file", str(env_file)])
    assert code == 1, capsys.readouterr().err
    assert not env_file.exists()


def test_the_readmes_wait_for_the_env_file_loads_this_runs_simulators(tmp_path: Path) -> None:
    """The README's lines that start `sim up` in the background and wait for its env file,
    run by sh with an earlier run's file in place, load the simulators that now listen."""
    readme = (Path(EXAMPLES).parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("rm -f sim.env")
    snippet = readme[start:readme.index(". ./sim.env\n", start) + len(". ./sim.env\n")]
    assert "reconciler sim up --fleet examples/sites --env-file sim.env &" in snippet
    (tmp_path / "sim.env").write_text("export RECONCILER_NOVACORE_URL=http://127.0.0.1:1\n")
    (tmp_path / "examples").symlink_to(Path(EXAMPLES).parent)
    script = (f"{snippet}echo \"novacore=$RECONCILER_NOVACORE_URL\"\n"
              "curl -sf \"$RECONCILER_NOVACORE_URL/_sim/state\" >/dev/null && echo listening\n"
              "kill $!; wait\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.Popen(["sh", "-c", script], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    done = (process.returncode, out, err)
    lines = out.splitlines()
    assert lines[0].startswith("novacore=http://127.0.0.1:"), done
    assert lines[0] != "novacore=http://127.0.0.1:1" and lines[1:] == ["listening"], done
