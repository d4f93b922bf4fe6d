"""Settings from RECONCILER_* variables and a TOML file: typed values, the environment
winning over the file, and every bad value reported at once, naming the variable (or the
file and key) and what would be valid, never a token's value."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import certifi
import pytest

from reconciler.engine.config import load_settings
from reconciler.errors import ConfigError


def problems(environ: dict[str, str], config_file: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, config_file=str(config_file) if config_file else None)
    assert caught.value.subject == "settings"
    return [str(d) for d in caught.value.diagnostics]


def test_values_are_typed_and_the_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text('concurrency = 16\ntimeout = 2.5\ninsecure_skip_tls_verify = true\n'
                      'novacore_url = "https://file.example"\n'
                      '[gateway_urls]\n"zap-0000000000000001" = "http://10.0.0.1"\n')
    settings = load_settings({"RECONCILER_CONCURRENCY": " 8 ",
                              "RECONCILER_GATEWAY_RATE": "2.5",
                              "RECONCILER_CA_BUNDLE": certifi.where(),
                              "RECONCILER_GATEWAY_URLS": "zap-0000000000000002=http://10.0.0.2"},
                             config_file=str(config))
    assert (settings.concurrency, settings.timeout, settings.gateway_rate) == (8, 2.5, 2.5)
    assert settings.novacore_url == "https://file.example"
    assert settings.insecure_skip_tls_verify is True and settings.verify is False
    assert dict(settings.gateway_urls) == {"zap-0000000000000001": "http://10.0.0.1",
                                           "zap-0000000000000002": "http://10.0.0.2"}


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text("timeout = 3\n")
    settings = load_settings({"RECONCILER_TIMEOUT": "", "RECONCILER_CONCURRENCY": "",
                              "RECONCILER_NOVACORE_URL": ""}, config_file=str(config))
    assert (settings.timeout, settings.concurrency) == (3.0, 64)
    assert settings.novacore_url == "https://novacore-mainnet.sourceful.dev"


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("RECONCILER_CONCURRENCY", "abc", "expected a whole number of calls in flight, from 1 to "
                                      "10,000; "
                                      "got 'abc'"),
    ("RECONCILER_GATEWAY_CONCURRENCY", "0", "from 1 to 10,000; got '0'"),
    ("RECONCILER_RETRIES", "2.5", "expected a whole number of attempts, from 1 to 100"),
    ("RECONCILER_TIMEOUT", "-1", "expected a number of seconds, greater than 0 and at most 3,600; "
                                 "got '-1'"),
    ("RECONCILER_MODBUS_TIMEOUT", "0", "expected a number of seconds, greater than 0 and at most "
                                       "3,600; got '0'"),
    ("RECONCILER_GATEWAY_RATE", "nan", "expected a number of requests per second"),
    ("RECONCILER_INSECURE_SKIP_TLS_VERIFY", "maybe", "expected true or false, got 'maybe'"),
    ("RECONCILER_NOVACORE_URL", "novacore.example", "expected an http:// or https:// URL with "
                                                    "a host"),
    ("RECONCILER_ENAPTER_URL", "ftp://enapter.example", "got 'ftp://enapter.example'"),
    ("RECONCILER_GATEWAY_URLS", "zap-1", "expected serial=url pairs joined by commas"),
    ("RECONCILER_GATEWAY_URLS", "zap-1=192.168.1.20", "expected an http:// or https:// URL"),
    ("RECONCILER_CA_BUNDLE", "/nonexistent/ca.pem", "cannot read the CA bundle "
                                                    "/nonexistent/ca.pem: No such file"),
])
def test_a_bad_variable_is_named_with_what_would_be_valid(variable: str, value: str,
                                                          expected: str) -> None:
    [problem] = problems({variable: value})
    assert problem.startswith(f"{variable}: ") and expected in problem


@pytest.mark.parametrize(("variable", "key", "largest", "too_large", "expected"), [
    ("RECONCILER_TIMEOUT", "timeout", "3600", "1e300",
     "expected a number of seconds, greater than 0 and at most 3,600; got "),
    ("RECONCILER_MODBUS_TIMEOUT", "modbus_timeout", "3600", "3600.5",
     "expected a number of seconds, greater than 0 and at most 3,600; got "),
    ("RECONCILER_RETRIES", "retries", "100", "101",
     "expected a whole number of attempts, from 1 to 100; got "),
    ("RECONCILER_CONCURRENCY", "concurrency", "10000", "10001",
     "expected a whole number of calls in flight, from 1 to 10,000; got "),
    ("RECONCILER_GATEWAY_CONCURRENCY", "gateway_concurrency", "10000", "1000000",
     "expected a whole number of calls in flight per gateway, from 1 to 10,000; got "),
])
def test_a_limit_past_its_maximum_is_refused_naming_the_range(
        tmp_path: Path, variable: str, key: str, largest: str, too_large: str,
        expected: str) -> None:
    """A timeout of 1e300 would leave a plan waiting forever on a gateway that never
    answers: each limit has a largest value, refused past it from a variable or the file."""
    assert getattr(load_settings({variable: largest}), key) == float(largest)
    assert problems({variable: too_large}) == [f"{variable}: {expected}{too_large!r}"]
    config = tmp_path / "reconciler.toml"
    config.write_text(f"{key} = {too_large}\n")
    [problem] = problems({}, config)
    assert problem.startswith(f"{config}:1: {key}: {expected}")


@pytest.mark.parametrize(("value", "shown"), [
    ('"yes"', "'yes'"), ('"true"', "'true'"), ('"false"', "'false'"), ("1", "1"), ('""', "''"),
])
def test_a_boolean_of_the_settings_file_is_a_toml_boolean(tmp_path: Path, value: str,
                                                          shown: str) -> None:
    """TOML has booleans: `insecure_skip_tls_verify = "yes"` is text, refused rather than
    read as true; the variable keeps its documented forms (1, true, yes, on, ...)."""
    config = tmp_path / "reconciler.toml"
    config.write_text(f"timeout = 5\ninsecure_skip_tls_verify = {value}\n")
    assert problems({}, config) == [
        f"{config}:2: insecure_skip_tls_verify: expected true or false, unquoted (a TOML "
        f"boolean), got {shown}"]
    config.write_text("insecure_skip_tls_verify = false\n")
    assert load_settings({}, config_file=str(config)).insecure_skip_tls_verify is False
    assert load_settings({"RECONCILER_INSECURE_SKIP_TLS_VERIFY": "yes"},
                         config_file=str(config)).insecure_skip_tls_verify is True


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("timeout", '"5"', "a number of seconds, greater than 0 and at most 3,600, unquoted "
                       "(a TOML number); got '5'"),
    ("modbus_timeout", '"0.5"', "a number of seconds, greater than 0 and at most 3,600, "
                                "unquoted (a TOML number); got '0.5'"),
    ("gateway_rate", '"20"', "a number of requests per second, greater than 0, unquoted "
                             "(a TOML number); got '20'"),
    ("concurrency", '"8"', "a whole number of calls in flight, from 1 to 10,000, unquoted "
                           "(a TOML integer); got '8'"),
    ("gateway_concurrency", '" 2 "', "a whole number of calls in flight per gateway, from 1 "
                                     "to 10,000, unquoted (a TOML integer); got ' 2 '"),
    ("retries", "'3'", "a whole number of attempts, from 1 to 100, unquoted (a TOML integer); "
                       "got '3'"),
])
def test_a_number_of_the_settings_file_is_a_toml_number(tmp_path: Path, key: str, value: str,
                                                         expected: str) -> None:
    """TOML has numbers: `timeout = "5"` is text, refused as a quoted switch is; the
    variable, which is always text, keeps taking the digits."""
    config = tmp_path / "reconciler.toml"
    config.write_text(f"insecure_skip_tls_verify = false\n{key} = {value}\n")
    assert problems({}, config) == [f"{config}:2: {key}: expected {expected}"]
    unquoted = value.strip("\"'").strip()
    config.write_text(f"{key} = {unquoted}\n")
    assert getattr(load_settings({}, config_file=str(config)), key) == float(unquoted)
    variable = "RECONCILER_" + key.upper()
    assert getattr(load_settings({variable: value.strip("\"'")}), key) == float(unquoted)


@pytest.mark.parametrize("url", ["https://api.example.com/?x=1", "https://api.example.com#x",
                                 "https://api.example.com/v3?", "http://127.0.0.1:9/#"])
@pytest.mark.parametrize(("variable", "key"), [
    ("RECONCILER_NOVACORE_URL", "novacore_url"), ("RECONCILER_ENAPTER_URL", "enapter_url"),
    ("RECONCILER_FLATPEAK_URL", "flatpeak_url"),
])
def test_a_cloud_url_with_a_query_or_fragment_is_refused(tmp_path: Path, url: str,
                                                          variable: str, key: str) -> None:
    """The API's paths are appended to a cloud's URL: a query or fragment would swallow
    them, so it is refused where it was set, not sent."""
    expected = ("expected a base URL without a query ('?...') or fragment ('#...'), as the "
                "API's paths are appended to it (e.g. https://api.example.com or "
                f"https://proxy.example.com/novacore); got {url!r}")
    assert problems({variable: url}) == [f"{variable}: {expected}"]
    config = tmp_path / "reconciler.toml"
    config.write_text(f"timeout = 5\n{key} = {json.dumps(url)}\n")
    assert problems({}, config) == [f"{config}:2: {key}: {expected}"]


@pytest.mark.parametrize("url", ["http://192.168.1.40/?x=1", "http://192.168.1.40#x",
                                 "http://zap.local/api?", "https://[fd00::1]:8443/#"])
def test_a_gateway_url_with_a_query_or_fragment_is_refused(tmp_path: Path, url: str) -> None:
    """The Zap API's paths are appended to a gateway's URL as to a cloud's: a query or
    fragment is refused wherever the URL is set (variable, settings file, JSON file)."""
    serial = "zap-0000000000000001"
    expected = (f"{serial}: expected a base URL without a query ('?...') or fragment "
                "('#...'), as the API's paths are appended to it (e.g. http://192.168.1.40 "
                f"or http://zap.local); got {url!r}")
    assert problems({"RECONCILER_GATEWAY_URLS": f"{serial}={url}"}) == [
        f"RECONCILER_GATEWAY_URLS: {expected}"]
    config = tmp_path / "reconciler.toml"
    config.write_text(f"timeout = 5\n[gateway_urls]\n{json.dumps(serial)} = {json.dumps(url)}\n")
    assert problems({}, config) == [f"{config}:2: gateway_urls: {expected}"]
    urls = tmp_path / "gateways.json"
    urls.write_text(json.dumps({serial: url}))
    assert problems({"RECONCILER_GATEWAY_URLS_FILE": str(urls)}) == [f"{urls}: {expected}"]


def test_a_gateway_url_with_a_question_mark_in_its_password_is_masked() -> None:
    """A '?' in a password ends the host for URL parsers: whatever the URL is refused
    for, the password is masked."""
    [problem] = problems({"RECONCILER_GATEWAY_URLS": "zap-1=http://admin:pa?ss@10.0.0.1/"})
    assert "'http://***@10.0.0.1/'" in problem and "pa?ss" not in problem


def test_every_problem_is_reported_at_once() -> None:
    reported = problems({"RECONCILER_CONCURRENCY": "x", "RECONCILER_TIMEOUT": "y",
                         "RECONCILER_RETRIES": "z"})
    assert [p.split(":")[0] for p in reported] == [
        "RECONCILER_CONCURRENCY", "RECONCILER_TIMEOUT", "RECONCILER_RETRIES"]


def test_a_file_that_is_not_a_ca_bundle_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    [problem] = problems({"RECONCILER_CA_BUNDLE": str(bundle)})
    assert problem.startswith("RECONCILER_CA_BUNDLE: ")
    assert "is not a PEM bundle of CA certificates" in problem


def test_credentials_in_a_url_are_not_repeated() -> None:
    [problem] = problems({"RECONCILER_NOVACORE_URL": "https://user:hunter2@:99/"})
    assert "hunter2" not in problem and "'https://***@:99/'" in problem


def test_a_token_of_the_wrong_type_is_reported_without_its_value(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text("novacore_token = 987654321\n")
    assert problems({}, config) == [f"{config}:1: novacore_token: expected a string, got int"]


def test_unknown_and_mistyped_keys_in_the_file_are_located(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text('concurrenc = 4\ntimeout = "soon"\n[gateway_urls]\nzap-1 = "ftp://x"\n')
    unknown, timeout, url = problems({}, config)
    assert unknown.startswith(f"{config}:1: concurrenc: unknown key; did you mean 'concurrency'? "
                              "valid keys: ca_bundle, concurrency,")
    assert timeout == (f"{config}:2: timeout: expected a number of seconds, greater than 0 and at "
                       "most 3,600, unquoted (a TOML number); got 'soon'")
    assert url.startswith(f"{config}:3: gateway_urls: zap-1: expected an http:// or https:// URL")


def test_a_key_in_the_wrong_case_suggests_the_key_in_the_right_one(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text("TIMEOUT = 5\n")
    [unknown] = problems({}, config)
    assert unknown.startswith(f"{config}:1: TIMEOUT: unknown key; did you mean 'timeout'? ")


def test_a_variable_name_copied_into_the_file_suggests_its_key(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text("RECONCILER_TIMEOUT = 5\nreconciler_state_dir = 'state'\n")
    timeout, state_dir = problems({}, config)
    assert timeout.startswith(
        f"{config}:1: RECONCILER_TIMEOUT: unknown key; did you mean 'timeout'? (the file's "
        "keys are the variables' names without RECONCILER_) valid keys: "), timeout
    assert state_dir.startswith(
        f"{config}:2: reconciler_state_dir: unknown key; did you mean 'state_dir'? "), state_dir


def test_a_file_that_is_not_toml_is_located_by_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text("retries = 3\ntimeout = = 4\n")
    [problem] = problems({"RECONCILER_CONFIG": str(config)})
    assert problem.startswith(f"{config}:2:11: not valid TOML: ")


def test_a_missing_settings_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert problems({}, missing) == [
        f"{missing}: cannot read the settings file: No such file or directory"]


@pytest.mark.parametrize(("content", "expected"), [
    pytest.param('["http://10.0.0.1"]', 'expected a table of serial = "url"', id="not-an-object"),
    pytest.param('{"zap-1": ', "2:1: not valid JSON: Expecting value", id="not-json"),
    pytest.param('{"zap-1": "10.0.0.1"}', "zap-1: expected an http:// or https:// URL",
                 id="not-a-url"),
])
def test_a_bad_gateway_urls_file_is_located(tmp_path: Path, content: str, expected: str) -> None:
    urls = tmp_path / "gateways.json"
    urls.write_text(content + "\n")
    [problem] = problems({"RECONCILER_GATEWAY_URLS_FILE": str(urls)})
    assert problem.startswith(str(urls)) and expected in problem


def test_a_gateway_urls_file_is_read(tmp_path: Path) -> None:
    urls = tmp_path / "gateways.json"
    urls.write_text(json.dumps({"zap-0000000000000001": "https://10.0.0.1:8443"}))
    settings = load_settings({"RECONCILER_GATEWAY_URLS_FILE": str(urls)})
    assert settings.gateway_url("zap-0000000000000001", "http://declared") == (
        "https://10.0.0.1:8443")


def test_credentials_lose_surrounding_whitespace_from_the_environment_and_the_file(
        tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text('enapter_token = """\nfrom-file\n"""\nflatpeak_api_key = " key\\n"\n')
    settings = load_settings({"RECONCILER_NOVACORE_TOKEN": "a.b.c\n",
                              "RECONCILER_FLATPEAK_ACCOUNT_ID": "acc-1\r\n"},
                             config_file=str(config))
    assert (settings.novacore_token, settings.enapter_token, settings.flatpeak_api_key,
            settings.flatpeak_account_id) == ("a.b.c", "from-file", "key", "acc-1")


def test_a_control_character_inside_a_credential_is_named_without_the_value(
        tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text('flatpeak_api_key = "hunter2\\u0000x"\n')
    reported = problems({"RECONCILER_NOVACORE_TOKEN": "hunter2\nhunter3",
                         "RECONCILER_ENAPTER_TOKEN": "hunter2é"}, config)
    assert reported == [
        f"{config}:1: flatpeak_api_key: contains a control character (U+0000) at character 8; "
        "expected the value on one line, without control characters",
        "RECONCILER_NOVACORE_TOKEN: contains a control character (a line break) at character "
        "8; expected the value on one line, without control characters",
        "RECONCILER_ENAPTER_TOKEN: contains a character that is not ASCII at character 8; "
        "expected ASCII letters, digits and punctuation only"]
    assert not any("hunter" in problem for problem in reported)


def test_files_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_bytes(b'retries = 3\ntimeout = "\xff"\n')
    assert problems({}, config) == [
        f"{config}:2:12: not UTF-8 text: byte 0xff cannot be decoded; save the file as UTF-8"]
    urls = tmp_path / "gateways.json"
    urls.write_bytes(b'{"zap-1": "\xfe"}')
    assert problems({"RECONCILER_GATEWAY_URLS_FILE": str(urls)}) == [
        f"{urls}:1:12: not UTF-8 text: byte 0xfe cannot be decoded; save the file as UTF-8"]


def test_the_settings_file_names_a_gateway_urls_file_relative_to_itself(
        tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "reconciler.toml"
    config.write_text('gateway_urls_file = "gateways.json"\n')
    (tmp_path / "conf" / "gateways.json").write_text(
        json.dumps({"zap-0000000000000001": "http://10.0.0.5"}))
    settings = load_settings({}, config_file=str(config))
    assert settings.gateway_urls == {"zap-0000000000000001": "http://10.0.0.5"}
    # The environment wins, as for every key.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"zap-0000000000000002": "http://10.0.0.6"}))
    settings = load_settings({"RECONCILER_GATEWAY_URLS_FILE": str(other)},
                             config_file=str(config))
    assert settings.gateway_urls == {"zap-0000000000000002": "http://10.0.0.6"}
    config.write_text('gateway_urls_file = "missing.json"\n')
    assert problems({}, config) == [
        f"{config}:1: gateway_urls_file: cannot read {tmp_path / 'conf' / 'missing.json'}: "
        "No such file or directory"]


HOME = ("starts with '~', which is not expanded here (only a shell's command line does "
        "that): give an absolute path")


def test_a_path_setting_starting_with_a_tilde_is_refused(tmp_path: Path) -> None:
    """A settings file, a systemd EnvironmentFile or a pod's env expands no `~`: taken as
    it is, `state_dir = "~/state"` made a directory named `~` in the working directory."""
    config = tmp_path / "reconciler.toml"
    config.write_text('state_dir = "~/state"\nnovacore_token_file = "~/token"\n'
                      'gateway_urls_file = "~/gateways.json"\n')
    assert problems({"RECONCILER_SECRETS_DIR": "~/secrets", "RECONCILER_CA_BUNDLE": "~/ca.pem",
                     "RECONCILER_ENAPTER_TOKEN_FILE": "~"}, config) == [
        f"{config}:1: state_dir: '~/state' {HOME}",
        f"{config}:2: novacore_token_file: '~/token' {HOME}",
        f"{config}:3: gateway_urls_file: '~/gateways.json' {HOME}",
        f"RECONCILER_CA_BUNDLE: '~/ca.pem' {HOME}",
        f"RECONCILER_ENAPTER_TOKEN_FILE: '~' {HOME}",
        f"RECONCILER_SECRETS_DIR: '~/secrets' {HOME}",
    ]
    # Only a leading `~` is the shell's: one inside a path is a name like any other.
    assert load_settings({"RECONCILER_STATE_DIR": "/srv/~state"}).state_dir == "/srv/~state"


def test_files_saved_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_bytes(b"\xef\xbb\xbfconcurrency = 7\n")
    urls = tmp_path / "gateways.json"
    urls.write_bytes(b'\xef\xbb\xbf{"zap-0000000000000001": "http://10.0.0.9"}')
    settings = load_settings({"RECONCILER_GATEWAY_URLS_FILE": str(urls)}, config_file=str(config))
    assert settings.concurrency == 7
    assert settings.gateway_url("zap-0000000000000001", "http://declared") == "http://10.0.0.9"
    # A problem on line 1 is still at the column an editor shows, the mark not counted.
    config.write_bytes(b"\xef\xbb\xbfconcurrency = = 7\n")
    [problem] = problems({}, config)
    assert problem.startswith(f"{config}:1:15: not valid TOML: "), problem


def test_files_nested_too_deeply_to_parse_are_refused(tmp_path: Path) -> None:
    urls = tmp_path / "gateways.json"
    urls.write_text("[" * 100_000 + "]" * 100_000)
    config = tmp_path / "reconciler.toml"
    config.write_text("retries = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert problems({"RECONCILER_GATEWAY_URLS_FILE": str(urls)}, config) == [
        f"{config}: arrays or tables nested too deeply to read; expected keys of the "
        "settings, with one table at most ([gateway_urls])",
        f"{urls}: arrays or objects nested too deeply to read; expected one object of "
        'serial: "url"']


def test_files_holding_a_number_too_long_to_parse_are_refused(tmp_path: Path) -> None:
    """Python reads no integer of more than 4,300 digits: said as what the file holds, not
    as a traceback (TOML) or Python's advice to raise its limit (JSON)."""
    urls = tmp_path / "gateways.json"
    urls.write_text('{"zap-0123456789abcdef": ' + "9" * 5000 + "}")
    config = tmp_path / "reconciler.toml"
    config.write_text("retries = " + "9" * 5000 + "\n")
    assert problems({"RECONCILER_GATEWAY_URLS_FILE": str(urls)}, config) == [
        f"{config}: a number of more than 4,300 digits, too long to read; expected keys of "
        "the settings, each limit a number of a few digits",
        f"{urls}: a number of more than 4,300 digits, too long to read; expected one object "
        'of serial: "url"']


