"""Loading desired state from files and directories (`reconciler.sources.loader`):
recursion, multi-document files, references across files, every problem of a run reported
at once with file:line:column, missing paths, empty and unreadable files, merge keys and
date-like scalars end to end, objects without a file (the operator's path), `load_fleet`."""

from __future__ import annotations

import gc
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ConfigError, Diagnostic
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.sources import loader

AV = "apiVersion: energy.reconciler.dev/v1alpha1"
SITE = f"""{AV}
kind: Site
metadata:
  name: home
spec:
  displayName: Home
  timezone: Europe/Stockholm
  novacore:
    orgId: org-4f2a9c71
"""
GATEWAY = f"""{AV}
kind: Gateway
metadata:
  name: home-zap
spec:
  siteRef: home
  zap:
    serial: zap-3c61a4f0b2d8e917
    url: http://192.168.1.40
"""
INVERTER = f"""{AV}
kind: Device
metadata:
  name: inverter
spec:
  gatewayRef: home-zap
  hardwareId: A2231234567
  deviceType: inverter
  connection:
    modbusTcp:
      host: 192.168.1.60
      profile: sungrow
  ders:
    - name: pv
      type: solar
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def located(diagnostics: list[Diagnostic], root: Path) -> list[str]:
    return [str(d).replace(f"{root}/", "") for d in diagnostics]


def test_directories_are_searched_recursively_for_yaml_files(tmp_path: Path) -> None:
    write(tmp_path, "a/site.yaml", SITE)
    write(tmp_path, "a/b/c/gateway.yml", GATEWAY)
    write(tmp_path, "z-device.yaml", INVERTER)
    write(tmp_path, "notes.txt", "kind: Site\n")
    write(tmp_path, "schema.json", "{}")
    write(tmp_path, "a/b/README.md", "# not yaml")
    result = loader.load_paths([tmp_path])
    assert result.ok, located(result.diagnostics, tmp_path)
    assert [Path(f).relative_to(tmp_path).as_posix() for f in result.files] == [
        "a/b/c/gateway.yml", "a/site.yaml", "z-device.yaml"]
    assert sorted(r.address for r in result.resources) == [
        "device/inverter", "gateway/home-zap", "site/home"]


def test_hidden_files_and_directories_under_a_directory_are_not_read(tmp_path: Path) -> None:
    # A repository named by its root: its CI workflows are YAML, not desired state (`on:`
    # would read as a boolean key and fail the whole load).
    write(tmp_path, "sites/site.yaml", SITE)
    write(tmp_path, ".github/workflows/ci.yml", "name: ci\non: push\n")
    write(tmp_path, "sites/.draft.yaml", "kind: Site\n")
    result = loader.load_paths([tmp_path])
    assert result.ok, located(result.diagnostics, tmp_path)
    assert [Path(f).relative_to(tmp_path).as_posix() for f in result.files] == ["sites/site.yaml"]
    # Named on the command line, a hidden file is read, and its problems said.
    named = loader.load_paths([tmp_path / "sites/.draft.yaml"])
    assert not named.ok
    assert [Path(f).name for f in named.files] == [".draft.yaml"]


def test_files_and_directories_can_be_mixed(tmp_path: Path) -> None:
    site = write(tmp_path, "site.yaml", SITE)
    write(tmp_path, "gw/gateway.yaml", GATEWAY)
    result = loader.load_paths([site, tmp_path / "gw"])
    assert result.ok
    assert len(result.resources) == 2


def test_multi_document_file_keeps_every_document_and_its_origin(tmp_path: Path) -> None:
    path = write(tmp_path, "home.yaml", "---\n".join([SITE, GATEWAY, INVERTER]))
    result = loader.load_paths([path])
    assert result.ok
    assert [r.KIND for r in result.resources] == ["Site", "Gateway", "Device"]
    assert [(o.file, o.index, o.start.line) for o in result.origins] == [
        (str(path), 0, 1), (str(path), 1, 11), (str(path), 2, 21)]


@pytest.mark.parametrize(("timezone", "hint"), [
    # Files of a host's zoneinfo directory that ZoneInfo reads, and no IANA zone's name: a
    # host with them accepted them, one without refused them.
    ("localtime", ""), ("posixrules", ""), ("posix/Europe/Stockholm", ""), ("right/UTC", ""),
    ("Factory", ""),  # in the database, but "no zone set", no place's
    ("europe/stockholm", " (did you mean 'Europe/Stockholm'?)"),
])
def test_a_timezone_is_an_iana_name_whatever_the_host_has(tmp_path: Path, timezone: str,
                                                          hint: str) -> None:
    write(tmp_path, "site.yaml", SITE.replace("Europe/Stockholm", timezone))
    assert located(loader.load_paths([tmp_path]).diagnostics, tmp_path) == [
        f"site.yaml:7:13: spec.timezone: unknown timezone {timezone!r}{hint}; use an IANA "
        "name such as 'Europe/Stockholm' or 'UTC'"]


@pytest.mark.parametrize("timezone", ["UTC", "Etc/GMT+5", "US/Pacific", "Europe/Kyiv"])
def test_iana_names_and_links_are_timezones(tmp_path: Path, timezone: str) -> None:
    write(tmp_path, "site.yaml", SITE.replace("Europe/Stockholm", timezone))
    assert loader.load_paths([tmp_path]).ok


def test_every_problem_of_every_file_is_reported_in_one_run(tmp_path: Path) -> None:
    write(tmp_path, "1-site.yaml", SITE.replace("Europe/Stockholm", "Mars/Olympus"))
    write(tmp_path, "2-gateway.yaml", GATEWAY.replace("siteRef: home", "siteRef: cabin")
          + "---\n" + INVERTER.replace("profile: sungrow", "profile: sungrow\n      unit: 1"))
    write(tmp_path, "3-broken.yaml", "a: [1\n")
    write(tmp_path, "4-unknown.yaml", "kind: Inverter\n")
    write(tmp_path, "5-device.yaml", INVERTER.replace("name: inverter", "name: inverter-2")
          .replace("type: solar", "type: ev_charger_port"))
    result = loader.load_paths([tmp_path])
    assert located(result.diagnostics, tmp_path) == [
        "1-site.yaml:7:13: spec.timezone: unknown timezone 'Mars/Olympus'; use an IANA name "
        "such as 'Europe/Stockholm' or 'UTC'",
        "2-gateway.yaml:23:7: spec.connection.modbusTcp.unit: unknown field 'unit' (did you "
        "mean 'unitId'?); valid fields here: host, port, unitId, profile",
        "3-broken.yaml:2:1: YAML syntax error: did not find expected ',' or ']' (while "
        "parsing a flow sequence)",
        "4-unknown.yaml:1:7: kind: unknown kind 'Inverter'; known kinds: Site, Gateway, "
        "Device, DER",
        "2-gateway.yaml:6:12: spec.siteRef: Site 'cabin' is not declared; declared sites: "
        "(none declared)",
        "5-device.yaml:15:13: spec.ders[0].type: a device of type 'inverter' provides no "
        "'ev_charger_port' DER; valid types: 'battery', 'meter', 'solar'",
    ]
    assert not result.ok
    assert len(result.resources) == 2  # the gateway and inverter-2 validated on their own


def test_references_resolve_across_files(tmp_path: Path) -> None:
    write(tmp_path, "sites/home.yaml", SITE)
    write(tmp_path, "gateways/home-zap.yaml", GATEWAY)
    write(tmp_path, "devices/inverter.yaml", INVERTER)
    fleet = loader.load_fleet([tmp_path])
    assert isinstance(fleet, Fleet)
    assert [d.name for d in fleet.devices_of("home-zap")] == ["inverter"]


def test_a_name_declared_twice_is_located_at_both_declarations(tmp_path: Path) -> None:
    write(tmp_path, "a/home.yaml", SITE)
    write(tmp_path, "b/copy.yaml", f"# a copy\n---\n{SITE}")
    result = loader.load_paths([tmp_path])
    assert located(result.diagnostics, tmp_path) == [
        "b/copy.yaml:6:9: metadata.name: Site 'home' is declared more than once; names must be "
        "unique per kind (first declared at a/home.yaml:4:9)"]


def test_a_reference_to_an_invalid_document_says_it_is_declared(tmp_path: Path) -> None:
    """A gateway that fails validation is declared all the same: what refers to it says
    so, instead of that no gateway of the name exists."""
    write(tmp_path, "home.yaml", SITE)
    write(tmp_path, "home-zap.yaml", GATEWAY.replace("    url:", "    ur1: x\n    url:"))
    write(tmp_path, "inverter.yaml", INVERTER)
    result = loader.load_paths([tmp_path])
    assert located(result.diagnostics, tmp_path) == [
        "home-zap.yaml:9:5: spec.zap.ur1: unknown field 'ur1' (did you mean 'url'?); valid "
        "fields here: serial, url, orgId, allowTransfer",
        "inverter.yaml:6:15: spec.gatewayRef: Gateway 'home-zap' is declared but not valid "
        "(see its errors)",
    ]


def test_the_der_limit_counts_inline_ders_and_der_documents_together(tmp_path: Path) -> None:
    """16 inline DERs are the most a Device may declare; a DER document in another file
    cannot add a 17th."""
    inline = "".join(f"    - name: pv-{i}\n      type: solar\n" for i in range(2, 17))
    write(tmp_path, "home.yaml", SITE + "---\n" + GATEWAY)
    write(tmp_path, "inverter.yaml", INVERTER + inline)
    der = f"{AV}\nkind: DER\nmetadata:\n  name: inverter-battery\nspec:\n  deviceRef: inverter\n"
    write(tmp_path, "ders/battery.yaml", der + "  name: battery\n  type: battery\n")
    result = loader.load_paths([tmp_path])
    assert located(result.diagnostics, tmp_path) == [
        "ders/battery.yaml:6:14: spec.deviceRef: Device 'inverter' would have 17 DERs (16 "
        "inline and 1 in DER documents); a device has at most 16, inline and DER documents "
        "together: move this DER to another device or remove it"]
    write(tmp_path, "inverter.yaml", INVERTER + inline.split("    - name: pv-16")[0])
    assert loader.load_paths([tmp_path]).ok, "16 in all"


def test_a_missing_path_is_reported_and_the_rest_still_loads(tmp_path: Path) -> None:
    write(tmp_path, "site.yaml", SITE)
    missing = tmp_path / "nope"
    result = loader.load_paths([missing, tmp_path / "site.yaml"])
    assert [(d.file, d.message) for d in result.diagnostics] == [
        (str(missing), "no such file or directory")]
    assert [r.address for r in result.resources] == ["site/home"]


def test_a_directory_without_yaml_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "readme.md", "nothing here")
    result = loader.load_paths([tmp_path])
    assert [(d.file, d.message) for d in result.diagnostics] == [
        (str(tmp_path), "no YAML files (*.yaml, *.yml) found")]


def test_an_empty_file_is_valid_and_declares_nothing(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.yaml", "")
    only_comments = write(tmp_path, "comments.yaml", "# nothing yet\n---\n")
    result = loader.load_paths([empty, only_comments])
    assert result.ok
    assert result.resources == []
    assert result.files == [str(only_comments), str(empty)]  # sorted, whatever the order given


def test_a_file_that_is_not_utf8_is_located_by_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"# Sites\ndisplayName: Malm\xf6\n")
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("kind: Site\n".encode("utf-16"))
    write(tmp_path, "site.yaml", SITE)
    result = loader.load_paths([tmp_path])
    assert [str(d) for d in result.diagnostics] == [
        f"{bad}:2:18: not UTF-8 text: byte 0xf6 cannot be decoded; save the file as UTF-8",
        f"{utf16}:1:1: not UTF-8 text: byte 0xff cannot be decoded; it looks like UTF-16; "
        "save the file as UTF-8",
    ]
    assert len(result.resources) == 1
    assert result.files == [str(bad), str(tmp_path / "site.yaml"), str(utf16)], "all found"


def test_a_byte_order_mark_does_not_shift_the_columns_of_line_1(tmp_path: Path) -> None:
    """Editors do not show a UTF-8 byte order mark: column 8 of `kind: a?` is the `?`."""
    bom = b"\xef\xbb\xbf"
    control = tmp_path / "control.yaml"
    control.write_bytes(bom + b"kind: a\x01\n")
    undecodable = tmp_path / "undecodable.yaml"
    undecodable.write_bytes(bom + "kind: Malmö".encode() + b"\xff\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_bytes(bom + b"kind: Inverter\n")
    result = loader.load_paths([control, undecodable, unknown])
    assert located(result.diagnostics, tmp_path) == [
        "undecodable.yaml:1:12: not UTF-8 text: byte 0xff cannot be decoded; save the file as "
        "UTF-8",
        "control.yaml:1:8: character U+0001 is not allowed in YAML (control characters are not "
        "allowed)",
        "unknown.yaml:1:7: kind: unknown kind 'Inverter'; known kinds: Site, Gateway, Device, DER",
    ]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"],
                         ids=["line-separator", "paragraph-separator", "next-line"])
def test_line_numbers_are_the_lines_an_editor_shows(tmp_path: Path, separator: str) -> None:
    """YAML 1.1 ends a line at U+2028, U+2029 and U+0085 too; editors end one only at \\n,
    \\r\\n and \\r. A comment holding one must not move what is reported below it."""
    comment = f"# Solna, see the notes{separator}\n# more{separator}{separator}\r\n"
    write(tmp_path, "home.yaml", comment + SITE.replace("name: home", "name: Home_1"))
    write(tmp_path, "zap.yaml", comment + GATEWAY)  # siteRef: home, no longer declared
    write(tmp_path, "control.yaml", comment + "kind: \x01\n")
    write(tmp_path, "syntax.yaml", comment + "kind: [Site\n")
    result = loader.load_paths([tmp_path])
    assert [(d.file.replace(f"{tmp_path}/", ""), d.line, d.column)
            for d in result.diagnostics] == [
        ("control.yaml", 3, 7),
        ("home.yaml", 6, 9),
        ("syntax.yaml", 4, 1),
        ("zap.yaml", 8, 12),
    ]


def test_a_carriage_return_ends_a_line_where_a_file_is_not_utf8(tmp_path: Path) -> None:
    old_mac = tmp_path / "old-mac.yaml"
    old_mac.write_bytes(b"# Sites\rdisplayName: Malm\xf6\r")
    assert located(loader.load_paths([old_mac]).diagnostics, tmp_path) == [
        "old-mac.yaml:2:18: not UTF-8 text: byte 0xf6 cannot be decoded; save the file as UTF-8"]


def test_merge_keys_work_in_site_files(tmp_path: Path) -> None:
    text = INVERTER.replace("""  ders:
    - name: pv
      type: solar
