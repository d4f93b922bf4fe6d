"""The operator's Novacore token in a file (RECONCILER_NOVACORE_TOKEN_FILE, the chart's
`credentials.mountAsFiles`), end to end (kopf against kmock's emulator and the simulators):
once Novacore refuses the token, a token rotated in the file (as kubelet updates a mounted
Secret) is used by the next reconcile, without a restart; until then the object says the
token was refused and where it is read from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fleet_yaml import novacore_site
from harness import documents, operator

FLEET = novacore_site()


async def test_a_token_rotated_in_its_file_is_used_by_the_next_reconcile(
    tmp_path: Path, monkeypatch: Any
) -> None:
    token_file = tmp_path / "novacore-token"
    async with operator(FLEET, tmp_path, monkeypatch, token_file=token_file) as (cluster, sims):
        await cluster.create_all(documents(FLEET))
        await cluster.wait_condition("Site", "home", "Ready")
        [site_id] = sims.novacore.sites

        # A day later Novacore refuses the token.
        sims.novacore.expire_token(token_file.read_text().strip())
        refused = await cluster.wait_condition("Site", "home", "Ready", status="False")
        assert refused["reason"] == "AuthError"
        assert refused["message"].endswith(
            "HTTP 401: unauthorized: Token expired; the Novacore token from "
            f"RECONCILER_NOVACORE_TOKEN_FILE "
            f"({token_file}) was refused; the file is read again at the next reconcile: "
            "write a new Novacore token into it, no restart needed"), refused

        # The Secret's file is rewritten with a new token: the next reconcile reads it, and
        # Novacore answers it (the old one stays refused).
        new = token_file.with_name("novacore-token.new")
        new.write_text(sims.novacore.issue_token(sims.identity_id) + "\n")
        os.replace(new, token_file)
        ready = await cluster.wait_condition("Site", "home", "Ready")
        assert ready["reason"] == "Reconciled"
        assert list(sims.novacore.sites) == [site_id]
