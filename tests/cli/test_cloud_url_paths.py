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


def test_an_enapter_url_with_a_path_blocks_its_sites_and_fails_the_ci_gate(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Deferred, as a site list not read, the plan exited 0 without --detailed-exitcode:
    # a configuration error passed a CI gate as if the cloud were only down.
    run = make_cli(cloud_examples())
    url = os.environ["RECONCILER_ENAPTER_URL"]
    monkeypatch.setenv("RECONCILER_ENAPTER_URL", url + "/api/v1/")
    for args in ((), ("--detailed-exitcode",)):
        code, out, err = run("plan", run.path, "--no-color", *args)
        assert code == 1, out + err
    assert "[BLOCKED]" in out, out
    [line] = [line for line in err.splitlines() if "site/h2-lab[enapter]" in line]
    assert line == (
        "error: site/h2-lab[enapter]: Enapter Cloud's site list was not found "
        "(enapter.list_sites /api/v1/v3/sites: HTTP 404: NOT_FOUND: Not Found"
        f"{_hint('RECONCILER_ENAPTER_URL', url)}); nothing is created or provisioned in "
        "Enapter Cloud. Check RECONCILER_ENAPTER_URL: every token has a site list, so a 404 "
        "says the URL is not the Enapter Cloud API's base URL (https://api.enapter.com)"), err
    assert any(line.endswith("wait on these (shown [BLOCKED] in the plan)")
               for line in err.splitlines()), err


def test_an_enapter_url_of_another_server_blocks_its_sites_too(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # No path to name: the 404 of the site list alone says the URL is not the API's.
    run = make_cli(cloud_examples())
    run.sims.call(run.sims.sims.enapter.faults.update, {"error_status": 404, "fail_next": 1000})
    code, out, err = run("plan", run.path, "--no-color", "--detailed-exitcode")
    assert code == 1, out + err
    [line] = [line for line in err.splitlines() if "site/h2-lab[enapter]" in line]
    assert "/v3/sites: HTTP 404" in line, line
    assert "has the path" not in line, line
    assert line.endswith("Check RECONCILER_ENAPTER_URL: every token has a site list, so a 404 "
                         "says the URL is not the Enapter Cloud API's base URL "
                         "(https://api.enapter.com)"), line


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
