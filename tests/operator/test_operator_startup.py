"""`reconciler operator` checks its settings and that it has Kubernetes credentials before
kopf starts: a bad variable or a missing kubeconfig is one clear error and exit code 1 at
start-up, not a traceback in every handler or a login retried every minute."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(("variables", "expected"), [
    pytest.param({"RECONCILER_TIMEOUT": "0", "RECONCILER_CONCURRENCY": "many"},
                 ["error: RECONCILER_CONCURRENCY: expected a whole number of calls in flight, "
                  "from 1 to 10,000; got 'many'",
                  "error: RECONCILER_TIMEOUT: expected a number of seconds, greater than 0 and at "
                  "most 3,600; got '0'",
                  "invalid settings: 2 problems"], id="engine-settings"),
    pytest.param({"RECONCILER_OPERATOR_INTERVAL": "5m"},
                 ["error: RECONCILER_OPERATOR_INTERVAL must be a number of seconds greater "
                  "than 0 and at most 86,400 (a day), not '5m'", "invalid settings: 1 problem"],
                 id="operator-interval"),
    pytest.param({"RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT": "-1"},
                 ["error: RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT must be a number of seconds "
                  "greater than 0 and at most 86,400 (a day), not '-1'",
                  "invalid settings: 1 problem"], id="watch-failure-limit"),
    # Past a day: milliseconds taken for seconds, or past what kopf can schedule (1e300).
    pytest.param({"RECONCILER_OPERATOR_INTERVAL": "300000",
                  "RECONCILER_OPERATOR_RETRY_DELAY": "1e300",
                  "RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT": "86400.5"},
                 [f"error: RECONCILER_OPERATOR_{name} must be a number of seconds greater than "
                  f"0 and at most 86,400 (a day), not '{value}'" for name, value in (
                      ("INTERVAL", "300000"), ("RETRY_DELAY", "1e300"),
                      ("WATCH_FAILURE_LIMIT", "86400.5"))] + ["invalid settings: 3 problems"],
                 id="past-a-day"),
    pytest.param({"RECONCILER_OPERATOR_PRIORITY": "high"},
                 ["error: RECONCILER_OPERATOR_PRIORITY must be a whole number, not 'high'",
                  "invalid settings: 1 problem"], id="operator-priority"),
    pytest.param({"RECONCILER_OPERATOR_PASSWORD_ENV": "BATTERY_PW, RECONCILER_NOVACORE_TOKEN"},
                 ["error: RECONCILER_OPERATOR_PASSWORD_ENV may not list "
                  "RECONCILER_NOVACORE_TOKEN: names starting with RECONCILER_, in any letter "
                  "case, are the reconciler's own settings (its cloud tokens and keys), which "
                  "no Device may read; list only variables that hold MQTT passwords",
                  "invalid settings: 1 problem"], id="password-env-own-setting"),
    pytest.param({"RECONCILER_OPERATOR_PASSWORD_ENV": "BATTERY_PW,battery-pw"},
                 ["error: RECONCILER_OPERATOR_PASSWORD_ENV must be names of environment "
                  "variables (letters, digits and '_', not starting with a digit) separated "
                  "by commas, not 'battery-pw'", "invalid settings: 1 problem"],
                 id="password-env-not-a-name"),
    # A term kopf's filter of the handlers cannot match: the operator served nothing.
    pytest.param({"RECONCILER_OPERATOR_SHARD": "energy.reconciler.dev/shard=north,tier!=test"},
                 ["error: RECONCILER_OPERATOR_SHARD must be a label selector of `key=value` and "
                  "`key` terms separated by commas (the operator matches no other: not `!=`, "
                  "`in`, `notin` nor `!key`), not 'energy.reconciler.dev/shard=north,"
                  "tier!=test': 'tier!=test'", "invalid settings: 1 problem"],
                 id="shard-not-equal"),
    # Every bad one at once, the operator's own and the engine's, as the README says.
    pytest.param({"RECONCILER_OPERATOR_MODE": "dry-run", "RECONCILER_OPERATOR_RETRY_DELAY": "0",
                  "RECONCILER_TIMEOUT": "0"},
                 ["error: RECONCILER_OPERATOR_MODE must be 'apply' or 'observe', not 'dry-run'",
                  "error: RECONCILER_OPERATOR_RETRY_DELAY must be a number of seconds greater "
                  "than 0 and at most 86,400 (a day), not '0'",
                  "error: RECONCILER_TIMEOUT: expected a number of seconds, greater than 0 and at "
                  "most 3,600; got '0'",
                  "invalid settings: 3 problems"], id="all-at-once"),
])
def test_bad_settings_stop_the_operator_before_it_starts(variables: dict[str, str],
                                                         expected: list[str]) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    # No cluster here: an operator that got past its checks would try to log in and hang
    # or fail differently, and the timeout or the assertions below would catch it.
    done = subprocess.run([sys.executable, "-m", "reconciler", "operator", "-A"],
                          env=environ | variables, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", expected)


@pytest.mark.parametrize("variables", [
    pytest.param({}, id="no-settings"),
    # An empty variable counts as unset, as for the engine's settings (`X=${X}` in a unit).
    pytest.param({f"RECONCILER_OPERATOR_{name}": "" for name in (
        "MODE", "INTERVAL", "RETRY_DELAY", "PRIORITY", "PASSWORD_ENV", "SHARD")},
        id="empty-settings"),
    # A day exactly, the most each duration may be, passes.
    pytest.param({"RECONCILER_OPERATOR_INTERVAL": "86400", "RECONCILER_OPERATOR_RETRY_DELAY":
                  "86400.0", "RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT": "8.64e4"}, id="a-day"),
    # Every form of term a shard selector may have passes.
    pytest.param({"RECONCILER_OPERATOR_SHARD": "energy.reconciler.dev/shard=north, tier,a==b,c="},
                 id="shard-selector"),
])
def test_no_kubernetes_credentials_stop_the_operator_before_it_starts(
        tmp_path: Path, variables: dict[str, str]) -> None:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("RECONCILER_", "KUBERNETES_", "KUBECONFIG"))} | variables
    environ["HOME"] = str(tmp_path)  # no ~/.kube/config
    done = subprocess.run([sys.executable, "-m", "reconciler", "operator", "-A"],
                          env=environ, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        "error: no Kubernetes credentials: not in a cluster (Service host/port is not set.) "
        "and no usable kubeconfig (Invalid kube-config file. No configuration found.); set "
        "KUBECONFIG, or run in a pod with a service account"]
