"""A device's record in Novacore as the Sourceful plan compares it: the declared fields in
Novacore's vocabulary (`novacore_fields`) and the observed ones (`observed_novacore_fields`),
the drift between them (`cloud_drift`, `der_type_changed`), and which of a site's Novacore
devices with a hardware id a declared device is (`bound_device`).
"""

from __future__ import annotations

from typing import Any

from reconciler.model.der import DerFields
from reconciler.model.device import Device
from reconciler.plan.actions import FieldDiff
from reconciler.plan.diff import compared_only_where_reported, declared_diff
from reconciler.plan.observed import NovacoreDevice


def bound_device(candidates: list[NovacoreDevice], serial: str) -> NovacoreDevice | None:
    """Of the site's Novacore devices with a declared device's hardware id, the one it is:
    the one bound to its gateway (or bound to none Novacore reports), else one bound to
    another gateway (the device moved, and is provisioned again behind its new one)."""
    for candidate in candidates:
        if candidate.gateway_serial in (None, serial):
            return candidate
    return candidates[0] if candidates else None


def novacore_fields(device: Device, ders: list[DerFields]) -> dict[str, Any]:
    """Declared fields of a device that declares `ders` (`Fleet.ders_of`), in Novacore's
    vocabulary."""
    spec = device.spec
    out: dict[str, Any] = {"name": device.display_name, "device_type": spec.device_type}
    if spec.manufacturer:
        out["manufacturer"] = spec.manufacturer
    if spec.model:
        out["model"] = spec.model
    out["ders"] = {d.name: str(d.type) for d in ders}
    return out


def cloud_drift(after: dict[str, Any], before: dict[str, Any]) -> list[FieldDiff]:
    """What to update on a Novacore device whose device type and DER types are as declared:
    the fields it reports that differ and the DERs it lacks. The DERs it has that are not
    declared are no drift: Novacore cannot delete them (`plan.sourceful_unmanaged` reports them)."""
    diff = compared_only_where_reported({k: v for k, v in after.items() if k != "ders"}, before)
    diff += declared_diff(after["ders"], before["ders"], prefix="ders.")
    return diff


def der_type_changed(declared: dict[str, str], observed: dict[str, str]) -> bool:
    """Whether a declared DER that Novacore has is there with another type."""
    for name, der_type in declared.items():
        if name in observed and observed[name] != der_type:
            return True
    return False


def observed_novacore_fields(device: NovacoreDevice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": device.name,
        "device_type": device.device_type,
        "ders": {d.name: d.type for d in device.ders},
    }
    if device.manufacturer is not None:
        out["manufacturer"] = device.manufacturer
    if device.model is not None:
        out["model"] = device.model
    return out
