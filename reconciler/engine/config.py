"""Endpoints, credentials and limits, from environment variables and an optional TOML
config file (environment wins). These are the variables `reconciler sim up --print-env`
prints. Secret values are held here only; nothing renders them.

| variable | meaning |
|---|---|
| RECONCILER_CONFIG | path of a TOML file with the same keys in lowercase, without prefix |
| RECONCILER_NOVACORE_URL / _TOKEN / _IDENTITY | Novacore URL, operator JWT, claimer identity |
| RECONCILER_ENAPTER_URL / _TOKEN | Enapter Cloud API base URL and token |
| RECONCILER_FLATPEAK_URL / _ACCOUNT_ID / _API_KEY | Flatpeak base URL and credentials |
| RECONCILER_GATEWAY_URLS | `serial=url,serial=url`: where to reach Zaps (overrides spec.zap.url) |
| RECONCILER_GATEWAY_URLS_FILE | the same as a JSON object in a file |
| RECONCILER_STATE_DIR | journal, lock and inventory (default `.reconciler`) |
| RECONCILER_SECRETS_DIR | secretKeyRef values as `<dir>/<name>/<key>` (default `secrets`) |
| RECONCILER_CONCURRENCY, _GATEWAY_CONCURRENCY, _GATEWAY_RATE, _TIMEOUT, _RETRIES | limits |
| RECONCILER_CA_BUNDLE / RECONCILER_INSECURE_SKIP_TLS_VERIFY | TLS verification |
"""

from __future__ import annotations

import base64
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError, Diagnostic
from reconciler.model.device import SecretSource

PREFIX = "RECONCILER_"


@dataclass(frozen=True)
class Settings:
    novacore_url: str = "https://novacore-mainnet.sourceful.dev"
    novacore_token: str = field(default="", repr=False)
    novacore_identity: str = ""
    enapter_url: str = "https://api.enapter.com"
    enapter_token: str = field(default="", repr=False)
    flatpeak_url: str = "https://api.flatpeak.com"
    flatpeak_account_id: str = ""
    flatpeak_api_key: str = field(default="", repr=False)
    gateway_urls: Mapping[str, str] = field(default_factory=dict)
    state_dir: str = ".reconciler"
    secrets_dir: str = "secrets"
    concurrency: int = 64
    gateway_concurrency: int = 4
    gateway_rate: float = 20.0
    timeout: float = 10.0
    retries: int = 6
    ca_bundle: str = ""
    insecure_skip_tls_verify: bool = False

    @property
    def verify(self) -> bool | str:
        if self.insecure_skip_tls_verify:
            return False
        return self.ca_bundle or True

    def claimer_identity(self) -> str:
        """The identity id that signs claims: configured, or read from the token's claims
        (`identity_id` or `sub`). The token is not verified here; Novacore does that."""
        if self.novacore_identity:
            return self.novacore_identity
        try:
            payload = self.novacore_token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return str(claims.get("identity_id") or claims.get("sub") or "")
        except (IndexError, ValueError, AttributeError):
            return ""

    def gateway_url(self, serial: str, declared: str) -> str:
        return self.gateway_urls.get(serial, declared).rstrip("/")


def _parse_gateway_urls(text: str) -> dict[str, str]:
    out = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        serial, _, url = item.partition("=")
        if not url:
            raise ValueError(f"expected serial=url, got {item!r}")
        out[serial.strip()] = url.strip()
    return out


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.default for f in fields(Settings)}
    default = kinds[name]
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, *, config_file: str | None = None
) -> Settings:
    """Settings from an optional TOML file, overridden by RECONCILER_* variables."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get(PREFIX + "CONFIG")
    try:
        if path:
            with open(path, "rb") as handle:
                values.update(tomllib.load(handle))
        names = {f.name for f in fields(Settings)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(
                f"unknown keys in {path}: {', '.join(sorted(unknown))}; "
                f"valid keys: {', '.join(sorted(names))}"
            )
        for name in names - {"gateway_urls"}:
            if PREFIX + name.upper() in env:
                values[name] = env[PREFIX + name.upper()]
        urls = dict(values.get("gateway_urls", {}))
        if env.get(PREFIX + "GATEWAY_URLS_FILE"):
            urls.update(json.loads(Path(env[PREFIX + "GATEWAY_URLS_FILE"]).read_text()))
        if env.get(PREFIX + "GATEWAY_URLS"):
            urls.update(_parse_gateway_urls(env[PREFIX + "GATEWAY_URLS"]))
        values["gateway_urls"] = urls
        return Settings(
            **{k: (_coerce(k, v) if k != "gateway_urls" else v) for k, v in values.items()}
        )
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([Diagnostic(f"invalid settings: {exc}", file=path)]) from exc


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

    def problem(self, source: SecretSource) -> str | None:
        """Why the value cannot be had, or None when it can (the value is not kept)."""
        try:
            self.resolve(source)
        except KeyError as exc:
            return str(exc.args[0])
        return None

    def resolve(self, source: SecretSource) -> str:
        if source.env:
            if source.env not in self.environ:
                raise KeyError(f"environment variable {source.env} is not set")
            return self.environ[source.env]
        ref = source.secret_key_ref
        assert ref is not None
        path = self.secrets_dir / ref.name / ref.key
        try:
            return path.read_text(encoding="utf-8").rstrip("\n")
        except OSError:
            raise KeyError(f"secret {ref.name}/{ref.key} not found (looked for {path})") from None
