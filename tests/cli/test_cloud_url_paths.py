"""A cloud URL set with a path the API does not have (`https://host/api/v1`) makes every
call a 404: the plan names the URL's setting to check, not only the organisation, site or
login that was not found. The CLI runs in this process against the simulators of the
examples (`test_plan_apply.make_cli`), each cloud's URL given a path."""

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


def _hint(variable: str, url: str) -> str:
    return (f"; {variable} has the path /api/v1, which comes before each of the API's paths: "
            f"check it is the API's base URL (usually the host alone, {url})")


def test_a_novacore_url_with_a_path_is_named_beside_the_org_id(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(cloud_examples())
    url = os.environ["RECONCILER_NOVACORE_URL"]
    monkeypatch.setenv("RECONCILER_NOVACORE_URL", url + "/api/v1")
    code, out, err = run("plan", run.path, "--no-color")
    assert code == 1, out + err
    [line] = [line for line in err.splitlines() if "site/townhouse-malmo[novacore]" in line]
    assert (f"(novacore.list_sites /api/v1/sites: HTTP 404: not_found: Not Found"
            f"{_hint('RECONCILER_NOVACORE_URL', url)}); nothing is claimed or provisioned in "
            "it. Check RECONCILER_NOVACORE_URL, or correct `spec.novacore.orgId` of Site "
            "townhouse-malmo, or give the token's identity a role in org-4f2a9c71") in line


def test_a_novacore_url_without_a_path_names_the_org_id_alone(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(cloud_examples())
    url = os.environ["RECONCILER_NOVACORE_URL"]
    monkeypatch.setenv("RECONCILER_NOVACORE_URL", url + "/")
    run.sims.call(run.sims.sims.novacore.faults.update, {"error_status": 404, "fail_next": 1000})
    code, out, err = run("plan", run.path, "--no-color")
    assert code == 1, out + err
    [line] = [line for line in err.splitlines() if "site/townhouse-malmo[novacore]" in line]
    assert "nothing is claimed or provisioned in it. Correct `spec.novacore.orgId`" in line
    assert "RECONCILER_NOVACORE_URL" not in line


def test_an_enapter_url_with_a_path_is_named_in_what_is_deferred(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(cloud_examples())
    url = os.environ["RECONCILER_ENAPTER_URL"]
    monkeypatch.setenv("RECONCILER_ENAPTER_URL", url + "/api/v1/")
    code, out, _ = run("plan", run.path, "--no-color")
    assert code == 0, out  # deferred, as any site list not read
    lines = out.splitlines()
    said = lines[lines.index("  … site/h2-lab[enapter] is deferred") + 1].strip()
    assert said == ("its state is not known; deferred: Enapter sites: enapter.list_sites "
                    "/api/v1/v3/sites: HTTP 404: NOT_FOUND: Not Found"
                    f"{_hint('RECONCILER_ENAPTER_URL', url)}"), said


def test_a_flatpeak_url_with_a_path_is_named_not_the_account(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_cli(cloud_examples())
    url = os.environ["RECONCILER_FLATPEAK_URL"]
    monkeypatch.setenv("RECONCILER_FLATPEAK_URL", url + "/api/v1")
    code, out, err = run("plan", run.path, "--no-color")
    assert (code, out) == (1, ""), out + err
    assert err.splitlines() == [
        "error: Flatpeak's login was not found: flatpeak.list_locations /api/v1/login: "
        f"HTTP 404: not_found: Not Found{_hint('RECONCILER_FLATPEAK_URL', url)}"], err
