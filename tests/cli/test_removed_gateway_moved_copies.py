"""A device moved to another gateway in the same edit that removes the gateway it was on
(deletionPolicy Release), through the CLI against the simulators: `apply --prune` takes
the copy the move left off the removed gateway's Zap before releasing it, as it does when
the move and the removal are two commits; without `--prune` the copy is reported; a Zap
that cannot be read is released all the same, the plan saying a copy may stay on it. A
device nobody declares stays on the Zap, as the CLI leaves those of a removed gateway."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from simworld import Doc, gateway, inverter, owner, p1_meter, serial_of, site
from test_plan_apply import Cli, CliFactory, make_cli

__all__ = ["make_cli"]

HOME, OTHER = serial_of(1), serial_of(2)
COPY = "device/home-zap.SG0001[zap]"
RELEASE = f"gateway/{HOME}[novacore]"
REPORTED = ("inverter SG0001 on gateway home-zap is declared on gateway other-zap (Device "
            "inv), not here; use --prune to remove it from this gateway")


def before() -> list[Doc]:
    """Gateways home-zap (deletionPolicy Release) and other-zap at one site; the inverter
    SG0001 and the P1 meter P1M0001 on home-zap."""
    home = gateway("home-zap", "home", HOME)
    home["spec"]["deletionPolicy"] = "Release"
    return [site("home"), home, gateway("other-zap", "home", OTHER),
            inverter("inv", "home-zap", "SG0001"), p1_meter("p1", "home-zap", "P1M0001")]


def moved_and_removed(docs: list[Doc]) -> list[Doc]:
    """One edit: the inverter moved to other-zap, home-zap and the P1 meter deleted (the
    meter's copy on home-zap's Zap is then declared by nobody)."""
    after = [copy.deepcopy(d) for d in docs if d["metadata"]["name"] not in ("home-zap", "p1")]
    next(d for d in after if d["metadata"]["name"] == "inv")["spec"]["gatewayRef"] = "other-zap"
    return after


def applied(make_cli: CliFactory) -> Cli:
    run = make_cli(before())
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    run.rewrite(moved_and_removed(before()))
    return run


def zap_devices(run: Cli, serial: str) -> list[str]:
    return sorted(run.sims.call(lambda: list(run.sims.sims.zaps[serial].devices)))


def test_prune_removes_the_moved_copy_before_releasing_the_removed_gateway(
        make_cli: CliFactory) -> None:
    run = applied(make_cli)
    code, out, err = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out
    # The simulators' URL overrides name it: used to reach its Zap, not warned about.
    assert f"no declared gateway has serial {HOME}" not in err, err
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    moved = changes[COPY]
    assert (moved["actions"], moved["reason"], moved["site"]) == (["delete"], "moved", "home")
    assert "declared on gateway other-zap (Device inv)" in moved["message"]
    assert COPY in changes[RELEASE]["depends_on"]
    assert "device/home-zap.P1M0001[zap]" not in changes, "nobody declares it: it stays"

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert out.index(COPY) < out.index(RELEASE)
    assert zap_devices(run, HOME) == ["P1M0001"]
    assert zap_devices(run, OTHER) == ["SG0001"]
    assert owner(run.sims.sims, HOME) is None

    # Released, the gateway is forgotten: the next plan has nothing to do and no longer
    # reads its Zap.
    run.sims.call(run.sims.sims.reset_counts)
    code, out, err = run("plan", run.path, "--prune", "--detailed-exitcode")
    assert code == 0, out
    assert run.sims.call(run.sims.sims.zaps[HOME].count) == 0
    assert f"no declared gateway has serial {HOME} (did you mean {OTHER}?); its URL is not used" \
        in err, err


def test_without_prune_the_copy_is_reported_and_a_later_prune_removes_it(
        make_cli: CliFactory) -> None:
    run = applied(make_cli)
    code, out, _ = run("plan", run.path)
    assert code == 0, out
    assert f"! unmanaged: {REPORTED}" in out
    assert "P1M0001 on gateway" not in out, "nobody declares it: not reported"

    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    assert zap_devices(run, HOME) == ["P1M0001", "SG0001"]
    assert owner(run.sims.sims, HOME) is not None

    code, out, _ = run("plan", run.path, "-o", "json")
    [entry] = [u for u in json.loads(out)["unmanaged"] if u["id"] == "SG0001"]
    assert entry == {"platform": "zap", "gateway": "home-zap", "id": "SG0001",
                     "description": REPORTED, "prunable": True}

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert zap_devices(run, HOME) == ["P1M0001"]
    assert owner(run.sims.sims, HOME) is None


def test_a_removed_gateway_whose_zap_cannot_be_read_is_released_saying_a_copy_may_stay(
        make_cli: CliFactory) -> None:
    run = applied(make_cli)
    run.sims.run(lambda: run.sims.sims.zaps[HOME].set_offline("refuse"))
    code, out, _ = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    assert COPY not in changes
    release = changes[RELEASE]
    assert release["actions"] == ["release"]
    assert "the Zap of gateway home-zap could not be read" in release["message"]
    assert "a device moved from it to another Gateway may still be configured on it" in (
        release["message"])

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert owner(run.sims.sims, HOME) is None
    run.sims.run(lambda: run.sims.sims.zaps[HOME].set_offline("online"))
    assert zap_devices(run, HOME) == ["P1M0001", "SG0001"]


def test_a_removed_gateway_whose_zap_an_older_inventory_does_not_hold_says_a_copy_may_stay(
        make_cli: CliFactory) -> None:
    run = applied(make_cli)
    inventory = run.state_dir / "inventory.json"
    data = json.loads(inventory.read_text())
    assert data.pop("zaps")[HOME]["gateway"] == "home-zap"
    inventory.write_text(json.dumps(data))  # as an apply before the Zaps were kept wrote it

    code, out, _ = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    assert COPY not in changes
    assert changes[RELEASE]["message"].endswith(
        "its Zap was not read, the state directory's inventory holding no URL for it: a device "
        "moved from it to another Gateway may still be configured on it; remove it there by "
        "hand")
    run.sims.call(run.sims.sims.reset_counts)
    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert owner(run.sims.sims, HOME) is None
    assert run.sims.call(run.sims.sims.zaps[HOME].count) == 0, "its Zap is not known"


def test_the_copy_is_removed_from_the_removed_gateway_when_its_name_extends_a_declared_one(
        make_cli: CliFactory) -> None:
    """Gateway `zap.attic` removed, its inverter moved to gateway `zap`: the copy's change
    (`device/zap.attic.SG0001[zap]`) is of the removed gateway, not of `zap`, which keeps
    the device."""
    attic = gateway("zap.attic", "home", HOME)
    attic["spec"]["deletionPolicy"] = "Release"
    docs = [site("home"), attic, gateway("zap", "home", OTHER),
            inverter("inv", "zap.attic", "SG0001")]
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    moved = [copy.deepcopy(d) for d in docs if d["metadata"]["name"] != "zap.attic"]
    moved[-1]["spec"]["gatewayRef"] = "zap"
    run.rewrite(moved)

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert "device/zap.attic.SG0001[zap] delete" in out
    assert zap_devices(run, HOME) == []
    assert zap_devices(run, OTHER) == ["SG0001"]
    assert owner(run.sims.sims, HOME) is None


def test_a_removed_gateway_whose_address_reaches_another_zap_is_released_all_the_same(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The removed gateway's remembered address reaches the other Zap now (a DHCP lease
    moved): the devices there are that Zap's, declared on it, not copies to remove; the
    gateway is released, saying a copy may stay on its own Zap."""
    docs = [d for d in before() if d["metadata"]["name"] != "p1"]
    run = make_cli(docs)
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(moved_and_removed(docs))
    assert run("apply", run.path, "--auto-approve")[0] == 0  # the inverter on both Zaps
    assert zap_devices(run, OTHER) == ["SG0001"]
    urls = run.sims.sims.gateway_urls
    monkeypatch.setenv("RECONCILER_GATEWAY_URLS", f"{HOME}={urls[OTHER]}")

    code, out, _ = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    assert COPY not in changes
    message = changes[RELEASE]["message"]
    assert (f"the Zap of gateway home-zap could not be read (the gateway at {urls[OTHER]} "
            f"reports serial '{OTHER}', not '{HOME}'): a device moved from it to another "
            "Gateway may still be configured on it") in message, message
    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert owner(run.sims.sims, HOME) is None
    assert zap_devices(run, OTHER) == ["SG0001"]
    assert zap_devices(run, HOME) == ["SG0001"]


