"""A renamed Enapter device's new name, reconciled already (its config written to its own
file), told that it takes over while the old name is still being deleted: the old one's
finalizer has annotated it, and has not gone yet (kopf's removal of the finalizer held).
The new one's run for the annotation does not plan with the old one still declaring its
config file: it waits for it to be gone, then removes that file, and only that run
removes the annotation (`operator.takeovers`). Before, the run planned with the old one
declared (so the file was left), the old one went while it ran, and the run removed the
annotation all the same: the file stayed until the next drift check."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fleet_yaml import enapter_site, released_ucm, stream
from harness import WAIT, KopfRuns, documents, operator
from held_requests import HeldRequests
from takeover_marks import takeover_cleared

from reconciler.operator.config import OperatorConfig

# No drift check comes: only the takeover's own runs can remove the old file.
QUIET = OperatorConfig(interval=3600.0, retry_delay=0.5)


def _ucm(name: str) -> str:
    return released_ucm(name, f"configOutput: {{file: {name}.json}}")


def _held_enapter() -> HeldRequests:
    """The next request to the simulated Enapter Cloud once armed, held: the plan of the
    run that makes it is made with the view of the namespace that run took as it
    began."""
    return HeldRequests("enapter", lambda _: True, once=True)


async def test_the_new_name_takes_over_only_once_the_old_one_is_gone_from_its_view(
    tmp_path: Path, monkeypatch: Any, runs: KopfRuns
) -> None:
    """ucm-b's run for its annotation begins while ucm-a is still being deleted (kopf's
    patch removing ucm-a's finalizer held), and ucm-a is gone, from the API server and
    from kopf's indexes, before that run could end: the run that removes the annotation
    is one that planned with ucm-a gone, and removed ucm-a's config file, as the
    finalizer's DeviceKept message promised."""
    held = _held_enapter()
    fleet = stream(enapter_site(), _ucm("ucm-a"))
    async with operator(fleet, tmp_path, monkeypatch, config=QUIET,
                        before_start=held.install) as (cluster, _):
        await cluster.create_all(documents(fleet))
        await cluster.wait_condition("Device", "ucm-a", "Ready")
        old = tmp_path / "state" / "ucm-a.json"
        assert old.is_file()
        [renamed] = documents(stream(enapter_site(), _ucm("ucm-b")))[1:]
        await cluster.create(renamed)
        # ucm-b reconciled while ucm-a is there (an Enapter device's new name is not
        # refused): its config is in its own file, and its create handler is done.
        await cluster.wait_condition("Device", "ucm-b", "Ready")
        await cluster.wait_handled("Device", "ucm-b")
        assert (tmp_path / "state" / "ucm-b.json").is_file()
        assert old.is_file()

        finalized = cluster.emulator.hold(
            "PATCH", "/devices/ucm-a", lambda body: "finalizers" in str(body))
        held.armed = True
        await cluster.delete("Device", "ucm-a")
        await asyncio.wait_for(finalized.arrived.wait(), WAIT)
        # ucm-b's run for the annotation has begun with ucm-a in its view, being deleted:
        # it either plans (its first read of Enapter held) or says it waits.
        await cluster.wait_for(
            lambda: _began(held, runs), what="ucm-b's run for its annotation begun")

        finalized.release.set()
        await cluster.wait_gone("Device", "ucm-a")
        # kopf indexes an event before it logs its handling: ucm-a is out of the indexes.
        await runs.wait_said("ucm-a", "Deleted, really deleted")
        held.release()

        await takeover_cleared(cluster, "Device", "ucm-b")
        assert not old.exists()
        assert (tmp_path / "state" / "ucm-b.json").is_file()
        [kept] = await cluster.wait_events_about("ucm-a", reason="DeviceKept")
        assert str(kept["message"]).endswith(
            "is removed by the reconcile of Device 'ucm-b' once that one has written the "
            "device's config to its own file 'ucm-b.json'"), kept["message"]


async def _began(held: HeldRequests, runs: KopfRuns) -> bool:
    """Whether ucm-b's run after the annotation has planned as far as Enapter, or waited."""
    return held.first.is_set() or runs.said("ucm-b", "Handler 'update-devices' is waiting") > 0
