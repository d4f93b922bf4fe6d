"""`FlatpeakSimulator`: the Flatpeak API on loopback. It owns accounts and their bearer
tokens, devices (the busbar create body of seed 004) and locations, Stripe-like list
pagination, the documented error object, and drift helpers.

The contract is platform-apis.md §3 and seed 004; where they are silent the choices below
are ours, and each is marked "Our choice".

Auth: `GET /login` (classic) with `Authorization: Basic base64(account_id:api_key)` answers
`{"bearer_token", "expires_in", "live_mode"}`. Our choice: busbar's `POST /auth/tokens`
is the same endpoint under its newer name. Tokens are opaque and expire after `token_ttl_s`
by the injectable clock. An expired or unknown bearer token gets 403, the one auth error the
classic spec documents (`{"message": "Bad credentials"}` on every endpoint; it has no 401);
`token_refused_status=401` answers 401 instead, as RFC 6750 would. Bad Basic credentials get
403, a missing or non-Basic/Bearer header 401, and a disabled account 422
`account_disabled` on every request.

Errors: every non-2xx body is the error object of §3.5, `{"object": "error", "live_mode",
"context", "type", "code", "message", "time_created"}`, with `type` `invalid_request` for
4xx and `api_error` for 5xx. Our choice of statuses: 400 for a malformed request (one error
per response, the first found), 404 for an unknown id in the path, 409 for a duplicate
location `reference_id` or deleting a location devices still use.

Objects belong to the account that created them; another account's ids answer 404.

PATCH leaves unchanged the parameters not sent (§3.3); our choice: a `postal_address` or
`properties` sent is merged key by key (null unsets a key). `merges_patched_objects=False`
takes each whole instead, replacing the one there, as the spec's wording also allows.

Lists take the classic spec's `reference_id` filter. `filters_reference_id=False` answers
every object instead, as an API version without that filter would (the busbar pages do not
say it has one).

Admin and drift endpoints (never counted, never faulted), each with a Python twin:

* `POST   /_sim/accounts {"account_id", "api_key"}`          → `add_account`
* `PUT    /_sim/accounts/{account_id}/disabled {"disabled"}`  → `set_account_disabled`
* `POST   /_sim/tokens/expire`                               → `expire_tokens`
* `POST   /_sim/clock {"advance_s"}`                          → `advance_clock`
* `PATCH  /_sim/devices/{id}/properties {...}`               → `set_device_properties`
* `DELETE /_sim/devices/{id}`                                → `remove_device`
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from reconciler.sim.faults import FaultConfig
from reconciler.sim.server import ADMIN_PREFIX, Handler, SimServer, json_response, read_json

DEFAULT_LIMIT = 30
TOKEN_MEMORY_S = 86400.0
MAX_LIMIT = 100
DEVICE_TYPES = ("EV_CHARGER", "ELECTRIC_VEHICLE", "BATTERY_SYSTEM", "PV_SYSTEM", "OTHER")

# Device properties of the busbar API (seed 004) and the JSON types each accepts.
NUMBER = (int, float)
PROPERTY_TYPES: dict[str, tuple[type, ...]] = {
    "power_rating_import_kwh": NUMBER,
    "power_rating_export_kwh": NUMBER,
    "capacity_kwh": NUMBER,
    "pv_azimuth": NUMBER,
    "pv_tilt": NUMBER,
    "pv_terrain_shading": (bool,),
    "pv_forecasts_enabled": (bool,),
    "install_date": (str,),
}
ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "state", "post_code", "country_code")
ADDRESS_REQUIRED = ("address_line1", "city", "post_code", "country_code")

# Our choice: the countries the simulator can place, with the timezone and currency a new
# location there gets (the docs only say both are derived).
COUNTRIES: dict[str, tuple[str, str]] = {
    "SE": ("Europe/Stockholm", "SEK"),
    "NO": ("Europe/Oslo", "NOK"),
    "DK": ("Europe/Copenhagen", "DKK"),
    "FI": ("Europe/Helsinki", "EUR"),
    "DE": ("Europe/Berlin", "EUR"),
    "NL": ("Europe/Amsterdam", "EUR"),
    "BE": ("Europe/Brussels", "EUR"),
    "FR": ("Europe/Paris", "EUR"),
    "ES": ("Europe/Madrid", "EUR"),
    "IT": ("Europe/Rome", "EUR"),
    "AT": ("Europe/Vienna", "EUR"),
    "IE": ("Europe/Dublin", "EUR"),
    "PT": ("Europe/Lisbon", "EUR"),
    "PL": ("Europe/Warsaw", "PLN"),
    "CH": ("Europe/Zurich", "CHF"),
    "GB": ("Europe/London", "GBP"),
}

Clock = Callable[[], float]  # POSIX seconds, like the other simulators' clocks
Result = tuple[int, Any]


class FlatpeakError(Exception):
    """A non-2xx answer; rendered as the error object by the simulator."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(what: str, object_id: str) -> FlatpeakError:
    return FlatpeakError(404, f"{what}_not_found", f"Not Found: no {what} {object_id!r}")


