"""Endpoints, credentials and limits, from environment variables and an optional TOML
config file (environment wins). These are the variables `reconciler sim up --print-env`
prints. Secret values are held here only; nothing renders them.

| variable | meaning |
|---|---|
| RECONCILER_CONFIG | path of a TOML file with the same keys in lowercase, without prefix |
| RECONCILER_NOVACORE_URL / _TOKEN / _IDENTITY | Novacore URL, operator JWT, claimer identity |
| RECONCILER_ENAPTER_URL / _TOKEN | Enapter Cloud API base URL and token |
| RECONCILER_FLATPEAK_URL / _ACCOUNT_ID / _API_KEY | Flatpeak base URL and credentials |
| RECONCILER_NOVACORE_TOKEN_FILE, ... | a file holding the token (or API key) instead, |
| _ENAPTER_TOKEN_FILE, _FLATPEAK_API_KEY_FILE | read again at every run (`Settings.renewed`) |
| RECONCILER_GATEWAY_URLS | `serial=url,serial=url`: where to reach Zaps (overrides spec.zap.url) |
| RECONCILER_GATEWAY_URLS_FILE | the same as a JSON object in a file |
| RECONCILER_STATE_DIR | journal, lock and inventory (default `.reconciler`) |
| RECONCILER_SECRETS_DIR | secretKeyRef values as `<dir>/<name>/<key>` (default `secrets`) |
| RECONCILER_CONCURRENCY, _GATEWAY_CONCURRENCY, _GATEWAY_RATE, _TIMEOUT, _RETRIES | limits |
| RECONCILER_MODBUS_TIMEOUT | seconds a serial read directly from a Modbus device waits |
| RECONCILER_CA_BUNDLE / RECONCILER_INSECURE_SKIP_TLS_VERIFY | TLS verification |
| HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (or lowercase) | proxies (`providers.proxy`) |
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import math
import os
import re
import ssl
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.errors import ConfigError, Diagnostic, ProviderAuthError
from reconciler.model.base import RESOURCE_NAME_PATTERN
from reconciler.model.device import SecretSource
from reconciler.model.env_names import SECRET_KEY_PATTERN, own_setting_problem
from reconciler.model.gateway import ZAP_URL_EXAMPLES
from reconciler.model.network import query_problem, shown_url, url_problem
from reconciler.name_list import closest
from reconciler.path_limits import path_problem
from reconciler.printable import echo
from reconciler.providers.proxy import Proxies, ProxySettingError
from reconciler.sources import bounded, json_text, utf8

PREFIX = "RECONCILER_"


@dataclass(frozen=True)
class Settings:
    novacore_url: str = "https://novacore-mainnet.sourceful.dev"
    novacore_token: str = field(default="", repr=False)
    novacore_token_file: str = ""
    novacore_identity: str = ""
    enapter_url: str = "https://api.enapter.com"
    enapter_token: str = field(default="", repr=False)
    enapter_token_file: str = ""
    flatpeak_url: str = "https://api.flatpeak.com"
    flatpeak_account_id: str = ""
    flatpeak_api_key: str = field(default="", repr=False)
    flatpeak_api_key_file: str = ""
    gateway_urls: Mapping[str, str] = field(default_factory=dict)
    state_dir: str = ".reconciler"
    secrets_dir: str = "secrets"
    concurrency: int = 64
    gateway_concurrency: int = 4
    gateway_rate: float = 20.0
    timeout: float = 10.0
    modbus_timeout: float = 3.0
    retries: int = 6
    ca_bundle: str = ""
    insecure_skip_tls_verify: bool = False
    # From the standard variables, not RECONCILER_* ones nor the settings file: the proxy is
    # the machine's, shared with curl, pip and kubectl.
    proxies: Proxies = field(default_factory=Proxies)

    @property
    def verify(self) -> bool | str:
        if self.insecure_skip_tls_verify:
            return False
        return self.ca_bundle or True

    def insecure_warning(self) -> str | None:
        """What to tell the user when TLS verification is off: tokens then go to whoever
        answers at the cloud's address. A switch left on by accident must not go unseen."""
        if not self.insecure_skip_tls_verify:
            return None
        return ("warning: RECONCILER_INSECURE_SKIP_TLS_VERIFY is set: TLS certificates are not "
                "verified, so tokens go to whoever answers at the cloud URLs; to trust a "
                "private CA instead, name in RECONCILER_CA_BUNDLE a bundle of its "
                "certificates (it replaces the default roots)")

    def claimer_identity(self) -> str:
        """The identity id that signs claims: configured, or read from the token's claims
        (`identity_id` or `sub`). The token is not verified here; Novacore does that."""
        if self.novacore_identity:
            return self.novacore_identity
        try:
            payload = self.novacore_token.split(".")[1]
            claims = json_text.loads(
                base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode())
            return str(claims.get("identity_id") or claims.get("sub") or "")
        # Not a token of claims: nested too deeply (`json_text.TooComplex`) as much as not
        # JSON, no object, or not UTF-8 (a ValueError too).
        except (IndexError, ValueError, AttributeError):
            return ""

    def renewed(self) -> Settings:
        """These settings with each credential given as a file (`*_FILE`) read from it
        again: a token rotated in its file (kubelet rewrites a mounted Secret's files in
        place) is used from the next run on, without a restart. ConfigError (subject
        "settings") naming the file, never its content, when one cannot be used."""
        changes: dict[str, Any] = {}
        problems: list[Diagnostic] = []
        for file_field, name in CREDENTIAL_FILES.items():
            path = getattr(self, file_field)
            if not path or _is_pipe(path):
                # A pipe (`<(sops -d ...)`) gave its all when the settings were read: read
                # again, it would give nothing.
                continue
            # The file was named by the variable or by the settings file's key of the same
            # name; the variable's name is the one the docs and the chart use.
            origin: Origin = (None, PREFIX + file_field.upper())
            value, problem = _read_credential_file(name, path, origin)
            if problem is not None:
                problems.append(problem)
            else:
                changes[name] = value
        if problems:
            raise ConfigError(problems, subject="settings")
        return dataclasses.replace(self, **changes) if changes else self

    def refused_hint(self, error: BaseException | None, *, when: str | None) -> str | None:
        """What to do about a platform's refusal of its credential (a token past its
        expiry, Novacore's after 24 h: a 401, Enapter's 403 `invalid_header`, Flatpeak's
        refused login; `ProviderAuthError.credential_refused`), read again `when` ("at the
        next run"): a file is read again then, a variable at start only. `when` None for a
        command that runs once (`plan`, `apply`), which reads both again when run again.
        None for any other error."""
        if not isinstance(error, ProviderAuthError) or not error.credential_refused:
            return None
        platform = error.operation.partition(".")[0]
        if platform not in _PLATFORM_CREDENTIALS:
            return None
        name = _PLATFORM_CREDENTIALS[platform]
        what = _CREDENTIAL_NAMES[name]
        path = getattr(self, name + "_file")
        variable = PREFIX + name.upper()
        if when is None:
            if path:
                return (f"the {what} from {variable}_FILE ({path}) was refused (expired or "
                        f"wrong): write a new {what} into it and run the command again")
            return (f"the {what} from {variable} was refused (expired or wrong): set it to "
                    f"a new {what} and run the command again")
        if path:
            return (f"the {what} from {variable}_FILE ({path}) was refused; the file is read "
                    f"again {when}: write a new {what} into it, no restart needed")
        return (f"the {what} from {variable} was refused; the variable is read at start "
                f"only: restart with a new {what}, or name a file holding it in "
                f"{variable}_FILE, which is read again {when}")

    def gateway_url(self, serial: str, declared: str) -> str:
        return self.gateway_urls.get(serial, declared).rstrip("/")

    def unknown_gateway_serials(self, declared: Iterable[str]) -> list[str]:
        """The serials of `gateway_urls` that none of `declared` is: their URLs are never
        used, and a mistyped serial leaves its gateway reached at the URL of its YAML."""
        known = set(declared)
        return sorted(serial for serial in self.gateway_urls if serial not in known)