@pytest.mark.parametrize("variable", ["RECONCILER_NOVACORE_URL", "RECONCILER_ENAPTER_URL",
                                      "RECONCILER_FLATPEAK_URL"])
def test_cloud_urls_are_https_except_to_this_machine(variable: str) -> None:
    [problem] = problems({variable: "http://api.example.com"})
    assert problem == (
        f"{variable}: expected an https:// URL: the token would be sent unencrypted over "
        "http:// (allowed only to this machine: localhost, 127.0.0.1, [::1]); got "
        "'http://api.example.com'")
    for local in ("http://127.0.0.1:8080", "http://127.1.2.3", "http://[::1]:9",
                  "http://localhost:1"):
        assert load_settings({variable: local}) is not None
    settings = load_settings({"RECONCILER_GATEWAY_URLS": "zap-1=http://192.168.1.20"})
    assert settings.gateway_url("zap-1", "http://declared") == "http://192.168.1.20"


@pytest.mark.parametrize("url", ["http://novacore.localhost:8080", "http://a.b.LOCALHOST",
                                 "http://localhost.example.com", "http://127.0.0.1.nip.io"])
def test_a_name_that_only_looks_like_this_machine_gets_no_token_over_http(url: str) -> None:
    """Not in /etc/hosts, such a name is looked up in DNS, which may answer any address."""
    [problem] = problems({"RECONCILER_NOVACORE_URL": url})
    assert problem == (
        "RECONCILER_NOVACORE_URL: expected an https:// URL: the token would be sent "
        "unencrypted over http:// (allowed only to this machine: localhost, 127.0.0.1, "
        f"[::1]); got {url!r}")


