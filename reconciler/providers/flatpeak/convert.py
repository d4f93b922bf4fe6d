"""PURE conversion between Flatpeak payloads and the planner's records, and from the
planner's declared fields to request bodies (seed 004's busbar device create; the classic
location create of §3.4)."""

from __future__ import annotations

from typing import Any

from reconciler.plan.flatpeak import FlatpeakDeviceState, FlatpeakLocationState


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def locations(payload: list[dict[str, Any]]) -> list[FlatpeakLocationState]:
    out = []
    for item in payload:
        if "id" not in item:
            continue
        address = item.get("postal_address")
        out.append(
            FlatpeakLocationState(
                id=str(item["id"]),
                reference_id=_text(item.get("reference_id")),
                customer_id=_text(item.get("customer_id")),
                postal_address=dict(address) if isinstance(address, dict) else {},
            )
        )
    return out


def devices(payload: list[dict[str, Any]]) -> list[FlatpeakDeviceState]:
    out = []
    for item in payload:
        if "id" not in item or item.get("reference_id") is None:
            continue
        properties = item.get("properties")
        raw = item.get("locations")
        out.append(
            FlatpeakDeviceState(
                id=str(item["id"]),
                reference_id=str(item["reference_id"]),
                type=_text(item.get("type")),
                locations=tuple(str(x) for x in raw) if isinstance(raw, list) else (),
                manufacturer=_text(item.get("manufacturer")),
                model_code=_text(item.get("model_code")),
                model_name=_text(item.get("model_name")),
                properties=dict(properties) if isinstance(properties, dict) else {},
            )
        )
    return out


def location_create_body(fields: dict[str, Any], reference_id: str) -> dict[str, Any]:
    """POST /locations from the planner's declared location fields."""
    address = {k: v for k, v in fields["postal_address"].items() if v is not None}
    body: dict[str, Any] = {
        "reference_id": fields.get("reference_id", reference_id),
        "postal_address": address,
    }
    if fields.get("customer_id") is not None:
        body["customer_id"] = fields["customer_id"]
    return body


def location_update_body(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """PATCH /locations/{id}: declared fields that differ. An address that differs in any
    line is sent whole, a line the Site leaves out as null (the planner puts it in `after`):
    the classic spec leaves unchanged only the parameters not sent, and `postal_address` is
    one parameter, so an API that takes it whole would lose the lines a PATCH of the changed
    ones left out."""
    body: dict[str, Any] = {}
    if "customer_id" in after and before.get("customer_id") != after["customer_id"]:
        body["customer_id"] = after["customer_id"]
    old = before.get("postal_address") or {}
    new = after.get("postal_address") or {}
    if any(old.get(k) != v for k, v in new.items()):
        body["postal_address"] = dict(new)
    return body


def device_create_body(fields: dict[str, Any], location_id: str) -> dict[str, Any]:
    """POST /devices (seed 004) from the planner's declared device fields."""
    body = {k: v for k, v in fields.items() if k != "locations"}
    body["locations"] = [location_id]
    return body
