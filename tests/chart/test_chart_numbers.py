"""Numbers reach the operator as it parses them: helm has every number of a values file as a
float64, which Go prints as "1e+06" from a million on, and the operator takes whole-number
settings in digits only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chart_render import CHART, NAMESPACE, RELEASE, Rendered, plain_env, run_helm, template

from reconciler.engine.config import load_settings
from reconciler.errors import ConfigError
from reconciler.operator import config as operator_config

Render = Callable[..., Rendered]
DIGITS = re.compile(r"^[0-9]+$")

# The settings the operator takes as whole numbers only, by the variable each goes to.
WHOLE = {"concurrency": "RECONCILER_CONCURRENCY", "gatewayConcurrency":
         "RECONCILER_GATEWAY_CONCURRENCY", "retries": "RECONCILER_RETRIES"}
BIG = {
    # The operator's durations at their largest (a day, `operator.config.MOST_SECONDS`).
    "reconcileInterval": 86_400,
    "retryDelay": 86_399.25,
    "watchFailureLimit": 86_400.0,
    "replicas": 1_000_000,
    # The limits at their largest (`engine.config._MAXIMA`): below a million, where Go would
    # write "1e+06", but the settings reach the operator as written all the same.
    "limits": {"concurrency": 10_000, "gatewayConcurrency": 10_000,
               "retries": 100, "gatewayRate": 0.0000001, "timeout": 3599.5},
    "livenessProbe": {"initialDelaySeconds": 3_000_000, "periodSeconds": 1_000_000,
                      "timeoutSeconds": 1_000_000, "failureThreshold": 1_000_000},
    "readinessProbe": {"enabled": True, "periodSeconds": 1_000_000, "timeoutSeconds": 1_000_000},
}


def _set_args(values: dict[str, Any], flag: str, prefix: str = "") -> list[str]:
    args = []
    for key, value in values.items():
        if isinstance(value, dict):
            args += _set_args(value, flag, f"{prefix}{key}.")
        else:
            args += [flag, f"{prefix}{key}={json.dumps(value)}"]
    return args


def _whole_only(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _whole_only(v) if isinstance(v, dict) else v for k, v in values.items()
            if isinstance(v, dict | bool) or (isinstance(v, int) and v < 2**63)}


def _render(helm: Path, rendered: Render, via: str) -> tuple[dict[str, Any], Rendered]:
    """The values and their rendering: BIG from a values file or from --set-json (float64s
    in helm), or BIG's whole numbers from --set (int64s; --set makes 2.5 a string)."""
    if via == "values-file":
        return BIG, rendered(BIG)
    values = BIG if via == "set-json" else _whole_only(BIG)
    done = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    *_set_args(values, f"--{via}"))
    return values, Rendered(done.stdout)


vias = pytest.mark.parametrize("via", ["values-file", "set", "set-json"])


@vias
def test_large_numbers_reach_the_environment_in_digits(helm: Path, rendered: Render,
                                                       via: str) -> None:
    values, out = _render(helm, rendered, via)
    [(_, container)] = out.containers()
    env = plain_env(container)
    limits = values["limits"]
    for key, name in WHOLE.items():
        if key in limits:
            assert DIGITS.match(env[name]), f"{name}={env[name]}"
            assert int(env[name]) == limits[key]
    assert env["RECONCILER_OPERATOR_INTERVAL"] == "86400"
    settings = load_settings(env, check_files=False)
    config = operator_config.load(env)
    assert config.interval == values["reconcileInterval"]
    assert settings.concurrency == limits["concurrency"]
    assert settings.gateway_concurrency == limits["gatewayConcurrency"]
    if via == "set":
        return
    assert settings.retries == limits["retries"]
    assert env["RECONCILER_OPERATOR_RETRY_DELAY"] == "86399.25"
    assert env["RECONCILER_TIMEOUT"] == "3599.5"
    assert float(env["RECONCILER_GATEWAY_RATE"]) == limits["gatewayRate"]  # 1e-7, exactly
    assert (settings.gateway_rate, settings.timeout) == (limits["gatewayRate"], limits["timeout"])
    assert config.retry_delay == values["retryDelay"]
    assert env["RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT"] == "86400"
    assert config.watch_failure_limit == values["watchFailureLimit"]


