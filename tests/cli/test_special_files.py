"""A FIFO (named pipe), socket or device where the reconciler reads a file is refused unread,
the message naming the file and saying it is no regular file (exit 1): opening a FIFO that
nobody writes to would wait forever. Every kind of file read: the desired state, a saved
plan, the settings file, the file of gateway URLs, the token files, the CA bundle, a secret
file and the state directory's files (inventory, credential ledger and key, lock, journal).

Each command runs as a real subprocess with a timeout, against a real FIFO (`os.mkfifo`)
that nothing ever writes to or reads from: a reader that waited on it would time out."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources import bounded

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import (  # tests/engine holds the helpers shared with the engine tests
    ThreadedSims,
    load,
    mqtt_battery,
    standard_site,
    write,
)

ROOT = Path(__file__).resolve().parents[2]
NOT_REGULAR = "not a regular file (a FIFO, socket or device)"
OUT_ADVICE = ("a saved plan is a file of its own, for `reconciler apply FILE`: name one (--out "
              "plan.json), or use `-o json > plan.json`, the same document")
SITE = """apiVersion: energy.reconciler.dev/v1alpha1
kind: Site
metadata:
  name: home
spec:
  displayName: Home
  timezone: Europe/Stockholm
"""


def reconciler(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of `reconciler ARGS...`; fails the
    test when it does not end within a minute (it waits on a FIFO)."""
    try:
        done = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd,
                              env=environment(cwd) | (env or {}), capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`reconciler {' '.join(args)}` still waiting after 60 s")
    return done.returncode, done.stdout, done.stderr


def environment(cwd: Path) -> dict[str, str]:
    """This one's, but for RECONCILER_* variables, with a state directory under `cwd`."""
    variables = {key: value for key, value in os.environ.items()
                 if not key.startswith("RECONCILER_")}
    return variables | {"PYTHONPATH": str(ROOT), "RECONCILER_STATE_DIR": str(cwd / "state")}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home.yaml").write_text(SITE, encoding="utf-8")
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


@pytest.mark.parametrize(("variable", "message"), [
    ("RECONCILER_GATEWAY_URLS_FILE",
     "error: RECONCILER_GATEWAY_URLS_FILE: cannot read {fifo}: {not_regular}"),
    ("RECONCILER_CA_BUNDLE",
     "error: RECONCILER_CA_BUNDLE: cannot read the CA bundle {fifo}: {not_regular}"),
])
def test_a_fifo_named_by_a_setting_is_refused_unread(
    home: Path, variable: str, message: str
) -> None:
    fifo = home / "fifo"
    code, _, err = reconciler(home, "plan", "home.yaml", env={variable: str(fifo)})
    assert (code, err.splitlines()) == (1, [
        message.format(fifo=fifo, not_regular=NOT_REGULAR), "invalid settings: 1 problem"])


def test_a_fifo_for_settings_or_a_token_that_nobody_writes_to_is_given_up_on(
    home: Path
) -> None:
    """The settings file and the token files may be pipes (`<(sops -d ...)`), waited on for
    PIPE_WAIT_SECONDS: one nobody writes to is an error once that has passed."""
    gave_nothing = (f"a FIFO or pipe that gave nothing in {bounded.PIPE_WAIT_SECONDS:g} s: it "
                    "is read once, to its end, from a program writing to it (such as `<(sops "
                    "-d FILE)`); name a regular file otherwise")
    code, _, err = reconciler(home, "plan", "home.yaml", "--config", "fifo")
    assert (code, err.splitlines()) == (1, [
        f"error: fifo: cannot read the settings file: {gave_nothing}",
        "invalid settings: 1 problem"])
    (home / "settings.toml").write_text('novacore_token_file = "fifo"\n', encoding="utf-8")
    code, _, err = reconciler(home, "plan", "home.yaml", "--config", "settings.toml")
    assert (code, err.splitlines()) == (1, [
        f"error: settings.toml:1: novacore_token_file: cannot read fifo (the Novacore "
        f"token): {gave_nothing}",
        "invalid settings: 1 problem"])


