"""`reconciler apply PLANFILE` run from another directory than `plan --out` ran in: the
state and secrets directories, relative by default, are those the plan was made with, and
a plan is refused with another state directory. The CLI runs as a subprocess in the
directory a user would be in, against simulators of the examples (an Enapter config file
written under the state directory, an MQTT password in a secret file)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ci"))

from ci_helpers import EXAMPLES, Completed, ci_env, run  # shared with tests/ci

from reconciler.sim.fleet import SimFleet
from reconciler.sources import loader

pytestmark = pytest.mark.slow

RECONCILER = [sys.executable, "-m", "reconciler"]


@dataclass
class Dirs:
    sims: SimFleet
    work: Path  # where the plan is made: sites/, secrets/, and .reconciler/ once applied
    elsewhere: Path  # an empty directory the plan is applied from
    env: dict[str, str]  # no RECONCILER_STATE_DIR nor _SECRETS_DIR: the defaults

    async def cli(self, *args: str, cwd: Path, **env: str) -> Completed:
        return await run([*RECONCILER, *args], env=self.env | env, cwd=cwd, within=60)


@pytest.fixture
async def dirs(tmp_path: Path) -> AsyncIterator[Dirs]:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    shutil.copytree(EXAMPLES, work / "sites")
    secret = work / "secrets" / "ferroamp-mqtt" / "password"
    secret.parent.mkdir(parents=True)
    secret.write_text("demo-password")
    elsewhere.mkdir()
    sims = SimFleet()
    sims.seed_fleet(loader.load_fleet([work / "sites"]))
    await sims.start()
    env = ci_env(**sims.env(), AMBIBOX_MQTT_PASSWORD="demo-password")
    yield Dirs(sims, work, elsewhere, env)
    await sims.stop()


async def test_a_saved_plan_applied_from_elsewhere_uses_the_state_and_secrets_it_was_made_with(
        dirs: Dirs) -> None:
    work, elsewhere = dirs.work, dirs.elsewhere
    made = await dirs.cli("plan", "sites", "--out", "plan.json", cwd=work)
    assert made.code == 0, made.text
    applied = await dirs.cli("apply", str(work / "plan.json"), cwd=elsewhere)
    assert applied.code == 0, applied.text
    assert "Apply complete: 32 done, 0 failed" in applied.stdout, applied.text
    assert applied.stderr.splitlines()[0] == (
        f"note: applying in {work}, where the plan's files are read, with the state and "
        "secrets directories there: .reconciler (RECONCILER_STATE_DIR), secrets "
        "(RECONCILER_SECRETS_DIR)"), applied.text
    assert list(elsewhere.iterdir()) == [], "state or secrets made where the apply ran"
    assert (work / ".reconciler" / "inventory.json").is_file()
    assert (work / ".reconciler" / "secrets" / "h2-lab-ucm.json").is_file()
    # What the apply did is remembered where the next plan of that directory reads it.
    again = await dirs.cli("plan", "sites", "--detailed-exitcode", cwd=work)
    assert again.code == 0, again.text
    assert "No changes." in again.stdout, again.text
    inputs = json.loads((work / "plan.json").read_text())["inputs"]
    assert inputs["state_directory"] == str(work / ".reconciler")


async def test_a_saved_plan_is_refused_with_another_state_directory_before_anything_is_read(
        dirs: Dirs) -> None:
    work, elsewhere = dirs.work, dirs.elsewhere
    assert (await dirs.cli("apply", "sites", "--auto-approve", cwd=work)).code == 0
    made = await dirs.cli("plan", "sites", "--out", "plan.json", cwd=work)
    assert made.code == 0, made.text
    dirs.sims.reset_counts()
    other = elsewhere / "state"
    for cwd, env in ((elsewhere, {"RECONCILER_STATE_DIR": str(other)}),
                     (work, {"RECONCILER_STATE_DIR": "other-state"})):
        refused = await dirs.cli("apply", str(work / "plan.json"), cwd=cwd, **env)
        used = other if cwd == elsewhere else work / "other-state"
        assert (refused.code, refused.stdout) == (1, ""), refused.text
        assert refused.stderr.splitlines() == [
            f"error: the saved plan {work / 'plan.json'} was made with the state directory "
            f"{work / '.reconciler'}, and this apply would use {used}; nothing was applied. "
            "The plan rests on what that directory remembers of earlier applies (deletion "
            "policies, retired sites, declared fields), and the apply is recorded there. "
            "Apply it with the state directory it was made with (RECONCILER_STATE_DIR as it "
            "was set for the plan), or make the plan again with this one (`reconciler plan "
            "... --out FILE`)"], refused.text
    assert dirs.sims.requests() == 0, "refused before anything was read"
    assert list(elsewhere.iterdir()) == [] and not (work / "other-state").exists()

    # With the state directory it was made with, it applies (nothing to do).
    same = await dirs.cli("apply", str(work / "plan.json"), cwd=elsewhere)
    assert same.code == 0 and "No changes." in same.stdout, same.text
    assert list(elsewhere.iterdir()) == []


async def test_a_saved_plan_applies_with_its_state_directory_spelled_otherwise(
        dirs: Dirs) -> None:
    """The plan names the Enapter config file written under the state directory; that
    directory given relative for the plan and absolute, through a link, for the apply is the
    same directory, and the plan is not stale for it."""
    work = dirs.work
    link = dirs.elsewhere / "work-link"
    link.symlink_to(work)
    made = await dirs.cli("plan", "sites", "--out", "plan.json", cwd=work)
    assert made.code == 0, made.text
    applied = await dirs.cli("apply", "plan.json", cwd=work,
                             RECONCILER_STATE_DIR=str(link / ".reconciler"))
    assert applied.code == 0, applied.text
    assert "Apply complete: 32 done, 0 failed" in applied.stdout, applied.text
    # Named one way whatever the spelling: absolute, the link resolved.
    file = work / ".reconciler" / "secrets" / "h2-lab-ucm.json"
    assert f"its communication config is written to {file} (mode 0600)" in made.stdout
    assert file.is_file()


async def test_a_saved_plan_is_refused_with_another_secrets_directory_naming_both(
        dirs: Dirs) -> None:
    """The plan read an MQTT password from a secret file: another secrets directory, even
    one holding the same file, is refused before anything is read, naming both directories
    and the secret, instead of applied or called stale."""
    work, elsewhere = dirs.work, dirs.elsewhere
    other = elsewhere / "secrets"
    shutil.copytree(work / "secrets", other)
    made = await dirs.cli("plan", "sites", "--out", "plan.json", cwd=work)
    assert made.code == 0, made.text
    assert json.loads((work / "plan.json").read_text())["inputs"]["secrets_directory"] == (
        str(work / "secrets"))
    dirs.sims.reset_counts()
    refused = await dirs.cli("apply", "plan.json", cwd=work, RECONCILER_SECRETS_DIR=str(other))
    assert (refused.code, refused.stdout) == (1, ""), refused.text
    assert refused.stderr.splitlines() == [
        f"error: the saved plan plan.json was made with the secrets directory {work / 'secrets'}"
        f", and this apply would use {other}; nothing was applied. The plan read the MQTT "
        "passwords its fleet takes from secret files there (secret ferroamp-mqtt/password of "
        "device/farm-gotland-ferroamp) and says whether each changed since it was sent; the "
        "apply sends them. Apply it with the secrets directory it was made with "
        "(RECONCILER_SECRETS_DIR as it was set for the plan), or make the plan again with "
        "this one (`reconciler plan ... --out FILE`)"], refused.text
    assert dirs.sims.requests() == 0, "refused before anything was read"
    assert not (work / ".reconciler").exists()

    # A plan edited to name it relative is no plan `plan --out` writes.
    edited = json.loads((work / "plan.json").read_text())
    edited["inputs"]["secrets_directory"] = "secrets"
    (work / "edited.json").write_text(json.dumps(edited))
    invalid = await dirs.cli("apply", "edited.json", cwd=work)
    assert (invalid.code, invalid.stderr) == (1, (
        "error: edited.json is not a valid saved plan: inputs.secrets_directory must be an "
        "absolute path (the secrets directory it used)\n")), invalid.text

    # The same directory named absolute applies.
    applied = await dirs.cli("apply", "plan.json", cwd=work,
                             RECONCILER_SECRETS_DIR=str(work / "secrets"))
    assert applied.code == 0, applied.text
    assert "Apply complete: 32 done, 0 failed" in applied.stdout, applied.text



async def test_a_plan_blocked_by_a_missing_secret_applies_with_its_directory_spelled_otherwise(
        dirs: Dirs) -> None:
    """A device whose secret file is missing is blocked, and the plan names the file it
    looked for, absolute with the directory's links resolved: the secrets directory given
    relative for the plan and absolute, or through a link, for the apply is the same
    directory, and the plan is not stale for it."""
    work = dirs.work
    (work / "secrets" / "ferroamp-mqtt" / "password").unlink()
    link = dirs.elsewhere / "work-link"
    link.symlink_to(work)
    looked_for = work / "secrets" / "ferroamp-mqtt" / "password"
    blocked = (f"blocked: device/farm-gotland-ferroamp[zap]: MQTT password (from secret "
               f"ferroamp-mqtt/password): secret ferroamp-mqtt/password not found (looked for "
               f"{looked_for}); provide it before applying")
    # Each apply does what its plan holds: the next spelling is tried on a plan made after.
    for spelled, done in ((work / "secrets", 29), (link / "secrets", 0)):
        made = await dirs.cli("plan", "sites", "--out", "plan.json", cwd=work)
        assert made.code == 1, made.text  # saved, with the blocked device as an error
        assert f"not found (looked for {looked_for}); provide it" in made.stderr, made.text
        applied = await dirs.cli("apply", "plan.json", cwd=work,
                                 RECONCILER_SECRETS_DIR=str(spelled))
        assert (applied.code, applied.stderr) == (1, ""), applied.text
        assert blocked in applied.stdout.splitlines(), applied.text
        assert (f"Apply finished with errors: {done} done, 0 failed, 0 skipped, 3 blocked, "
                "0 deferred") in applied.stdout, applied.text