""", """  ders:
    - &pv
      name: pv-south
      type: solar
      publish: false
    - <<: *pv
      name: pv-west
""")
    result = loader.load_paths([write(tmp_path, "d.yaml", "---\n".join([SITE, GATEWAY, text]))])
    assert result.ok, [str(d) for d in result.diagnostics]
    device = result.resources[2]
    assert isinstance(device, Device)
    assert [(d.name, d.type, d.publish) for d in device.spec.ders] == [
        ("pv-south", "solar", False), ("pv-west", "solar", False)]


def test_date_like_scalars_reach_the_model_as_written(tmp_path: Path) -> None:
    flatpeak = "  flatpeak: {locationId: loc_1}\n  novacore:"
    text = SITE.replace("  novacore:", flatpeak) + "---\n" + f"""{AV}
kind: Device
metadata:
  name: battery
spec:
  siteRef: home
  flatpeak:
    referenceId: home-battery
    type: BATTERY_SYSTEM
    properties:
      installDate: 2024-03-22
"""
    result = loader.load_paths([write(tmp_path, "d.yaml", text)])
    assert result.ok, [str(d) for d in result.diagnostics]
    device = result.resources[1]
    assert isinstance(device, Device) and device.spec.flatpeak is not None
    assert device.spec.flatpeak.properties is not None
    assert device.spec.flatpeak.properties.install_date == "2024-03-22"


def test_a_number_where_text_belongs_says_to_quote_it(tmp_path: Path) -> None:
    text = INVERTER.replace("hardwareId: A2231234567", "hardwareId: 1031050223180042")
    result = loader.load_paths([write(tmp_path, "d.yaml", "---\n".join([SITE, GATEWAY, text]))])
    assert located(result.diagnostics, tmp_path) == [
        "d.yaml:27:15: spec.hardwareId: expected a string, but YAML reads this value as a "
        "number; put it in quotes"]


def test_load_fleet_raises_config_error_with_every_diagnostic(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GATEWAY)
    write(tmp_path, "b.yaml", INVERTER.replace("hardwareId: A2231234567\n", ""))
    with pytest.raises(ConfigError) as caught:
        loader.load_fleet([tmp_path])
    messages = [d.message for d in caught.value.diagnostics]
    assert len(messages) == 2, messages
    assert str(caught.value).endswith("(and 1 more)")


def test_result_fleet_indexes_resources(tmp_path: Path) -> None:
    result = loader.load_paths([write(tmp_path, "a.yaml", "---\n".join([SITE, GATEWAY]))])
    fleet = result.fleet()
    assert list(fleet.sites) == ["home"] and list(fleet.gateways) == ["home-zap"]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param([1, 2], [("", "a document must be a mapping")], id="list"),
        pytest.param({"kind": "Site"}, [("apiVersion", "required field 'apiVersion' is missing"),
                                        ("metadata", "required field 'metadata' is missing"),
                                        ("spec", "required field 'spec' is missing")],
                     id="bare-kind"),
        pytest.param({"kind": 5}, [("kind", "unknown kind 5")], id="kind-not-text"),
    ],
)
def test_objects_without_a_file_are_located_by_path(
    obj: object, expected: list[tuple[str, str]]
) -> None:
    resource, problems = loader.resource_from_object(obj, source="default/sites/home")  # type: ignore[arg-type]
    assert resource is None
    assert [(p.path, p.message[:len(m)]) for p, (_, m) in zip(problems, expected, strict=True)] \
        == expected
    assert all(p.file == "default/sites/home" and p.line is None for p in problems)


def test_a_valid_object_without_a_file() -> None:
    obj = {"apiVersion": "energy.reconciler.dev/v1alpha1", "kind": "Site",
           "metadata": {"name": "home"},
           "spec": {"displayName": "Home", "timezone": "Europe/Stockholm"}}
    resource, problems = loader.resource_from_object(obj, source="default/sites/home")
    assert problems == [] and resource is not None and resource.address == "site/home"


def test_loading_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", SITE)
    assert gc.isenabled()
    loader.load_paths([path])
    assert gc.isenabled()
    gc.disable()
    try:
        loader.load_paths([path])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_loading_leaves_the_collector_enabled_after_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(loader, "parse_yaml", explode)
    with pytest.raises(RuntimeError, match="boom"):
        loader.load_texts([("a.yaml", "a: 1\n")])
    assert gc.isenabled()