def test_overrides_of_serials_not_declared_are_found() -> None:
    settings = load_settings({"RECONCILER_GATEWAY_URLS": "zap-b=http://10.0.0.2,"
                                                         "zap-a=http://10.0.0.1,"
                                                         "zap-c=http://10.0.0.3"})
    assert settings.unknown_gateway_serials(["zap-b"]) == ["zap-a", "zap-c"]


def test_a_secret_file_gives_its_password_without_the_line_ending(tmp_path: Path) -> None:
    from reconciler.engine.config import SecretResolver
    from reconciler.model.device import SecretKeyRef, SecretSource

    def secret(name: str) -> SecretSource:
        return SecretSource(secret_key_ref=SecretKeyRef(name=name, key="password"))

    saved = (("unix", b"pw-1\n"), ("windows", b"pw-1\r\n"), ("bare", b"pw-1"),
             ("notepad", b"\xef\xbb\xbfpw-1\r\n"))
    for name, content in saved:
        (tmp_path / name).mkdir()
        (tmp_path / name / "password").write_bytes(content)
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "password").write_bytes(b"l\xf6sen\n")
    resolver = SecretResolver(str(tmp_path), environ={})
    assert [resolver.resolve(secret(n)) for n, _ in saved] == ["pw-1"] * len(saved)
    with pytest.raises(KeyError) as caught:
        resolver.resolve(secret("latin1"))
    assert caught.value.args[0] == (
        f"secret latin1/password at {tmp_path / 'latin1' / 'password'} is not UTF-8 text")