@vias
def test_large_numbers_are_integers_in_the_manifest(helm: Path, rendered: Render,
                                                    via: str) -> None:
    values, out = _render(helm, rendered, via)
    [(deployment, container)] = out.containers()
    assert type(deployment["spec"]["replicas"]) is int
    assert deployment["spec"]["replicas"] == values["replicas"]
    for probe in ("livenessProbe", "readinessProbe"):
        for key, value in container[probe].items():
            if key != "httpGet":
                assert type(value) is int and value == values[probe][key], (probe, key, value)


def test_notes_give_the_replicas_in_digits(helm: Path) -> None:
    done = run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    "--dry-run=client", "--set-json", "replicas=1000000")
    assert "1000000 replica(s)" in done.stdout


def test_fractions_and_strings_are_kept(rendered: Render) -> None:
    values = {"reconcileInterval": 0.5, "retryDelay": 2.75,
              "limits": {"gatewayRate": 0.001, "timeout": 12.5, "concurrency": "128",
                         "retries": ""}}
    [(_, container)] = rendered(values).containers()
    env = plain_env(container)
    assert (env["RECONCILER_OPERATOR_INTERVAL"], env["RECONCILER_OPERATOR_RETRY_DELAY"]) == (
        "0.5", "2.75")
    assert (env["RECONCILER_GATEWAY_RATE"], env["RECONCILER_TIMEOUT"]) == ("0.001", "12.5")
    assert env["RECONCILER_CONCURRENCY"] == "128"
    assert "RECONCILER_RETRIES" not in env  # empty: the operator's default


@pytest.mark.parametrize(("limits", "where"), [
    pytest.param({"concurrency": 2.5}, "/limits/concurrency", id="fraction"),
    pytest.param({"retries": 0}, "/limits/retries", id="zero"),
    pytest.param({"gatewayConcurrency": "2.5"}, "/limits/gatewayConcurrency",
                 id="fraction-string"),
    pytest.param({"gatewayRate": 0}, "/limits/gatewayRate", id="zero-rate"),
    pytest.param({"timeout": -1}, "/limits/timeout", id="negative-timeout"),
    # Past the maxima the operator refuses at start-up (`engine.config._MAXIMA`), as a
    # number and as a string.
    pytest.param({"concurrency": 1_000_000}, "/limits/concurrency", id="concurrency-million"),
    pytest.param({"concurrency": "10001"}, "/limits/concurrency", id="concurrency-string"),
    pytest.param({"gatewayConcurrency": 10_001}, "/limits/gatewayConcurrency",
                 id="gateway-concurrency"),
    pytest.param({"retries": 101}, "/limits/retries", id="retries"),
    pytest.param({"retries": "1000"}, "/limits/retries", id="retries-string"),
    pytest.param({"timeout": 3600.5}, "/limits/timeout", id="timeout"),
    pytest.param({"timeout": "3601"}, "/limits/timeout", id="timeout-string"),
    pytest.param({"modbusTimeout": 86_400}, "/limits/modbusTimeout", id="modbus-timeout"),
    pytest.param({"modbusTimeout": "3600.01"}, "/limits/modbusTimeout",
                 id="modbus-timeout-string"),
    # A string the operator does not read as a number in range: none, zero, infinity.
    pytest.param({"timeout": "ten"}, "/limits/timeout", id="timeout-word"),
    pytest.param({"gatewayRate": "0.0"}, "/limits/gatewayRate", id="zero-rate-string"),
    pytest.param({"gatewayRate": "inf"}, "/limits/gatewayRate", id="infinite-rate"),
    pytest.param({"gatewayRate": "9" * 309}, "/limits/gatewayRate", id="rate-past-float"),
])
def test_numbers_the_operator_would_refuse_are_refused(helm: Path, limits: dict[str, Any],
                                                        where: str) -> None:
    done = template(helm, {"limits": limits}, check=False)
    assert done.returncode != 0, f"helm accepted {limits}"
    assert where in done.stderr, done.stderr