# -- a removed serial whose name is declared again, or shared -----------------------------------

SPARE = serial_of(3)


def with_spare(make_cli: CliFactory, docs: list[Doc]) -> Cli:
    """The CLI over `docs` applied, with a spare Zap (SPARE) simulated at site home but not
    declared: the unit a swap puts in, the P1 meter's cable moved to it with it."""
    run = make_cli(
        [*docs, gateway("spare", "home", SPARE)],
        before_start=lambda sims: sims.lans["home"].p1_meters.__setitem__(SPARE, "P1M0001"))
    run.rewrite(docs)
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    return run


def home_zap(serial: str) -> Doc:
    home = gateway("home-zap", "home", serial)
    home["spec"]["deletionPolicy"] = "Release"
    return home


def test_a_swapped_out_serial_loses_the_moved_copy_before_its_release(
        make_cli: CliFactory) -> None:
    """One edit swaps home-zap for the spare unit (same name, serial SPARE) and moves the
    inverter to other-zap: the old unit's Zap is read at its remembered URL, its serial
    confirmed, and the copy there removed (named by its serial, as the name is the new
    unit's) before the old serial is released; the new unit's Zap is not touched."""
    run = with_spare(make_cli, before())
    run.rewrite([*moved_and_removed(before()), home_zap(SPARE)])
    copy_address = f"device/home-zap@{HOME}.SG0001[zap]"

    code, out, _ = run("plan", run.path, "-o", "json")
    assert code == 0, out
    [entry] = [u for u in json.loads(out)["unmanaged"] if u["id"] == "SG0001"]
    assert entry["gateway"] == f"home-zap@{HOME}", entry
    assert entry["description"] == (
        f"inverter SG0001 on gateway home-zap@{HOME} is declared on gateway other-zap "
        "(Device inv), not here; use --prune to remove it from this gateway")

    code, out, _ = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    assert (changes[copy_address]["actions"], changes[copy_address]["reason"]) == (
        ["delete"], "moved")
    assert copy_address in changes[RELEASE]["depends_on"]
    assert "may still be configured" not in changes[RELEASE]["message"]

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert out.index(copy_address) < out.index(RELEASE)
    assert zap_devices(run, HOME) == ["P1M0001"]
    assert zap_devices(run, OTHER) == ["SG0001"]
    assert zap_devices(run, SPARE) == []
    assert owner(run.sims.sims, HOME) is None
    assert owner(run.sims.sims, SPARE) is not None
    code, out, _ = run("plan", run.path, "--prune", "--detailed-exitcode")
    assert code == 0, out


