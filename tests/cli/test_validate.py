"""`reconciler validate` (text and `-o json` output, exit codes) and the command line as a
whole: `--version`, `--help` with examples for every command, no command given."""

from __future__ import annotations

import argparse
import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "sites"

BROKEN = textwrap.dedent("""\
    apiVersion: energy.reconciler.dev/v1alpha1
    kind: Gateway
    metadata:
      name: home-zap
    spec:
      siteRef: home
      zap:
        serial: ZAP-1
        url: http://192.168.1.40
    ---
    kind: Inverter
    """)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_examples_exit_0_with_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", str(EXAMPLES)], capsys)
    files = len(list(EXAMPLES.rglob("*.yaml")))
    assert (code, err) == (0, "")
    assert out.startswith(f"valid: {files} files, ")
    # kinds in dependency order, each counted: "N Sites, N Gateways, N Devices, N DER(s)"
    assert re.fullmatch(r"valid: \d+ files, \d+ Sites, \d+ Gateways, \d+ Devices, \d+ DERs?\n",
                        out), out


def test_invalid_input_exits_1_and_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, err = run(["validate", str(path)], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: {path}:8:13: spec.zap.serial: String should match pattern "
        "'^zap-[0-9a-f]{4,32}$'. Expected: Gateway serial as reported by GET /api/crypto: "
        "`zap-` followed by lowercase hex digits.",
        f"error: {path}:11:7: kind: unknown kind 'Inverter'; known kinds: Site, Gateway, "
        "Device, DER",
        "invalid: 2 problems",
    ]


def test_json_output_of_valid_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", "-o", "json", str(EXAMPLES)], capsys)
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["valid"] is True
    assert document["files"] == len(list(EXAMPLES.rglob("*.yaml")))
    assert document["resources"] >= 6
    assert document["diagnostics"] == []


def test_json_output_of_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, err = run(["validate", "--output", "json", str(path)], capsys)
    assert (code, err) == (1, "")
    document = json.loads(out)
    assert document["valid"] is False
    assert (document["files"], document["resources"]) == (1, 0)
    assert [(d["file"], d["line"], d["column"], d["path"]) for d in document["diagnostics"]] == [
        (str(path), 8, 13, "spec.zap.serial"), (str(path), 11, 7, "kind")]
    assert document["diagnostics"][1]["message"].startswith("unknown kind 'Inverter'")


def test_a_gateway_url_with_credentials_is_refused_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(BROKEN.split("---")[0].replace("serial: ZAP-1", "serial: zap-0123abcd")
                    .replace("http://192.168.1.40", "http://admin:hunter2@192.168.1.40/"))
    for output in ("text", "json"):
        code, out, err = run(["validate", "-o", output, str(path)], capsys)
        assert code == 1
        assert "hunter2" not in out + err and "admin" not in out + err
    code, out, err = run(["validate", str(path)], capsys)
    assert err.splitlines()[0] == (
        f"error: {path}:9:10: spec.zap.url: 'http://***@192.168.1.40/' holds a user name or "
        "password: credentials in a URL would be shown in plans, errors and logs; remove the "
        "`user:password@` part and give credentials through a Secret or an environment variable"
    )