# Where a setting came from, for error messages: (file, key) of a TOML file, or (None,
# variable name) of the environment.
Origin = tuple[str | None, str]
_DEFAULTS = {f.name: f.default for f in fields(Settings)}
# The fields read from RECONCILER_* variables and the settings file's keys.
_OWN_FIELDS = tuple(f.name for f in fields(Settings) if f.name != "proxies")
_URL_FIELDS = frozenset({"novacore_url", "enapter_url", "flatpeak_url"})
# The settings that name a file or directory of this machine, and the settings file's key
# (and variable) of the gateway-URLs file, which is no field.
_PATH_FIELDS = frozenset({"state_dir", "secrets_dir", "ca_bundle", "novacore_token_file",
                          "enapter_token_file", "flatpeak_api_key_file", "gateway_urls_file"})
# Tokens, keys and the ids sent with them. They often come from a file (`kubectl create
# secret --from-file`, `echo "$TOKEN" > file`) that ends in a line break, which would make
# every request fail on a header that may not hold one: surrounding whitespace is dropped.
_CREDENTIAL_FIELDS = frozenset(
    {"novacore_token", "novacore_identity", "enapter_token", "flatpeak_account_id",
     "flatpeak_api_key"}
)
# Of those, the ones sent in an HTTP header, which holds ASCII only.
_HEADER_FIELDS = frozenset({"novacore_token", "enapter_token", "flatpeak_account_id",
                            "flatpeak_api_key"})
