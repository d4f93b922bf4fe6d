"""Thin async client of the Enapter Cloud HTTP API v3 (platform-apis §2; seeds 002, 003):
one method per endpoint, no decisions. Auth is the `X-Enapter-Auth-Token` header the
session's httpx client carries.

Errors are mapped by `providers.transport` like every other API; in addition the codes of
Enapter's `{"errors": [{"code", "message", "details"}]}` envelope are kept on the raised
error (`api_errors(exc)`), so callers can tell DEVICE_ALREADY_EXISTS from
SLUG_ALREADY_EXISTS. Configs returned by provisioning and generate_config hold credentials:
nothing here logs or echoes a response body that may carry one.
"""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.errors import ProviderAuthError, ProviderError, ProviderRejected
from reconciler.providers import transport
from reconciler.sources import json_text

AUTH_HEADER = "X-Enapter-Auth-Token"
# Communication, for the protocol; properties, for the gateway's firmware version.
DEVICE_EXPAND = "communication,properties"
# Every answer that is no success comes back from `transport.send` to be mapped here, the
# 5xx ones too: their `{"errors": [...]}` envelope is said as `CODE: message`, as a 4xx's
# is, instead of as the JSON it came in.
_ERRORS = tuple(range(400, 600))
_MAX_PAGES = 10_000  # a server that never returns an empty page must not loop forever
# The error code of a token Enapter refuses as invalid or expired, which it answers with a
# 403 (platform-apis §2.1), not the 401 of a missing token; a 403 of another code is a
# permission the token lacks, which no new token of the same user fixes.
_REFUSED_CODE = "invalid_header"
# The error code of Enapter's 404 for a device that is not there (platform-apis §2.1).
_DEVICE_NOT_FOUND = "DEVICE_NOT_FOUND"


def _device_not_found(error: BaseException, device_id: str) -> bool:
    """Whether `error`'s envelope says Enapter device `device_id` is not there: an entry of
    code DEVICE_NOT_FOUND that names that device, or names none."""
    for entry in api_errors(error):
        if str(entry.get("code", "")).upper() != _DEVICE_NOT_FOUND:
            continue
        details = entry.get("details")
        named = details.get("device_id") if isinstance(details, dict) else None
        if named is None or str(named) == device_id:
            return True
    return False


def _raise_unless_not_found(error: ProviderRejected, device_id: str, *, taken_for: str) -> None:
    """Return when `error` is Enapter's answer that device `device_id` is not there: a 404 of
    code DEVICE_NOT_FOUND for it (platform-apis §2.1). Raise otherwise: any other answer,
    and any other 404 too (a path the API does not have: a base URL that is not the API's,
    a proxy that does not route it; or another entity not found), says nothing of the
    device, which may be there still, so it is not `taken_for` (deleted, gone)."""
    if error.status != 404:
        raise error
    if _device_not_found(error, device_id):
        return
    raised = ProviderRejected(
        f"{error}; not Enapter's answer for a device not found ({_DEVICE_NOT_FOUND}), so "
        f"Enapter device {device_id} is not taken for {taken_for}",
        address=error.address, operation=error.operation, status=error.status,
        url_setting=error.url_setting,
    )
    if api_errors(error):
        raised.api_errors = api_errors(error)  # type: ignore[attr-defined]
    raise raised from None


def headers(token: str, base_url: str) -> dict[str, str]:
    """Request headers as the official SDK sends them."""
    out = {AUTH_HEADER: token}
    if base_url.startswith("http://"):
        out["X-Enapter-Allow-HTTP"] = "true"
    return out


def api_errors(error: BaseException) -> list[dict[str, Any]]:
    """The `errors` entries of the Enapter answer that raised `error` (empty if none)."""
    found = getattr(error, "api_errors", None)
    return list(found) if isinstance(found, list) else []


def error_code(error: BaseException) -> str | None:
    errors = api_errors(error)
    return str(errors[0].get("code")) if errors else None


def _error_for(response: httpx.Response, client: httpx.AsyncClient, *, address: str,
               operation: str) -> ProviderError:
    """The mapped error of an answer that is no success, with the entries of Enapter's
    `{"errors": [...]}` envelope kept (`api_errors`) and said as `CODE: message` instead
    of the JSON they came in; the base URL of `client` named in a 404 when it has a path
    (`transport.error_for`)."""
    try:
        body = transport.decoded(response)
    except ValueError:  # not JSON, or past what the parser reads: the body is quoted
        body = None
    entries = (
        [e for e in body["errors"] if isinstance(e, dict)]
        if isinstance(body, dict) and isinstance(body.get("errors"), list)
        else []
    )
    # Each entry as Novacore's and Flatpeak's error is said: one wording on every cloud.
    said = [transport.code_and_message(e, "code") for e in entries]
    summary = "; ".join(text for text in said if text) or None
    error = transport.error_for(
        response, address=address, operation=operation, summary=summary,
        base_url=client.base_url, url_setting=getattr(client, "url_setting", ""),
    )
    if isinstance(error, ProviderAuthError) and any(
        str(e.get("code", "")).lower() == _REFUSED_CODE for e in entries
    ):
        error.credential_refused = True
    if entries:
        error.api_errors = entries  # type: ignore[attr-defined]
    return error


class EnapterClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        address: str = "",
        secret: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Send; return the decoded JSON (None for an empty body).
        `secret`: the answer carries credentials, so a malformed one is not quoted."""
        response = await transport.send(
            self.http,
            method,
            path,
            address=address,
            operation=operation,
            ok=_ERRORS,
            **kwargs,
        )
        if not response.is_success:
            raise _error_for(response, self.http, address=address, operation=operation)
        if response.status_code == 204 or not response.content:
            return None
        if secret:
            try:
                return transport.decoded(response)
            except ValueError as exc:
                # Said without the body, which holds a secret.
                why = f"holds {exc}" if isinstance(exc, json_text.TooComplex) else "is not JSON"
                raise ProviderRejected(
                    f"{operation}: the answer {why}",
                    address=address,
                    operation=operation,
                    status=response.status_code,
                ) from None
        return transport.json_body(response, operation=operation)

    async def _pages(
        self, path: str, key: str, *, operation: str, params: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of an offset-paginated list (§2.1: the SDK pages until an empty page;
        a reported `total_count` that is reached ends it one request earlier)."""
        items: list[dict[str, Any]] = []
        for _ in range(_MAX_PAGES):
            body = await self._call(
                "GET",
                path,
                operation=operation,
                params={**(params or {}), "offset": str(len(items))},
            )
            page = body.get(key) if isinstance(body, dict) else None
            if not isinstance(page, list) or not page:
                break
            items += [item for item in page if isinstance(item, dict)]
            total = body.get("total_count")
            if isinstance(total, int) and len(items) >= total:
                break
        return items

    # -- sites -----------------------------------------------------------------------------

    async def list_sites(self) -> list[dict[str, Any]]:
        return await self._pages("v3/sites", "sites", operation="enapter.list_sites")

    async def create_site(self, body: dict[str, Any], *, address: str = "") -> dict[str, Any]:
        answer = await self._call(
            "POST", "v3/sites", operation="enapter.create_site", address=address, json=body
        )
        return dict(answer["site"])

    async def update_site(self, site_id: str, body: dict[str, Any], *, address: str = "") -> None:
        await self._call(
            "PATCH",
            f"v3/sites/{transport.segment(site_id)}",
            operation="enapter.update_site",
            address=address,
            json=body,
        )

    # -- devices ---------------------------------------------------------------------------

    async def site_devices(self, site_id: str) -> list[dict[str, Any]]:
        return await self._pages(
            f"v3/sites/{transport.segment(site_id)}/devices",
            "devices",
            operation="enapter.list_site_devices",
            params={"expand": DEVICE_EXPAND},
        )

    async def device(self, device_id: str) -> dict[str, Any] | None:
        """GET v3/devices/{id} (with its communication: its upstream); None when Enapter
        says it is not there: a 404 of code DEVICE_NOT_FOUND for it. Any other 404 is an
        error, as for `delete_device`: it says nothing of the device. Even that answer says
        it is not there only once the URL is known to be the API's (a listing every token
        has answered: the caller's to know)."""
        try:
            answer = await self._call(
                "GET",
                f"v3/devices/{transport.segment(device_id)}",
                operation="enapter.get_device",
                params={"expand": DEVICE_EXPAND},
            )
        except ProviderRejected as error:
            _raise_unless_not_found(error, device_id, taken_for="gone")
            return None
        device = answer.get("device") if isinstance(answer, dict) else None
        if not isinstance(device, dict):
            raise ProviderRejected(
                "enapter.get_device: the answer holds no device", operation="enapter.get_device"
            )
        return device

    async def provision(
        self, kind: str, body: dict[str, Any], *, address: str = ""
    ) -> dict[str, Any]:
        """POST v3/provisioning/{kind}; the answer may hold a config (credentials)."""
        answer = await self._call(
            "POST",
            f"v3/provisioning/{transport.segment(kind)}",
            secret=True,
            operation=f"enapter.provision_{kind}",
            address=address,
            json=body,
        )
        return dict(answer or {})

    async def update_device(
        self, device_id: str, body: dict[str, Any], *, address: str = ""
    ) -> None:
        await self._call(
            "PATCH",
            f"v3/devices/{transport.segment(device_id)}",
            operation="enapter.update_device",
            address=address,
            json=body,
        )

    async def delete_device(self, device_id: str, *, address: str = "") -> None:
        """Deleting a device that is already gone succeeds: Enapter says so with a 404 of
        code DEVICE_NOT_FOUND for it (platform-apis §2.1). Any other 404 says nothing of the
        device, which may be there still: an error, so that nothing is taken for deleted
        (its config file or Secret, which go with it, stay)."""
        try:
            await self._call(
                "DELETE",
                f"v3/devices/{transport.segment(device_id)}",
                operation="enapter.delete_device",
                address=address,
            )
        except ProviderRejected as error:
            _raise_unless_not_found(error, device_id, taken_for="deleted")

    async def assign_blueprint(
        self, device_id: str, blueprint_id: str, *, address: str = ""
    ) -> None:
        await self._call(
            "POST",
            f"v3/devices/{transport.segment(device_id)}/assign_blueprint",
            operation="enapter.assign_blueprint",
            address=address,
            json={"blueprint_id": blueprint_id},
        )

    async def generate_config(
        self, device_id: str, protocol: str, *, address: str = ""
    ) -> dict[str, Any]:
        """A new communication config (credentials) for the device."""
        answer = await self._call(
            "POST",
            f"v3/devices/{transport.segment(device_id)}/generate_config",
            secret=True,
            operation="enapter.generate_config",
            address=address,
            json={"protocol": protocol},
        )
        return dict(answer["config"])