def test_two_removed_serials_of_one_name_each_lose_their_copies_before_their_release(
        make_cli: CliFactory) -> None:
    """home-zap swapped for the spare unit and applied without --prune (both serials
    remembered under home-zap), then removed with its inverter moved to other-zap: both
    Zaps are read, each at its own URL, and each loses its copy before its release. The
    copies the swap left on the old unit, declared on the new one, were reported before."""
    run = with_spare(make_cli, before())
    swapped = [home_zap(SPARE) if d["metadata"]["name"] == "home-zap" else d for d in before()]
    run.rewrite(swapped)
    code, out, _ = run("plan", run.path, "-o", "json")
    assert code == 0, out
    reported = {u["id"]: u for u in json.loads(out)["unmanaged"] if u["platform"] == "zap"}
    assert reported["SG0001"]["description"].startswith(
        f"inverter SG0001 on gateway home-zap@{HOME} is declared on gateway home-zap "
        "(Device inv), not here")
    code, out, _ = run("apply", run.path, "--auto-approve")
    assert code == 0, out
    assert zap_devices(run, HOME) == zap_devices(run, SPARE) == ["P1M0001", "SG0001"]

    run.rewrite(moved_and_removed(swapped))
    code, out, _ = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    for serial in (HOME, SPARE):
        copy_address = f"device/home-zap@{serial}.SG0001[zap]"
        assert changes[copy_address]["reason"] == "moved", sorted(changes)
        assert copy_address in changes[f"gateway/{serial}[novacore]"]["depends_on"]

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    assert zap_devices(run, HOME) == zap_devices(run, SPARE) == ["P1M0001"]
    assert zap_devices(run, OTHER) == ["SG0001"]
    assert owner(run.sims.sims, HOME) is None and owner(run.sims.sims, SPARE) is None


