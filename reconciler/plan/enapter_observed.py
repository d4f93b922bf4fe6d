"""What Enapter Cloud reports, as the observer (`engine.enapter`) records it for the planner:
its sites, their devices, whether each declared config output exists and for which device it
was written, and the config files earlier applies wrote (`EnapterState`, the `enapter`
section of `Observed.extra`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reconciler.plan.observed import Unreachable


@dataclass(frozen=True)
class EnapterSiteState:
    """One entry of GET v3/sites."""

    id: str
    name: str
    timezone: str
    location: dict[str, Any] | None = None


@dataclass(frozen=True)
class EnapterDeviceState:
    """One entry of GET v3/sites/{id}/devices?expand=communication,properties."""

    id: str
    site_id: str
    type: str
    name: str
    slug: str
    blueprint_id: str | None = None
    hardware_id: str | None = None
    upstream_id: str | None = None
    communication_type: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigOutputState:
    """Whether a device's declared config output exists. `target` names it for messages
    (a path or a Secret name); it never holds the config. `written_for`: the Enapter
    device id the records say the file or Secret was written for (still as written), None
    when no record names it; one written for another device holds no config of this one.
    `foreign`: a Secret the reconciler did not write, which it does not write over."""

    target: str
    present: bool
    written_for: str | None = None
    foreign: bool = False
    # Why no config can be written there (a file path that is a directory), said as a
    # blocked change's reason, or None.
    unusable: str | None = None


class InterruptedDelete(NamedTuple):
    """A device whose delete an apply of Site `site` sent, marked before it was sent, and
    the config files written for it that the apply had not removed yet (`paths`).
    `replaced`: the delete was a replace's (the device deleted to be provisioned again: a
    LINK slave moved to another master, a Lua device to another runtime), which the plan
    finishes without --prune; else a --prune's (or recorded by an earlier version, which
    did not say), which the next --prune finishes."""

    site: str
    paths: list[str]
    replaced: bool = False


@dataclass
class EnapterState:
    """The `enapter` section of `Observed.extra`."""

    # GET v3/sites (every page), or Unreachable.
    sites: list[EnapterSiteState] | Unreachable
    # Enapter site id -> its devices, for the sites the fleet declares and that exist.
    devices: dict[str, list[EnapterDeviceState] | Unreachable] = field(default_factory=dict)
    # Device resource name -> its config output, where the observer could check it.
    config_outputs: dict[str, ConfigOutputState] = field(default_factory=dict)
    # Whether this run can write `configOutput.secretName` (the operator can; the CLI not).
    secret_store: bool = False
    # Ids of the sites no declared Site matches, whose devices were read because a Site
    # matches no site by name: where the site it was renamed from is looked for.
    unclaimed: tuple[str, ...] = ()
    # Enapter device id -> the config files earlier applies wrote for it, still as written
    # and named by no declared Device: its delete, or its update once its config is where
    # its Device declares it now, removes them (`engine.enapter_files`).
    written_files: dict[str, list[str]] = field(default_factory=dict)
    # Enapter device id -> the Site whose apply sent its delete, the config files it had
    # not removed yet, and whether the delete was a replace's (`engine.enapter_files`).
    interrupted_deletes: dict[str, InterruptedDelete] = field(default_factory=dict)
    # Enapter device id -> the device read by that id, None when Enapter says it is not
    # there, or Unreachable: where no declared Site says where to look
    # (`engine.enapter_by_id`); the devices of the site of each found are in `devices`.
    by_id: dict[str, EnapterDeviceState | Unreachable | None] = field(default_factory=dict)
    # Device name -> the Enapter sites its device was looked for in, its Site now another
    # site than the one it was applied in (`plan.enapter_left_devices`); their devices are
    # in `devices`.
    left_sites: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Device name -> the Enapter id its device was recorded with, for those of `left_sites`
    # with one (`PlanOptions.enapter_device_ids`): only a device of that id is taken for it.
    left_ids: dict[str, str] = field(default_factory=dict)