def invalid(code: str, message: str) -> FlatpeakError:
    return FlatpeakError(400, code, message)


def timestamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Account:
    api_key: str
    disabled: bool = False


@dataclass
class Token:
    account_id: str
    expires_at: float  # POSIX seconds by the simulator's clock


# -- request validation ---------------------------------------------------------------------


def require_object(body: Any, allowed: Iterable[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("body_invalid", "The request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid("parameter_unknown", f"Unknown parameter: {unknown[0]}")
    return body


def check_string(body: Mapping[str, Any], name: str, *, required: bool) -> None:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(f"{name}_missing", f"{name} is required")
        return
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{name}_invalid", f"{name} must be a non-empty string")


def check_properties(value: Any, *, partial: bool) -> None:
    """Known busbar properties with their JSON types; null (unset) only in a PATCH."""
    if not isinstance(value, dict):
        raise invalid("properties_invalid", "properties must be an object")
    for key, item in value.items():
        types = PROPERTY_TYPES.get(key)
        if types is None:
            raise invalid("properties_invalid", f"Unknown device property: {key}")
        if item is None and partial:
            continue
        if not isinstance(item, types) or (isinstance(item, bool) and bool not in types):
            raise invalid("properties_invalid", f"Device property {key} has the wrong type")


def check_address(value: Any, *, partial: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("postal_address_invalid", "postal_address must be an object")
    unknown = sorted(set(value) - set(ADDRESS_FIELDS))
    if unknown:
        raise invalid("parameter_unknown", f"Unknown parameter: postal_address.{unknown[0]}")
    for name in ADDRESS_FIELDS:
        item = value.get(name)
        if item is None:
            # A PATCH may unset an optional line (null) but never a required one.
            if name in ADDRESS_REQUIRED and (not partial or name in value):
                raise invalid(
                    f"{name}_missing", f"{name.replace('_', ' ').capitalize()} is required"
                )
        elif not isinstance(item, str) or not item.strip():
            raise invalid(f"{name}_invalid", f"{name} must be a non-empty string")
    country = value.get("country_code")
    if country is None:
        return dict(value)
    if country.upper() not in COUNTRIES:
        raise invalid("country_code_unsupported", f"Country {country!r} is not supported")
    return {**value, "country_code": country.upper()}


# -- the simulator --------------------------------------------------------------------------


class FlatpeakSimulator(SimServer):
    """The Flatpeak API. `accounts` maps account ids to API keys."""

    name = "flatpeak"

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        token_ttl_s: float = 3600.0,
        clock: Clock | None = None,
        live_mode: bool = False,
        token_refused_status: int = 403,
        filters_reference_id: bool = True,
        merges_patched_objects: bool = True,
        seed: int = 0,
        faults: FaultConfig | None = None,
    ) -> None:
        self.accounts: dict[str, Account] = {a: Account(key) for a, key in (accounts or {}).items()}
        self.token_ttl_s = token_ttl_s
        self.token_refused_status = token_refused_status
        self.filters_reference_id = filters_reference_id
        self.merges_patched_objects = merges_patched_objects
        self.live_mode = live_mode
        self._clock: Clock = clock or time.time
        self._clock_offset = 0.0
        self.tokens: dict[str, Token] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.locations: dict[str, dict[str, Any]] = {}
        self._seed = seed
        self._serial = 0
        super().__init__(seed=seed, faults=faults)

    def now(self) -> float:
        return self._clock() + self._clock_offset

    # -- routes -------------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/login", self._login)
        router.add_post("/auth/tokens", self._login)
        api = self._api
        router.add_post("/devices", api("device_create", self._create_device))
        router.add_get("/devices", api("device_list", self._list_devices))
        router.add_get("/devices/{id}", api("device_retrieve", self._get_device))
        router.add_patch("/devices/{id}", api("device_update", self._update_device))
        router.add_delete("/devices/{id}", api("device_delete", self._delete_device))
        router.add_post("/locations", api("location_create", self._create_location))
        router.add_get("/locations", api("location_list", self._list_locations))
        router.add_get("/locations/{id}", api("location_retrieve", self._get_location))
        router.add_patch("/locations/{id}", api("location_update", self._update_location))
        router.add_delete("/locations/{id}", api("location_delete", self._delete_location))
        admin = self._admin
        router.add_post(f"{ADMIN_PREFIX}/accounts", admin(self._admin_add_account))
        router.add_put(
            f"{ADMIN_PREFIX}/accounts/{{account_id}}/disabled", admin(self._admin_disable)
        )
        router.add_post(f"{ADMIN_PREFIX}/tokens/expire", admin(self._admin_expire))
        router.add_post(f"{ADMIN_PREFIX}/clock", admin(self._admin_clock))
        router.add_patch(f"{ADMIN_PREFIX}/devices/{{id}}/properties", admin(self._admin_properties))
        router.add_delete(f"{ADMIN_PREFIX}/devices/{{id}}", admin(self._admin_remove_device))

    def error_body(self, status: int, code: str, message: str) -> Any:
        return self._error_object(status, code, message, "api")

    def _error_object(self, status: int, code: str, message: str, context: str) -> dict[str, Any]:
        return {
            "object": "error",
            "live_mode": self.live_mode,
            "context": context,
            "type": "invalid_request" if status < 500 else "api_error",
            "code": code,
            "message": message,
            "time_created": timestamp(self.now()),
        }

    def _api(
        self, context: str, handler: Callable[[web.Request, str], Awaitable[Result]]
    ) -> Handler:
        """Authenticate the bearer token, then run `handler(request, account_id)`."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                account_id = self._bearer_account(request)
                status, body = await handler(request, account_id)
            except FlatpeakError as exc:
                return json_response(
                    self._error_object(exc.status, exc.code, exc.message, f"api.{context}"),
                    status=exc.status,
                )
            return json_response(body, status=status)

        return wrapped

    def _admin(self, handler: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return json_response(await handler(request))
            except FlatpeakError as exc:
                return json_response(
                    self._error_object(exc.status, exc.code, exc.message, "sim.admin"),
                    status=exc.status,
                )

        return wrapped

    # -- auth ---------------------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.StreamResponse:
        try:
            account_id = self._basic_account(request)
        except FlatpeakError as exc:
            return json_response(
                self._error_object(exc.status, exc.code, exc.message, "api.login"),
                status=exc.status,
            )
        self._forget_old_tokens()
        token = "fpt_" + secrets.token_urlsafe(32)
        self.tokens[token] = Token(account_id, self.now() + self.token_ttl_s)
        return json_response(
            {
                "bearer_token": token,
                "expires_in": int(self.token_ttl_s),
                "live_mode": self.live_mode,
            }
        )

    def _forget_old_tokens(self) -> None:
        # Keeps a long-running simulator small. A token is kept for a day after it expires
        # so that clients still see `token_expired` rather than `token_invalid`.
        horizon = self.now() - TOKEN_MEMORY_S
        self.tokens = {t: token for t, token in self.tokens.items() if token.expires_at > horizon}

    def _basic_account(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if not header:
            raise FlatpeakError(401, "authorization_missing", "Authorization header is required")
        if scheme.lower() != "basic":
            raise FlatpeakError(401, "authorization_invalid", "Use Basic authentication")
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise FlatpeakError(
                401, "authorization_invalid", "Malformed Basic credentials"
            ) from None
        account_id, _, api_key = decoded.partition(":")
        account = self.accounts.get(account_id)
        if account is None or not secrets.compare_digest(account.api_key, api_key):
            raise FlatpeakError(403, "bad_credentials", "Bad credentials")
        self._check_enabled(account_id)
        return account_id

    def _bearer_account(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise FlatpeakError(401, "authorization_missing", "Authorization header is required")
        if scheme.lower() != "bearer":
            raise FlatpeakError(401, "authorization_invalid", "Use a bearer token")
        found = self.tokens.get(token.strip())
        refused = self.token_refused_status
        if found is None:
            raise FlatpeakError(refused, "token_invalid", "The bearer token is not valid")
        if self.now() >= found.expires_at:
            raise FlatpeakError(refused, "token_expired", "The bearer token has expired")
        self._check_enabled(found.account_id)
        return found.account_id

    def _check_enabled(self, account_id: str) -> None:
        account = self.accounts.get(account_id)
        if account is None or account.disabled:
            raise FlatpeakError(422, "account_disabled", "The account is disabled")

    # -- devices ------------------------------------------------------------------------------

    async def _create_device(self, request: web.Request, account_id: str) -> Result:
        body = require_object(
            await read_json(request),
            (
                "reference_id",
                "type",
                "locations",
                "manufacturer",
                "model_code",
                "model_name",
                "properties",
            ),
        )
        self._check_device_fields(body, account_id, partial=False)
        device: dict[str, Any] = {
            "id": self._new_id("dev"),
            "object": "device",
            "live_mode": self.live_mode,
            "reference_id": body["reference_id"],
            "type": body["type"],
            "locations": list(body["locations"]),
            "manufacturer": body.get("manufacturer"),
            "model_code": body.get("model_code"),
            "model_name": body.get("model_name"),
            "properties": dict(body.get("properties") or {}),
            "time_created": timestamp(self.now()),
            "account_id": account_id,
            "last_seen": None,
        }
        self.devices[device["id"]] = device
        return 201, device

    async def _list_devices(self, request: web.Request, account_id: str) -> Result:
        return 200, self._list(request, "/devices", self._owned(self.devices, account_id))

    async def _get_device(self, request: web.Request, account_id: str) -> Result:
        return 200, self._owned_one(self.devices, "device", request.match_info["id"], account_id)

    async def _update_device(self, request: web.Request, account_id: str) -> Result:
        device = self._owned_one(self.devices, "device", request.match_info["id"], account_id)
        body = require_object(
            await read_json(request),
            (
                "reference_id",
                "type",
                "locations",
                "manufacturer",
                "model_code",
                "model_name",
                "properties",
            ),
        )
        self._check_device_fields(body, account_id, partial=True)
        # Parameters not sent stay as they are; properties merge key by key, null unsets.
        for key in ("reference_id", "type", "manufacturer", "model_code", "model_name"):
            if key in body:
                device[key] = body[key]
        if "locations" in body:
            device["locations"] = list(body["locations"])
        if "properties" in body:
            if not self.merges_patched_objects:
                device["properties"] = {}
            merge_properties(device["properties"], body["properties"] or {})
        return 200, device

    async def _delete_device(self, request: web.Request, account_id: str) -> Result:
        device = self._owned_one(self.devices, "device", request.match_info["id"], account_id)
        # Our choice: the 202 of the docs suggests an asynchronous delete; the simulator
        # deletes at once so tests need not poll.
        del self.devices[device["id"]]
        return 202, {"message": "Accepted"}

    def _check_device_fields(
        self, body: Mapping[str, Any], account_id: str, *, partial: bool
    ) -> None:
        for name in ("reference_id", "type", "locations"):
            if partial and name in body and body[name] is None:
                raise invalid(f"{name}_invalid", f"{name} cannot be null")
        check_string(body, "reference_id", required=not partial)
        if body.get("type") is None and not partial:
            raise invalid("type_missing", "type is required")
        if body.get("type") is not None and body["type"] not in DEVICE_TYPES:
            raise invalid("type_invalid", "type must be one of " + ", ".join(DEVICE_TYPES))
        for name in ("manufacturer", "model_code", "model_name"):
            check_string(body, name, required=False)
        if "properties" in body and body["properties"] is not None:
            check_properties(body["properties"], partial=partial)
        locations = body.get("locations")
        if locations is None:
            if not partial:
                raise invalid("locations_missing", "locations is required")
            return
        if (
            not isinstance(locations, list)
            or not locations
            or not all(isinstance(item, str) for item in locations)
        ):
            raise invalid("locations_invalid", "locations must be a non-empty list of ids")
        for location_id in locations:
            location = self.locations.get(location_id)
            if location is None or location["account_id"] != account_id:
                raise invalid("location_not_found", f"No such location: {location_id}")

    # -- locations ----------------------------------------------------------------------------

    async def _create_location(self, request: web.Request, account_id: str) -> Result:
        body = require_object(
            await read_json(request), ("reference_id", "customer_id", "postal_address")
        )
        check_string(body, "reference_id", required=False)
        check_string(body, "customer_id", required=False)
        if body.get("postal_address") is None:
            raise invalid("postal_address_missing", "postal_address is required")
        address = check_address(body["postal_address"], partial=False)
        self._check_reference_free(account_id, body.get("reference_id"), None)
        location: dict[str, Any] = {
            "id": self._new_id("loc"),
            "object": "location",
            "live_mode": self.live_mode,
            "reference_id": body.get("reference_id"),
            "customer_id": body.get("customer_id"),
            "timezone": None,
            "currency_code": None,
            "postal_address": {name: address.get(name) for name in ADDRESS_FIELDS},
            "geo_location": None,
            "time_created": timestamp(self.now()),
            "account_id": account_id,
        }
        derive_region(location)
        self.locations[location["id"]] = location
        return 201, location

    async def _list_locations(self, request: web.Request, account_id: str) -> Result:
        return 200, self._list(request, "/locations", self._owned(self.locations, account_id))

    async def _get_location(self, request: web.Request, account_id: str) -> Result:
        location_id = request.match_info["id"]
        return 200, self._owned_one(self.locations, "location", location_id, account_id)

    async def _update_location(self, request: web.Request, account_id: str) -> Result:
        location = self._owned_one(self.locations, "location", request.match_info["id"], account_id)
        body = require_object(
            await read_json(request), ("reference_id", "customer_id", "postal_address")
        )
        check_string(body, "reference_id", required=False)
        check_string(body, "customer_id", required=False)
        if body.get("reference_id") is not None:
            self._check_reference_free(account_id, body["reference_id"], location["id"])
        if body.get("postal_address") is not None:
            merge = self.merges_patched_objects
            address = check_address(body["postal_address"], partial=merge)
            if merge:
                location["postal_address"] |= address
            else:
                location["postal_address"] = {name: address.get(name) for name in ADDRESS_FIELDS}
            derive_region(location)
        for key in ("reference_id", "customer_id"):
            if key in body:
                location[key] = body[key]
        return 200, location

    async def _delete_location(self, request: web.Request, account_id: str) -> Result:
        location = self._owned_one(self.locations, "location", request.match_info["id"], account_id)
        users = [d["id"] for d in self.devices.values() if location["id"] in d["locations"]]
        if users:
            raise FlatpeakError(
                409,
                "location_in_use",
                f"Conflict: devices still use this location: {', '.join(users)}",
            )
        del self.locations[location["id"]]
        return 202, {"message": "Accepted"}

    def _check_reference_free(
        self, account_id: str, reference_id: str | None, own_id: str | None
    ) -> None:
        if reference_id is None:
            return
        for location in self._owned(self.locations, account_id):
            if location["reference_id"] == reference_id and location["id"] != own_id:
                raise FlatpeakError(
                    409,
                    "reference_id_conflict",
                    f"Conflict: location {location['id']} already has "
                    f"reference_id {reference_id!r}",
                )

    # -- lists --------------------------------------------------------------------------------

    def _list(self, request: web.Request, url: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Stripe-like pagination, newest first (§3.5): `starting_after` pages towards older
        objects, `ending_before` towards newer ones; `has_more` says whether more lie in
        that direction."""
        query = request.query
        unknown = sorted(set(query) - {"reference_id", "limit", "starting_after", "ending_before"})
        if unknown:
            raise invalid("parameter_unknown", f"Unknown parameter: {unknown[0]}")
        limit = parse_limit(query.get("limit"))
        newest_first = list(reversed(items))
        position = {item["id"]: index for index, item in enumerate(newest_first)}
        wanted = query.get("reference_id") if self.filters_reference_id else None
        selected = [
            item for item in newest_first if wanted is None or item["reference_id"] == wanted
        ]
        after, before = query.get("starting_after"), query.get("ending_before")
        if after is not None and before is not None:
            raise invalid("pagination_invalid", "Use starting_after or ending_before, not both")
        if after is not None:
            cursor = cursor_position(position, "starting_after", after)
            tail = [item for item in selected if position[item["id"]] > cursor]
            page, has_more = tail[:limit], len(tail) > limit
        elif before is not None:
            cursor = cursor_position(position, "ending_before", before)
            head = [item for item in selected if position[item["id"]] < cursor]
            page, has_more = head[-limit:], len(head) > limit
        else:
            page, has_more = selected[:limit], len(selected) > limit
        return {"object": "list", "url": url, "has_more": has_more, "data": page}

    @staticmethod
    def _owned(objects: Mapping[str, dict[str, Any]], account_id: str) -> list[dict[str, Any]]:
        return [item for item in objects.values() if item["account_id"] == account_id]

    @staticmethod
    def _owned_one(
        objects: Mapping[str, dict[str, Any]], what: str, object_id: str, account_id: str
    ) -> dict[str, Any]:
        found = objects.get(object_id)
        if found is None or found["account_id"] != account_id:
            raise not_found(what, object_id)
        return found

    def _new_id(self, prefix: str) -> str:
        # Deterministic for a seed; the counter is persisted so that a restored simulator
        # never hands out an id twice.
        self._serial += 1
        digest = hashlib.sha256(f"flatpeak:{self._seed}:{self._serial}".encode()).hexdigest()
        return f"{prefix}_{digest[:24]}"

    # -- Python API: seeding and drift ----------------------------------------------------------

    def add_account(self, account_id: str, api_key: str) -> None:
        self.accounts[account_id] = Account(api_key)

    def set_account_disabled(self, account_id: str, disabled: bool = True) -> None:
        self.accounts.setdefault(account_id, Account(secrets.token_hex(16))).disabled = disabled

    def expire_tokens(self) -> int:
        """Make every issued token expired; returns how many there were."""
        expired = self.now()
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, expired)
        return len(self.tokens)

    def advance_clock(self, seconds: float) -> None:
        self._clock_offset += seconds

    def set_device_properties(
        self, device_id: str, properties: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Drift: someone edits a device's properties behind the reconciler's back. Merges
        (null unsets) unless `replace`. Not validated, so drift can be anything."""
        device = self.devices.get(device_id)
        if device is None:
            raise not_found("device", device_id)
        if replace:
            device["properties"] = {}
        merge_properties(device["properties"], properties)
        return device

    def remove_device(self, device_id: str) -> bool:
        """Drift: a device disappears. Returns whether it existed."""
        return self.devices.pop(device_id, None) is not None

    # -- admin endpoints ------------------------------------------------------------------------

    async def _admin_add_account(self, request: web.Request) -> Any:
        body = require_object(await read_json(request), ("account_id", "api_key"))
        check_string(body, "account_id", required=True)
        check_string(body, "api_key", required=True)
        self.add_account(body["account_id"], body["api_key"])
        return {"account_id": body["account_id"]}

    async def _admin_disable(self, request: web.Request) -> Any:
        body = require_object(await read_json(request), ("disabled",))
        disabled = body.get("disabled", True)
        if not isinstance(disabled, bool):
            raise invalid("disabled_invalid", "disabled must be true or false")
        self.set_account_disabled(request.match_info["account_id"], disabled)
        return {"account_id": request.match_info["account_id"], "disabled": disabled}

    async def _admin_expire(self, request: web.Request) -> Any:
        return {"expired": self.expire_tokens()}

    async def _admin_clock(self, request: web.Request) -> Any:
        body = require_object(await read_json(request), ("advance_s",))
        seconds = body.get("advance_s")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise invalid("advance_s_invalid", "advance_s must be a number")
        self.advance_clock(float(seconds))
        return {"now": timestamp(self.now())}

    async def _admin_properties(self, request: web.Request) -> Any:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise invalid("body_invalid", "The request body must be a JSON object")
        return self.set_device_properties(
            request.match_info["id"], body, replace=request.query.get("replace") == "true"
        )

    async def _admin_remove_device(self, request: web.Request) -> Any:
        if not self.remove_device(request.match_info["id"]):
            raise not_found("device", request.match_info["id"])
        return {"removed": request.match_info["id"]}

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "serial": self._serial,
            "accounts": {a: asdict(account) for a, account in self.accounts.items()},
            "tokens": {t: asdict(token) for t, token in self.tokens.items()},
            "devices": copy.deepcopy(list(self.devices.values())),
            "locations": copy.deepcopy(list(self.locations.values())),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._serial = int(state.get("serial", 0))
        self.accounts = {a: Account(**data) for a, data in state.get("accounts", {}).items()}
        self.tokens = {t: Token(**data) for t, data in state.get("tokens", {}).items()}
        self.devices = {d["id"]: copy.deepcopy(d) for d in state.get("devices", [])}
        self.locations = {loc["id"]: copy.deepcopy(loc) for loc in state.get("locations", [])}

    def public_state(self) -> dict[str, Any]:
        # API keys and bearer tokens are secrets: /_sim/state shows neither.
        return {
            "accounts": {a: {"disabled": account.disabled} for a, account in self.accounts.items()},
            "tokens": len(self.tokens),
            "devices": list(self.devices.values()),
            "locations": list(self.locations.values()),
        }


def merge_properties(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def derive_region(location: dict[str, Any]) -> None:
    """Set timezone and currency from the address's country."""
    country = (location["postal_address"].get("country_code") or "").upper()
    location["timezone"], location["currency_code"] = COUNTRIES.get(country, (None, None))


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit_invalid", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


def cursor_position(position: Mapping[str, int], name: str, object_id: str) -> int:
    if object_id not in position:
        raise invalid(f"{name}_invalid", f"No such object for {name}: {object_id}")
    return position[object_id]