# -- deletionPolicy Orphan ------------------------------------------------------------------------


def orphaned() -> list[Doc]:
    return [
        {**d, "spec": {**d["spec"], "deletionPolicy": "Orphan"}}
        if d["metadata"]["name"] == "home-zap" else d
        for d in before()
    ]


LEFT = ("inverter SG0001 on gateway home-zap is declared on gateway other-zap (Device inv), "
        "not here; left on it (deletionPolicy Orphan: nothing is written to its Zap); remove "
        "it there by hand")


@pytest.mark.parametrize("prune", [False, True])
def test_an_orphaned_gateway_reports_the_moved_copy_left_on_its_zap_and_writes_nothing(
        make_cli: CliFactory, prune: bool) -> None:
    """home-zap (deletionPolicy Orphan) removed in the edit that moves its inverter: its Zap
    is read (the remembered URL, its serial confirmed) and the copy there reported as left
    in place, `--prune` or not, as the two-commit path reports it until the gateway goes;
    nothing is written to it, and it stays claimed. Once an apply has said so, its Zap is
    not read again."""
    run = make_cli(orphaned())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(moved_and_removed(orphaned()))
    flags = ["--prune"] if prune else []

    code, out, _ = run("plan", run.path, *flags, "-o", "json")
    assert code == 0, out
    [entry] = [u for u in json.loads(out)["unmanaged"] if u["id"] == "SG0001"]
    assert entry == {"platform": "zap", "gateway": "home-zap", "id": "SG0001",
                     "description": LEFT, "prunable": False}
    assert "device/home-zap.SG0001[zap]" not in out
    code, out, _ = run("plan", run.path, *flags)
    assert f"! unmanaged: {LEFT}" in out, out

    code, out, _ = run("apply", run.path, *flags, "--auto-approve")
    assert code == 0, out
    assert LEFT in out
    assert zap_devices(run, HOME) == ["P1M0001", "SG0001"]
    assert zap_devices(run, OTHER) == ["SG0001"]
    assert owner(run.sims.sims, HOME) is not None

    run.sims.call(run.sims.sims.reset_counts)
    code, out, _ = run("plan", run.path, *flags, "--detailed-exitcode")
    assert code == 0, out
    assert "SG0001" not in out
    assert run.sims.call(run.sims.sims.zaps[HOME].count) == 0


def test_an_apply_with_a_target_does_not_forget_an_orphaned_gateways_zap(
        make_cli: CliFactory) -> None:
    """A plan with --target says nothing of gateways declared nowhere (they wait for a plan
    of the whole fleet): its apply moves the inverter, and the next plan of the whole fleet
    still reads home-zap's Zap and reports the copy left on it."""
    run = make_cli(orphaned())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(moved_and_removed(orphaned()))
    code, out, _ = run("apply", run.path, "--target", "device/inv", "--auto-approve")
    assert code == 0, out
    assert LEFT not in out
    assert zap_devices(run, OTHER) == ["SG0001"]
    code, out, _ = run("plan", run.path)
    assert f"! unmanaged: {LEFT}" in out, out


def test_an_orphaned_gateway_whose_zap_cannot_be_read_says_a_copy_may_remain(
        make_cli: CliFactory) -> None:
    run = make_cli(orphaned())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    run.rewrite(moved_and_removed(orphaned()))
    run.sims.run(lambda: run.sims.sims.zaps[HOME].set_offline("refuse"))
    code, out, _ = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out
    [entry] = [u for u in json.loads(out)["unmanaged"] if u["id"] == HOME]
    assert entry["prunable"] is False
    assert entry["description"].startswith(
        f"gateway {HOME} is claimed by org-alpha but not declared; left claimed (deletionPolicy "
        "Orphan); the Zap of gateway home-zap could not be read ("), entry
    assert entry["description"].endswith(
        "a device moved from it to another Gateway may still be configured on it; remove it "
        "there by hand")
    assert not json.loads(out)["changes"] or all(
        c["address"] != RELEASE for c in json.loads(out)["changes"])


