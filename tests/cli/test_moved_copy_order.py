"""A Device moved from one declared Zap gateway to another (its `gatewayRef` edited, both
gateways still declared), through the CLI against the simulators: `apply --prune` removes
the copy the move left on the old gateway's Zap only once the device is on the new one.
While the new Zap is offline (same site or another), the device's add there is blocked,
or it is outside the selection, the removal is deferred; when the add fails during the
apply, the removal is skipped. Taken off first, the device would be on no Zap."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import Doc, gateway, mqtt_battery, serial_of, standard_site
from test_plan_apply import Cli, CliFactory, make_cli

from reconciler.sim.fleet import SimFleet
from reconciler.sim.lan import MqttDevice

__all__ = ["make_cli"]

BATTERY = "FERRO-0001"
S1, S2, SPARE = serial_of(1), serial_of(2), serial_of(3)
# Where the battery's copy is found once it moved: on s1-zap, the gateway it left.
COPY = f"device/s1-zap.{BATTERY}[zap]"
ADD = "device/bat[zap]"


def fleet(to: str, password_from: dict[str, str] | None = None) -> list[Doc]:
    """Sites s1 (gateways s1-zap and s1-spare) and s2 (s2-zap), the battery behind `to`."""
    return [*standard_site(1), gateway("s1-spare", "s1", SPARE), *standard_site(2),
            mqtt_battery("bat", to, BATTERY, password_from=password_from)]


def rewired(sims: SimFleet) -> None:
    """The battery answers on site s2's network too: re-wired there with its move."""
    sims.lans["s2"].mqtt_devices[("192.168.1.70", 1883, "ferroamp")] = MqttDevice(
        BATTERY, "ferroamp")


def moved(make_cli: CliFactory, to: str, *, wired: bool = True, **options: object) -> Cli:
    """The battery applied on s1-zap, then moved to gateway `to` in the files; `wired`:
    it answers on site s2's network too."""
    run = make_cli(fleet("s1-zap"), before_start=rewired if wired else None, **options)
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    run.rewrite(fleet(to))
    return run


def zap_devices(run: Cli, serial: str) -> list[str]:
    return sorted(run.sims.call(lambda: list(run.sims.sims.zaps[serial].devices)))


def offline(run: Cli, serial: str, mode: str = "refuse") -> None:
    run.sims.run(lambda: run.sims.sims.zaps[serial].set_offline(mode))


def planned(run: Cli, *args: str) -> dict[str, dict[str, object]]:
    code, out, _ = run("plan", run.path, "--prune", "-o", "json", *args)
    assert code == 0, out
    return {c["address"]: c for c in json.loads(out)["changes"]}


@pytest.mark.parametrize(("to", "serial"), [("s1-spare", SPARE), ("s2-zap", S2)],
                         ids=["same-site", "other-site"])
def test_the_copy_stays_while_the_new_gateway_is_offline(
        make_cli: CliFactory, to: str, serial: str) -> None:
    run = moved(make_cli, to)
    offline(run, serial)
    changes = planned(run)
    copy = changes[COPY]
    assert (copy["actions"], copy["deferred_actions"]) == (["defer"], ["delete"]), copy
    assert ADD in copy["depends_on"]

    run("apply", run.path, "--prune", "--auto-approve")
    assert BATTERY in zap_devices(run, S1), "kept: the device is on no other Zap yet"

    offline(run, serial, "online")
    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert out.index(f"✓ {ADD}") < out.index(f"✓ {COPY}")
    assert BATTERY not in zap_devices(run, S1)
    assert BATTERY in zap_devices(run, serial)


def test_the_copy_stays_when_the_move_was_applied_while_the_new_gateway_was_offline(
        make_cli: CliFactory) -> None:
    """The move applied without --prune while s2-zap was offline (the device never got
    there), then `apply --prune` with it offline still: the copy is all the device has."""
    run = moved(make_cli, "s2-zap")
    offline(run, S2)
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    assert BATTERY in zap_devices(run, S1)

    run("apply", run.path, "--prune", "--auto-approve")
    assert BATTERY in zap_devices(run, S1)
    assert run.sims.call(lambda: run.sims.sims.zaps[S1].requests["DELETE /api/devices/{sn}"]) \
        == 0


@pytest.mark.parametrize("to", ["s1-spare", "s2-zap"], ids=["same-site", "other-site"])
def test_the_copy_stays_when_the_add_to_the_new_gateway_fails(
        make_cli: CliFactory, to: str) -> None:
    """The new Zap answers the add with an error: 503, the battery not answering on the
    network (same site: its broker down), or the serial of another device (other site:
    not re-wired there, the Zap reads the serial of what answers at that address). The
    removal from the old Zap, ordered after the add, is skipped."""
    run = moved(make_cli, to, wired=False, env={"RECONCILER_RETRIES": "2"})
    if to == "s1-spare":
        broker = ("192.168.1.70", 1883, "ferroamp")
        run.sims.call(lambda: setattr(run.sims.sims.lans["s1"].mqtt_devices[broker],
                                      "online", False))
    changes = planned(run)
    assert changes[COPY]["actions"] == ["delete"]
    assert ADD in changes[COPY]["depends_on"]

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 1, out
    assert f"failed: {ADD}:" in out
    assert f"skipped: {COPY}: not attempted" in out
    assert BATTERY in zap_devices(run, S1), "kept: the add did not succeed"


def test_the_copy_stays_while_the_add_to_the_new_gateway_is_blocked(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The battery's password cannot be had: its add to the new Zap is blocked, and the
    removal from the old one waits with it."""
    secret = {"env": "BAT_PASSWORD"}
    run = make_cli(fleet("s1-zap", secret), env={"BAT_PASSWORD": "pw-test-only"})
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(fleet("s1-spare", secret))
    monkeypatch.delenv("BAT_PASSWORD")
    _, out, _ = run("plan", run.path, "--prune", "-o", "json")
    copy = {c["address"]: c for c in json.loads(out)["changes"]}[COPY]
    assert (copy["actions"], copy["deferred_actions"]) == (["defer"], ["delete"]), copy
    assert copy["message"].endswith(f"deferred: its device moves first, and {ADD} is blocked")

    run("apply", run.path, "--prune", "--auto-approve")
    assert BATTERY in zap_devices(run, S1)


def test_a_selection_without_the_new_gateway_leaves_the_copy(make_cli: CliFactory) -> None:
    """`--target gateway/s1-zap` takes the copy on its Zap, not the battery's add to
    s2-zap: applied alone, the removal would run at once; it is deferred instead."""
    run = moved(make_cli, "s2-zap")
    changes = planned(run, "--target", "gateway/s1-zap")
    assert ADD not in changes
    assert changes[COPY]["actions"] == ["defer"]
    assert "which is outside the selection (--target, --exclude)" in changes[COPY]["message"]
    run("apply", run.path, "--prune", "--auto-approve", "--target", "gateway/s1-zap")
    assert BATTERY in zap_devices(run, S1)

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert zap_devices(run, S1) == ["P1M0001", "SG0001"]
    assert BATTERY in zap_devices(run, S2)
