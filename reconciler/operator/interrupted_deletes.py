"""The config files of Enapter devices whose delete an earlier reconcile sent and that are
gone now, the reconcile having stopped before it removed their file: the Site's reconcile
removes them (`finish`), where the CLI leaves them to the next `apply --prune` of the Site.

The operator deletes an Enapter device only to provision it again (a replace: a LINK slave
moved to another master, a Lua device to another runtime), a change it makes without a
`--prune`, which it has not. A replace stopped after the delete took effect (the operator
killed, or the provisioning after it failed) leaves the device gone and the file written
for it marked as a deleted device's (`engine.enapter_files.mark_deleting`); once a Device
declares another file, that file holds only the credentials of a device that is no more,
and nothing else would ever remove it: it stayed in `status.unmanaged` until removed by
hand. The removal is the one a finished delete makes (`enapter_files.remove`): only a file
still as it was written and named by no Device of the namespace, its record forgotten; one
that cannot be removed keeps its record and its entry, and is tried again at the next
reconcile. Only a device the Site's Enapter site was read without, this time, is taken
for gone: what the planner lists of it as unmanaged (`unmanaged_clouds`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.engine import enapter_files
from reconciler.engine.config import Settings
from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.operator import unmanaged_clouds
from reconciler.plan.enapter_fields import COMPONENT as ENAPTER
from reconciler.plan.enapter_observed import EnapterState
from reconciler.plan.observed import Observed


@dataclass
class Finished:
    """What `finish` did: a line for each device whose files were removed (an event), and
    one for each file that could not be (a Warning)."""

    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def finish(site: Site, whole: Fleet, observed: Observed, settings: Settings) -> Finished:
    """Remove the config files of this Site's interrupted deletes whose device is gone,
    and drop those done from `observed`, so that `status.unmanaged` lists them no more."""
    out = Finished()
    state = observed.extra.get(ENAPTER)
    if not isinstance(state, EnapterState) or not state.interrupted_deletes:
        return out
    listed = unmanaged_clouds.enapter_devices(site, whole, observed)
    if listed is None:
        return out  # the site's devices were not read: whether the device is gone is not known
    present = {d.id for devices in state.devices.values() if isinstance(devices, list)
               for d in devices}
    for entry in listed:
        device_id = str(entry.get("id", ""))
        interrupted = state.interrupted_deletes.get(device_id)
        if interrupted is None or interrupted.site != site.name or device_id in present:
            continue
        try:
            said = enapter_files.remove(settings, whole, device_id)
        except OSError as exc:
            out.failed.append(
                f"Enapter device {device_id} of site {site.name} is gone, deleted by a "
                f"reconcile that stopped before it removed its config file; {exc.filename} "
                f"could not be removed: {exc.strerror or exc}; it holds the device's "
                "credentials: remove it (or the next reconcile tries again)"
            )
            continue
        del state.interrupted_deletes[device_id]
        if said is not None:
            out.removed.append(
                f"Enapter device {device_id} of site {site.name} is gone, deleted by a "
                f"reconcile that stopped before it removed its config file: {said}"
            )
    return out
