"""A state directory that applied the Flatpeak example with one account, planned and applied
with another (RECONCILER_FLATPEAK_ACCOUNT_ID changed), end to end through `reconciler plan`
and `apply` against the simulators: the locations it applied with the first account are not
looked for in the second, where they are not listed, and so are not forgotten as deleted;
every run says so, naming the setting and what to do, and the account is recorded as a
fingerprint only. An inventory written before the account was recorded is read as before,
and records it at the next apply."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from cloud_examples import cloud_examples
from test_plan_apply import Cli, CliFactory

from reconciler.sim.flatpeak import FlatpeakSimulator

make_cli = test_plan_apply.make_cli  # the fixture, shared

OTHER_ACCOUNT = "acc_other_account_of_the_test"
OTHER_KEY = "key-of-the-other-account"
WHAT_TO_DO = (
    "Set RECONCILER_FLATPEAK_ACCOUNT_ID and RECONCILER_FLATPEAK_API_KEY to the account this "
    "state directory applied with, or use another state directory (RECONCILER_STATE_DIR) "
    "for this account"
)


def flatpeak(run: Cli) -> FlatpeakSimulator:
    return run.sims.sims.flatpeak


def remembered(run: Cli) -> dict[str, Any]:
    inventory = json.loads((run.state_dir / "inventory.json").read_text(encoding="utf-8"))
    return inventory["flatpeak_locations"]  # type: ignore[no-any-return]


def location_of(run: Cli, account: str) -> str:
    """The id of the example Site's location in `account`."""
    [found] = run.sims.call(lambda: [
        location_id for location_id, location in flatpeak(run).locations.items()
        if location["account_id"] == account
    ])
    return str(found)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def use_other_account(run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    run.sims.call(flatpeak(run).add_account, OTHER_ACCOUNT, OTHER_KEY)
    monkeypatch.setenv("RECONCILER_FLATPEAK_ACCOUNT_ID", OTHER_ACCOUNT)
    monkeypatch.setenv("RECONCILER_FLATPEAK_API_KEY", OTHER_KEY)


def test_another_flatpeak_account_keeps_the_locations_of_the_first_and_says_so(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(cloud_examples())
    first = os.environ["RECONCILER_FLATPEAK_ACCOUNT_ID"]
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    applied = location_of(run, first)
    assert remembered(run) == {
        applied: {"site": "townhouse-malmo", "account_sha256": sha256(first)}
    }
    # A fingerprint: the account id is not written in clear.
    assert first not in (run.state_dir / "inventory.json").read_text(encoding="utf-8")

    use_other_account(run, monkeypatch)
    warning = (
        f"warning: the state directory {run.state_dir} applied 1 Flatpeak location with "
        "another Flatpeak account than RECONCILER_FLATPEAK_ACCOUNT_ID names now: "
        f"{applied} (Site townhouse-malmo); it is not looked for in this account, nor "
        "forgotten"
    )
    code, out, err = run("plan", run.path)
    assert code == 0, out + err
    assert warning in err and WHAT_TO_DO in err, err
    assert "site/townhouse-malmo[flatpeak] will be created" in out, out
    assert first not in out + err and OTHER_ACCOUNT not in out + err

    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    assert warning in err, err
    other = location_of(run, OTHER_ACCOUNT)
    # The first account's location is remembered still, with its account; the new one
    # with the other.
    assert remembered(run) == {
        applied: {"site": "townhouse-malmo", "account_sha256": sha256(first)},
        other: {"site": "townhouse-malmo", "account_sha256": sha256(OTHER_ACCOUNT)},
    }

    # Back on the first account: its location is the Site's again, nothing to do, and the
    # other account's location is the one said.
    monkeypatch.setenv("RECONCILER_FLATPEAK_ACCOUNT_ID", first)
    monkeypatch.setenv("RECONCILER_FLATPEAK_API_KEY",
                       run.sims.call(lambda: flatpeak(run).accounts[first].api_key))
    code, out, err = run("plan", run.path, "--detailed-exitcode")
    assert code == 0, out + err
    assert f"{other} (Site townhouse-malmo)" in err and applied not in err, err
    assert "unmanaged" not in out, out


def test_an_inventory_without_the_account_is_read_as_before_and_records_it_at_the_next_apply(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(cloud_examples())
    first = os.environ["RECONCILER_FLATPEAK_ACCOUNT_ID"]
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    applied = location_of(run, first)
    # As an apply before the account was recorded wrote it.
    path = run.state_dir / "inventory.json"
    inventory = json.loads(path.read_text(encoding="utf-8"))
    inventory["flatpeak_locations"] = {applied: {"site": "townhouse-malmo"}}
    path.write_text(json.dumps(inventory), encoding="utf-8")

    code, out, err = run("plan", run.path, "--detailed-exitcode")
    assert code == 0 and "warning" not in err, out + err
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    assert remembered(run) == {
        applied: {"site": "townhouse-malmo", "account_sha256": sha256(first)}
    }
    use_other_account(run, monkeypatch)
    code, out, err = run("plan", run.path)
    assert code == 0 and f"{applied} (Site townhouse-malmo)" in err, out + err
