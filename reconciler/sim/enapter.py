"""`EnapterSimulator`: Enapter Cloud HTTP API v3 on loopback, as the official Python SDK
calls it (base URL + `v3/...`). It owns sites, devices of every provisioning kind, the
upstream/downstream graph between them, device communication configs, and drift helpers.

The contract is platform-apis.md §2 plus the seed documents 002 (provisioning) and 003
(device management); where those are silent the choices below are ours, and each is
marked "Our choice".

Device graph (who runs on whom; `communication.upstream_id`):

* a site has at most one GATEWAY device (`provisioning/gateway`);
* HARDWARE_UCM, VIRTUAL_UCM, LINK_MASTER_UCM and EMBEDDED_UCM devices of a site that has a
  gateway run on that gateway. Our choice: this is derived, not stored, so a gateway
  provisioned after a UCM also becomes the UCM's upstream;
* LINK_SLAVE_UCM runs on its LINK master, LUA on its runtime (a hardware or virtual UCM);
* `provisioning/embedded` creates two devices. Our choice, to reconcile seed 002 ("adds an
  Enapter Electrolyser") with seed 003 (NATIVE devices talk "via embedded UCM"): the
  returned `device_id`/`slug`/config belong to the EMBEDDED_UCM (type EMBEDDED_UCM,
  communication MQTT_V1_*, name and slug from the request); behind it the simulator adds
  the NATIVE electrolyser/dryer/water tank (same name, slug `<slug>-<device type>`,
  communication UCM_EMBEDDED, upstream = the embedded UCM). The pair is one box: deleting
  the EMBEDDED_UCM deletes its NATIVE device, and deleting the NATIVE device alone is refused.

A device cannot be deleted while others run on it (`DEVICE_HAS_DOWNSTREAM_DEVICES`), nor a
site while it has devices (`SITE_HAS_DEVICES`).

Configs (private keys, MQTT passwords) are generated per request and never stored: neither
`snapshot` nor `/_sim/state` can leak them.

Admin and drift endpoints (never counted, never faulted), each with a Python twin:

* `POST   /_sim/tokens {"token"}`                      → `add_token`
* `PATCH  /_sim/devices/{id} {"name"?, "slug"?}`       → `rename_device`
* `DELETE /_sim/devices/{id}`                          → `remove_device` (with its subtree)
* `PUT    /_sim/devices/{id}/connectivity {"status"}`  → `set_connectivity`
* `PATCH  /_sim/sites/{id} {"name"?, "timezone"?}`     → `rename_site`
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.sim.faults import FaultConfig
from reconciler.sim.server import ADMIN_PREFIX, Handler, SimServer, json_response, read_json

AUTH_HEADER = "X-Enapter-Auth-Token"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MQTT_HOST = "mqtt.enapter.com"

# Device types (platform-apis.md §2.1 DeviceType).
LUA = "LUA"
VIRTUAL_UCM = "VIRTUAL_UCM"
HARDWARE_UCM = "HARDWARE_UCM"
STANDALONE = "STANDALONE"
GATEWAY = "GATEWAY"
LINK_MASTER_UCM = "LINK_MASTER_UCM"
LINK_SLAVE_UCM = "LINK_SLAVE_UCM"
EMBEDDED_UCM = "EMBEDDED_UCM"
NATIVE = "NATIVE"

# Communication types (§2.1).
MQTT_V1_TLS = "MQTT_V1_TLS"
MQTT_V1_PLAINTEXT = "MQTT_V1_PLAINTEXT"
UCM_LUA = "UCM_LUA"
UCM_EMBEDDED = "UCM_EMBEDDED"
LINK = "LINK"

# Types whose upstream is the site's gateway, when the site has one.
GATEWAY_ATTACHED = frozenset({HARDWARE_UCM, VIRTUAL_UCM, LINK_MASTER_UCM, EMBEDDED_UCM})
# Types that own their hardware id: the key of reprovisioning. NATIVE and LUA borrow one.
HARDWARE_OWNERS = frozenset(
    {HARDWARE_UCM, VIRTUAL_UCM, LINK_MASTER_UCM, LINK_SLAVE_UCM, EMBEDDED_UCM, GATEWAY}
)
NO_CONFIG = frozenset({UCM_LUA, UCM_EMBEDDED})  # seed 003: generate_config refuses these
EMBEDDED_TYPES = ("ELECTROLYSER", "DRYER", "WATER_TANK")
PROTOCOLS = ("MQTT", "MQTTS")
CONNECTIVITY = ("ONLINE", "OFFLINE", "UNKNOWN")
EXPANDS = frozenset(
    {"manifest", "properties", "connectivity", "communication", "raised_alert_names", "site"}
)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
HARDWARE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")

Clock = Callable[[], float]  # POSIX seconds, like the other simulators' clocks
Check = Callable[[Any], str | None]  # returns why a value is invalid, or None


# -- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """A non-2xx answer: `status` and the entries of the `{"errors": [...]}` envelope."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"])
        self.status = status
        self.errors = errors

    @classmethod
    def one(cls, status: int, code: str, message: str, **details: Any) -> ApiError:
        return cls(status, [error_entry(code, message, details)])


def error_entry(
    code: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "details": dict(details or {})}