def test_a_fifo_for_the_desired_state_or_a_saved_plan_is_refused_unread(home: Path) -> None:
    os.mkfifo(home / "plan.json")
    for command in (["validate", "fifo"], ["apply", "plan.json", "--auto-approve"]):
        code, _, err = reconciler(home, *command)
        assert code == 1
        assert err.splitlines()[0] == (
            f"error: {command[1]}: {NOT_REGULAR}, so it is not read; name a YAML file or a "
            "directory")


@pytest.mark.parametrize("name", ["inventory.json", "credentials.key", "credentials.json"])
def test_a_fifo_for_a_state_file_is_refused_unread(home: Path, name: str) -> None:
    (home / "state").mkdir()
    os.mkfifo(home / "state" / name)
    code, _, err = reconciler(home, "apply", "home.yaml", "--auto-approve")
    assert code == 1
    assert err.startswith(f"error: cannot read {home / 'state' / name}: {NOT_REGULAR}. It "
                          "holds ")


def test_a_fifo_for_the_lock_file_is_refused(home: Path) -> None:
    (home / "state").mkdir()
    os.mkfifo(home / "state" / "lock")
    code, _, err = reconciler(home, "apply", "home.yaml", "--auto-approve")
    assert (code, err) == (1, (
        f"error: cannot use {home / 'state'} as the state directory: {home / 'state' / 'lock'} "
        f"is {NOT_REGULAR}; remove it, and the next run makes a new lock file there\n"))
    # A plan takes no lock, and only asks who holds it: nobody can, there.
    assert reconciler(home, "plan", "home.yaml")[0] == 0


def test_a_directory_for_the_lock_file_is_named_not_the_state_directory(home: Path) -> None:
    """"Is a directory" alone would say it of the state directory, which is one as it
    should be: the lock's name is the one taken."""
    (home / "state" / "lock").mkdir(parents=True)
    code, _, err = reconciler(home, "apply", "home.yaml", "--auto-approve")
    assert (code, err) == (1, (
        f"error: cannot use {home / 'state'} as the state directory: {home / 'state' / 'lock'} "
        "is a directory, where the lock file goes; remove it, and the next run makes a new "
        "lock file there\n"))