# The credentials that may be given as a file instead, by the field naming the file: the
# layout of a mounted Secret, which kubelet updates in place when the Secret changes. The
# file is read at start and again before every run of `watch` and every reconcile of the
# operator (`Settings.renewed`): a token that expires (Novacore's after 24 h) is rotated in
# the file, not by a restart.
CREDENTIAL_FILES = {
    "novacore_token_file": "novacore_token",
    "enapter_token_file": "enapter_token",
    "flatpeak_api_key_file": "flatpeak_api_key",
}
_CREDENTIAL_NAMES = {
    "novacore_token": "Novacore token",
    "enapter_token": "Enapter token",
    "flatpeak_api_key": "Flatpeak API key",
}
# The credential each platform's calls carry, by the prefix of their operation's name.
_PLATFORM_CREDENTIALS = {
    "novacore": "novacore_token",
    "enapter": "enapter_token",
    "flatpeak": "flatpeak_api_key",
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
# What each limit means, for "expected ..." messages.
_LIMITS = {
    "concurrency": "calls in flight",
    "gateway_concurrency": "calls in flight per gateway",
    "retries": "attempts",
    "gateway_rate": "requests per second",
    "timeout": "seconds",
    "modbus_timeout": "seconds",
}
# The most each limit may be. A larger value is a typo or a unit mistaken (milliseconds
# for seconds), never a need, and it has a cost: `RECONCILER_TIMEOUT=1e300` leaves a plan
# waiting forever on a gateway that accepts a connection and never answers.
# - a call waits an hour at most: no API or gateway answers later, and a watch run or an
#   operator reconcile must end for the next to start;
# - 100 attempts: with the backoff capped at 10 s between them, a write perseveres some
#   quarter of an hour, past any outage a retry can outlast;
# - 10,000 calls in flight, overall or to one gateway: each holds a socket (a file
#   descriptor) and a connection the other side must serve; no cloud or gateway answers
#   that many at once faster than fewer, and the process runs out of open files first.
# The rate has none: a high one waits on nothing, and only infinity is refused.
_MAXIMA: dict[str, float] = {
    "concurrency": 10_000,
    "gateway_concurrency": 10_000,
    "retries": 100,
    "gateway_rate": math.inf,
    "timeout": 3600,
    "modbus_timeout": 3600,
}


def _url(value: object, examples: str = ZAP_URL_EXAMPLES) -> str:
    """An http:// or https:// base URL with a host, and neither credentials nor a query or
    fragment; `examples` show what one looks like (a Zap's unless told)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a URL string, got {type(value).__name__}")
    # Whitespace around it is no part of it (the line end of a value read from a file, as
    # a credential's), and is dropped. A control character inside is refused by position:
    # the URL parser skips a tab or line break, so the URL would pass here, and then the
    # HTTP client, which does not, would stop the run at its first call.
    value = value.strip()
    for position, char in enumerate(value, start=1):
        if _is_control(char):
            raise ValueError(
                f"contains a control character ({_char_name(char)}) at character {position}; "
                f"expected a URL on one line, without control characters (e.g. {examples})"
            )
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(
            f"expected an http:// or https:// URL with a host (e.g. https://api.example.com), "
            f"got {echo(shown_url(value))}"
        )
    # Credentials (masked: a password may hold a '?'), or a host such as 999.1.1.1, then
    # a query or fragment, which would swallow the paths appended.
    problem = url_problem(value) or query_problem(value, examples)
    if problem is not None:
        raise ValueError(problem)
    return value


def _cloud_url(value: object) -> str:
    """A cloud API's URL: https, since the token goes with every request. Plain http is
    allowed only to this machine (127.0.0.0/8, ::1, localhost), where the simulators and a
    local proxy listen and nothing crosses a network. (Zap gateways are reached over the
    local network by plain http by design: their URLs go through `_url` alone.)"""
    url = _url(value, "https://api.example.com or https://proxy.example.com/novacore")
    parts = urlsplit(url)
    if parts.scheme == "http" and not _loopback(parts.hostname or ""):
        raise ValueError(
            "expected an https:// URL: the token would be sent unencrypted over http:// "
            "(allowed only to this machine: localhost, 127.0.0.1, [::1]); "
            f"got {echo(shown_url(url))}"
        )
    return url


def _loopback(host: str) -> bool:
    # `localhost` alone: /etc/hosts names it. A name under it (novacore.localhost) is not
    # in /etc/hosts, and glibc asks DNS for it, which may answer with any address.
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_gateway_urls(text: str) -> dict[str, str]:
    out = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        serial, _, url = item.partition("=")
        if not serial.strip() or not url:
            raise ValueError(
                f"expected serial=url pairs joined by commas "
                f"(e.g. zap-0123456789abcdef=http://192.168.1.20), got {echo(shown_url(item))}"
            )
        try:
            out[serial.strip()] = _url(url.strip())
        except ValueError as exc:
            raise ValueError(f"{serial.strip()}: {exc}") from None
    return out


def _gateway_url_table(value: object) -> dict[str, str]:
    """A serial -> URL mapping from TOML or JSON."""
    if not isinstance(value, dict):
        raise ValueError(
            'expected a table of serial = "url" (e.g. {"zap-0123456789abcdef": '
            f'"http://192.168.1.20"}}), got {type(value).__name__}'
        )
    out = {}
    for serial, url in value.items():
        try:
            out[str(serial)] = _url(url)
        except ValueError as exc:
            raise ValueError(f"{serial}: {exc}") from None
    return out


def _coerce(name: str, value: object, *, typed: bool = False) -> object:
    """The value of setting `name` in its type; ValueError says what would be valid.
    Values from the environment are strings; values from TOML (`typed`) are typed already."""
    default = _DEFAULTS[name]
    if name in _URL_FIELDS:
        return _cloud_url(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if typed:
            # TOML has booleans: a quoted "yes" (or "false") is text, and reading it as a
            # switch would turn on what may have been meant off, or the other way round.
            raise ValueError(f"expected true or false, unquoted (a TOML boolean), got "
                             f"{echo(value)}")
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {echo(value)}")
    if isinstance(default, (int, float)):
        return _number(name, value, whole=isinstance(default, int), typed=typed)
    # Tokens and keys end up here: the message names the type, never the value.
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    if name in _CREDENTIAL_FIELDS:
        return _credential(name, value)
    return value


def _credential(name: str, value: str) -> str:
    """A token, key or id without surrounding whitespace; one with a control character or
    (where it goes in a header) a non-ASCII character left inside is refused, by position
    only: the value may be a secret and is never repeated."""
    value = value.strip()
    for position, char in enumerate(value, start=1):
        if _is_control(char):
            raise ValueError(
                f"contains a control character ({_char_name(char)}) at character {position}; "
                "expected the value on one line, without control characters"
            )
        if name in _HEADER_FIELDS and not char.isascii():
            raise ValueError(
                f"contains a character that is not ASCII at character {position}; "
                "expected ASCII letters, digits and punctuation only"
            )
    return value


def _is_control(char: str) -> bool:
    """A C0 or C1 control character, or DEL: none belongs in a one-line setting."""
    return char < " " or "\x7f" <= char <= "\x9f"


def _char_name(char: str) -> str:
    names = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}
    return names.get(char, f"U+{ord(char):04X}")


def _number(name: str, value: object, *, whole: bool, typed: bool = False) -> int | float:
    """The limit `name` from a variable's text, or from a TOML value (`typed`), which is a
    TOML number: a quoted "5" is text, as a quoted "yes" is for a switch, and one file
    would otherwise hold numbers two ways, only one of them checked by TOML tools."""
    what, most = _LIMITS[name], _MAXIMA[name]
    if whole:
        expected = f"expected a whole number of {what}, from 1 to {most:,.0f}"
    elif most < math.inf:
        expected = f"expected a number of {what}, greater than 0 and at most {most:,.0f}"
    else:
        expected = f"expected a number of {what}, greater than 0"
    if typed and isinstance(value, str):
        kind = "integer" if whole else "number"
        raise ValueError(f"{expected}, unquoted (a TOML {kind}); got {echo(value)}")
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        number = int(value) if whole and not isinstance(value, float) else float(value)
    except ValueError:
        raise ValueError(f"{expected}; got {echo(value)}") from None
    fraction = whole and isinstance(number, float)
    if fraction or not 0 < number <= most or math.isinf(number):
        raise ValueError(f"{expected}; got {echo(value)}")
    return number


def _problem(origin: Origin, message: str) -> Diagnostic:
    file, key = origin
    return Diagnostic(message, file=file, path=key)


# A top-level key of a TOML file (bare or quoted) and a table header: enough to find the
# line of a key for a message, which tomllib does not tell.
_TOML_KEY = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*=""")
_TOML_TABLE = re.compile(r"\s*\[\s*(?:\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+))\s*\]")


