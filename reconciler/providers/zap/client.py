"""Thin async client of a Sourceful Zap's local HTTP API (one method per endpoint, no
decisions). See platform-apis §1.2-1.3."""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.errors import ProviderRejected
from reconciler.printable import echo, printable
from reconciler.providers import transport

# What a Zap's error `status` says when it says nothing more than that the call failed; any
# other text there is the error itself (srcful-gateway answers `{"status": "<error text>"}`).
_NO_WORDS = frozenset({"error", "failed", "fail", "ok"})


def _said(body: Any) -> str | None:
    """A Zap's error body in its own words, instead of the JSON it came in: the firmware's
    `{"message": ...}`, the signing endpoint's `{"status": "error", "message": ...}`, the
    legacy name lookup's `{"error": ..., "status": "error"}` and srcful-gateway's
    `{"status": "<error text>"}` (platform-apis §1.2-1.3), joined as `error: message`.
    None for a body of another shape: it is quoted (cut short) instead."""
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    parts = [status if isinstance(status, str) and status.lower() not in _NO_WORDS else None,
             body.get("error"), body.get("message")]
    said: list[str] = []
    for part in parts:
        text = str(part).strip() if isinstance(part, str) or type(part) is int else ""
        if text and text not in said:
            said.append(text)
    return ": ".join(said) or None


class ZapClient:
    """One gateway's API at `url`. The httpx client may be shared by every gateway of a
    run (one connection pool, no client per gateway), so it is not this object's to close."""

    def __init__(self, client: httpx.AsyncClient, *, name: str = "", url: str = "") -> None:
        self.http = client
        self.name = name
        self.url = url.rstrip("/") or str(client.base_url).rstrip("/")
        # Parsed once, here: every plan reads it, and the session keys the gateway's limits
        # by its host. An httpx URL is not parsed again when sent (a parse is ~10 us of CPU,
        # and a fleet-wide plan made two per gateway).
        self.devices_url = httpx.URL(self.url + "/api/devices")

    async def _json(
        self, method: str, path: str | httpx.URL, *, operation: str, ok: tuple[int, ...] = (),
        **kwargs: Any
    ) -> Any:
        url = path if isinstance(path, httpx.URL) else self.url + path
        return await transport.send_json(
            self.http, method, url, address=self.name, operation=operation, ok=ok,
            origin=self.url, summarise=_said, **kwargs
        )

    async def crypto(self) -> dict[str, Any]:
        answer = await self._json("GET", "/api/crypto", operation="zap.crypto")
        return transport.expect_object(answer, operation="zap.crypto")

    async def sign(self, message: str) -> dict[str, Any]:
        answer = await self._json(
            "POST", "/api/crypto/sign", operation="zap.sign", json={"message": message}
        )
        return transport.expect_object(answer, operation="zap.sign")

    async def devices(self) -> dict[str, Any] | list[Any]:
        answer = await self._json("GET", self.devices_url, operation="zap.list_devices")
        if isinstance(answer, list):  # older firmware answers a bare list
            return answer
        return transport.expect_object(answer, operation="zap.list_devices")

    async def add_device(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self._json("POST", "/api/devices", operation="zap.add_device", json=body)
        return transport.expect_object(answer, operation="zap.add_device")

    async def delete_device(self, sn: str) -> None:
        await self._json(
            "DELETE",
            f"/api/devices/{transport.segment(sn)}",
            operation="zap.delete_device",
            ok=(404,),
        )

    async def set_types(self, sn: str, ders: list[dict[str, Any]]) -> None:
        await self._json(
            "POST",
            f"/api/devices/{transport.segment(sn)}/types",
            operation="zap.set_types",
            json={"ders": ders},
        )

    async def modbus_read(
        self, *, ip: str, port: int, unit_id: int, register: int, count: int, register_type: str
    ) -> list[int]:
        body = {
            "ip": ip,
            "port": port,
            "unit_id": unit_id,
            "register": register,
            "count": count,
            "register_type": register_type,
        }
        operation = "zap.modbus_read"
        answer = await self._json("POST", "/api/modbus/read", operation=operation, json=body)
        values = transport.expect_object(answer, operation=operation).get("values")
        # Checked here, not trusted: a short list would decode as a shorter serial (and be
        # reported as the device's), a value that is no register would stop the whole plan.
        if (
            not isinstance(values, list)
            or len(values) != count
            or not all(type(v) is int and 0 <= v <= 0xFFFF for v in values)
        ):
            raise ProviderRejected(
                f"{operation}: expected `values` to be {count} register values (integers "
                f"0-65535) read at {register}, got {printable(echo(values))}",
                operation=operation,
            )
        return values


