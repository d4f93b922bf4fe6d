"""A cloud credential refused says which setting to change, whatever status its platform
refuses it with: Enapter answers an invalid or expired token with a 403 `invalid_header`
(platform-apis §2.1), Flatpeak a key it does not take with a 403 to the login; only
Novacore says 401. A 403 that refuses no token (a permission, here a fault) gets no note.
The CLI runs in this process against the simulators of the Enapter and Flatpeak examples
(`test_plan_apply.make_cli`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from cloud_examples import cloud_examples
from test_plan_apply import CliFactory

make_cli = test_plan_apply.make_cli  # the fixture, shared


@pytest.mark.parametrize("source", ["variable", "file"])
def test_an_enapter_token_refused_says_which_setting_to_change(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        source: str) -> None:
    run = make_cli(cloud_examples())
    token = os.environ["RECONCILER_ENAPTER_TOKEN"]
    if source == "file":
        token_file = tmp_path / "enapter-token"
        token_file.write_text(token + "\n")
        monkeypatch.delenv("RECONCILER_ENAPTER_TOKEN")
        monkeypatch.setenv("RECONCILER_ENAPTER_TOKEN_FILE", str(token_file))
        hint = (f"note: the Enapter token from RECONCILER_ENAPTER_TOKEN_FILE ({token_file}) "
                "was refused (expired or wrong): write a new Enapter token into it and run "
                "the command again")
    else:
        hint = ("note: the Enapter token from RECONCILER_ENAPTER_TOKEN was refused (expired "
                "or wrong): set it to a new Enapter token and run the command again")
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0, out + err
    # Revoked (expired) since: Enapter answers 403 invalid_header.
    run.sims.call(run.sims.sims.enapter.revoke_token, token)
    for command in (["plan", run.path], ["apply", run.path, "--auto-approve"]):
        code, out, err = run(*command)
        assert code == 1 and "HTTP 403: INVALID_HEADER" in err.upper(), err
        assert err.splitlines()[-1] == hint, err
        assert token not in out + err


def test_a_flatpeak_key_refused_says_which_setting_to_change(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(cloud_examples())
    monkeypatch.setenv("RECONCILER_FLATPEAK_API_KEY", "a-key-of-no-account")
    code, out, err = run("plan", run.path)
    assert code == 1 and "HTTP 403" in err, err
    assert err.splitlines()[-1] == (
        "note: the Flatpeak API key from RECONCILER_FLATPEAK_API_KEY was refused (expired or "
        "wrong): set it to a new Flatpeak API key and run the command again"), err
    assert "a-key-of-no-account" not in out + err


def test_an_enapter_403_that_refuses_no_token_gets_no_note(make_cli: CliFactory) -> None:
    run = make_cli(cloud_examples())
    enapter = run.sims.sims.enapter
    run.sims.call(enapter.faults.update, {"error_status": 403, "fail_next": 10})
    code, _, err = run("plan", run.path)
    assert code == 1 and "HTTP 403" in err, err
    assert "note:" not in err, err