@pytest.mark.parametrize(
    ("name", "key", "field"),
    [
        ("/proc/self", "environ", "name"),  # the reconciler's environment, tokens included
        ("..", "credentials.key", "name"),
        ("ferroamp-mqtt", "../../etc/passwd", "key"),
        ("ferroamp-mqtt", "..", "key"),
        ("ferroamp-mqtt", ".", "key"),
    ],
)
def test_a_secret_key_ref_that_would_leave_the_secrets_directory_is_refused(
    name: str, key: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI reads `<secrets dir>/<name>/<key>` and sends it to the gateway, and on to the
    broker the Device names: a name or key that is a path would read any file."""
    text = (EXAMPLES / "farm-gotland" / "site.yaml").read_text(encoding="utf-8")
    assert "name: ferroamp-mqtt\n          key: password\n" in text
    path = tmp_path / "site.yaml"
    path.write_text(text.replace("name: ferroamp-mqtt\n          key: password\n",
                                 f'name: "{name}"\n          key: "{key}"\n'), encoding="utf-8")
    code, out, err = run(["validate", str(path)], capsys)
    assert (code, out) == (1, "")
    line = 54 if field == "name" else 55
    assert err.startswith(f"error: {path}:{line}:")
    assert f"spec.connection.mqtt.passwordFrom.secretKeyRef.{field}: String should match" in err
    expected = ("Kubernetes object name rules" if field == "name"
                else "neither '.' nor '..' (Kubernetes Secret key rules)")
    assert expected in err


@pytest.mark.parametrize("key", ["password", ".password", "tls.key", "...", "MQTT_PASSWORD"])
def test_secret_keys_kubernetes_allows_stay_accepted(
    key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES / "farm-gotland" / "site.yaml").read_text(encoding="utf-8")
    path = tmp_path / "site.yaml"
    path.write_text(text.replace("key: password\n", f'key: "{key}"\n'), encoding="utf-8")
    code, out, err = run(["validate", str(path)], capsys)
    assert (code, err) == (0, ""), err
    assert out.startswith("valid: 1 file, ")


HOME_ZAP = textwrap.dedent("""\
    apiVersion: energy.reconciler.dev/v1alpha1
    kind: Site
    metadata: {name: home}
    spec:
      displayName: Home
      timezone: Europe/Stockholm
      novacore: {orgId: org-4f2a9c71}
    ---
    apiVersion: energy.reconciler.dev/v1alpha1
    kind: Gateway
    metadata: {name: home-zap}
    spec:
      siteRef: home
      zap: {serial: zap-3c61a4f0b2d8e917, url: http://192.168.1.40}
    """)


def _rtu_inverter(name: str, hardware_id: str, baud_rate: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: energy.reconciler.dev/v1alpha1
        kind: Device
        metadata: {{name: {name}}}
        spec:
          gatewayRef: home-zap
          hardwareId: {hardware_id}
          deviceType: inverter
          connection:
            modbusRtu:
              profile: sungrow
              baudRate: {baud_rate}
              unitId: 3
        """)


def test_two_devices_at_one_zap_endpoint_are_located_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Zap refuses (409) a second device at an RS-485 unit id one takes: the second
    Device is refused at the field, saying where the first one is, in another file."""
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(HOME_ZAP + "---\n" + _rtu_inverter("inverter", "A1", 9600),
                     encoding="utf-8")
    second.write_text(_rtu_inverter("inverter-2", "A2", 19200), encoding="utf-8")
    for command in ("validate", "plan"):
        code, out, err = run([command, str(tmp_path)], capsys)
        assert (code, out) == (1, ""), err
        assert err.splitlines()[0] == (
            f"error: {second}:12:15: spec.connection.modbusRtu.unitId: RS-485 unit id 3 on "
            "Gateway 'home-zap' is already taken by Device 'inverter'; the Zap refuses (409) "
            "to add a second device there: give each device on the Zap's RS-485 bus its own "
            f"unitId (Device 'inverter' is at {first}:27:15)"
        ), err


def test_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    code, out, err = run(["validate", str(missing)], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"error: {missing}: no such file or directory",
                                "invalid: 1 problem"]


def test_a_fifo_is_named_as_no_regular_file_and_never_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nobody writes to the FIFO: reading it would wait forever. Named directly it used to be
    # called missing, and under a directory it left "no YAML files found".
    sites = tmp_path / "sites"
    sites.mkdir()
    fifo = sites / "site.yaml"
    os.mkfifo(fifo)
    for path in (fifo, sites):
        code, out, err = run(["validate", str(path)], capsys)
        assert (code, out) == (1, "")
        assert err.splitlines() == [
            f"error: {fifo}: not a regular file (a FIFO, socket or device), so it is not "
            "read; name a YAML file or a directory",
            "invalid: 1 problem",
        ]


def test_validate_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["validate"])
    # Usage errors exit 1: 2 is reserved for "changes present" (plan --detailed-exitcode).
    assert caught.value.code == 1
    assert "the following arguments are required: PATH" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"reconciler {__version__}\n"


def test_no_command_prints_help_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([], capsys)
    assert code == 1
    assert out.startswith("usage: reconciler")
    assert "examples:" in out


def command_names() -> list[str]:
    parser = cli.build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def test_every_command_is_listed() -> None:
    assert {"validate", "schema", "crds"} <= set(command_names())


def help_argvs() -> list[object]:
    params: list[object] = [pytest.param(["--help"], id="reconciler")]
    params += [pytest.param([name, "--help"], id=name) for name in command_names()]
    return params


@pytest.mark.parametrize("argv", help_argvs())
def test_help_shows_examples(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "\nexamples:\n" in out, f"`reconciler {' '.join(argv)}` shows no examples:\n{out}"
    command = argv[0] if argv[0] != "--help" else ""
    example_lines = [line.strip() for line in out.split("\nexamples:\n", 1)[1].splitlines()]
    assert any(line.startswith(f"reconciler {command}".rstrip()) for line in example_lines), out


@pytest.mark.parametrize("host", ["192.168.1.60", "inverter.local", "Inverter-1", "fd00::60",
                                  "fe80::1%eth0"])
def test_host_names_and_ip_addresses_stay_accepted(host: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    site = EXAMPLES / "home-solna"
    for file in site.iterdir():
        text = file.read_text(encoding="utf-8")
        (tmp_path / file.name).write_text(text.replace("host: 192.168.1.60", f"host: '{host}'"))
    assert "host: '" in (tmp_path / "devices.yaml").read_text(encoding="utf-8")
    code, _, err = run(["validate", str(tmp_path)], capsys)
    assert (code, err) == (0, "")


def test_a_line_separator_in_a_comment_does_not_shift_line_numbers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("# Home gateway\u2028\n" + BROKEN, encoding="utf-8")
    code, _, err = run(["validate", str(path)], capsys)
    assert code == 1
    assert [line.split(": ")[1] for line in err.splitlines()[:2]] == [
        f"{path}:9:13", f"{path}:12:7"]


SITE_HEAD = "apiVersion: energy.reconciler.dev/v1alpha1\nkind: Site\nmetadata:\n  name: s1\nspec:\n"


@pytest.mark.parametrize(
    ("spec", "where", "hint"),
    [
        pytest.param("\tdisplayName: Home\n", "6:1",
                     "this line is indented with a tab: YAML indents with spaces only",
                     id="tab-first"),
        pytest.param("  displayName: Home\n\ttimezone: UTC\n", "7:1",
                     "this line is indented with a tab: YAML indents with spaces only",
                     id="tab-later"),
        pytest.param("  displayName: Home\n   timezone: UTC\n", "7:12",
                     "a key must be indented as the keys beside it, and a value holding ': ' "
                     "must be quoted", id="indented-too-far"),
        pytest.param("  displayName: Home: Solna\n", "6:20",
                     "a key must be indented as the keys beside it, and a value holding ': ' "
                     "must be quoted", id="unquoted-colon"),
    ],
)
def test_a_mistyped_indentation_or_value_says_what_yaml_wants(
        spec: str, where: str, hint: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE_HEAD + spec, encoding="utf-8")
    code, out, err = run(["validate", str(tmp_path)], capsys)
    (problem, summary) = err.splitlines()
    assert (code, out, summary) == (1, "", "invalid: 1 problem")
    assert problem.startswith(f"error: {path}:{where}: YAML syntax error: "), problem
    assert problem.endswith(f"; {hint}"), problem


# -- values the YAML reader cannot read, named by their field as validation errors are ---------

TOWNHOUSE = EXAMPLES / "townhouse-malmo-flatpeak.yaml"
EXPORT_FIELD = "spec.flatpeak.properties.powerRatingExportKwh"
TOO_LONG = ("a number of more than 4,300 digits, too long to read; write a number of a few "
            "digits, or put it in quotes if it is text")


def _townhouse_with(tmp_path: Path, value: str, *, as_json: bool = False) -> tuple[Path, str]:
    """A copy of the townhouse example in a folder of its own whose first device's export
    rating is `value` (written as YAML, or each document as JSON, which YAML reads too), and
    the file's text."""
    text = TOWNHOUSE.read_text(encoding="utf-8")
    assert "powerRatingExportKwh: 6\n" in text
    if as_json:
        import yaml

        # Quoted, as JSON writes it: the loader keeps an unquoted date as written, where
        # PyYAML's safe_load would make it a datetime, which JSON has not.
        text = text.replace("installDate: 2024-03-22T00:00:00Z",
                            'installDate: "2024-03-22T00:00:00Z"')
        documents = list(yaml.safe_load_all(text))
        device = next(d for d in documents
                      if d["spec"].get("flatpeak", {}).get("properties", {})
                      .get("powerRatingExportKwh") == 6)
        device["spec"]["flatpeak"]["properties"]["powerRatingExportKwh"] = "VALUE"
        text = "---\n".join(json.dumps(d, indent=2) + "\n" for d in documents)
        text = text.replace('"VALUE"', value)
    else:
        text = text.replace("powerRatingExportKwh: 6\n", f"powerRatingExportKwh: {value}\n", 1)
    path = tmp_path / "sites" / "townhouse.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path, text


def _where(text: str, offset: int) -> str:
    """`line:column` of the character at `offset` of `text`, as an editor counts them."""
    line = text.count("\n", 0, offset) + 1
    return f"{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


@pytest.mark.parametrize("as_json", [False, True], ids=["yaml", "json-in-yaml"])
def test_a_number_too_long_to_read_names_its_field(
        as_json: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Located as any wrong value of the field is (`FILE:LINE:COLUMN: FIELD: ...`), with
    what to write instead, in the text and in `-o json`."""
    digits = "9" * 5000
    path, text = _townhouse_with(tmp_path, digits, as_json=as_json)
    where = _where(text, text.index(digits))
    code, out, err = run(["validate", str(path.parent)], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"error: {path}:{where}: {EXPORT_FIELD}: {TOO_LONG}",
                                "invalid: 1 problem"]
    code, out, _ = run(["validate", "-o", "json", str(path.parent)], capsys)
    (problem,) = json.loads(out)["diagnostics"]
    assert (code, problem["path"], problem["message"]) == (1, EXPORT_FIELD, TOO_LONG)
    assert f"{problem['line']}:{problem['column']}" == where


@pytest.mark.parametrize("levels", [150, 5000], ids=["converted", "measured-first"])
def test_a_value_nested_too_deeply_names_its_field(
        levels: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """However deep: a few levels too many are found while the document is read, thousands
    before it is (the YAML library would crash), and either names the field they are in."""
    path, text = _townhouse_with(tmp_path, "[" * levels + "]" * levels)
    code, out, err = run(["validate", "-o", "json", str(path.parent)], capsys)
    (problem,) = json.loads(out)["diagnostics"]
    assert (code, err) == (1, "")
    assert problem["message"] == "values nest more than 100 levels deep; flatten the document"
    # The device is level 1, spec 2, flatpeak 3, properties 4: the 101st level is the 97th
    # bracket, 96 lists inside the field's value. A key that long is cut, as any is.
    inside = "powerRatingExportKwh" + "[0]" * 96
    assert problem["path"] == f"spec.flatpeak.properties.{inside[:80]}… (308 characters)"
    assert f"{problem['line']}:{problem['column']}" == _where(text, text.index("[" * levels) + 96)
