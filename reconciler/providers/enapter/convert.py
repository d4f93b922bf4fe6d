"""PURE conversion between Enapter v3 payloads and the planner's records, and from the
desired state to request bodies (provisioning, site create and update, device PATCH).
Also the one rendering of a communication config, for the file or Secret it is written to.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.model.device import Device, EnapterKind
from reconciler.model.gateway import Gateway
from reconciler.model.site import Site
from reconciler.plan import enapter_fields as plan
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterSiteState

# Provisioning endpoint (v3/provisioning/<name>) of each kind.
ENDPOINT = {
    EnapterKind.UCM: "ucm",
    EnapterKind.VUCM: "vucm",
    EnapterKind.EMBEDDED: "embedded",
    EnapterKind.LINK_MASTER: "link_master",
    EnapterKind.LINK_SLAVE: "link_slave",
    EnapterKind.STANDALONE: "standalone",
    EnapterKind.LUA: "lua_device",
}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def sites(payload: list[dict[str, Any]]) -> list[EnapterSiteState]:
    out = []
    for item in payload:
        if "id" not in item:
            continue
        location = item.get("location")
        out.append(
            EnapterSiteState(
                id=str(item["id"]),
                name=str(item.get("name", "")),
                timezone=str(item.get("timezone", "")),
                location=dict(location) if isinstance(location, dict) else None,
            )
        )
    return out


def devices(payload: list[dict[str, Any]]) -> list[EnapterDeviceState]:
    out = []
    for item in payload:
        if "id" not in item:
            continue
        communication = item.get("communication")
        communication = communication if isinstance(communication, dict) else {}
        properties = item.get("properties")
        out.append(
            EnapterDeviceState(
                id=str(item["id"]),
                site_id=str(item.get("site_id", "")),
                type=str(item.get("type", "")),
                name=str(item.get("name", "")),
                slug=str(item.get("slug", "")),
                blueprint_id=_text(item.get("blueprint_id")),
                hardware_id=_text(communication.get("hardware_id")),
                upstream_id=_text(communication.get("upstream_id")),
                communication_type=_text(communication.get("type")),
                properties=dict(properties) if isinstance(properties, dict) else {},
            )
        )
    return out


# -- request bodies ---------------------------------------------------------------------------


def site_create_body(site: Site) -> dict[str, Any]:
    """POST v3/sites."""
    return {
        "name": site.spec.display_name,
        "timezone": site.spec.timezone,
        "location": plan.location_body(site),
    }


def site_update_body(before: dict[str, Any], after: dict[str, Any], site: Site) -> dict[str, Any]:
    """PATCH v3/sites/{id}: the declared fields that differ."""
    body: dict[str, Any] = {}
    for key in ("name", "timezone"):
        if before.get(key) != after.get(key):
            body[key] = after[key]
    observed = before.get("location") or {}
    if any(observed.get(k) != v for k, v in (after.get("location") or {}).items()):
        body["location"] = plan.location_body(site)
    return body


def gateway_body(gateway: Gateway, site: Site, site_id: str) -> dict[str, Any]:
    """POST v3/provisioning/gateway (seed 002): the site's name, timezone and location go
    with it, since provisioning a gateway sets them on the site."""
    spec = gateway.spec.enapter
    assert spec is not None
    body: dict[str, Any] = {
        "site_id": site_id,
        "hardware_id": spec.hardware_id,
        "gateway_version": spec.firmware_version,
        "site_name": site.spec.display_name,
        "site_timezone": site.spec.timezone,
    }
    location = plan.location_body(site)
    if location is not None:
        body["site_location"] = location
    return body


def provision_body(device: Device, *, site_id: str, upstream_id: str | None) -> dict[str, Any]:
    """POST v3/provisioning/<kind> (seed 002). `upstream_id` is the runtime of a Lua device
    or the master of a LINK slave."""
    enapter = device.spec.enapter
    assert enapter is not None
    kind = EnapterKind(enapter.kind)
    name = device.display_name
    if kind is EnapterKind.LUA:
        return {
            "runtime_id": upstream_id,
            "blueprint_id": enapter.blueprint_id,
            "name": name,
            "slug": plan.device_slug(device),
        }
    if kind is EnapterKind.STANDALONE:
        return {"site_id": site_id, "name": name, "slug": plan.device_slug(device)}
    body: dict[str, Any] = {
        "site_id": site_id,
        "hardware_id": device.spec.hardware_id,
        "name": name,
    }
    if kind is EnapterKind.EMBEDDED:
        body["device_type"] = str(enapter.embedded_type)
    if kind in plan.CONFIG_ON_PROVISION:
        body["protocol"] = str(enapter.protocol)
    if kind is EnapterKind.LINK_SLAVE:
        body["master_device_id"] = upstream_id
    return body


def rename_body(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """PATCH v3/devices/{id}: the name and slug where they differ."""
    return {
        key: after[key]
        for key in ("name", "slug")
        if key in after and before.get(key) != after[key]
    }


def config_text(config: dict[str, Any]) -> str:
    """The communication config as written to its output (JSON, as Enapter returns it)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"