def test_the_resolver_never_reads_a_reconciler_setting(tmp_path: Path) -> None:
    """Validation refuses `passwordFrom.env: RECONCILER_*`; a source that skipped it (made
    with `model_construct`) is refused where the value would be read, the value unread."""
    from reconciler.engine.config import SecretResolver
    from reconciler.model.device import SecretSource

    token = "operator-token-value"  # a test value
    environ = {"RECONCILER_NOVACORE_TOKEN": token, "BATTERY_PASSWORD": "pw-1"}
    resolver = SecretResolver(str(tmp_path), environ=environ)
    assert resolver.resolve(SecretSource(env="BATTERY_PASSWORD")) == "pw-1"
    for name in ("RECONCILER_NOVACORE_TOKEN", "reconciler_novacore_token"):
        with pytest.raises(KeyError) as caught:
            resolver.resolve(SecretSource.model_construct(env=name, secret_key_ref=None))
        assert caught.value.args[0].startswith(f"{name} is not allowed: names starting with "
                                               "RECONCILER_, in any letter case, are the "
                                               "reconciler's own settings")
        assert token not in caught.value.args[0]


@pytest.mark.parametrize("config_text", [
    'enapter_url = "https://ops:hunter2@api.enapter.com"\n',
    '[gateway_urls]\n"zap-1" = "http://admin:hunter2@10.0.0.1/"\n',
], ids=["cloud-url", "gateway-url"])
def test_credentials_in_a_url_of_the_settings_file_are_refused(tmp_path: Path,
                                                               config_text: str) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text(config_text)
    [problem] = problems({}, config)
    assert problem.startswith(f"{config}:1: ")
    assert "holds a user name or password" in problem and "hunter2" not in problem
    assert "a Secret or an environment variable" in problem


