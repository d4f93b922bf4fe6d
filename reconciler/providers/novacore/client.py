"""Thin async client of the Sourceful Novacore cloud API (bearer JWT; one method per
endpoint; no decisions). See platform-apis §1.4."""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.providers import transport


def _said(body: Any) -> str | None:
    """Novacore's one documented error shape, `{"error": "not_found", "message": "..."}`
    (platform-apis §1.4), as `not_found: ...` instead of the JSON it came in."""
    return transport.code_and_message(body, "error")


class NovacoreClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _json(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        address: str = "",
        ok: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> Any:
        return await transport.send_json(
            self.http, method, path, address=address, operation=operation, ok=ok,
            summarise=_said, **kwargs,
        )

    async def list_sites(self, org_id: str) -> list[dict[str, Any]]:
        answer = await self._json(
            "GET", "/sites", operation="novacore.list_sites", params={"org_id": org_id}
        )
        return transport.expect_list(answer, operation="novacore.list_sites")

    async def create_site(self, org_id: str, name: str, *, address: str = "") -> dict[str, Any]:
        answer = await self._json(
            "POST",
            "/sites",
            operation="novacore.create_site",
            address=address,
            json={"org_id": org_id, "name": name},
        )
        return transport.expect_object(answer, operation="novacore.create_site")

    async def get_site(self, site_id: str) -> dict[str, Any]:
        answer = await self._json(
            "GET", f"/sites/{transport.segment(site_id)}", operation="novacore.get_site"
        )
        return transport.expect_object(answer, operation="novacore.get_site")

    async def update_site(self, site_id: str, name: str, *, address: str = "") -> None:
        await self._json(
            "PUT",
            f"/sites/{transport.segment(site_id)}",
            operation="novacore.update_site",
            address=address,
            json={"name": name},
        )

    async def site_devices(self, site_id: str) -> list[dict[str, Any]]:
        answer = await self._json(
            "GET",
            f"/sites/{transport.segment(site_id)}/devices",
            operation="novacore.list_site_devices",
        )
        return transport.expect_list(answer, operation="novacore.list_site_devices")

    async def list_gateways(self, org_id: str) -> list[dict[str, Any]]:
        answer = await self._json(
            "GET", "/gateways", operation="novacore.list_gateways", params={"org_id": org_id}
        )
        return transport.expect_list(answer, operation="novacore.list_gateways")

    async def claim_gateway(self, body: dict[str, Any], *, address: str = "") -> dict[str, Any]:
        answer = await self._json(
            "POST",
            "/gateways/claim",
            operation="novacore.claim_gateway",
            address=address,
            json=body,
        )
        return transport.expect_object(answer, operation="novacore.claim_gateway")

    async def release_gateway(self, serial: str, *, address: str = "") -> None:
        await self._json(
            "DELETE",
            f"/gateways/{transport.segment(serial)}",
            operation="novacore.release_gateway",
            address=address,
            ok=(404,),
        )

    async def provision_device(self, body: dict[str, Any], *, address: str = "") -> dict[str, Any]:
        answer = await self._json(
            "POST", "/devices/provision", operation="novacore.provision", address=address, json=body
        )
        return transport.expect_object(answer, operation="novacore.provision")

    async def get_device(self, device_id: str) -> dict[str, Any]:
        answer = await self._json(
            "GET", f"/devices/{transport.segment(device_id)}", operation="novacore.get_device"
        )
        return transport.expect_object(answer, operation="novacore.get_device")

    async def update_device(
        self, device_id: str, body: dict[str, Any], *, address: str = ""
    ) -> None:
        await self._json(
            "PUT",
            f"/devices/{transport.segment(device_id)}",
            operation="novacore.update_device",
            address=address,
            json=body,
        )

    async def delete_device(self, device_id: str, *, address: str = "") -> None:
        await self._json(
            "DELETE",
            f"/devices/{transport.segment(device_id)}",
            operation="novacore.delete_device",
            address=address,
            ok=(404,),
        )

    async def add_der(self, device_id: str, name: str, der_type: str, *, address: str = "") -> None:
        await self._json(
            "POST",
            f"/devices/{transport.segment(device_id)}/ders",
            operation="novacore.add_der",
            address=address,
            json={"name": name, "type": der_type},
        )
