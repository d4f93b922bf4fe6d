"""`passwordFrom.env` in the operator, end to end (kopf against kmock's emulator and the
simulators): the operator pod's environment holds the cloud tokens and is shared by every
namespace served, so a Device may read only the variables the installer listed in
RECONCILER_OPERATOR_PASSWORD_ENV, and never a RECONCILER_* setting. A refused Device gets
its conditions and a Warning event naming the field, and nothing reaches its gateway."""

from __future__ import annotations

from typing import Any

import pytest
from fleet_yaml import HOME_ZAP_SERIAL, ferroamp_battery, novacore_site, stream, zap_gateway
from harness import documents, operator

from reconciler.engine.credentials import CredentialLedger, device_key, key_from_text
from reconciler.operator.config import OperatorConfig

SERIAL = HOME_ZAP_SERIAL
HARDWARE_ID = "ferroamp_192.168.1.70"
ALLOWED = "BATTERY_MQTT_PASSWORD"
FLEET = stream(novacore_site(), zap_gateway(),
               ferroamp_battery(password_from=f"{{env: {ALLOWED}}}"))
PASSWORD = "b4ttery-mqtt-passw0rd"  # a test value
OTHER_VALUE = "an0ther-variable-value"  # a test value


def config(*allowed: str, credential_key: str = "") -> OperatorConfig:
    return OperatorConfig(interval=1.0, retry_delay=0.5, password_env=frozenset(allowed),
                          credential_key=credential_key)


async def declare(cluster: Any, env: str) -> None:
    """The fleet as `kubectl apply` would send it, the Device's password read from `env`
    (documents are built here, not by the loader, which refuses a RECONCILER_* name, as
    the CRD's CEL rule does; the operator must refuse it on its own)."""
    for doc in documents(FLEET):
        if doc["kind"] == "Device":
            doc["spec"]["connection"]["mqtt"]["passwordFrom"] = {"env": env}
        await cluster.create(doc)


async def wait_reason(cluster: Any, reason: str) -> dict[str, Any]:
    return await cluster.wait_reason(  # type: ignore[no-any-return]
        "Device", "home-battery", reason)


async def warnings_of_device(cluster: Any) -> list[str]:
    return [e.get("message", "")
            for e in await cluster.events_about("home-battery", type_="Warning")]


async def assert_nothing_sent(cluster: Any, sims: Any, *values: str) -> None:
    zap = sims.zaps[SERIAL]
    assert zap.devices == {}, "nothing is added to the gateway"
    assert zap.requests["POST /api/devices"] == 0, "no device, so no password, was sent"
    everything = repr(await cluster.get("Device", "home-battery")) + repr(await cluster.events())
    for value in values:
        assert value not in everything


async def test_a_device_naming_the_operators_token_is_invalid(tmp_path: Any,
                                                              monkeypatch: Any) -> None:
    """The reported attack: the operator's own Novacore token as a broker password."""
    async with operator(FLEET, tmp_path, monkeypatch, config=config(ALLOWED)) as (cluster,
                                                                                  sims):
        # The token is in the operator's environment, as the chart puts it there.
        monkeypatch.setenv("RECONCILER_NOVACORE_TOKEN", sims.novacore_token)
        await declare(cluster, "RECONCILER_NOVACORE_TOKEN")
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        ready = await wait_reason(cluster, "InvalidSpec")
        assert ready["status"] == "False"
        assert ready["message"].startswith(
            "spec.connection.mqtt.passwordFrom.env: RECONCILER_NOVACORE_TOKEN is not allowed: "
            "names starting with RECONCILER_, in any letter case, are the reconciler's own "
            "settings")
        warnings = await cluster.wait_for(lambda: warnings_of_device(cluster),
                                          what="a Warning event on the Device")
        assert any("spec.connection.mqtt.passwordFrom.env" in m for m in warnings), warnings
        await assert_nothing_sent(cluster, sims, sims.novacore_token)


@pytest.mark.parametrize("allowed", [(), ("SOME_OTHER_PASSWORD",)],
                         ids=["nothing-listed", "another-listed"])
async def test_a_device_naming_an_unlisted_variable_is_blocked(
    allowed: tuple[str, ...], tmp_path: Any, monkeypatch: Any
) -> None:
    """Set in the pod, but not listed: refused as if it were not there, naming the field."""
    monkeypatch.setenv("OTHER_TENANTS_PASSWORD", OTHER_VALUE)
    async with operator(FLEET, tmp_path, monkeypatch, config=config(*allowed)) as (cluster,
                                                                                   sims):
        await declare(cluster, "OTHER_TENANTS_PASSWORD")
        await cluster.wait_condition("Gateway", "home-zap", "Ready")
        ready = await wait_reason(cluster, "Blocked")
        assert ready["status"] == "False"
        listed = ", ".join(allowed) or "none is listed"
        assert ("spec.connection.mqtt.passwordFrom.env names OTHER_TENANTS_PASSWORD, which "
                "this operator does not read: it reads only the environment variables listed "
                "in RECONCILER_OPERATOR_PASSWORD_ENV (the chart's `passwordEnv`; "
                f"{listed})") in ready["message"], ready["message"]
        warnings = await cluster.wait_for(lambda: warnings_of_device(cluster),
                                          what="a Warning event on the Device")
        assert any("OTHER_TENANTS_PASSWORD, which this operator does not read" in m
                   for m in warnings), warnings
        await assert_nothing_sent(cluster, sims, OTHER_VALUE)


async def test_a_listed_variable_is_sent(tmp_path: Any, monkeypatch: Any) -> None:
    """The variable the installer listed is read and sent: the fingerprint kept in status
    is the one of its value."""
    monkeypatch.setenv(ALLOWED, PASSWORD)
    key = "credential-key-of-the-test"  # a test value
    async with operator(FLEET, tmp_path, monkeypatch,
                        config=config(ALLOWED, credential_key=key)) as (cluster, sims):
        await declare(cluster, ALLOWED)
        await cluster.wait_condition("Device", "home-battery", "Ready")
        assert sims.zaps[SERIAL].devices[HARDWARE_ID].password_set

        async def applied() -> dict[str, Any] | None:
            return (await cluster.status("Device", "home-battery")).get("appliedSecrets")

        recorded = await cluster.wait_for(applied, what="the password's fingerprint")
        expected = CredentialLedger(key_from_text(key)).fingerprint(
            device_key(SERIAL, HARDWARE_ID), PASSWORD)
        assert recorded["mqttPasswordFingerprint"] == expected
        everything = repr(await cluster.get("Device", "home-battery")) + repr(
            await cluster.events())
        assert PASSWORD not in everything
