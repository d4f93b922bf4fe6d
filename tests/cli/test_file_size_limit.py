"""Every file the reconciler reads whole has a limit, and a larger one is refused before it
is read, naming the file, its size and the limit (exit 1, no traceback): a desired-state
file (4 MiB: one of exactly the limit loads, and so do the other files of the run), a saved
plan (128 MiB, and `plan --out` writes none larger), the settings file and the JSON file of
gateway URLs (4 MiB each), the CA bundle (4 MiB); a lock file's holder is named by its
first line, at most 1 KiB of it. The state directory's files and secret files need
simulators: `test_plan_apply.py`."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import ThreadedSims, load, site  # tests/engine holds the simulators' helpers

from reconciler.cli import main as cli
from reconciler.engine.config import MAX_CA_BUNDLE_BYTES, MAX_SETTINGS_BYTES
from reconciler.plan.document import MAX_PLAN_BYTES
from reconciler.sources.loader import MAX_FILE_BYTES

SITE = """apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata:
  name: {name}
spec:
  displayName: Home
  timezone: Europe/Stockholm
"""


def padded(text: str, size: int) -> str:
    """`text` followed by a comment that brings it to `size` bytes."""
    filler = size - len(text.encode()) - len("#\n")
    return text + "#" + "x" * filler + "\n"


def test_a_file_of_exactly_the_limit_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sites.yaml"
    path.write_text(padded(SITE.format(name="home"), MAX_FILE_BYTES), encoding="utf-8")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert cli.main(["validate", str(path)]) == 0
    assert capsys.readouterr() == ("valid: 1 file, 1 Site\n", "")


@pytest.mark.parametrize(("command", "summary"), [
    ("validate", "invalid: 1 problem"),
    ("plan", "invalid desired state: 1 problem"),
])
def test_a_larger_file_is_refused_unparsed_naming_its_size_and_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, summary: str
) -> None:
    big = tmp_path / "a-big.yaml"
    # Not YAML at all: parsed, it would be a syntax error at 1:1.
    big.write_text(padded("{{{\n", MAX_FILE_BYTES + 1), encoding="utf-8")
    (tmp_path / "b-home.yaml").write_text(SITE.format(name="home"), encoding="utf-8")
    assert cli.main([command, str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {big}: the file is 4.0 MiB (4,194,305 bytes), more than the 4 MiB a "
        "desired-state file may hold, and is not read: split it into several files (a "
        "directory is read with its subdirectories)",
        summary,
    ]


def test_a_100_mb_file_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as file:  # sparse: 100 MB of NUL bytes, never parsed
        file.truncate(100_000_000)
    assert cli.main(["validate", "-o", "json", str(big)]) == 1
    out, _ = capsys.readouterr()
    assert '"message": "the file is 95.4 MiB (100,000,000 bytes), more than the 4 MiB' in out


def sparse(path: Path, size: int) -> Path:
    """A file of `size` NUL bytes that takes no room on disk: read whole, it is an error of
    its content (not JSON, not TOML, not PEM), never one of its size."""
    with path.open("wb") as file:
        file.truncate(size)
    return path


def test_a_saved_plan_larger_than_the_limit_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = sparse(tmp_path / "plan.json", MAX_PLAN_BYTES + 1)
    assert cli.main(["apply", str(plan), "--auto-approve"]) == 1
    assert capsys.readouterr() == ("", (
        f"error: {plan} is 128.0 MiB (134,217,729 bytes), more than the 128 MiB a saved plan "
        "may hold, and is not read: plan a part of the fleet at a time (--target, --exclude) "
        "to save smaller plans\n"))


def test_a_plan_larger_than_apply_reads_is_not_saved(tmp_path: Path) -> None:
    """A fleet whose plan is larger than MAX_PLAN_BYTES, made in a few seconds of real
    input: long display names of characters that JSON writes as 12 bytes each (a pair of
    \\u escapes for one emoji of 4 UTF-8 bytes), which the plan repeats (in the fields of
    a site's change; its message quotes the first characters only). A plan of sites to
    create, against the simulators, through the real CLI: it is refused before anything
    is written, and the plan is shown all the same."""
    sites = 16
    emoji = "\U0001F600"
    # Each site's name is at least 12 bytes an emoji in the plan, twice over: 1.1 times
    # the limit for every site together (the YAML files take a sixth of it, 23 MB).
    length = MAX_PLAN_BYTES * 11 // 10 // (sites * 12 * 2)
    fleet = tmp_path / "sites"
    fleet.mkdir()
    docs = [site(f"s{i}", display=f"{i} {emoji * length}") for i in range(sites)]
    for doc in docs:  # written as they are, not escaped: each file under MAX_FILE_BYTES
        name = doc["metadata"]["name"]
        text = (f"apiVersion: {doc['apiVersion']}\nkind: Site\nmetadata:\n  name: {name}\n"
                f"spec:\n  displayName: \"{doc['spec']['displayName']}\"\n  timezone: "
                f"Europe/Stockholm\n  novacore:\n    orgId: {doc['spec']['novacore']['orgId']}\n")
        (fleet / f"{name}.yaml").write_text(text, encoding="utf-8")
    saved = tmp_path / "plan.json"
    with ThreadedSims(load(docs[:1])) as sims:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("RECONCILER_")}
        env |= sims.env() | {"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                             "RECONCILER_STATE_DIR": str(tmp_path / "state")}
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", str(fleet), "-o", "markdown",
             "--out", str(saved)],
            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    assert done.stdout.startswith("### Reconciler plan\n"), "shown all the same"
    [error] = done.stderr.splitlines()
    assert error.startswith("error: the plan is 1")  # 140.8 MiB, give or take
    assert error.endswith(
        " bytes), more than the 128 MiB a saved plan may hold (`reconciler apply` reads no "
        f"larger one), so it is not saved to {saved}: plan a part of the fleet at a time "
        "(--target, --exclude) to save smaller plans")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sites"], "nothing written"


@pytest.mark.parametrize(("variable", "what"), [
    ("RECONCILER_CONFIG", "a settings file"),
    ("RECONCILER_GATEWAY_URLS_FILE", "a file of gateway URLs"),
])
def test_a_settings_file_larger_than_the_limit_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    variable: str, what: str,
) -> None:
    (tmp_path / "home.yaml").write_text(SITE.format(name="home"), encoding="utf-8")
    big = sparse(tmp_path / "big", MAX_SETTINGS_BYTES + 1)
    monkeypatch.setenv(variable, str(big))
    assert cli.main(["plan", str(tmp_path / "home.yaml")]) == 1
    assert capsys.readouterr() == ("", (
        f"error: {big}: the file is 4.0 MiB (4,194,305 bytes), more than the 4 MiB {what} "
        "may hold, and is not read\n"
        "invalid settings: 1 problem\n"))


def test_a_ca_bundle_larger_than_the_limit_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "home.yaml").write_text(SITE.format(name="home"), encoding="utf-8")
    bundle = sparse(tmp_path / "ca.pem", MAX_CA_BUNDLE_BYTES + 1)
    monkeypatch.setenv("RECONCILER_CA_BUNDLE", str(bundle))
    assert cli.main(["plan", str(tmp_path / "home.yaml")]) == 1
    assert capsys.readouterr() == ("", (
        f"error: RECONCILER_CA_BUNDLE: the CA bundle {bundle} is 4.0 MiB (4,194,305 bytes), "
        "more than the 4 MiB a CA bundle may hold, and is not read\n"
        "invalid settings: 1 problem\n"))


def test_a_lock_held_is_named_by_the_first_line_of_its_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock file written over by something else (100 MB, one line; not UTF-8) is not read
    whole into the message, nor stops the run; the line `lock` writes is named as it is."""
    (tmp_path / "home.yaml").write_text(SITE.format(name="home"), encoding="utf-8")
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(state))
    for content, holder in [
        (b"pid 7 on host running `reconciler watch x` since 2026-01-01T00:00:00Z\n" + b"x" * 10,
         "pid 7 on host running `reconciler watch x` since 2026-01-01T00:00:00Z"),
        (b"y" * 100_000_000, "y" * 1024),
        (b"pid 8 \xff\n", "pid 8 \ufffd"),
    ]:
        (state / "lock").write_bytes(content)
        with (state / "lock").open("rb") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            assert cli.main(["apply", str(tmp_path / "home.yaml"), "--auto-approve"]) == 1
        assert capsys.readouterr() == ("", (
            f"error: the state directory {state} is locked by {holder}; wait for it to "
            "finish or stop it\n"))