def test_credentials_in_a_gateway_urls_file_are_refused(tmp_path: Path) -> None:
    urls = tmp_path / "gateways.json"
    urls.write_text(json.dumps({"zap-1": "http://admin:hunter2@10.0.0.1/"}))
    [problem] = problems({"RECONCILER_GATEWAY_URLS_FILE": str(urls)})
    assert problem.startswith(f"{urls}: zap-1: 'http://***@10.0.0.1/' holds a user name or "
                              "password")
    assert "hunter2" not in problem


def test_a_password_holding_a_slash_is_not_repeated_either() -> None:
    [problem] = problems({"RECONCILER_FLATPEAK_URL": "https://ops:hun/ter2@api.flatpeak.com"})
    assert problem == ("RECONCILER_FLATPEAK_URL: expected an http:// or https:// URL with a "
                       "host (e.g. https://api.example.com), got 'https://***@api.flatpeak.com'")


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("RECONCILER_GATEWAY_URLS", "zap-1=http://999.1.1.1", "zap-1: '999.1.1.1' is not a valid "
                                                          "IPv4 address: expected four numbers "
                                                          "from 0 to 255"),
    ("RECONCILER_GATEWAY_URLS", "zap-1=http://zap_1.local", "zap-1: 'zap_1.local' is not a "
                                                            "valid host: expected a host name"),
    ("RECONCILER_ENAPTER_URL", "https://api..enapter.com", "'api..enapter.com' is not a valid "
                                                           "host"),
    ("RECONCILER_NOVACORE_URL", "http://127.1", "'127.1' is not a valid IPv4 address"),
])
def test_a_url_whose_host_is_no_name_or_address_is_refused(variable: str, value: str,
                                                           expected: str) -> None:
    [problem] = problems({variable: value})
    assert problem.startswith(f"{variable}: {expected}"), problem


