"""A token refused (401) while the operator honours `deletionPolicy: Release` for an object
being deleted: the object says the credentials were refused and what to do (as a reconcile
does, reason AuthError), a Warning says it once, the finalizer stays with nothing released
half-way, and the release is tried again after the retry delay: once the token in the file
is rotated, it goes through. No traceback in the log. The release write itself refused
(ReleaseFailed) names the setting to change too; the Devices under the Gateway go on
correcting drift between its attempts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fleet_yaml import HOME_ZAP_SERIAL, novacore_site, stream, zap_gateway
from harness import documents, operator
from objects import HOME, declare
from refused_calls import RefusedCalls

from reconciler.operator.config import OperatorConfig
from reconciler.operator.handlers import FINALIZER

ZAP = HOME_ZAP_SERIAL
FLEET = stream(novacore_site(), zap_gateway(extra="deletionPolicy: Release"))


async def test_a_release_refused_for_its_token_keeps_the_finalizer_and_says_so(
    tmp_path: Path, monkeypatch: Any
) -> None:
    token_file = tmp_path / "novacore-token"
    logs: list[str] = []
    async with operator(FLEET, tmp_path, monkeypatch, token_file=token_file, logs=logs) as (
        cluster,
        sims,
    ):
        await cluster.create_all(documents(FLEET))
        await cluster.wait_condition("Gateway", "home-zap", "Ready")

        sims.novacore.expire_token(token_file.read_text().strip())
        await cluster.delete("Gateway", "home-zap")

        cond = await cluster.wait_reason("Gateway", "home-zap", "AuthError",
                                         what="the release refused")
        assert cond["status"] == "False"
        assert f"the Novacore token from RECONCILER_NOVACORE_TOKEN_FILE ({token_file}) was " \
            "refused; the file is read again at the next attempt" in cond["message"], cond
        assert cond["message"].startswith("novacore.list_sites /sites: HTTP 401"), cond
        assert f"removing the finalizer {FINALIZER} leaves it as it is" in cond["message"]
        synced = await cluster.condition("Gateway", "home-zap", "Synced")
        assert synced and synced["reason"] == "AuthError"
        gateway = await cluster.get("Gateway", "home-zap")
        assert gateway is not None and FINALIZER in gateway["metadata"]["finalizers"]
        assert sims.novacore.gateways[ZAP].org_id == "org-home", "nothing released"
        warnings = await cluster.events_about("home-zap", reason="AuthError")
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings
        assert not [line for line in logs if "Traceback" in line], logs

        # The token rotated in its file: the next attempt, after the retry delay (0.5 s
        # here, not kopf's 60 s for an unexpected error), releases the gateway.
        new = token_file.with_name("novacore-token.new")
        new.write_text(sims.novacore.issue_token(sims.identity_id) + "\n")
        os.replace(new, token_file)

        await cluster.wait_gone("Gateway", "home-zap", what="the gateway released")
        assert sims.novacore.gateways[ZAP].org_id is None


def refused_release() -> RefusedCalls:
    """Novacore's `DELETE /gateways/<serial>` (the release) answered 401, "Token expired",
    while `refusing` is set, as Novacore answers a token past its 24 h: the reads before it
    go through."""
    return RefusedCalls(
        "DELETE", "/gateways/", 401, {"error": "unauthorized", "message": "Token expired"}
    )


async def test_a_release_write_refused_for_its_token_says_which_setting_to_change(
    tmp_path: Path, monkeypatch: Any
) -> None:
    token_file = tmp_path / "novacore-token"
    refused = refused_release()
    async with operator(FLEET, tmp_path, monkeypatch, token_file=token_file,
                        before_start=lambda sims: refused.install(sims.novacore.app)) as (
        cluster, sims
    ):
        await cluster.create_all(documents(FLEET))
        await cluster.wait_condition("Gateway", "home-zap", "Ready")

        refused.refusing = True
        await cluster.delete("Gateway", "home-zap")

        cond = await cluster.wait_reason("Gateway", "home-zap", "ReleaseFailed",
                                         what="the release write refused")
        assert "novacore.release_gateway" in cond["message"] and "HTTP 401" in cond["message"]
        assert f"the Novacore token from RECONCILER_NOVACORE_TOKEN_FILE ({token_file}) was " \
            "refused; the file is read again at the next attempt: write a new Novacore " \
            "token into it, no restart needed" in cond["message"], cond
        assert f"removing the finalizer {FINALIZER} leaves it as it is" in cond["message"]
        [warning] = await cluster.events_about("home-zap", reason="ReleaseFailed")
        assert "was refused; the file is read again" in warning["message"], warning
        assert sims.novacore.gateways[ZAP].org_id == "org-home", "nothing released"

        refused.refusing = False
        await cluster.wait_gone("Gateway", "home-zap", what="the gateway released")
        assert sims.novacore.gateways[ZAP].org_id is None


async def test_devices_under_a_gateway_whose_release_is_refused_still_correct_drift(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The Gateway's release is refused at every attempt, for as long as the token is not
    renewed: between two attempts nothing is being released, so the inverter under it is
    reconciled as usual, and put back on the Zap it was taken off. Before, it said it waited
    for the Gateway being deleted, and its drift stayed for as long as the release did."""
    refused = refused_release()
    config = OperatorConfig(interval=2.0, retry_delay=1.0)
    async with operator(HOME, tmp_path, monkeypatch, config=config,
                        before_start=lambda sims: refused.install(sims.novacore.app)) as (
        cluster, sims
    ):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready", timeout=60)
        await cluster.wait_condition("Gateway", "home-zap", "Ready", timeout=60)

        refused.refusing = True
        await cluster.delete("Gateway", "home-zap")
        await cluster.wait_reason("Gateway", "home-zap", "ReleaseFailed",
                                  what="the release write refused")
        sims.zaps[ZAP].remove_device("SG0001")

        async def put_back() -> bool:
            return "SG0001" in sims.zaps[ZAP].devices

        await cluster.wait_for(put_back, what="the inverter's drift corrected")
        assert await cluster.get("Gateway", "home-zap"), "its release still refused"
        await cluster.wait_condition("Device", "home-inverter", "Ready")
        assert sims.novacore.gateways[ZAP].org_id == "org-home", "nothing released"

        refused.refusing = False
        await cluster.wait_gone("Gateway", "home-zap", what="the gateway released")
        assert sims.novacore.gateways[ZAP].org_id is None
