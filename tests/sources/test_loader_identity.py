"""Loading through `reconciler validate` and the loader: each file is read once however
often it is named, an empty path is an error, two Sites that would find one remote site
are refused where they are declared, and a device is not blamed for its gateway's errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main as cli
from reconciler.sources import loader

AV = "apiVersion: energy.reconciler.dev/v1alpha1"


def site(name: str, display: str, platform: str = "novacore:\n    orgId: org-4f2a9c71") -> str:
    return f"""{AV}
kind: Site
metadata:
  name: {name}
spec:
  displayName: {display}
  timezone: Europe/Stockholm
  {platform}
"""


LAB = f"""{site("lab", "Lab", "enapter: {}")}---
{AV}
kind: Gateway
metadata:
  name: lab-gateway
spec:
  siteRef: lab
  enapter:
    hardwareId: B27925CBA53754
    firmwareVersion: 3.2
---
{AV}
kind: Device
metadata:
  name: vucm
spec:
  gatewayRef: lab-gateway
  hardwareId: HW-1
  enapter:
    kind: vucm
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def validate(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli.main(["validate", *args])
    out, err = capsys.readouterr()
    return code, (out + err).splitlines()


def test_a_file_named_twice_is_loaded_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "sites/home.yaml", site("home", "Home"))
    monkeypatch.chdir(tmp_path)
    code, lines = validate(["sites/home.yaml", "./sites/home.yaml", "sites"], capsys)
    assert (code, lines) == (0, ["valid: 1 file, 1 Site"]), lines


def test_an_empty_path_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "home.yaml", site("home", "Home"))
    monkeypatch.chdir(tmp_path)
    code, lines = validate([""], capsys)
    assert code == 1
    assert "empty path" in lines[0], lines
    assert lines[-1] == "invalid: 1 problem"


def test_two_sites_with_one_display_name_in_one_org_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "sites.yaml", f"{site('s1', 'S1')}---\n{site('s2', 'S1')}")
    result = loader.load_paths([path])
    assert [str(d).replace(f"{tmp_path}/", "") for d in result.diagnostics] == [
        "sites.yaml:16:16: spec.displayName: displayName 'S1' is already used by Site 's1' "
        "in org-4f2a9c71; set distinct display names or siteId"]


@pytest.mark.parametrize(("first", "second", "fix"), [
    ("site-1", None, "set distinct display names, or a siteId on this Site too (found by its "
                     "name, it could be the site Site 's1' names)"),
    (None, "site-1", "set distinct display names, or a siteId on Site 's1' too (found by its "
                     "name, it could be the site this Site names)"),
])
def test_a_display_name_clash_with_one_site_id_names_the_site_to_change(
        tmp_path: Path, first: str | None, second: str | None, fix: str) -> None:
    """Of two Sites of one name, one naming its site by id: the other, found by that name,
    could be the same site, so it is the one the error says to change."""
    def declared(name: str, site_id: str | None) -> str:
        ids = f"\n    siteId: {site_id}" if site_id else ""
        return site(name, "S1", f"novacore:\n    orgId: org-4f2a9c71{ids}")

    path = write(tmp_path, "sites.yaml", f"{declared('s1', first)}---\n{declared('s2', second)}")
    [problem] = [str(d) for d in loader.load_paths([path]).diagnostics]
    assert problem.endswith(
        "spec.displayName: displayName 'S1' is already used by Site 's1' in org-4f2a9c71; "
        + fix), problem


def test_a_device_is_not_blamed_for_its_invalid_gateway(tmp_path: Path) -> None:
    result = loader.load_paths([write(tmp_path, "lab.yaml", LAB)])
    assert [str(d).replace(f"{tmp_path}/", "") for d in result.diagnostics] == [
        "lab.yaml:18:22: spec.enapter.firmwareVersion: expected a string, but YAML reads this "
        "value as a number; put it in quotes",
        "lab.yaml:25:15: spec.gatewayRef: Gateway 'lab-gateway' is declared but not valid "
        "(see its errors)",
    ]


def test_linked_directories_and_upper_case_suffixes_are_read_and_broken_links_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    write(outside, "north/site.yaml", site("north", "North"))
    sites = tmp_path / "sites"
    write(sites, "SOUTH.YAML", site("south", "South"))
    write(sites, "notes.txt", "not YAML")
    (sites / "linked").symlink_to(outside, target_is_directory=True)
    (sites / "linked" / "north" / "loop").symlink_to(sites, target_is_directory=True)
    assert validate([str(sites)], capsys) == (0, ["valid: 2 files, 2 Sites"])

    # An editor's lock file (Emacs: a link to "user@host.pid") is no document, as the watch
    # agent also takes it.
    (sites / ".#SOUTH.YAML").symlink_to("root@vm.1234:1700000000")
    assert validate([str(sites)], capsys) == (0, ["valid: 2 files, 2 Sites"])
    (sites / "gone.yml").symlink_to(tmp_path / "nowhere.yml")
    code, lines = validate([str(sites)], capsys)
    assert (code, lines) == (1, [
        f"error: {sites / 'gone.yml'}: a symbolic link to nothing (its target is missing)",
        "invalid: 1 problem",
    ])


def test_links_that_loop_are_said_to_loop_not_to_lead_nowhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = tmp_path / "sites"
    write(sites, "home.yaml", site("home", "Home"))
    (sites / "self.yaml").symlink_to("self.yaml")
    (sites / "a.yaml").symlink_to("b.yaml")
    (sites / "b.yaml").symlink_to("a.yaml")
    loop = "a symbolic link that leads back to itself (a loop), not to a file: point it at a " \
        "YAML file, or remove it"
    assert validate([str(sites)], capsys) == (1, [
        f"error: {sites / 'a.yaml'}: {loop}",
        f"error: {sites / 'b.yaml'}: {loop}",
        f"error: {sites / 'self.yaml'}: {loop}",
        "invalid: 3 problems",
    ])
    assert validate([str(sites / "self.yaml")], capsys) == (1, [
        f"error: {sites / 'self.yaml'}: {loop}", "invalid: 1 problem"])