def toml_key_lines(text: str) -> dict[str, int]:
    """The line of each top-level key of a TOML text (of its header, for a table). Keys
    after the first table header belong to a table, so only those before it count."""
    lines: dict[str, int] = {}
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TOML_TABLE.match(line)
        if header:
            in_table = True
            lines.setdefault(next(g for g in header.groups() if g is not None), number)
            continue
        key = _TOML_KEY.match(line)
        if key and not in_table:
            lines.setdefault(next(g for g in key.groups() if g is not None), number)
    return lines


# The most the settings file, or the JSON file of gateway URLs, may hold. Both are a few
# lines but for the URLs of the gateways, some 50 bytes each: 4 MiB holds those of 80,000.
MAX_SETTINGS_BYTES = 4 * 2**20


def _read_toml(path: str) -> tuple[dict[str, Any], list[Diagnostic], dict[str, int]]:
    try:
        data = bounded.read_at_most(path, MAX_SETTINGS_BYTES, "a settings file", pipe=True)
    except OSError as exc:
        return {}, [Diagnostic(f"cannot read the settings file: {exc.strerror}", file=path)], {}
    except bounded.FileTooLarge as exc:
        return {}, [Diagnostic(f"the file {exc.reason}, and is not read", file=path)], {}
    text, problem = utf8.decode(data, path)
    if problem is not None:
        return {}, [problem], {}
    try:
        return tomllib.loads(text), [], toml_key_lines(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts the position at the end of its message: "... (at line 3, column 7)".
        where = re.search(r"\(at line (\d+), column (\d+)\)$", str(exc))
        message = re.sub(r"\s*\(at [^)]*\)$", "", str(exc))
        line, column = (int(where[1]), int(where[2])) if where else (None, None)
        return {}, [Diagnostic(f"not valid TOML: {message}", file=path, line=line,
                               column=column)], {}
    except RecursionError:  # tomllib descends once per nested array or table
        return {}, [Diagnostic("arrays or tables nested too deeply to read; expected keys "
                               "of the settings, with one table at most ([gateway_urls])",
                               file=path)], {}
    except ValueError:  # int(): the interpreter's limit on the digits of a number
        return {}, [Diagnostic("a number of more than 4,300 digits, too long to read; expected "
                               "keys of the settings, each limit a number of a few digits",
                               file=path)], {}


def _read_gateway_urls_file(
    path: str, origin: Origin = (None, PREFIX + "GATEWAY_URLS_FILE")
) -> tuple[dict[str, str], list[Diagnostic]]:
    try:
        data = bounded.read_at_most(path, MAX_SETTINGS_BYTES, "a file of gateway URLs")
    except OSError as exc:
        return {}, [_problem(origin, f"cannot read {path}: {exc.strerror}")]
    except bounded.FileTooLarge as exc:
        return {}, [Diagnostic(f"the file {exc.reason}, and is not read", file=path)]
    text, problem = utf8.decode(data, path)
    if problem is not None:
        return {}, [problem]
    try:
        return _gateway_url_table(json_text.loads(text)), []
    except json.JSONDecodeError as exc:
        # json counts lines at \n alone; a file saved with \r line ends is one line to it.
        line, column = utf8.position(text, exc.pos)
        return {}, [Diagnostic(f"not valid JSON: {exc.msg}", file=path, line=line,
                               column=column)]
    except json_text.TooComplex as exc:  # nested too deeply, or a number too long
        return {}, [Diagnostic(f'{exc}; expected one object of serial: "url"', file=path)]
    except ValueError as exc:
        return {}, [Diagnostic(str(exc), file=path)]


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    config_file: str | None = None,
    check_files: bool = True,
) -> Settings:
    """Settings from an optional TOML file, overridden by RECONCILER_* variables. Every
    problem is collected into one ConfigError (subject "settings"), each naming the
    variable or the file and key, and what would be valid. `check_files=False` parses
    without loading the CA bundle (for reading another machine's environment, such as a
    pod's, whose files are not here)."""
    env = os.environ if environ is None else environ
    names = list(_OWN_FIELDS)
    raw: dict[str, tuple[object, Origin]] = {}
    problems: list[Diagnostic] = []
    urls_file: tuple[str, Origin] | None = None
    path = config_file or env.get(PREFIX + "CONFIG")
    key_lines: dict[str, int] = {}
    if path:
        table, problems, key_lines = _read_toml(path)
        for key, value in table.items():
            if key in _PATH_FIELDS and (unusable := _path_setting_problem(value)) is not None:
                problems.append(_problem((path, key), unusable))
                continue
            if key in names:
                if key in CREDENTIAL_FILES and isinstance(value, str) and value:
                    value = _beside(path, value)  # as gateway_urls_file
                raw[key] = (value, (path, key))
                continue
            if key == "gateway_urls_file":
                # As RECONCILER_GATEWAY_URLS_FILE; a relative path is the settings file's.
                if isinstance(value, str) and value:
                    urls_file = (_beside(path, value), (path, key))
                else:
                    problems.append(_problem((path, key), "expected the path of a JSON file "
                                             f"of serial: \"url\"; got {echo(value)}"))
                continue
            known = [*names, "gateway_urls_file"]
            # The variable's name copied into the file (`RECONCILER_TIMEOUT = 5`): its key
            # is that name without the prefix, which no spelling distance finds.
            unprefixed = key[len(PREFIX):] if key.upper().startswith(PREFIX) else key
            close = closest(unprefixed, known)
            hint = f"did you mean {echo(close)}? " if close is not None else ""
            if close is not None and unprefixed != key:
                hint += f"(the file's keys are the variables' names without {PREFIX}) "
            valid = ", ".join(sorted([*names, "gateway_urls_file"]))
            problems.append(
                Diagnostic(f"unknown key; {hint}valid keys: {valid}", file=path, path=key)
            )
    for name in sorted({*names, "gateway_urls_file"} & _PATH_FIELDS):
        variable = PREFIX + name.upper()
        if (unusable := _path_setting_problem(env.get(variable))) is not None:
            problems.append(_problem((None, variable), unusable))
            env = {key: value for key, value in env.items() if key != variable}
    for name in names:
        variable = PREFIX + name.upper()
        # An empty variable counts as unset (`X=${X}` in a compose file or unit, unset X).
        if name != "gateway_urls" and env.get(variable):
            raw[name] = (env[variable], (None, variable))
    problems += _one_form_of_each_credential(raw)
    values: dict[str, Any] = {}
    for name, (value, origin) in raw.items():
        try:
            if name == "gateway_urls":
                values[name] = _gateway_url_table(value)
            else:
                values[name] = _coerce(name, value, typed=origin[0] is not None)
        except ValueError as exc:
            problems.append(_problem(origin, str(exc)))
    urls = dict(values.get("gateway_urls", {}))
    if env.get(PREFIX + "GATEWAY_URLS_FILE"):
        urls_file = (env[PREFIX + "GATEWAY_URLS_FILE"], (None, PREFIX + "GATEWAY_URLS_FILE"))
    if urls_file is not None:
        from_file, file_problems = _read_gateway_urls_file(*urls_file)
        urls.update(from_file)
        problems += file_problems
    if env.get(PREFIX + "GATEWAY_URLS"):
        try:
            urls.update(_parse_gateway_urls(env[PREFIX + "GATEWAY_URLS"]))
        except ValueError as exc:
            problems.append(_problem((None, PREFIX + "GATEWAY_URLS"), str(exc)))
    values["gateway_urls"] = urls
    try:
        values["proxies"] = Proxies.from_environ(env)
    except ProxySettingError as exc:
        problems += [_problem((None, variable), message) for variable, message in exc.problems]
    for file_field, name in CREDENTIAL_FILES.items():
        # Read here too, not only at each run: a file that cannot be used is a start-up
        # error. Not with check_files=False: the file is another machine's (a pod's).
        if check_files and values.get(file_field):
            value, problem = _read_credential_file(name, values[file_field], raw[file_field][1])
            if problem is not None:
                problems.append(problem)
            else:
                values[name] = value
    if check_files and values.get("ca_bundle"):
        problems += _ca_bundle_problems(values["ca_bundle"], raw["ca_bundle"][1])
    if problems:
        # A key of the settings file is named with its line, as the desired state's are.
        problems = [
            dataclasses.replace(p, line=key_lines[p.path])
            if p.file == path and p.line is None and p.path in key_lines
            else p
            for p in problems
        ]
        raise ConfigError(problems, subject="settings")
    return Settings(**values)