def device_not_found(device_id: str) -> ApiError:
    return ApiError.one(404, "DEVICE_NOT_FOUND", "Device not found", device_id=device_id)


def site_not_found(site_id: str) -> ApiError:
    return ApiError.one(404, "SITE_NOT_FOUND", "Site not found", site_id=site_id)


# -- request validation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = True


def parse_body(body: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """Validate a JSON body against `fields`; every problem is reported at once (422).

    Null counts as absent, because the SDK sends null for arguments it was not given."""
    if not isinstance(body, dict):
        raise ApiError.one(400, "INVALID_REQUEST_BODY", "The request body must be a JSON object.")
    errors = [
        error_entry("UNKNOWN_FIELD", f"Unknown field {name!r}.", {"field": name})
        for name in body
        if name not in fields
    ]
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        value = body.get(name)
        if value is None:
            if spec.required:
                errors.append(
                    error_entry("MISSING_FIELD", f"Field {name!r} is required.", {"field": name})
                )
            continue
        reason = spec.check(value)
        if reason is not None:
            errors.append(
                error_entry(
                    "INVALID_FIELD", f"Field {name!r} {reason}.", {"field": name, "reason": reason}
                )
            )
        else:
            values[name] = value
    if errors:
        raise ApiError(422, errors)
    return values


def check_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    return None if len(value) <= 256 else "must be at most 256 characters"


def check_pattern(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, str) and pattern.fullmatch(value) is not None
        return None if ok else f"must be {what}"

    return check


def check_enum(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else "must be one of " + ", ".join(allowed)

    return check


def check_timezone(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be an IANA timezone name"
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "must be an IANA timezone name"
    return None


def _coordinate(value: Any, limit: float) -> float | None:
    """A latitude/longitude as a float; the seed documents them as strings, examples as numbers."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if -limit <= number <= limit else None


def check_location(*, name_required: bool) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be an object"
        if set(value) - {"name", "latitude", "longitude"}:
            return "may only hold name, latitude and longitude"
        if name_required and check_text(value.get("name")) is not None:
            return "must have a non-empty name"
        for key, limit in (("latitude", 90.0), ("longitude", 180.0)):
            if value.get(key) is not None and _coordinate(value[key], limit) is None:
                return f"has an invalid {key}"
        return None

    return check


def normalize_location(value: Mapping[str, Any], default_name: str) -> dict[str, Any]:
    def coordinate(key: str, limit: float) -> float | None:
        return None if value.get(key) is None else _coordinate(value[key], limit)

    return {
        "name": value.get("name") or default_name,
        "latitude": coordinate("latitude", 90.0),
        "longitude": coordinate("longitude", 180.0),
    }


TEXT = Field(check_text)
OPTIONAL_TEXT = Field(check_text, required=False)
SLUG = Field(
    check_pattern(SLUG_RE, "lowercase letters, digits, '-' or '_' (at most 64)"), required=False
)
HARDWARE_ID = Field(check_pattern(HARDWARE_ID_RE, "1-64 letters, digits, '-' or '_'"))
PROTOCOL = Field(check_enum(*PROTOCOLS))

PROVISIONING_FIELDS: dict[str, dict[str, Field]] = {
    "ucm": {"site_id": TEXT, "hardware_id": HARDWARE_ID, "name": TEXT, "protocol": PROTOCOL},
    "vucm": {"site_id": TEXT, "hardware_id": HARDWARE_ID, "name": TEXT},
    "embedded": {
        "device_type": Field(check_enum(*EMBEDDED_TYPES)),
        "site_id": TEXT,
        "hardware_id": HARDWARE_ID,
        "name": TEXT,
        "protocol": PROTOCOL,
    },
    "link_master": {"site_id": TEXT, "hardware_id": HARDWARE_ID, "name": TEXT},
    "link_slave": {
        "site_id": TEXT,
        "hardware_id": HARDWARE_ID,
        "name": TEXT,
        "master_device_id": TEXT,
    },
    "standalone": {"site_id": TEXT, "name": TEXT, "slug": SLUG},
    "lua_device": {"runtime_id": TEXT, "blueprint_id": TEXT, "name": TEXT, "slug": SLUG},
    "gateway": {
        "site_id": TEXT,
        "hardware_id": HARDWARE_ID,
        "gateway_version": Field(check_pattern(VERSION_RE, "a version like 3.0.0")),
        "site_name": TEXT,
        "site_timezone": Field(check_timezone),
        "site_location": Field(check_location(name_required=False), required=False),
    },
}


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "device"


def gateway_major(version: str) -> int | None:
    match = VERSION_RE.fullmatch(version)
    return int(match.group(1)) if match else None


# -- state ----------------------------------------------------------------------------------


@dataclass
class Site:
    id: str
    name: str
    timezone: str
    location: dict[str, Any] | None = None

    def dto(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "timezone": self.timezone,
            "version": "V3",
            "authorized_role": "OWNER",
        }
        if self.location is not None:
            body["location"] = dict(self.location)
        return body


@dataclass
class Device:
    id: str
    site_id: str
    type: str
    name: str
    slug: str
    blueprint_id: str
    updated_at: str
    communication_type: str
    hardware_id: str | None = None
    channel_id: str | None = None
    # A fixed upstream: a Lua device's runtime, a LINK slave's master, a NATIVE device's
    # embedded UCM. Gateway-attached types derive theirs from the site instead.
    parent_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    connectivity: str = "ONLINE"


# -- certificates ---------------------------------------------------------------------------


class CertificateAuthority:
    """Issues MQTTS client certificates. Made lazily, and never persisted: nothing checks
    old certificates against it, and the state file then holds no private key."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Enapter simulator"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Enapter simulator CA"),
            ]
        )
        self._name = name
        now = from_posix(clock())
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str) -> tuple[str, str]:
        """A fresh EC key and a certificate for CN=`common_name`, both PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = from_posix(self._clock())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


def from_posix(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def rfc3339(seconds: float) -> str:
    """`2025-08-04T07:22:07.988115Z`, the v3 docs' example format."""
    return from_posix(seconds).isoformat(timespec="microseconds").replace("+00:00", "Z")