def test_the_copy_and_the_release_wait_while_the_device_cannot_reach_its_new_gateway(
        make_cli: CliFactory) -> None:
    """other-zap does not answer: the inverter cannot be put on it, so its copy stays on
    home-zap's Zap (taken off, the device would be on no Zap) and home-zap stays claimed
    (released, its Zap would be read no more); once other-zap answers, the device moves,
    then the copy goes, then the gateway."""
    run = applied(make_cli)
    run.sims.run(lambda: run.sims.sims.zaps[OTHER].set_offline("refuse"))
    code, out, _ = run("plan", run.path, "--prune", "-o", "json")
    assert code == 0, out
    changes = {c["address"]: c for c in json.loads(out)["changes"]}
    waiting = changes[COPY]
    assert (waiting["actions"], waiting["deferred_actions"]) == (["defer"], ["delete"])
    assert waiting["message"] == (
        "inverter SG0001 on gateway home-zap is declared on gateway other-zap (Device inv); "
        "would delete; deferred: its device moves first, and device/inv[zap] is deferred")
    assert "device/inv[zap]" in waiting["depends_on"]
    assert changes[RELEASE]["actions"] == ["defer"]
    assert COPY in changes[RELEASE]["depends_on"]

    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert zap_devices(run, HOME) == ["P1M0001", "SG0001"]
    assert owner(run.sims.sims, HOME) is not None

    run.sims.run(lambda: run.sims.sims.zaps[OTHER].set_offline("online"))
    code, out, _ = run("apply", run.path, "--prune", "--auto-approve")
    assert code == 0, out
    done = [f"✓ {address}" for address in ("device/inv[zap]", COPY, RELEASE)]
    assert out.index(done[0]) < out.index(done[1]) < out.index(done[2]), out
    assert zap_devices(run, HOME) == ["P1M0001"]
    assert zap_devices(run, OTHER) == ["SG0001"]
    assert owner(run.sims.sims, HOME) is None


def test_an_override_of_a_serial_edited_away_says_its_url_reads_what_was_left_there(
        make_cli: CliFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """home-zap (deletionPolicy Orphan) applied, then its serial mistyped in the YAML: the
    override of its old serial reaches no declared gateway (the "did you mean" warning), yet
    the plans read the Zap there, as the removed gateway home-zap@SERIAL, to report what was
    left on it, until an apply of the whole fleet. The warning says that, not that the URL
    is not used; once that apply forgot the Zap, it says so again."""
    run = make_cli(orphaned())
    assert run("apply", run.path, "--auto-approve")[0] == 0
    typo = HOME.replace("-0000", "-000", 1)
    mistyped = orphaned()
    home = next(d for d in mistyped if d["metadata"]["name"] == "home-zap")
    # Reached nowhere but loopback: the mistyped serial has no override of its own.
    home["spec"]["zap"] = {**home["spec"]["zap"], "serial": typo, "url": "http://127.0.0.1:1"}
    run.rewrite(mistyped)
    monkeypatch.setenv("RECONCILER_RETRIES", "1")

    code, out, err = run("plan", run.path)
    assert code == 0, err
    assert f"! unmanaged: inverter SG0001 on gateway home-zap@{HOME} is declared on gateway " \
        "home-zap" in out, out
    warning = (f"warning: RECONCILER_GATEWAY_URLS: no declared gateway has serial {HOME} "
               f"(did you mean {typo}?); ")
    assert f"{warning}its URL is used only to read what was left on the removed gateway " \
        f"home-zap@{HOME} (deletionPolicy Orphan), until an apply of the whole fleet" \
        in err.splitlines(), err

    code, out, err = run("apply", run.path, "--auto-approve")
    assert f"home-zap@{HOME}" in out, out
    code, out, err = run("plan", run.path)
    assert f"home-zap@{HOME}" not in out, out
    assert f"{warning}its URL is not used" in err.splitlines(), err
