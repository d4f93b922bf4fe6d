"""The deletes that finish an Enapter replace an earlier reconcile left half done, which
the Site's reconcile applies (`of_site`), and what is said of them (`said`).

The operator deletes an Enapter device only to provision it again (a replace: a LINK slave
moved to another master, a Lua device to another runtime), a change it makes without a
`--prune`, which it has not. A replace stopped after the delete took effect (the operator
killed, or the provisioning after it failed) leaves the device gone and the file written
for it marked as a deleted device's (`engine.enapter_files.mark_deleting`); once a Device
declares another file, that file holds only the credentials of a device that is no more.
A replace still under way is none (its Device's reconcile, which runs beside the Site's,
waiting for the provisioning): the files are its own (`engine.replaces_under_way`),
removed by the Device's reconcile once the device is provisioned again, which says so (a
file that cannot be removed fails the Device, not the Site), or left to the Site's next
reconcile when its provisioning fails.
The planner plans its removal as the CLI's plan does (`plan.enapter`, a delete again,
which finds the device gone, then the removal, on the terms of any finished delete: only a
file still as written and named by no Device of the namespace). That change is no Device
object's (the device it deletes is none's any more, its Device is provisioned anew): the
reconcile of the Site it is planned in applies it, as one of its own changes, so it shows
in the Site's plan and conditions. A file that cannot be removed fails it; it is tried
again at the next reconcile without holding the Site's other writes back: what stops it is
outside any spec (an immutable file, a directory's permissions).

What is said of it is what a user needs: the file removed (`ConfigFileRemoved`), or not
(`ConfigFileNotRemoved`, a Warning), not the delete of a device that was gone already."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.engine.apply import Outcome
from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.plan.actions import Change
from reconciler.plan.enapter_fields import COMPONENT as ENAPTER

REMOVED_REASON = "ConfigFileRemoved"
NOT_REMOVED_REASON = "ConfigFileNotRemoved"


@dataclass
class Finished:
    """What the Site's reconcile said of the removals it applied: a line for each device
    whose files were removed (an event), one for each that failed (a Warning), and the
    addresses of those changes, of which nothing else is said."""

    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    addresses: set[str] = field(default_factory=set)


def of_site(site: Site, whole: Fleet, changes: Iterable[Change]) -> list[Change]:
    """The changes of `changes` that the reconcile of `site` applies besides its own: the
    Enapter device changes planned in its site for a device no Device of the namespace
    (`whole`) is, which only the delete that finishes an interrupted replace is (the
    operator plans without --prune, the undeclared devices are listed, not deleted)."""
    return [
        c for c in changes
        if c.kind == "Device" and c.component == ENAPTER and c.site == site.name
        and c.name not in whole.devices
    ]


def retried(finishing: Iterable[Change], outcomes: list[Outcome]) -> list[Outcome]:
    """`outcomes`, with the failures of `finishing` worth trying again: a file not removed
    is tried again at the next reconcile, and holds none of the Site's writes back."""
    addresses = {c.address for c in finishing}
    return [
        dataclasses.replace(o, retryable=True)
        if o.address in addresses and o.status == "failed" else o
        for o in outcomes
    ]


def said(site: Site, finishing: Iterable[Change], outcomes: Iterable[Outcome]) -> Finished:
    """What is said of the outcomes of `finishing` (`of_site`) in the Site's events."""
    out = Finished()
    by_address = {c.address: c for c in finishing}
    for outcome in outcomes:
        change = by_address.get(outcome.address)
        if change is None:
            continue
        out.addresses.add(outcome.address)
        what = (f"Enapter device {change.external_id} of site {site.name} is gone, deleted by "
                "a reconcile that stopped before it removed its config file")
        if outcome.status == "done" and outcome.config_file is not None:
            out.removed.append(f"{what}: {outcome.config_file}")
        elif outcome.status == "failed":
            out.failed.append(f"{what}; {outcome.message}")
    return out