@pytest.mark.parametrize("url", ["http://192.168.1.20:8080", "http://zap-1.home.arpa/",
                                 "http://[fd00::20]:80/", "https://localhost"])
def test_names_and_addresses_stay_accepted(url: str) -> None:
    settings = load_settings({"RECONCILER_GATEWAY_URLS": f"zap-1={url}"})
    assert settings.gateway_urls == {"zap-1": url}


def test_a_gateway_urls_file_with_carriage_returns_is_located_by_editor_lines(
        tmp_path: Path) -> None:
    urls = tmp_path / "gateways.json"
    urls.write_text('{\r  "zap-1": "http://10.0.0.1",\r  "zap-2": ,\r}\r', newline="")
    [problem] = problems({"RECONCILER_GATEWAY_URLS_FILE": str(urls)})
    assert problem.startswith(f"{urls}:3:12: not valid JSON: Expecting value"), problem


def test_the_resolver_never_reads_a_file_outside_the_secrets_directory(tmp_path: Path) -> None:
    """Validation refuses a Secret name or key that is a path; a source that skipped it (made
    with `model_construct`) is refused where the file would be read, the file unread."""
    from reconciler.engine.config import SecretResolver
    from reconciler.model.device import SecretKeyRef, SecretSource

    secrets = tmp_path / "secrets"
    (secrets / "mqtt").mkdir(parents=True)
    (secrets / "mqtt" / "password").write_text("pw-1", encoding="utf-8")
    (tmp_path / "credentials.key").write_text("not-for-a-gateway", encoding="utf-8")
    resolver = SecretResolver(str(secrets), environ={})
    ok = SecretSource(secret_key_ref=SecretKeyRef(name="mqtt", key="password"))
    assert resolver.resolve(ok) == "pw-1"
    for name, key in ((str(tmp_path), "credentials.key"), ("..", "credentials.key"),
                      ("mqtt", "../../credentials.key"), ("mqtt", "..")):
        ref = SecretKeyRef.model_construct(name=name, key=key)
        with pytest.raises(KeyError) as caught:
            resolver.resolve(SecretSource.model_construct(secret_key_ref=ref, env=None))
        assert "is not a Secret name and key" in caught.value.args[0]