# The most a CA bundle may hold: certifi's bundle of the public CAs (117 certificates)
# takes 234 KB. OpenSSL reads a bundle whole, block by block: one of 68 MB took 140 MB.
MAX_CA_BUNDLE_BYTES = 4 * 2**20


def _one_form_of_each_credential(raw: dict[str, tuple[object, Origin]]) -> list[Diagnostic]:
    """A credential given both as a value and as a file in the same place (two variables,
    or two keys of the settings file) is refused, naming both: which one was meant cannot
    be known. Given in both places, the environment wins, as for every setting: the form
    in the settings file is dropped from `raw`."""
    problems = []
    for file_field, name in CREDENTIAL_FILES.items():
        if name not in raw or file_field not in raw:
            continue
        value_origin, file_origin = raw[name][1], raw[file_field][1]
        if (value_origin[0] is None) != (file_origin[0] is None):
            del raw[name if value_origin[0] is not None else file_field]
            continue
        problems.append(_problem(
            file_origin,
            f"{value_origin[1]} is set too; set either {value_origin[1]} (the "
            f"{_CREDENTIAL_NAMES[name]}) or {file_origin[1]} (a file holding it), not both",
        ))
        del raw[name], raw[file_field]
    return problems


def _path_setting_problem(value: object) -> str | None:
    """Why a path setting cannot be used as it is (`_home_problem`, `path_problem`), or
    None: refused with the setting named, before a `stat` of it fails mid-run."""
    home = _home_problem(value)
    if home is not None or not isinstance(value, str):
        return home
    return path_problem(value)


