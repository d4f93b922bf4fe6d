"""A `configOutput.file` that names a directory (`secrets/`, or a directory's name) blocks
the change that would write the communication config there, at plan time, naming the
field and a file to name instead; it is not called a missing file that the apply then
fails to write. Nothing is provisioned whose config would go nowhere. The CLI runs in this
process against the simulators of the Enapter example (`test_plan_apply.make_cli`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from cloud_examples import cloud_examples
from test_plan_apply import Cli, CliFactory

make_cli = test_plan_apply.make_cli  # the fixture, shared


def with_config_file(docs: list[dict[str, Any]], file: str) -> list[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] == "Device" and doc["metadata"]["name"] == "h2-lab-ucm":
            doc["spec"]["enapter"]["configOutput"]["file"] = file
    return docs


def hardware_ucms(run: Cli) -> int:
    devices = run.sims.call(lambda: list(run.sims.sims.enapter.devices.values()))
    return sum(d.type == "HARDWARE_UCM" for d in devices)


def test_a_config_file_naming_a_directory_blocks_the_provisioning_at_plan_time(
        make_cli: CliFactory) -> None:
    run = make_cli(with_config_file(cloud_examples(), "secrets/"))
    (run.state_dir / "secrets").mkdir(parents=True)
    reason = (f"configOutput.file names {run.state_dir / 'secrets'}, which is a directory: "
              "name the file the communication config is written to, e.g. "
              "'secrets/h2-lab-ucm.json'")
    code, out, err = run("plan", run.path)
    assert code == 1, out + err
    assert f"error: device/h2-lab-ucm[enapter]: not provisioned in Enapter Cloud: {reason}" \
        in err, err
    assert "is missing" not in out, out
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 1, out + err
    assert hardware_ucms(run) == 0, "provisioned, its config would go nowhere"

    run.rewrite(with_config_file(cloud_examples(), "secrets/h2-lab-ucm.json"))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    assert hardware_ucms(run) == 1

    # A directory named without the slash, for a device in place: the update is blocked.
    (run.state_dir / "ucm-configs").mkdir()
    run.rewrite(with_config_file(cloud_examples(), "ucm-configs"))
    code, out, err = run("plan", run.path)
    assert code == 1, out + err
    assert ("error: device/h2-lab-ucm[enapter]: configOutput.file names "
            f"{run.state_dir / 'ucm-configs'}, which is a directory") in err, err
    assert "'ucm-configs/h2-lab-ucm.json'" in err, err