# --- credentials in files (RECONCILER_*_TOKEN_FILE), read again at every run -------------

FILE_VARIABLES = {"RECONCILER_NOVACORE_TOKEN_FILE": "novacore_token",
                  "RECONCILER_ENAPTER_TOKEN_FILE": "enapter_token",
                  "RECONCILER_FLATPEAK_API_KEY_FILE": "flatpeak_api_key"}


@pytest.mark.parametrize(("variable", "field"), FILE_VARIABLES.items())
def test_a_credential_is_read_from_its_file_without_the_line_break(
        tmp_path: Path, variable: str, field: str) -> None:
    for content in (b"tok-1\n", b"tok-1\r\n", b"\xef\xbb\xbftok-1\n\n", b"tok-1"):
        (tmp_path / "secret").write_bytes(content)
        settings = load_settings({variable: str(tmp_path / "secret")})
        assert getattr(settings, field) == "tok-1", content
    assert getattr(settings, field + "_file") == str(tmp_path / "secret")


def test_a_rotated_token_file_is_read_again_by_renewed(tmp_path: Path) -> None:
    token = tmp_path / "novacore-token"
    token.write_text("a.b.c\n")
    settings = load_settings({"RECONCILER_NOVACORE_TOKEN_FILE": str(token),
                              "RECONCILER_ENAPTER_TOKEN": "enapter-1"})
    token.write_text("d.e.f\n")
    assert settings.novacore_token == "a.b.c"
    renewed = settings.renewed()
    assert (renewed.novacore_token, renewed.enapter_token) == ("d.e.f", "enapter-1")
    token.write_text("")
    with pytest.raises(ConfigError) as caught:
        settings.renewed()
    assert [str(d) for d in caught.value.diagnostics] == [
        f"RECONCILER_NOVACORE_TOKEN_FILE: {token} is empty; expected the Novacore token in it"]
    # Without a file there is nothing to read again.
    plain = load_settings({"RECONCILER_NOVACORE_TOKEN": "a.b.c"})
    assert plain.renewed() is plain


def test_a_token_given_through_a_pipe_is_read_once_and_kept_by_renewed() -> None:
    # `RECONCILER_NOVACORE_TOKEN_FILE=<(sops -d ...)`: the shell names a pipe's descriptor.
    # It gives the token once; `renewed` (each watch run) keeps it instead of waiting on a
    # pipe that has nothing more to give.
    reader, writer = os.pipe()
    try:
        os.write(writer, b"a.b.c\n")
        os.close(writer)
        settings = load_settings({"RECONCILER_NOVACORE_TOKEN_FILE": f"/proc/self/fd/{reader}"})
        assert settings.novacore_token == "a.b.c"
        assert settings.renewed().novacore_token == "a.b.c"
    finally:
        os.close(reader)


