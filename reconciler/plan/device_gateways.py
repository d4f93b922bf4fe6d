"""Which gateway a Device change of the Sourceful plan is on: the declared device's, or, for
a device found on a Zap that nobody declares, the gateway its change is named after
(`undeclared_device_name`).
"""

from __future__ import annotations

from collections.abc import Collection

from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Change


def undeclared_device_name(gateway: str, sn: str) -> str:
    """The name in a change of a device found on a gateway but not declared."""
    return f"{gateway}.{sn}"


def gateway_of_change(fleet: Fleet, change: Change, retired: Collection[str] = ()) -> str:
    """The gateway of a Device change: the declared device's, or the one an undeclared
    device was found on (`undeclared_device_name`), declared or among `retired` (gateways
    declared no more whose Zap a release reads: `plan.retired_gateways`)."""
    device = fleet.devices.get(change.name)
    if device is not None:
        return device.spec.gateway_ref or ""
    # Gateway names may hold dots too: the longest declared gateway the name starts with.
    name = change.name
    cut = name.rfind(".")
    while cut > 0:
        if name[:cut] in fleet.gateways or name[:cut] in retired:
            return name[:cut]
        cut = name.rfind(".", 0, cut)
    return name.split(".", 1)[0]