# -- the simulator --------------------------------------------------------------------------


class EnapterSimulator(SimServer):
    """Enapter Cloud API v3. `tokens` are the accepted `X-Enapter-Auth-Token` values;
    `page_size` is the page length when a list request sends no `limit` (the SDK sends 50)."""

    name = "enapter"

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (),
        page_size: int = DEFAULT_PAGE_SIZE,
        max_page_size: int = MAX_PAGE_SIZE,
        clock: Clock | None = None,
        mqtt_host: str = MQTT_HOST,
        seed: int = 0,
        faults: FaultConfig | None = None,
    ) -> None:
        self.tokens: set[str] = set(tokens)
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.mqtt_host = mqtt_host
        self.clock: Clock = clock or time.time
        self.sites: dict[str, Site] = {}
        self.devices: dict[str, Device] = {}
        self._seed = seed
        self._serial = 0
        self._ca: CertificateAuthority | None = None
        super().__init__(seed=seed, faults=faults)

    # -- routes -------------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        api = self._api
        router.add_post("/v3/sites", api(self._create_site))
        router.add_get("/v3/sites", api(self._list_sites))
        router.add_get("/v3/sites/{site_id}", api(self._get_site))
        router.add_patch("/v3/sites/{site_id}", api(self._update_site))
        router.add_delete("/v3/sites/{site_id}", api(self._delete_site))
        router.add_get("/v3/sites/{site_id}/devices", api(self._list_site_devices))
        router.add_get("/v3/devices", api(self._list_devices))
        router.add_get("/v3/devices/{device_id}", api(self._get_device))
        router.add_patch("/v3/devices/{device_id}", api(self._update_device))
        router.add_delete("/v3/devices/{device_id}", api(self._delete_device))
        router.add_post("/v3/devices/{device_id}/generate_config", api(self._generate_config))
        router.add_post("/v3/devices/{device_id}/assign_blueprint", api(self._assign_blueprint))
        router.add_post("/v3/provisioning/{kind}", api(self._provision))
        admin = self._admin
        router.add_post(f"{ADMIN_PREFIX}/tokens", admin(self._admin_add_token))
        router.add_patch(f"{ADMIN_PREFIX}/devices/{{device_id}}", admin(self._admin_rename))
        router.add_delete(f"{ADMIN_PREFIX}/devices/{{device_id}}", admin(self._admin_delete))
        router.add_put(
            f"{ADMIN_PREFIX}/devices/{{device_id}}/connectivity", admin(self._admin_connectivity)
        )
        router.add_patch(f"{ADMIN_PREFIX}/sites/{{site_id}}", admin(self._admin_rename_site))

    def error_body(self, status: int, code: str, message: str) -> Any:
        # The base class speaks snake_case codes (not_found, rate_limited); the SDK's own
        # examples use DEVICE_NOT_FOUND style.
        return {"errors": [error_entry(code.upper(), message)]}

    def _api(
        self, handler: Callable[[web.Request], Awaitable[Any]], *, authenticate: bool = True
    ) -> Handler:
        """Wrap a handler that returns a JSON body (None: 204) or raises ApiError."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                if authenticate:
                    self._authenticate(request)
                body = await handler(request)
            except ApiError as exc:
                return json_response({"errors": exc.errors}, status=exc.status)
            return web.Response(status=204) if body is None else json_response(body)

        return wrapped

    def _admin(self, handler: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        # The admin API belongs to the test harness: no token needed.
        return self._api(handler, authenticate=False)

    def _authenticate(self, request: web.Request) -> None:
        # Statuses and the invalid-token body follow the v3 docs intro (§2.1): 401 when the
        # header is missing, 403 when the token is invalid.
        token = request.headers.get(AUTH_HEADER)
        if not token:
            raise ApiError.one(
                401, "missing_header", "Authentication token is missing.", header=AUTH_HEADER
            )
        if token not in self.tokens:
            raise ApiError.one(
                403, "invalid_header", "Authentication token is invalid.", header=AUTH_HEADER
            )

    # -- sites --------------------------------------------------------------------------------

    async def _create_site(self, request: web.Request) -> Any:
        values = parse_body(
            await read_json(request),
            {
                "name": TEXT,
                "timezone": Field(check_timezone),
                "location": Field(check_location(name_required=True), required=False),
            },
        )
        site = self.add_site(values["name"], values["timezone"], values.get("location"))
        return {"site": site.dto()}

    async def _list_sites(self, request: web.Request) -> Any:
        return self._page(request, "sites", [site.dto() for site in self.sites.values()])

    async def _get_site(self, request: web.Request) -> Any:
        return {"site": self._find_site(request.match_info["site_id"]).dto()}

    async def _update_site(self, request: web.Request) -> Any:
        site = self._find_site(request.match_info["site_id"])
        values = parse_body(
            await read_json(request),
            {
                "name": OPTIONAL_TEXT,
                "timezone": Field(check_timezone, required=False),
                "location": Field(check_location(name_required=True), required=False),
            },
        )
        site.name = values.get("name", site.name)
        site.timezone = values.get("timezone", site.timezone)
        if "location" in values:
            site.location = normalize_location(values["location"], site.name)
        return {"site": site.dto()}

    async def _delete_site(self, request: web.Request) -> Any:
        site = self._find_site(request.match_info["site_id"])
        remaining = [d.id for d in self.devices.values() if d.site_id == site.id]
        if remaining:
            raise ApiError.one(
                422,
                "SITE_HAS_DEVICES",
                "The site still has devices; delete them first.",
                site_id=site.id,
                device_ids=remaining,
            )
        del self.sites[site.id]
        return None

    # -- devices ------------------------------------------------------------------------------

    async def _list_site_devices(self, request: web.Request) -> Any:
        site = self._find_site(request.match_info["site_id"])
        expand = self._expand(request)
        items = [self.device_dto(d, expand) for d in self.devices.values() if d.site_id == site.id]
        return self._page(request, "devices", items)

    async def _list_devices(self, request: web.Request) -> Any:
        expand = self._expand(request)
        return self._page(
            request, "devices", [self.device_dto(d, expand) for d in self.devices.values()]
        )

    async def _get_device(self, request: web.Request) -> Any:
        device = self._find_device(request.match_info["device_id"])
        return {"device": self.device_dto(device, self._expand(request))}

    async def _update_device(self, request: web.Request) -> Any:
        device = self._find_device(request.match_info["device_id"])
        # Seed 003 marks both required, but its own example sends only `name` and the SDK
        # sends null for the one it leaves alone: accept either, not neither.
        values = parse_body(await read_json(request), {"name": OPTIONAL_TEXT, "slug": SLUG})
        if not values:
            raise ApiError.one(
                422, "MISSING_FIELD", "Send at least one of name or slug.", fields=["name", "slug"]
            )
        if "slug" in values:
            self._claim_slug(device.site_id, values["slug"], device.id)
        self._rename(device, values.get("name"), values.get("slug"))
        return {"device": self.device_dto(device)}

    async def _delete_device(self, request: web.Request) -> Any:
        device = self._find_device(request.match_info["device_id"])
        if device.type == NATIVE and device.parent_id in self.devices:
            raise ApiError.one(
                422,
                "EMBEDDED_DEVICE_NOT_DELETABLE",
                "This device is part of an embedded UCM; delete the embedded UCM instead.",
                device_id=device.id,
                upstream_id=device.parent_id,
            )
        downstream = self.downstream_ids(device.id)
        if downstream:
            raise ApiError.one(
                422,
                "DEVICE_HAS_DOWNSTREAM_DEVICES",
                "Devices still run on this device; delete them first.",
                device_id=device.id,
                downstream_device_ids=downstream,
            )
        self._drop(device.id)
        return None

    async def _generate_config(self, request: web.Request) -> Any:
        device = self._find_device(request.match_info["device_id"])
        values = parse_body(await read_json(request), {"protocol": PROTOCOL})
        if device.communication_type in NO_CONFIG:
            raise ApiError.one(
                422,
                "CONFIG_GENERATION_NOT_SUPPORTED",
                f"Cannot generate a configuration for communication type "
                f"{device.communication_type}.",
                device_id=device.id,
                communication_type=device.communication_type,
            )
        self._set_protocol(device, values["protocol"])
        return {"config": self._config(device, values["protocol"])}

    async def _assign_blueprint(self, request: web.Request) -> Any:
        device = self._find_device(request.match_info["device_id"])
        values = parse_body(await read_json(request), {"blueprint_id": TEXT})
        device.blueprint_id = values["blueprint_id"]
        self._touch(device)
        return {"device": self.device_dto(device)}

    # -- provisioning -------------------------------------------------------------------------

    async def _provision(self, request: web.Request) -> Any:
        kind = request.match_info["kind"]
        provisioner = {
            "ucm": self._provision_ucm,
            "vucm": self._provision_vucm,
            "embedded": self._provision_embedded,
            "link_master": self._provision_link_master,
            "link_slave": self._provision_link_slave,
            "standalone": self._provision_standalone,
            "lua_device": self._provision_lua,
            "gateway": self._provision_gateway,
        }.get(kind)
        if provisioner is None:
            raise ApiError.one(404, "NOT_FOUND", f"Unknown provisioning kind {kind!r}.", kind=kind)
        return provisioner(parse_body(await read_json(request), PROVISIONING_FIELDS[kind]))

    def _provision_ucm(self, values: dict[str, Any]) -> dict[str, Any]:
        device = self._provision_hardware(
            values, HARDWARE_UCM, channel_id="ucm", protocol=values["protocol"]
        )
        return {
            "config": self._config(device, values["protocol"]),
            "device_id": device.id,
            "slug": device.slug,
        }

    def _provision_vucm(self, values: dict[str, Any]) -> dict[str, Any]:
        self._require_gateway_3(values["site_id"], "virtual UCM")
        device = self._provision_hardware(values, VIRTUAL_UCM, channel_id="ucm")
        return {"device_id": device.id}

    def _provision_embedded(self, values: dict[str, Any]) -> dict[str, Any]:
        device_type = values["device_type"]
        device = self._provision_hardware(
            values,
            EMBEDDED_UCM,
            channel_id="ucm",
            protocol=values["protocol"],
            properties={"device_type": device_type},
        )
        if not any(d.parent_id == device.id and d.type == NATIVE for d in self.devices.values()):
            slug = self._free_slug(
                device.site_id, f"{device.slug}-{device_type.lower().replace('_', '-')}"
            )
            self._add_device(
                device.site_id,
                NATIVE,
                values["name"],
                slug,
                UCM_EMBEDDED,
                hardware_id=device.hardware_id,
                channel_id=device_type.lower(),
                parent_id=device.id,
                properties={"device_type": device_type},
            )
        return {
            "config": self._config(device, values["protocol"]),
            "device_id": device.id,
            "slug": device.slug,
        }

    def _provision_link_master(self, values: dict[str, Any]) -> dict[str, Any]:
        self._require_gateway_3(values["site_id"], "LINK device")
        device = self._provision_hardware(values, LINK_MASTER_UCM, channel_id="ucm")
        return {"device_id": device.id}

    def _provision_link_slave(self, values: dict[str, Any]) -> dict[str, Any]:
        self._require_gateway_3(values["site_id"], "LINK device")
        master = self.devices.get(values["master_device_id"])
        if master is None:
            raise device_not_found(values["master_device_id"])
        if master.type != LINK_MASTER_UCM or master.site_id != values["site_id"]:
            raise ApiError.one(
                422,
                "INVALID_MASTER_DEVICE",
                "master_device_id must be a LINK master on the same site.",
                master_device_id=master.id,
                type=master.type,
                site_id=master.site_id,
            )
        device = self._provision_hardware(
            values, LINK_SLAVE_UCM, channel_id="ucm", communication=LINK, parent_id=master.id
        )
        return {"device_id": device.id}

    def _provision_standalone(self, values: dict[str, Any]) -> dict[str, Any]:
        site = self._find_site(values["site_id"])
        # Our choice: a standalone device has no hardware id, so its identity for
        # reprovisioning is (site, slug), the slug defaulting to one made from the name.
        slug = values.get("slug") or slugify(values["name"])
        existing = self._by_slug(site.id, slug)
        if existing is not None and existing.type == STANDALONE:
            self._check_same(existing, {"name": values["name"]})
            return {"device_id": existing.id, "slug": existing.slug}
        self._claim_slug(site.id, slug, None)
        device_id = self._new_id()
        device = self._add_device(
            site.id,
            STANDALONE,
            values["name"],
            slug,
            MQTT_V1_TLS,
            device_id=device_id,
            channel_id="primary",
            hardware_id=self._synthetic_hardware_id(device_id),
        )
        return {"device_id": device.id, "slug": device.slug}

    def _provision_lua(self, values: dict[str, Any]) -> dict[str, Any]:
        runtime = self.devices.get(values["runtime_id"])
        if runtime is None:
            raise device_not_found(values["runtime_id"])
        if runtime.type not in (HARDWARE_UCM, VIRTUAL_UCM):
            raise ApiError.one(
                422,
                "INVALID_RUNTIME",
                "runtime_id must be a hardware or virtual UCM.",
                runtime_id=runtime.id,
                type=runtime.type,
            )
        slug = values.get("slug") or slugify(values["name"])
        existing = self._by_slug(runtime.site_id, slug)
        if existing is not None and existing.type == LUA and existing.parent_id == runtime.id:
            raise ApiError.one(
                422,
                "REPROVISIONING_NOT_SUPPORTED",
                "A Lua device cannot be reprovisioned.",
                device_id=existing.id,
                runtime_id=runtime.id,
                slug=slug,
            )
        self._claim_slug(runtime.site_id, slug, None)
        device = self._add_device(
            runtime.site_id,
            LUA,
            values["name"],
            slug,
            UCM_LUA,
            blueprint_id=values["blueprint_id"],
            hardware_id=runtime.hardware_id,
            channel_id=slug,
            parent_id=runtime.id,
        )
        return {"device_id": device.id, "slug": device.slug}

    def _provision_gateway(self, values: dict[str, Any]) -> dict[str, Any]:
        site = self._find_site(values["site_id"])
        current = self.gateway_of(site.id)
        if current is not None and current.hardware_id != values["hardware_id"]:
            raise ApiError.one(
                409,
                "SITE_ALREADY_HAS_GATEWAY",
                "The site already has a gateway.",
                site_id=site.id,
                gateway_device_id=current.id,
            )
        version = values["gateway_version"]
        device = self._provision_hardware(
            {"site_id": site.id, "hardware_id": values["hardware_id"], "name": None},
            GATEWAY,
            channel_id="gw",
            protocol="MQTTS",
            name="Enapter Gateway",
        )
        # Our choice: a gateway reprovisioned with a new firmware version records it, and
        # the site takes the name, timezone and location the gateway was provisioned with.
        device.properties["gateway_version"] = version
        site.name, site.timezone = values["site_name"], values["site_timezone"]
        if values.get("site_location") is not None:
            site.location = normalize_location(values["site_location"], site.name)
        return {"config": self._config(device, "MQTTS"), "gateway_device_id": device.id}

    def _provision_hardware(
        self,
        values: Mapping[str, Any],
        device_type: str,
        *,
        channel_id: str,
        protocol: str = "MQTTS",
        communication: str | None = None,
        parent_id: str | None = None,
        properties: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> Device:
        """Create a device keyed by its hardware id, or return the one provisioned before
        with the same arguments (seed 002: reprovisioning creates no new device)."""
        site = self._find_site(values["site_id"])
        name = values["name"] or name or device_type
        communication = communication or protocol_communication(protocol)
        existing = self.by_hardware_id(values["hardware_id"])
        if existing is not None:
            expected: dict[str, Any] = {
                "type": device_type,
                "site_id": site.id,
                "parent_id": parent_id,
            }
            if values["name"] is not None:
                expected["name"] = name
            if properties and "device_type" in properties:
                expected["device_type"] = properties["device_type"]
            self._check_same(existing, expected)
            # Our choice: the protocol is not identity; reprovisioning with the other one
            # switches the device's communication type, as a fresh config would.
            if existing.communication_type != LINK:
                existing.communication_type = communication
            self._touch(existing)
            return existing
        slug = self._free_slug(site.id, slugify(name))
        return self._add_device(
            site.id,
            device_type,
            name,
            slug,
            communication,
            hardware_id=values["hardware_id"],
            channel_id=channel_id,
            parent_id=parent_id,
            properties=properties,
        )

    def _check_same(self, existing: Device, expected: Mapping[str, Any]) -> None:
        actual = {**asdict(existing), **existing.properties}
        conflicts = {
            key: {"existing": actual.get(key), "requested": value}
            for key, value in expected.items()
            if actual.get(key) != value
        }
        if conflicts:
            raise ApiError.one(
                409,
                "DEVICE_ALREADY_EXISTS",
                "A device with these identifiers exists with other arguments; "
                "reprovisioning needs the same arguments.",
                device_id=existing.id,
                hardware_id=existing.hardware_id,
                conflicting_fields=conflicts,
            )

    def _require_gateway_3(self, site_id: str, what: str) -> None:
        site = self._find_site(site_id)
        gateway = self.gateway_of(site.id)
        version = gateway.properties.get("gateway_version") if gateway else None
        if gateway is None or version is None or gateway_major(version) != 3:
            raise ApiError.one(
                422,
                "GATEWAY_VERSION_NOT_SUPPORTED",
                f"A {what} can be added only to a site with an Enapter Gateway 3.x.x.",
                site_id=site.id,
                gateway_device_id=gateway.id if gateway else None,
                gateway_version=version,
                required_version="3.x.x",
            )

    # -- configs ------------------------------------------------------------------------------

    def _config(self, device: Device, protocol: str) -> dict[str, Any]:
        """A communication config in the shape of seeds 002/003 (both spellings of the
        protocol: `mqtt_credentials.protocol` and the SDK's `mqtt_protocol`)."""
        hardware_id = device.hardware_id or self._synthetic_hardware_id(device.id)
        credentials: dict[str, Any] = {"protocol": protocol}
        if protocol == "MQTTS":
            if self._ca is None:
                self._ca = CertificateAuthority(self.clock)
            private_key, certificate = self._ca.issue(hardware_id)
            credentials |= {
                "private_key": private_key,
                "certificate": certificate,
                "ca_chain": self._ca.pem,
            }
        else:
            credentials |= {
                "username": f"{hardware_id}_{device.channel_id or 'ucm'}",
                "password": secrets.token_urlsafe(24),
            }
        return {
            "mqtt_host": self.mqtt_host,
            "mqtt_port": 8883 if protocol == "MQTTS" else 1883,
            "mqtt_credentials": credentials,
            "mqtt_protocol": protocol,
            "time_sync_protocol": "HTTP",
            "time_sync_host": "127.0.0.1",
            "time_sync_port": 80,
            "hardware_id": hardware_id,
            "channel_id": device.channel_id or "ucm",
        }

    def _set_protocol(self, device: Device, protocol: str) -> None:
        # A device connects with the config it was last given, so its MQTT communication
        # type follows the protocol; LINK devices keep talking through their master.
        if device.communication_type in (MQTT_V1_TLS, MQTT_V1_PLAINTEXT):
            device.communication_type = protocol_communication(protocol)

    # -- views --------------------------------------------------------------------------------

    def device_dto(self, device: Device, expand: Iterable[str] = ()) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": device.id,
            "blueprint_id": device.blueprint_id,
            "name": device.name,
            "site_id": device.site_id,
            "updated_at": device.updated_at,
            "slug": device.slug,
            "type": device.type,
            "authorized_role": "OWNER",
        }
        expand = set(expand)
        if "manifest" in expand:
            body["manifest"] = {
                "blueprint_id": device.blueprint_id,
                "blueprint_spec": "device/3.0",
                "display_name": device.type.replace("_", " ").title(),
                "implements": [],
                "properties": {},
                "telemetry": {},
                "alerts": {},
                "commands": {},
            }
        if "properties" in expand:
            body["properties"] = dict(device.properties)
        if "connectivity" in expand:
            body["connectivity"] = {"status": device.connectivity}
        if "communication" in expand:
            body["communication"] = {
                "type": device.communication_type,
                "upstream_id": self.upstream_id(device),
                "hardware_id": device.hardware_id,
                "channel_id": device.channel_id,
            }
        if "raised_alert_names" in expand:
            body["raised_alert_names"] = []
        if "site" in expand and device.site_id in self.sites:
            body["site"] = self.sites[device.site_id].dto()
        return body

    def _page(self, request: web.Request, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Offset pagination (§2.1): a page past the end is empty, which ends the SDK's loop."""
        offset = self._int_param(request, "offset", 0, minimum=0)
        limit = self._int_param(request, "limit", self.page_size, minimum=1)
        limit = min(limit, self.max_page_size)
        return {key: items[offset : offset + limit], "total_count": len(items)}

    @staticmethod
    def _int_param(request: web.Request, name: str, default: int, *, minimum: int) -> int:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise ApiError.one(
                400,
                "INVALID_QUERY_PARAMETER",
                f"Query parameter {name!r} must be an integer >= {minimum}.",
                parameter=name,
                value=raw,
            )
        return value

    @staticmethod
    def _expand(request: web.Request) -> set[str]:
        requested = {
            part.strip() for part in request.query.get("expand", "").split(",") if part.strip()
        }
        unknown = sorted(requested - EXPANDS)
        if unknown:
            raise ApiError.one(
                400,
                "INVALID_QUERY_PARAMETER",
                "Unknown expand value(s): " + ", ".join(unknown),
                parameter="expand",
                value=",".join(unknown),
                allowed=sorted(EXPANDS),
            )
        return requested

    # -- graph ----------------------------------------------------------------------------------

    def gateway_of(self, site_id: str) -> Device | None:
        return next(
            (d for d in self.devices.values() if d.site_id == site_id and d.type == GATEWAY), None
        )

    def upstream_id(self, device: Device) -> str | None:
        if device.type in GATEWAY_ATTACHED:
            gateway = self.gateway_of(device.site_id)
            return gateway.id if gateway is not None else None
        return device.parent_id

    def downstream_ids(self, device_id: str) -> list[str]:
        """Devices running on `device_id`, except the NATIVE half of an embedded UCM, which
        goes with it."""
        return [
            d.id
            for d in self.devices.values()
            if self.upstream_id(d) == device_id and d.type != NATIVE
        ]

    def by_hardware_id(self, hardware_id: str) -> Device | None:
        return next(
            (
                d
                for d in self.devices.values()
                if d.hardware_id == hardware_id and d.type in HARDWARE_OWNERS
            ),
            None,
        )

    def _by_slug(self, site_id: str, slug: str) -> Device | None:
        return next(
            (d for d in self.devices.values() if d.site_id == site_id and d.slug == slug), None
        )

    # -- state changes --------------------------------------------------------------------------

    def _find_site(self, site_id: str) -> Site:
        site = self.sites.get(site_id)
        if site is None:
            raise site_not_found(site_id)
        return site

    def _find_device(self, device_id: str) -> Device:
        device = self.devices.get(device_id)
        if device is None:
            raise device_not_found(device_id)
        return device

    def _new_id(self) -> str:
        # Deterministic for a seed, and the counter is persisted so that a restored
        # simulator never hands out an id twice.
        self._serial += 1
        digest = hashlib.sha256(f"enapter:{self._seed}:{self._serial}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    @staticmethod
    def _synthetic_hardware_id(device_id: str) -> str:
        return "S" + device_id.replace("-", "").upper()

    def _free_slug(self, site_id: str, base: str) -> str:
        """`base`, or `base-2`, `base-3`... : the first one no device of the site uses."""
        slug, n = base, 1
        while self._by_slug(site_id, slug) is not None:
            n += 1
            slug = f"{base[:60]}-{n}"
        return slug

    def _claim_slug(self, site_id: str, slug: str, device_id: str | None) -> None:
        holder = self._by_slug(site_id, slug)
        if holder is not None and holder.id != device_id:
            raise ApiError.one(
                409,
                "SLUG_ALREADY_EXISTS",
                "Another device of the site has this slug.",
                slug=slug,
                site_id=site_id,
                device_id=holder.id,
            )

    def _add_device(
        self,
        site_id: str,
        device_type: str,
        name: str,
        slug: str,
        communication: str,
        *,
        device_id: str | None = None,
        blueprint_id: str | None = None,
        hardware_id: str | None = None,
        channel_id: str | None = None,
        parent_id: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> Device:
        device = Device(
            id=device_id or self._new_id(),
            site_id=site_id,
            type=device_type,
            name=name,
            slug=slug,
            blueprint_id=blueprint_id or default_blueprint(device_type),
            updated_at=rfc3339(self.clock()),
            communication_type=communication,
            hardware_id=hardware_id,
            channel_id=channel_id,
            parent_id=parent_id,
            properties=dict(properties or {}),
        )
        self.devices[device.id] = device
        return device

    def _touch(self, device: Device) -> None:
        device.updated_at = rfc3339(self.clock())

    def _rename(self, device: Device, name: str | None, slug: str | None) -> None:
        if name is not None:
            device.name = name
        if slug is not None:
            device.slug = slug
        self._touch(device)

    def _drop(self, device_id: str) -> None:
        """Remove a device and the NATIVE device embedded in it."""
        for child in [
            d.id for d in self.devices.values() if d.parent_id == device_id and d.type == NATIVE
        ]:
            del self.devices[child]
        del self.devices[device_id]

    # -- Python API: seeding and drift ----------------------------------------------------------

    def add_token(self, token: str) -> None:
        self.tokens.add(token)

    def revoke_token(self, token: str) -> None:
        self.tokens.discard(token)

    def add_site(self, name: str, timezone: str, location: Mapping[str, Any] | None = None) -> Site:
        site = Site(
            id=self._new_id(),
            name=name,
            timezone=timezone,
            location=normalize_location(location, name) if location else None,
        )
        self.sites[site.id] = site
        return site

    def rename_device(
        self, device_id: str, name: str | None = None, slug: str | None = None
    ) -> dict[str, Any]:
        """Drift: someone renames a device in the Enapter UI."""
        device = self._find_device(device_id)
        self._rename(device, name, slug)
        return self.device_dto(device)

    def remove_device(self, device_id: str) -> list[str]:
        """Drift: a device disappears behind the reconciler's back, with everything that ran
        on it. Returns the ids removed."""
        self._find_device(device_id)
        removed: list[str] = []
        for child in self.downstream_ids(device_id):
            removed += self.remove_device(child)
        removed += [d.id for d in self.devices.values() if d.parent_id == device_id]
        removed.append(device_id)
        self._drop(device_id)
        return removed

    def set_connectivity(self, device_id: str, status: str) -> None:
        if status not in CONNECTIVITY:
            raise ApiError.one(
                422,
                "INVALID_FIELD",
                "status must be one of " + ", ".join(CONNECTIVITY),
                field="status",
            )
        self._find_device(device_id).connectivity = status

    def rename_site(
        self, site_id: str, name: str | None = None, timezone: str | None = None
    ) -> dict[str, Any]:
        """Drift: someone edits the site in the Enapter UI."""
        site = self._find_site(site_id)
        site.name = name or site.name
        site.timezone = timezone or site.timezone
        return site.dto()

    # -- admin endpoints ------------------------------------------------------------------------

    async def _admin_add_token(self, request: web.Request) -> Any:
        values = parse_body(await read_json(request), {"token": TEXT})
        self.add_token(values["token"])
        return {"tokens": len(self.tokens)}

    async def _admin_rename(self, request: web.Request) -> Any:
        values = parse_body(await read_json(request), {"name": OPTIONAL_TEXT, "slug": SLUG})
        return {"device": self.rename_device(request.match_info["device_id"], **values)}

    async def _admin_delete(self, request: web.Request) -> Any:
        return {"removed": self.remove_device(request.match_info["device_id"])}

    async def _admin_connectivity(self, request: web.Request) -> Any:
        values = parse_body(await read_json(request), {"status": Field(check_enum(*CONNECTIVITY))})
        self.set_connectivity(request.match_info["device_id"], values["status"])
        return {"status": values["status"]}

    async def _admin_rename_site(self, request: web.Request) -> Any:
        values = parse_body(
            await read_json(request),
            {"name": OPTIONAL_TEXT, "timezone": Field(check_timezone, required=False)},
        )
        return {"site": self.rename_site(request.match_info["site_id"], **values)}

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "serial": self._serial,
            "tokens": sorted(self.tokens),
            "sites": [asdict(site) for site in self.sites.values()],
            "devices": [asdict(device) for device in self.devices.values()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._serial = int(state.get("serial", 0))
        self.tokens = set(state.get("tokens", []))
        self.sites = {s["id"]: Site(**s) for s in state.get("sites", [])}
        self.devices = {d["id"]: Device(**d) for d in state.get("devices", [])}

    def public_state(self) -> dict[str, Any]:
        # Tokens are secrets; configs are never stored, so there is nothing else to hide.
        return {
            "tokens": len(self.tokens),
            "sites": [site.dto() for site in self.sites.values()],
            "devices": [
                self.device_dto(d, EXPANDS - {"manifest", "site"}) for d in self.devices.values()
            ],
        }


def protocol_communication(protocol: str) -> str:
    return MQTT_V1_TLS if protocol == "MQTTS" else MQTT_V1_PLAINTEXT


def default_blueprint(device_type: str) -> str:
    """Each non-Lua device type runs one built-in blueprint; a stable id per type."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"enapter-sim:blueprint:{device_type}"))
