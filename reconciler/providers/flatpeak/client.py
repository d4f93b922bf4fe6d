"""Thin async client of the Flatpeak API (platform-apis §3; seed 004): one method per
endpoint, no decisions, and `FlatpeakAuth`, which holds the bearer token.

Auth (§3.2, classic): `GET /login` with Basic `account_id:api_key` answers
`{"bearer_token", "expires_in"}`. `FlatpeakAuth` logs in on the first request, refreshes
the token shortly before it expires, and once more when a request made with a token logged
in for another request is refused (the token expired or was revoked early), then repeats
that request. Refused is 401 or 403: the classic spec documents only 403 `Bad credentials`
for every endpoint, and RFC 6750 says 401; which one an expired token gets is not public.
Concurrent requests share one login. A failed login is answered with the login's own
response, so the usual error mapping reports it (403 bad credentials); any refusal of the
login other than a throttle or a server error (422 account_disabled) is an auth error too:
retrying cannot fix it, and the run must stop rather than defer. The login goes out with
the timeouts of the request it is made for: built by hand, it would otherwise have none
and could wait for ever.

Lists are Stripe-like (§3.5): `limit` (1-100) and `starting_after` the last id seen, while
`has_more` is true. A list asked for one `reference_id` keeps only objects of that id,
whatever the server answered: the classic spec has the filter, the busbar pages do not
say, and another system's object taken for ours would be adopted and patched.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httpx

from reconciler.errors import ProviderAuthError, ProviderRejected
from reconciler.providers import transport

MAX_PAGE_SIZE = 100
_MAX_PAGES = 10_000
_TOKEN_REFUSED = frozenset({401, 403})


class FlatpeakAuth(httpx.Auth):
    """Bearer token from `GET /login`, cached with its expiry and refreshed before it."""

    def __init__(
        self,
        login_url: str,
        account_id: str,
        api_key: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin_s: float = 60.0,
    ) -> None:
        self.login_url = login_url
        self._basic = "Basic " + base64.b64encode(f"{account_id}:{api_key}".encode()).decode()
        self._clock = clock
        self._margin_s = margin_s
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.logins = 0  # for tests and diagnostics
        self.login_refused = False  # the last login was answered with a 4xx

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    def _login_request(self, request: httpx.Request) -> httpx.Request:
        return httpx.Request(
            "GET",
            self.login_url,
            headers={"Authorization": self._basic},
            extensions={"timeout": request.extensions.get("timeout", {})},
        )

    def _store(self, response: httpx.Response) -> bool:
        """Keep the token of a successful login; False when the login failed."""
        self.login_refused = 400 <= response.status_code < 500 and response.status_code != 429
        if not response.is_success:
            return False
        try:
            body = transport.decoded(response)
            token = str(body["bearer_token"])
            expires_in = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            return False
        self._token = token
        # Refresh a little early (at most a tenth of the lifetime) so that no request
        # leaves with a token about to expire.
        self._expires_at = self._clock() + expires_in - min(self._margin_s, expires_in / 10)
        self.logins += 1
        return True

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        logged_in = False
        if not self._fresh():
            async with self._lock:
                if not self._fresh():  # another request may have logged in meanwhile
                    login = yield self._login_request(request)
                    await login.aread()
                    if not self._store(login):
                        return  # the caller gets the login's answer as the error
                    logged_in = True
        used = self._token
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        # A token just issued for this request is not stale: another login cannot help.
        if response.status_code not in _TOKEN_REFUSED or logged_in:
            return
        async with self._lock:
            if self._token == used:  # not refreshed by a concurrent request yet
                login = yield self._login_request(request)
                await login.aread()
                if not self._store(login):
                    return
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise RuntimeError("FlatpeakAuth works with httpx.AsyncClient only")


def _said(body: Any) -> str | None:
    """Flatpeak's error object (`{"object": "error", "type", "code", "message", ...}`,
    platform-apis §3.5) as `code: message` instead of the JSON it came in."""
    return transport.code_and_message(body, "code")


class FlatpeakClient:
    def __init__(self, client: httpx.AsyncClient, *, page_size: int = MAX_PAGE_SIZE) -> None:
        self.http = client
        self.page_size = max(1, min(page_size, MAX_PAGE_SIZE))

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
        try:
            return await transport.send_json(
                self.http, method, path, address=address, operation=operation, ok=ok,
                summarise=_said, **kwargs,
            )
        except (ProviderRejected, ProviderAuthError) as exc:
            # Either way (a 403 `Bad credentials` arrives as an auth error already) the
            # message names the settings to fix, not only the call that needed the token.
            auth = self.http.auth
            if isinstance(auth, FlatpeakAuth) and auth.login_refused and exc.url_setting:
                # No login where the URL's path leads: the URL, not the account, is wrong
                # (the message says which setting to check). It stops the run all the same.
                raise ProviderAuthError(
                    f"Flatpeak's login was not found: {exc}", address=address,
                    operation=operation, status=exc.status, credential_refused=False,
                    url_setting=exc.url_setting,
                ) from exc
            if isinstance(auth, FlatpeakAuth) and auth.login_refused:
                raise ProviderAuthError(
                    "Flatpeak refused the login of the account RECONCILER_FLATPEAK_ACCOUNT_ID "
                    "names, with the key RECONCILER_FLATPEAK_API_KEY (or _FILE) gives: "
                    f"{exc}", address=address, operation=operation, status=exc.status,
                    # A disabled account (422) is no key to rotate.
                    credential_refused=exc.status in (401, 403),
                ) from exc
            raise

    async def _list(
        self, path: str, *, operation: str, params: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query = {**(params or {}), "limit": str(self.page_size)}
        for _ in range(_MAX_PAGES):
            body = await self._json("GET", path, operation=operation, params=query)
            data = body.get("data") if isinstance(body, dict) else None
            page = [i for i in data if isinstance(i, dict)] if isinstance(data, list) else []
            items += page
            if not page or not body.get("has_more"):
                break
            query["starting_after"] = str(page[-1]["id"])
        return items

    # -- locations -------------------------------------------------------------------------

    async def _list_of(
        self, path: str, reference_id: str | None, *, operation: str
    ) -> list[dict[str, Any]]:
        """Every object at `path`, or those of `reference_id` (filtered by the server, if
        it can, and here in any case)."""
        if reference_id is None:
            return await self._list(path, operation=operation)
        items = await self._list(path, operation=operation, params={"reference_id": reference_id})
        return [item for item in items if item.get("reference_id") == reference_id]

    async def list_locations(self, *, reference_id: str | None = None) -> list[dict[str, Any]]:
        return await self._list_of(
            "/locations", reference_id, operation="flatpeak.list_locations"
        )

    async def get_location(self, location_id: str) -> dict[str, Any]:
        answer = await self._json(
            "GET", f"/locations/{transport.segment(location_id)}",
            operation="flatpeak.get_location",
        )
        return transport.expect_object(answer, operation="flatpeak.get_location")

    async def create_location(self, body: dict[str, Any], *, address: str = "") -> dict[str, Any]:
        return dict(
            await self._json(
                "POST",
                "/locations",
                operation="flatpeak.create_location",
                address=address,
                json=body,
            )
        )

    async def update_location(
        self, location_id: str, body: dict[str, Any], *, address: str = ""
    ) -> None:
        await self._json(
            "PATCH",
            f"/locations/{transport.segment(location_id)}",
            operation="flatpeak.update_location",
            address=address,
            json=body,
        )

    # -- devices ---------------------------------------------------------------------------

    async def list_devices(self, *, reference_id: str | None = None) -> list[dict[str, Any]]:
        return await self._list_of("/devices", reference_id, operation="flatpeak.list_devices")

    async def create_device(self, body: dict[str, Any], *, address: str = "") -> dict[str, Any]:
        return dict(
            await self._json(
                "POST", "/devices", operation="flatpeak.create_device", address=address, json=body
            )
        )

    async def update_device(
        self, device_id: str, body: dict[str, Any], *, address: str = ""
    ) -> None:
        await self._json(
            "PATCH",
            f"/devices/{transport.segment(device_id)}",
            operation="flatpeak.update_device",
            address=address,
            json=body,
        )

    async def delete_device(self, device_id: str, *, address: str = "") -> None:
        """Deleting a device that is already gone succeeds."""
        await self._json(
            "DELETE",
            f"/devices/{transport.segment(device_id)}",
            operation="flatpeak.delete_device",
            address=address,
            ok=(404,),
        )
