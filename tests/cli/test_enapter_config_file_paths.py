"""A `configOutput.file` is named the same way by the plan and by the apply, whatever the
state directory is given as: absolute, as the plan shows it, also when the state
directory is relative (the default, `.reconciler`). The apply's failure to write the file
named it relative to the working directory, so the user saw two paths for one file. The
CLI runs in this process, in a working directory of the test's own, against the
simulators of the Enapter example (`test_plan_apply.make_cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from cloud_examples import cloud_examples
from test_plan_apply import CliFactory

make_cli = test_plan_apply.make_cli  # the fixture, shared


def test_the_apply_names_a_config_file_it_cannot_write_as_the_plan_does(
        make_cli: CliFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = make_cli(cloud_examples(), env={"RECONCILER_STATE_DIR": ".reconciler"})
    state = tmp_path / ".reconciler"
    state.mkdir()
    (state / "secrets").write_text("a file where the config's directory should be")
    shown = str(state / "secrets" / "h2-lab-ucm.json")

    code, out, err = run("plan", run.path)
    assert code == 0, out + err
    assert f"its communication config is written to {shown} (mode 0600)" in out, out

    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 1, out + err
    assert (f"cannot write the communication config to {shown}: {state / 'secrets'} is not "
            "a directory; Enapter Cloud was not asked for a config") in out + err, out + err
    assert "cannot write the communication config to .reconciler" not in out + err, out + err

    (state / "secrets").unlink()
    code, out, err = run("apply", run.path, "--auto-approve", "-o", "json")
    assert code == 0, out + err
    outcomes = [o for o in json.loads(out)["outcomes"]
                if o["address"] == "device/h2-lab-ucm[enapter]"]
    assert outcomes[0]["detail"]["config"] == f"written to {shown}", outcomes
