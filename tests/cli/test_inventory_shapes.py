"""The state directory's inventory.json through plan and apply: an entry of a shape no
version of the reconciler wrote is damage, said naming where it is and what it holds, and
the file is left as it is; the shapes earlier versions wrote are read as before."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import serial_of, standard_site
from test_plan_apply import Cli, CliFactory, make_cli

__all__ = ["make_cli"]  # the fixture, used by name

SERIAL = serial_of(1)
Edit = Callable[[dict[str, Any]], None]


def _applied(make_cli: CliFactory) -> tuple[Cli, Path, dict[str, Any]]:
    """One Site applied: the CLI, its inventory file and what the file holds."""
    run = make_cli(standard_site(1))
    assert run("apply", run.path, "--auto-approve")[0] == 0
    path = run.state_dir / "inventory.json"
    return run, path, json.loads(path.read_text(encoding="utf-8"))


def _set(section: str, key: str, value: Any) -> Edit:
    return lambda data: data.setdefault(section, {}).__setitem__(key, value)


_FILE = {"path": "/nowhere/ucm.json", "inode": 1, "mtime_ns": 2, "size": 3,
         "device_id": "dev-1"}

DAMAGE: dict[str, tuple[Edit, str]] = {
    "policy-unknown": (_set("gateways", SERIAL, "Bogus"),
                       f"gateways[{SERIAL!r}] is 'Bogus', not a deletion policy (Orphan or "
                       "Release)"),
    "policy-a-list": (_set("gateways", SERIAL, ["Release"]),
                      f"gateways[{SERIAL!r}] is ['Release'], not a deletion policy (Orphan or "
                      "Release)"),
    "org-a-number": (_set("orgs", SERIAL, 7),
                     f"orgs[{SERIAL!r}] is 7, not an organisation id (text)"),
    "site-id-a-list": (lambda data: data["sites"]["s1"].update(id=[data["sites"]["s1"]["id"]]),
                       "sites['s1']['id'] is ['"),
    "site-not-an-object": (_set("sites", "s1", "org-alpha"),
                           "sites['s1'] is 'org-alpha', not an object"),
    "zap-without-url": (lambda data: data["zaps"][SERIAL].pop("url"),
                        f"zaps[{SERIAL!r}] has no 'url'"),
    "location-account-a-number": (_set("flatpeak_locations", "loc-1",
                                       {"site": "s1", "account_sha256": 5}),
                                  "flatpeak_locations['loc-1']['account_sha256'] is 5, not text"),
    "config-file-inode-text": (_set("enapter_config_files", "/nowhere/ucm.json",
                                    {**_FILE, "inode": "1"}),
                               "enapter_config_files['/nowhere/ucm.json']['inode'] is '1', not "
                               "a whole number"),
    "config-file-size-true": (_set("enapter_config_files", "/nowhere/ucm.json",
                                   {**_FILE, "size": True}),
                              "enapter_config_files['/nowhere/ucm.json']['size'] is True, not "
                              "a whole number"),
    "pending-written-not-a-file": (
        _set("enapter_config_files_pending", "/nowhere/.ucm.json.tmp",
             {"tmp": "/nowhere/.ucm.json.tmp", "path": "/nowhere/ucm.json",
              "device_id": "dev-1", "owner": "1-x", "written": {"path": "/nowhere/ucm.json"}}),
        "enapter_config_files_pending['/nowhere/.ucm.json.tmp']['written'] has no 'inode'"),
    "declared-fields-text": (
        lambda data: data["declared_fields"]["groups"][0].update(fields="spec.zap"),
        "declared_fields['groups'][0]['fields'] is 'spec.zap', not a list of text"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_an_inventory_entry_of_a_shape_never_written_stops_the_run_and_is_left_as_it_is(
        make_cli: CliFactory, damage: str) -> None:
    """Read as it was, such an entry was left out or made text of: a gateway's deletion
    policy or a Site's site forgotten, or compared as nonsense, without a word, and the
    file then written over without it."""
    run, path, data = _applied(make_cli)
    edit, says = DAMAGE[damage]
    edit(data)
    damaged = json.dumps(data).encode()
    path.write_bytes(damaged)
    run.sims.call(run.sims.sims.reset_counts)
    for command in (("plan", run.path), ("apply", run.path, "--auto-approve")):
        code, out, err = run(*command)
        assert (code, out) == (1, ""), (command, out, err)
        assert err.startswith(f"error: cannot read {path}: {says}"), (command, err)
        assert "It holds the deletion policy" in err and "Traceback" not in err
    assert path.read_bytes() == damaged, "left for a look"
    assert run.sims.call(run.sims.sims.writes) == 0


def _as_first_written(data: dict[str, Any]) -> None:
    """As the first version wrote it: the deletion policies alone."""
    for section in [name for name in data if name != "gateways"]:
        del data[section]


def _declared_per_resource(data: dict[str, Any]) -> None:
    """The fields declared, one entry per resource, before they were grouped."""
    data["declared_fields"] = {
        resource: {"fields": group["fields"]}
        for group in data["declared_fields"]["groups"] for resource in group["resources"]
    }


def _older_config_records(data: dict[str, Any]) -> None:
    """A config file's record keyed by its device's id, without `device_id`, `deleting` or
    `replacing`; a pending one with its identity at the top, before `tmp` was recorded."""
    data["enapter_config_files"] = {
        "dev-1": {"path": "/nowhere/ucm.json", "inode": 1, "mtime_ns": 2, "size": 3}}
    data["enapter_config_files_pending"] = {
        "/nowhere/other.json": {**_FILE, "path": "/nowhere/other.json", "deleting": "",
                                "replacing": False}}


def _deleting_null(data: dict[str, Any]) -> None:
    """A config file's record marked `deleting: null`, as the operator's release of a
    Device whose Site went first writes it."""
    data["enapter_config_files"] = {
        "/nowhere/ucm.json": {"path": "/nowhere/ucm.json", "inode": 1, "mtime_ns": 2,
                              "size": 3, "device_id": "dev-1", "deleting": None,
                              "replacing": False}}


def _location_without_account(data: dict[str, Any]) -> None:
    data["flatpeak_locations"] = {"loc-1": {"site": "s1"}}


@pytest.mark.parametrize("older", [_as_first_written, _declared_per_resource,
                                   _older_config_records, _location_without_account,
                                   _deleting_null],
                         ids=lambda edit: edit.__name__.strip("_"))
def test_an_inventory_in_a_shape_an_earlier_version_wrote_is_read(
        make_cli: CliFactory, older: Edit) -> None:
    run, path, data = _applied(make_cli)
    older(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    code, out, err = run("plan", run.path, "--detailed-exitcode")
    assert (code, err) == (0, ""), out + err
    code, out, err = run("apply", run.path, "--auto-approve")
    assert code == 0 and "error" not in err, out + err
