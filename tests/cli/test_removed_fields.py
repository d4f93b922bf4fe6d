"""A field deleted from a spec, end to end through `reconciler plan` and `apply` against the
simulators: a Zap connection setting declared at the last apply and no more is set back to
the Zap's default (the device added again), one set only when given is unset, and one with
no safe default (a Novacore manufacturer) is reported as no longer managed; the apply
converges and the next plan writes nothing. An inventory without the record behaves as
before it was kept."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import (  # tests/engine holds the helpers shared with the engine tests
    Doc,
    ThreadedSims,
    gateway,
    inverter,
    load,
    mqtt_battery,
    serial_of,
    site,
    write,
)

from reconciler.cli import main as cli

README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass
class Cli:
    sims: ThreadedSims
    fleet_dir: Path
    state_dir: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> tuple[int, str]:
        self.capsys.readouterr()
        code = cli.main(list(args))
        return code, self.capsys.readouterr().out

    def plan_json(self) -> dict[str, Any]:
        code, out = self("plan", str(self.fleet_dir), "-o", "json")
        assert code == 0, out
        document: dict[str, Any] = json.loads(out)
        return document

    def zap_connection(self, sn: str) -> dict[str, Any]:
        zap = self.sims.sims.zaps[serial_of(1)]
        found = self.sims.call(zap.device, sn)
        assert found is not None, f"{sn} is not on the Zap"
        return dict(found.connection)

    def writes(self) -> int:
        return self.sims.call(self.sims.sims.writes)


def fleet(tcp: dict[str, Any], *, username: bool = True, manufacturer: bool = True,
          check_serial: bool = False) -> list[Doc]:
    """Site s1, gateway gw, an inverter `inv` (SG1) with the given Modbus TCP settings (and
    its serial checked, or not) and an MQTT battery `bat` (FERRO1), with `username` or
    without."""
    inv = inverter("inv", "gw", "SG1", check_serial=check_serial)
    inv["spec"]["connection"]["modbusTcp"] = {"host": "192.168.1.60", "profile": "sungrow",
                                              **tcp}
    if not manufacturer:
        del inv["spec"]["manufacturer"]
    bat = mqtt_battery("bat", "gw", "FERRO1")
    if username:
        bat["spec"]["connection"]["mqtt"]["username"] = "extapi"
    return [site("s1"), gateway("gw", "s1", serial_of(1)), inv, bat]


@pytest.fixture(params=[False], ids=["unchecked"])
def run(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """The fleet applied, the inverter on port 1502; its serial checked with the
    parameter True (`indirect`)."""
    checked = bool(request.param)
    docs = fleet({"port": 1502, "unitId": 3}, check_serial=checked)
    fleet_dir = tmp_path / "sites"
    write(fleet_dir, docs)
    # The inverter answers at the Zap's default port too, where a reset adds it.
    at_default = load(fleet({"unitId": 3}, check_serial=checked))
    with ThreadedSims(load(docs), before_start=lambda s: s.seed_fleet(at_default)) as sims:
        variables = sims.env() | {"RECONCILER_STATE_DIR": str(tmp_path / "state"),
                                  "RECONCILER_SECRETS_DIR": str(tmp_path / "secrets")}
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        runner = Cli(sims, fleet_dir, tmp_path / "state", capsys)
        code, out = runner("apply", str(fleet_dir), "--auto-approve")
        assert code == 0, out
        assert runner.zap_connection("SG1")["port"] == 1502
        yield runner


def assert_converged(run: Cli) -> None:
    """The next plan has nothing to do or report, and writes nothing."""
    before = run.writes()
    code, out = run("plan", str(run.fleet_dir), "--detailed-exitcode")
    assert code == 0, out
    assert "No changes. The actual state matches the desired state." in out, out
    assert run.writes() == before


def test_a_zap_setting_deleted_from_the_spec_is_set_back_to_its_default(run: Cli) -> None:
    write(run.fleet_dir, fleet({"unitId": 3}))  # the `port: 1502` line deleted

    code, out = run("plan", str(run.fleet_dir), "--detailed-exitcode")
    assert code == 2, out
    assert ("spec.connection.modbusTcp.port was declared at the last apply and is removed "
            "from the spec: the Zap's default is set again") in out, out
    assert "port: 1502 -> 502" in out, out
    [change] = [c for c in run.plan_json()["changes"] if c["address"] == "device/inv[zap]"]
    assert change["actions"] == ["delete", "create"]
    assert change["reason"] == "field_removed"
    assert change["diff"] == [{"op": "change", "path": "port", "old": 1502, "new": 502}]

    code, out = run("apply", str(run.fleet_dir), "--auto-approve")
    assert code == 0, out
    assert run.zap_connection("SG1")["port"] == 502
    assert run.zap_connection("SG1")["unit_id"] == 3
    assert_converged(run)


@pytest.mark.parametrize("run", [True], ids=["checked"], indirect=True)
def test_a_checked_serial_is_read_where_a_deleted_setting_adds_the_device_again(
        run: Cli) -> None:
    """The serial is read at the default port before the device is removed from 1502, as
    for any other replace, instead of the plan saying it is not read yet."""
    write(run.fleet_dir, fleet({"unitId": 3}, check_serial=True))  # `port: 1502` deleted

    code, out = run("plan", str(run.fleet_dir), "--detailed-exitcode")
    assert code == 2, out
    assert "not read" not in out, out
    [verify] = [c for c in run.plan_json()["changes"] if c["address"] == "device/inv[identity]"]
    assert verify["reason"] == "identity_check"
    assert "matches" in verify["message"], verify

    code, out = run("apply", str(run.fleet_dir), "--auto-approve")
    assert code == 0, out
    assert run.zap_connection("SG1")["port"] == 502
    assert_converged(run)


def test_a_setting_set_only_when_given_deleted_from_the_spec_is_unset(run: Cli) -> None:
    write(run.fleet_dir, fleet({"port": 1502, "unitId": 3}, username=False))

    code, out = run("plan", str(run.fleet_dir), "--detailed-exitcode")
    assert code == 2, out
    assert "spec.connection.mqtt.username was declared at the last apply" in out, out
    assert "- username = " in out, out

    code, out = run("apply", str(run.fleet_dir), "--auto-approve")
    assert code == 0, out
    assert "username" not in run.zap_connection("FERRO1")
    assert_converged(run)


def test_a_field_with_no_default_deleted_from_the_spec_is_reported_until_applied(
        run: Cli) -> None:
    write(run.fleet_dir, fleet({"port": 1502, "unitId": 3}, manufacturer=False))

    code, out = run("plan", str(run.fleet_dir), "--detailed-exitcode")
    assert code == 0, out  # nothing to change: a report, as an unmanaged object is
    assert ("! unmanaged: spec.manufacturer of Device inv was declared at the last apply "
            "and is removed from the spec; its value on Novacore is left as it is") in out, out
    document = run.plan_json()
    assert document["format_version"] == "1.6"
    [entry] = document["unmanaged"]
    assert entry["field"] == "spec.manufacturer"
    assert (entry["platform"], entry["device"], entry["site"]) == ("novacore", "inv", "s1")
    assert entry["prunable"] is False
    # Every key of the entry is named in the README's JSON plan section.
    text = " ".join(README.read_text(encoding="utf-8").split())
    part = text[text.index("The JSON plan (`-o json`"):text.index("`reconciler apply -o json`")]
    assert all(f"`{key}`" in part for key in entry), entry

    before = run.writes()
    code, out = run("apply", str(run.fleet_dir), "--auto-approve")
    assert code == 0, out
    assert run.writes() == before, "the value is left as it is"
    assert_converged(run)


def test_a_field_with_no_default_is_reported_until_an_apply_covers_its_resource(
        run: Cli) -> None:
    """The line is shown until an apply that covers the resource records it, the last time
    by that apply's plan: an apply of another resource (`--target`) keeps it, and after the
    apply of the whole fleet no plan says it again, the value staying on Novacore (as the
    README says)."""
    write(run.fleet_dir, fleet({"port": 1502, "unitId": 3}, manufacturer=False))
    said = "! unmanaged: spec.manufacturer of Device inv was declared at the last apply"

    code, out = run("apply", str(run.fleet_dir), "--auto-approve", "--target", "device/bat")
    assert code == 0 and said not in out, out  # not the selection's
    code, out = run("plan", str(run.fleet_dir))
    assert code == 0 and said in out, out

    code, out = run("apply", str(run.fleet_dir), "--auto-approve")
    assert code == 0 and said in out, out
    assert_converged(run)
    novacore = run.sims.sims.novacore
    assert [d.manufacturer for d in novacore.devices.values() if d.name == "inv"] == ["Sungrow"]
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert ("an apply that covers the resource (a `--target` that leaves it out does not)"
            in text)


def test_a_field_deleted_with_no_record_of_the_last_apply_is_not_compared(run: Cli) -> None:
    # An inventory written before the record was kept.
    path = run.state_dir / "inventory.json"
    inventory = json.loads(path.read_text(encoding="utf-8"))
    assert recorded_fields(inventory.pop("declared_fields"), "device/inv")
    path.write_text(json.dumps(inventory), encoding="utf-8")
    write(run.fleet_dir, fleet({"unitId": 3}, manufacturer=False))

    assert_converged(run)
    assert run.zap_connection("SG1")["port"] == 1502
    # The apply records it, from then on.
    code, out = run("apply", str(run.fleet_dir), "--auto-approve")
    assert code == 0, out
    recorded = recorded_fields(
        json.loads(path.read_text(encoding="utf-8"))["declared_fields"], "device/inv"
    )
    assert "connection.modbusTcp.port" not in recorded
    assert "connection.modbusTcp.unitId" in recorded


def recorded_fields(record: dict[str, Any], address: str) -> list[str]:
    """The fields the inventory records for `address` (grouped by the set declared)."""
    [fields] = [g["fields"] for g in record["groups"] if address in g["resources"]]
    return list(fields)