def test_a_credential_file_that_cannot_be_used_is_named_never_its_content(
        tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\r\n")
    (tmp_path / "two-lines").write_text("hunter2\nhunter3\n")
    (tmp_path / "latin1").write_bytes("hunter2é".encode("latin-1"))
    reported = problems({"RECONCILER_NOVACORE_TOKEN_FILE": str(tmp_path / "two-lines"),
                         "RECONCILER_ENAPTER_TOKEN_FILE": str(tmp_path / "missing"),
                         "RECONCILER_FLATPEAK_API_KEY_FILE": str(tmp_path / "latin1")})
    assert reported == [
        f"RECONCILER_NOVACORE_TOKEN_FILE: {tmp_path / 'two-lines'}: contains a control "
        "character (a line break) at character 8; expected the value on one line, without "
        "control characters",
        f"RECONCILER_ENAPTER_TOKEN_FILE: cannot read {tmp_path / 'missing'} (the Enapter "
        "token): No such file or directory",
        f"RECONCILER_FLATPEAK_API_KEY_FILE: {tmp_path / 'latin1'} is not UTF-8 text; expected "
        "the Flatpeak API key in it"]
    assert problems({"RECONCILER_ENAPTER_TOKEN_FILE": str(tmp_path / "empty"),
                     "RECONCILER_NOVACORE_TOKEN_FILE": str(tmp_path)}) == [
        f"RECONCILER_NOVACORE_TOKEN_FILE: cannot read {tmp_path} (the Novacore token): Is a "
        "directory",
        f"RECONCILER_ENAPTER_TOKEN_FILE: {tmp_path / 'empty'} is empty; expected the Enapter "
        "token in it"]
    assert not any("hunter" in problem for problem in reported)


def test_a_credential_and_its_file_in_the_same_place_are_refused_naming_both(
        tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    assert problems({"RECONCILER_ENAPTER_TOKEN": "hunter2",
                     "RECONCILER_ENAPTER_TOKEN_FILE": str(tmp_path / "token")}) == [
        "RECONCILER_ENAPTER_TOKEN_FILE: RECONCILER_ENAPTER_TOKEN is set too; set either "
        "RECONCILER_ENAPTER_TOKEN (the Enapter token) or RECONCILER_ENAPTER_TOKEN_FILE (a file "
        "holding it), not both"]
    config = tmp_path / "reconciler.toml"
    config.write_text('retries = 2\nflatpeak_api_key = "hunter2"\n'
                      'flatpeak_api_key_file = "token"\n')
    assert problems({}, config) == [
        f"{config}:3: flatpeak_api_key_file: flatpeak_api_key is set too; set either "
        "flatpeak_api_key (the Flatpeak API key) or flatpeak_api_key_file (a file holding "
        "it), not both"]


def test_the_settings_file_names_a_token_file_relative_to_itself_and_the_environment_wins(
        tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "reconciler.toml"
    config.write_text('novacore_token_file = "novacore-token"\nenapter_token = "from-toml"\n')
    (tmp_path / "conf" / "novacore-token").write_text("from-file\n")
    settings = load_settings({}, config_file=str(config))
    assert settings.novacore_token == "from-file"
    assert settings.novacore_token_file == str(tmp_path / "conf" / "novacore-token")
    # Either form in the environment wins over either form in the file, as for every key.
    (tmp_path / "enapter-token").write_text("from-env-file\n")
    settings = load_settings({"RECONCILER_NOVACORE_TOKEN": "from-env",
                              "RECONCILER_ENAPTER_TOKEN_FILE": str(tmp_path / "enapter-token")},
                             config_file=str(config))
    assert (settings.novacore_token, settings.novacore_token_file) == ("from-env", "")
    assert settings.enapter_token == "from-env-file"
    assert settings.renewed().novacore_token == "from-env"
    config.write_text('novacore_token_file = "missing"\n')
    assert problems({}, config) == [
        f"{config}:1: novacore_token_file: cannot read {tmp_path / 'conf' / 'missing'} (the "
        "Novacore token): No such file or directory"]


def test_a_token_file_of_another_machine_is_not_read_with_check_files_off() -> None:
    settings = load_settings({"RECONCILER_NOVACORE_TOKEN_FILE": "/var/run/secrets/x/token"},
                             check_files=False)
    assert (settings.novacore_token, settings.novacore_token_file) == (
        "", "/var/run/secrets/x/token")


@pytest.mark.parametrize(
    "payload",
    [b'{"sub": "idt-1"}', b"[" * 100_000 + b"]" * 100_000, b'{"sub": 1' + b"0" * 5000 + b"}",
     b"\xff\xfe", b"[1, 2]"],
    ids=["claims", "nested too deeply", "a number too long", "not UTF-8", "no object"],
)
def test_the_claimer_is_read_from_a_token_of_claims_and_nothing_else(payload: bytes) -> None:
    """The claimer identity comes from the token's claims when none is set; a token whose
    middle part holds no claims gives none (the claim then says so), never a traceback."""
    middle = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    settings = load_settings({"RECONCILER_NOVACORE_TOKEN": f"e30.{middle}.c2ln"},
                             check_files=False)
    assert settings.claimer_identity() == ("idt-1" if payload.startswith(b'{"sub": "') else "")