@pytest.mark.parametrize(("limits", "where"), [
    pytest.param({"retries": 101}, "/limits/retries", id="retries"),
    pytest.param({"concurrency": 10_001}, "/limits/concurrency", id="concurrency"),
    pytest.param({"gatewayConcurrency": "10001"}, "/limits/gatewayConcurrency",
                 id="gateway-concurrency-string"),
    pytest.param({"timeout": 3600.5}, "/limits/timeout", id="timeout"),
    pytest.param({"modbusTimeout": 86_400}, "/limits/modbusTimeout", id="modbus-timeout"),
])
def test_limits_past_the_operators_maxima_are_refused_at_install(
        helm: Path, limits: dict[str, Any], where: str) -> None:
    """A limit past the most the operator takes (`engine.config._MAXIMA`) fails `helm
    install`, naming the value, rather than every start of the operator's pod."""
    [(key, value)] = limits.items()
    env = {WHOLE.get(key, "RECONCILER_" + re.sub(r"([A-Z])", r"_\1", key).upper()): str(value)}
    with pytest.raises(ConfigError, match=r"at most|from 1 to"):
        load_settings(env, check_files=False)  # the operator refuses it
    done = template(helm, {"limits": limits}, check=False)
    assert done.returncode != 0, f"helm accepted {limits}"
    assert where in done.stderr, done.stderr


@pytest.mark.parametrize(("key", "value"), [
    pytest.param("reconcileInterval", 300_000, id="interval-in-milliseconds"),
    pytest.param("retryDelay", 1e300, id="retry-delay-huge"),
    pytest.param("watchFailureLimit", 86_400.5, id="watch-failure-limit"),
])
def test_durations_past_a_day_are_refused_at_install(helm: Path, key: str,
                                                     value: float) -> None:
    """A duration of the operator's past a day, which the operator refuses to start with,
    fails `helm install` naming the value, rather than every start of the pod."""
    variable = {"reconcileInterval": "RECONCILER_OPERATOR_INTERVAL",
                "retryDelay": "RECONCILER_OPERATOR_RETRY_DELAY",
                "watchFailureLimit": "RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT"}[key]
    with pytest.raises(operator_config.OperatorConfigError, match="at most 86,400"):
        operator_config.load({variable: str(value)})
    done = template(helm, {key: value}, check=False)
    assert done.returncode != 0, f"helm accepted {key}={value}"
    assert f"/{key}" in done.stderr, done.stderr


def test_limits_at_the_operators_maxima_are_taken(rendered: Render) -> None:
    limits = {"retries": "100", "concurrency": 10_000, "gatewayConcurrency": "10000",
              "timeout": 3600, "modbusTimeout": "3600"}
    [(_, container)] = rendered({"limits": limits}).containers()
    settings = load_settings(plain_env(container), check_files=False)
    assert (settings.retries, settings.concurrency, settings.gateway_concurrency) == (
        100, 10_000, 10_000)
    assert (settings.timeout, settings.modbus_timeout) == (3600, 3600)


def test_strings_up_to_the_maxima_are_taken(rendered: Render) -> None:
    """The largest values the operator takes, quoted as --set-string gives them, render and
    are read back as written."""
    limits = {"concurrency": "10000", "gatewayConcurrency": "10000", "retries": "100",
              "timeout": "3600", "modbusTimeout": "3600.0", "gatewayRate": ".5"}
    [(_, container)] = rendered({"limits": limits}).containers()
    settings = load_settings(plain_env(container), check_files=False)
    assert (settings.concurrency, settings.gateway_concurrency, settings.retries) == (
        10_000, 10_000, 100)
    assert (settings.timeout, settings.modbus_timeout, settings.gateway_rate) == (
        3600, 3600, 0.5)
