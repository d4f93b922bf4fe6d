"""The chart's `caBundle` is what the operator trusts: its certificates replace the default
roots (certifi's), they are not added to them, and values.yaml says so, so that a bundle
of one private CA is not taken to keep the public clouds verified."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from pathlib import Path

import certifi
from chart_render import CHART, Rendered, plain_env

from reconciler.engine.config import load_settings
from reconciler.engine.session import Session

Render = Callable[..., Rendered]


def _trusted(bundle: str) -> int:
    """How many CA certificates the engine's TLS context trusts with this bundle."""
    settings = load_settings({"RECONCILER_CA_BUNDLE": bundle}, check_files=False)
    context: ssl.SSLContext = Session(settings).ssl_context()
    return len(context.get_ca_certs())


def test_the_ca_bundle_replaces_the_default_roots_as_values_yaml_says(
        rendered: Render, tmp_path: Path) -> None:
    out = rendered({"caBundle": {"configMap": "corporate-ca", "key": "bundle.pem"}})
    [(_, container)] = out.containers()
    assert plain_env(container)["RECONCILER_CA_BUNDLE"] == "/etc/reconciler/ca/bundle.pem"
    # One private CA in the bundle: the context trusts that one, none of certifi's roots.
    one = tmp_path / "bundle.pem"
    certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                       Path(certifi.where()).read_text(encoding="ascii"), re.S)
    one.write_text(certs[0] + "\n", encoding="ascii")
    assert _trusted(str(one)) == 1 < len(certs)
    # So the values' comment of caBundle may not call its certificates extra ones.
    values = (CHART / "values.yaml").read_text(encoding="utf-8")
    comment = values[:values.index("\ncaBundle:")].rsplit("\n\n", 1)[-1]
    assert "extra" not in comment, comment
    assert "instead of" in comment, comment
