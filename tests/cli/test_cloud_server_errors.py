"""A cloud's server error (5xx) reads alike on every platform: the call, the status, the
platform's error code and message from its error envelope (Enapter's `errors` list,
Novacore's `error`, Flatpeak's error object), then what follows (deferred, after the
attempts made), never the envelope's raw JSON. The CLI runs in this process against the
simulators of the cloud examples (`test_plan_apply.make_cli`), whose faults answer in
each platform's envelope."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from cloud_examples import cloud_examples
from test_plan_apply import CliFactory

make_cli = test_plan_apply.make_cli  # the fixture, shared

FAULT = "Service temporarily unavailable (simulated fault)"


@pytest.mark.parametrize(("cloud", "deferred", "said"), [
    ("enapter", "site/h2-lab[enapter]",
     "Enapter sites: enapter.list_sites /v3/sites: HTTP 503: UNAVAILABLE: "),
    ("novacore", "site/townhouse-malmo[novacore]",
     "novacore.list_sites /sites: HTTP 503: unavailable: "),
    ("flatpeak", "site/townhouse-malmo[flatpeak]",
     "Flatpeak locations: flatpeak.list_locations /login: HTTP 503: unavailable: "),
])
def test_a_server_error_says_the_platforms_code_and_message_not_its_json(
        make_cli: CliFactory, cloud: str, deferred: str, said: str) -> None:
    run = make_cli(cloud_examples())
    sim = getattr(run.sims.sims, cloud)
    run.sims.call(sim.faults.update, {"error_status": 503, "fail_next": 1000})
    code, out, err = run("plan", run.path, "--no-color")
    assert code == 0, out + err
    [line] = [line for line in out.splitlines() if deferred in line]
    message = out.splitlines()[out.splitlines().index(line) + 1].strip()
    assert f"{said}{FAULT} (gave up after 3 attempts)" in message, message
    assert "{" not in message and '"' not in message, message