@pytest.fixture
def sims_fleet(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A site with a battery whose MQTT password is a secret file, its simulators, and the
    variables naming them."""
    docs = [*standard_site(1),
            mqtt_battery("s1-bat", "s1-zap", "FERRO-FILE",
                         password_from={"secretKeyRef": {"name": "ferroamp", "key": "password"}})]
    write(tmp_path / "sites", docs)
    (tmp_path / "secrets" / "ferroamp").mkdir(parents=True)
    with ThreadedSims(load(docs)) as sims:
        yield tmp_path, sims.env() | {"RECONCILER_SECRETS_DIR": str(tmp_path / "secrets")}


def test_a_fifo_for_a_secret_file_is_refused_unread(
    sims_fleet: tuple[Path, dict[str, str]]
) -> None:
    where, env = sims_fleet
    secret = where / "secrets" / "ferroamp" / "password"
    os.mkfifo(secret)
    code, out, err = reconciler(where, "apply", "sites", "--auto-approve", env=env)
    assert code == 1, err
    assert f"secret ferroamp/password at {secret} cannot be read: {NOT_REGULAR}" in out


def test_a_fifo_for_the_journal_is_refused_before_any_write(
    sims_fleet: tuple[Path, dict[str, str]]
) -> None:
    where, env = sims_fleet
    (where / "secrets" / "ferroamp" / "password").write_text("pw\n", encoding="utf-8")
    (where / "state").mkdir()
    journal = where / "state" / "journal.jsonl"
    os.mkfifo(journal)
    code, _, err = reconciler(where, "apply", "sites", "--auto-approve", env=env)
    assert (code, err) == (1, (
        f"error: cannot write the journal {journal}: {NOT_REGULAR}; remove it, and a new "
        "journal starts in its place\n"))
    # Nothing was written: a plan still has every change to make.
    code, _, err = reconciler(where, "plan", "sites", "--detailed-exitcode", env=env)
    assert (code, err) == (2, "")


def test_settings_and_a_token_through_process_substitution_are_read(
    sims_fleet: tuple[Path, dict[str, str]]
) -> None:
    """`--config <(...)` and `RECONCILER_NOVACORE_TOKEN_FILE=<(...)`, as a shell runs them
    for `sops -d`: the Novacore URL comes only from the piped settings, the token only
    from the piped token file, and the plan is made against the simulators with them."""
    where, env = sims_fleet
    (where / "secrets" / "ferroamp" / "password").write_text("pw\n", encoding="utf-8")
    url, token = env.pop("RECONCILER_NOVACORE_URL"), env.pop("RECONCILER_NOVACORE_TOKEN")
    script = ('RECONCILER_NOVACORE_TOKEN_FILE=<(sleep 0.3; printf %s "$TOKEN") '
              'exec "$PYTHON" -m reconciler plan sites --detailed-exitcode '
              '--config <(printf \'novacore_url = "%s"\\n\' "$URL")')
    done = subprocess.run(
        ["bash", "-c", script], cwd=where, capture_output=True, text=True, timeout=60,
        env=environment(where) | env | {"PYTHON": sys.executable, "URL": url, "TOKEN": token},
        stdin=subprocess.DEVNULL)
    # 2: changes to make, planned against the simulators (no settings or auth error).
    assert (done.returncode, done.stderr) == (2, ""), done.stderr
    assert "create" in done.stdout and token not in done.stdout


def test_a_relative_token_file_of_piped_settings_is_read_in_the_current_directory(
    sims_fleet: tuple[Path, dict[str, str]]
) -> None:
    """`--config <(sops -d settings.toml)` naming `novacore_token_file = "token"`: the piped
    settings lie in /dev/fd, beside which no token is; the file is the current directory's,
    where settings.toml is too."""
    where, env = sims_fleet
    (where / "secrets" / "ferroamp" / "password").write_text("pw\n", encoding="utf-8")
    (where / "token").write_text(env.pop("RECONCILER_NOVACORE_TOKEN") + "\n", encoding="utf-8")
    (where / "settings.toml").write_text('novacore_token_file = "token"\n', encoding="utf-8")
    done = subprocess.run(
        ["bash", "-c", 'exec "$PYTHON" -m reconciler plan sites --detailed-exitcode '
                       '--config <(cat settings.toml)'],
        cwd=where, capture_output=True, text=True, timeout=60,
        env=environment(where) | env | {"PYTHON": sys.executable}, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stderr) == (2, ""), done.stderr
    assert "create" in done.stdout


# -- plan --out ---------------------------------------------------------------------------------


def test_plan_out_naming_a_fifo_is_refused_before_the_plan(home: Path) -> None:
    """Saved whole, then renamed over what --out names, the plan would replace the FIFO (or a
    device: /dev/null, run as root) with a file; and `apply` reads regular files only."""
    fifo = home / "fifo"
    code, _, err = reconciler(home, "plan", "home.yaml", "--out", "fifo")
    assert (code, err.splitlines()) == (1, [
        f"error: --out: cannot write fifo: it is {NOT_REGULAR}; {OUT_ADVICE}",
        "invalid arguments: 1 problem"])
    assert fifo.is_fifo()
    assert sorted(p.name for p in home.iterdir()) == ["fifo", "home.yaml"]


def test_sim_env_file_naming_a_fifo_is_refused_before_the_simulators_start(home: Path) -> None:
    code, _, err = reconciler(home, "sim", "up", "--fleet", "home.yaml", "--env-file", "fifo")
    assert (code, err.splitlines()) == (1, [
        f"error: --env-file: cannot write fifo: it is {NOT_REGULAR}; name a file of its own",
        "invalid arguments: 1 problem"])
    assert (home / "fifo").is_fifo()


def test_plan_out_naming_standard_output_is_refused_before_the_plan(home: Path) -> None:
    """Standard output, a pipe here or a file below, carries the plan as shown already; and
    renamed over, /dev/stdout, a link, would become a file in /dev (run as root). Named
    here as /proc/self/fd/1, the same, over which a rename fails: a regression of this
    check would fail the test, and not break /dev/stdout of the machine that runs it."""
    expected = f"it is the standard output of this command; {OUT_ADVICE}"
    code, out, err = reconciler(home, "plan", "home.yaml", "--out", "/proc/self/fd/1")
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == f"error: --out: cannot write /proc/self/fd/1: {expected}"
    with (home / "shown.txt").open("w") as shown:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", "home.yaml", "--out", "shown.txt"],
            cwd=home, env=environment(home), stdout=shown,
            stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == f"error: --out: cannot write shown.txt: {expected}"