def _home_problem(value: object) -> str | None:
    """Why a path setting starting with `~` is refused, or None. A shell expands `~` on its
    command line, but nothing does in a settings file, a systemd EnvironmentFile, a
    compose file or a pod's env: taken as it is, `~/state` would be a directory named `~`
    under the working directory, where an apply would start a new state directory (its
    inventory and password fingerprints not found) and write credentials."""
    if not isinstance(value, str) or not value.startswith("~"):
        return None
    return (f"{value!r} starts with '~', which is not expanded here (only a shell's command "
            "line does that): give an absolute path")


def _beside(settings_file: str, path: str) -> str:
    """`path`, a file the settings file names, read beside the settings file when it is
    relative. A settings file given as a pipe (`--config <(sops -d settings.toml)`, a FIFO
    of `sops exec-file`) lies in no directory of the user's (/dev/fd, a temporary one): its
    relative paths are the current directory's, where the settings file it decrypts is in
    that example."""
    return path if _is_pipe(settings_file) else str(Path(settings_file).parent / path)


def _is_pipe(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False  # read again, to say why it cannot be


def read_secret_text(path: str | Path, *, pipe: bool = False) -> str:
    """The text of a file holding one secret, without the line break an editor or `echo`
    leaves (nor the carriage return of one saved on Windows, nor the byte order mark
    Notepad writes first: "utf-8-sig" drops it). OSError, `bounded.FileTooLarge` past
    MAX_SECRET_BYTES, or UnicodeDecodeError when it is not UTF-8 text: none says anything
    of the content. With `pipe`, a FIFO or pipe is read too (`bounded.read_at_most`)."""
    data = bounded.read_at_most(path, MAX_SECRET_BYTES, "a secret file", pipe=pipe)
    return data.decode("utf-8-sig").rstrip("\r\n")


def _read_credential_file(name: str, path: str, origin: Origin) -> tuple[str, Diagnostic | None]:
    """The credential `name` from the file at `path` (named at `origin`), or why it cannot
    be used: a message naming the file, and a character by its position only."""
    what = _CREDENTIAL_NAMES[name]
    try:
        text = read_secret_text(path, pipe=True)
    except UnicodeDecodeError:
        return "", _problem(origin, f"{path} is not UTF-8 text; expected the {what} in it")
    except bounded.FileTooLarge as exc:
        return "", _problem(origin, f"{exc}; expected the {what} alone")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return "", _problem(origin, f"cannot read {path} (the {what}): {reason}")
    try:
        value = _credential(name, text)
    except ValueError as exc:
        return "", _problem(origin, f"{path}: {exc}")
    if not value:
        return "", _problem(origin, f"{path} is empty; expected the {what} in it")
    return value, None


def _ca_bundle_problems(path: str, origin: Origin) -> list[Diagnostic]:
    """A CA bundle that cannot be loaded is an error now, not a traceback at the first call."""
    try:
        # Its size first: OpenSSL reads it again, after this, as it reads it to connect.
        bounded.read_at_most(path, MAX_CA_BUNDLE_BYTES, "a CA bundle")
        ssl.create_default_context(cafile=path)
    except bounded.FileTooLarge as exc:
        return [_problem(origin, f"the CA bundle {exc}, and is not read")]
    except ssl.SSLError as exc:  # before OSError, of which it is a subclass
        return [_problem(origin, f"{path} is not a PEM bundle of CA certificates ({exc.reason})")]
    except OSError as exc:
        return [_problem(origin, f"cannot read the CA bundle {path}: {exc.strerror}")]
    return []


# The most a secret file may hold: a password is some bytes, and Kubernetes itself keeps a
# whole Secret, every key of it, under 1 MiB.
MAX_SECRET_BYTES = 64 * 2**10


class SecretResolver:
    """Resolves `passwordFrom` references: an environment variable, or a Secret key laid
    out as files (`<secrets dir>/<name>/<key>`, as Kubernetes mounts a Secret)."""

    def __init__(self, secrets_dir: str, environ: Mapping[str, str] | None = None) -> None:
        self.secrets_dir = Path(secrets_dir)
        self.environ = os.environ if environ is None else environ

    def describe(self, source: SecretSource) -> str:
        """Where the value comes from, for plans and messages (never the value)."""
        if source.env:
            return f"(from environment variable {source.env})"
        ref = source.secret_key_ref
        assert ref is not None
        return f"(from secret {ref.name}/{ref.key})"

    def resolve(self, source: SecretSource) -> str:
        if source.env:
            # Validation refuses these names already; a source made some other way is
            # refused here too, since the value would go to a gateway (`model.env_names`).
            problem = own_setting_problem(source.env)
            if problem:
                raise KeyError(problem)
            if source.env not in self.environ:
                raise KeyError(f"environment variable {source.env} is not set")
            if not self.environ[source.env]:
                # As an empty setting counts as unset: a CI secret nobody set reaches the
                # job as an empty variable, and sent, it would replace the device's password.
                raise KeyError(f"environment variable {source.env} is empty, which counts as "
                               "not set")
            return self.environ[source.env]
        ref = source.secret_key_ref
        assert ref is not None
        # Validation refuses these too; a source made some other way is refused here, since
        # a `/` or `..` would read a file outside the secrets directory for the gateway.
        if not (re.fullmatch(RESOURCE_NAME_PATTERN, ref.name)
                and re.fullmatch(SECRET_KEY_PATTERN, ref.key)):
            raise KeyError(f"secret {echo(ref.name)}/{echo(ref.key)} is not a Secret name and key "
                           "(each one file name, neither '.' nor '..')")
        # Named absolute, the directory's links resolved (not the file's: Kubernetes links
        # each key to a hidden directory of the current version), as the state directory's
        # files are (`enapter_files.shown_path`): a plan names a missing secret's file, and
        # `apply PLANFILE` with the directory spelled otherwise (`secrets`, `$PWD/secrets`)
        # would find the plan's text changed and call it stale.
        path = Path(os.path.realpath(self.secrets_dir), ref.name, ref.key)
        try:
            # The line break an editor or `echo` leaves is not part of the password.
            value = read_secret_text(path)
            if not value:
                # As an empty variable: a file emptied by a failed `sops -d > file`, or a
                # Secret key with no value, would replace the device's password with none.
                raise KeyError(f"secret {ref.name}/{ref.key} at {path} is empty; expected the "
                               "password in it")
            return value
        except UnicodeDecodeError:
            raise KeyError(f"secret {ref.name}/{ref.key} at {path} is not UTF-8 text") from None
        except bounded.FileTooLarge as exc:
            raise KeyError(f"secret {ref.name}/{ref.key} at {path} {exc.reason}, and is not "
                           "read; expected the password alone") from None
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(f"secret {ref.name}/{ref.key} not found (looked for {path})") from None
        except OSError as exc:  # a FIFO or device there, or a file it may not read
            raise KeyError(f"secret {ref.name}/{ref.key} at {path} cannot be read: "
                           f"{exc.strerror or type(exc).__name__}") from None
