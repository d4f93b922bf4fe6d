"""`NovacoreSimulator`: Sourceful's Novacore cloud API (platform-apis §1.4) as a stateful
aiohttp server on loopback. It owns organisations and their members, sites, the gateway
registry and claims (with the ES256 claim-signature check), devices and their DERs.

Tests, benchmarks and `reconciler sim` start it; the reconciler's Novacore provider talks
to it over HTTP exactly as it would to the real service.

Where the public docs are silent (response bodies of most writes, `GET /gateways`, error
codes, pagination) the choices made here are marked "UNDOCUMENTED" in the code. Summary:

* errors are always `{"error": <code>, "message": <text>}` (the one documented example);
* 400 `invalid_request` for a malformed body (not an object, missing or unknown fields,
  wrong JSON types); 422 for values that break a documented rule (`invalid_device_type`,
  `invalid_der_type`, `invalid_der_name`, `duplicate_der_name` inside one request);
  409 for conflicts with stored state (`duplicate_der_name` on an existing device,
  `replayed_nonce`, `site_not_empty`);
* deletes answer 200 `{"success": true}` (the shape of FTW's claim stub);
* no list endpoint pages: the docs show bare arrays and say nothing of pagination;
* a claim's `public_key` and `signature` are read only in the form FTW sends and says
  Nova's verifier expects: X||Y and raw r||s, 128 hex characters each (platform-apis §0.3,
  §0.3a). `claim_encodings="any"` also reads the `04...` key and DER signature the newer
  docs show for the Zap's own answers.

Admin endpoints under `/_sim/` create organisations, register gateway keys, issue tokens
(and make one expire early, to test its rotation) and change state behind the reconciler's
back (drift); each has a Python twin for in-process tests.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from reconciler.model import vocab
from reconciler.sim import jwt_hs256
from reconciler.sim.faults import FaultConfig
from reconciler.sim.server import ADMIN_PREFIX, SimServer, json_response, read_json

TOKEN_TTL_S = 24 * 3600  # "HS256 ... expires after 24 h" (§1.4 Auth)
CLAIM_WINDOW_S = 300.0  # UNDOCUMENTED: how far a claim message's timestamp may be from now
# Identity types that count as a human operator: claim and provision need one (FTW).
HUMAN_IDENTITY_TYPES = frozenset({"user", "admin", "root"})
DEVICE_ACTIVE = "active"
DEVICE_ORPHANED = "orphaned"

_DER_NAME = re.compile(vocab.DER_NAME_PATTERN)
_ISO_SECONDS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_EPOCH = re.compile(r"[0-9]{1,13}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")

PublicKeyFormat = Literal["raw", "sec1"]
ClaimEncodings = Literal["ftw", "any"]
T = TypeVar("T")
Result = tuple[int, Any]
Endpoint = Callable[[web.Request], Awaitable[Result]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


class ApiError(Exception):
    """Raised inside a handler; rendered as the Novacore error body with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# -- records ----------------------------------------------------------------------------


@dataclass
class Org:
    id: str
    name: str
    created_at: str


@dataclass
class Site:
    id: str
    org_id: str
    name: str
    created_at: str


@dataclass
class Gateway:
    """A gateway known from manufacturing; `org_id` is None while unclaimed."""

    serial: str
    public_key: str  # X||Y as 128 lowercase hex characters
    org_id: str | None = None
    claimed_at: str | None = None
    # Nonces already used in a claim -> the unix time their message carried. Entries older
    # than the claim window are dropped: such a message is refused as stale anyway.
    nonces: dict[str, float] = field(default_factory=dict)


@dataclass
class Device:
    id: str
    name: str
    type: str
    state: str
    hardware_id: str
    gateway_serial: str
    site_id: str
    manufacturer: str | None
    model: str | None
    created_at: str
    der_ids: list[str] = field(default_factory=list)


@dataclass
class Der:
    id: str
    name: str
    type: str
    device_id: str


@dataclass(frozen=True)
class Caller:
    identity_id: str
    identity_type: str


@dataclass(frozen=True)
class ClaimMessage:
    claimer_id: str
    nonce: str
    timestamp: str
    gateway_serial: str


# -- pure helpers -----------------------------------------------------------------------


def _digest(token: str) -> str:
    """What the simulator keeps of a token it made expire: not the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def iso_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_public_key(text: str) -> str | None:
    """X||Y as 128 lowercase hex, from 128 hex or 130-hex SEC1 `04`-prefixed; None if neither.

    Open firmware and FTW send 128 hex; the docs show `04...` (platform-apis §0.3a).
    """
    key = text.strip().lower()
    if len(key) == 130 and key.startswith("04"):
        key = key[2:]
    if len(key) != 128 or not _HEX.fullmatch(key):
        return None
    return key


def _ec_key(xy_hex: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key with coordinates `xy_hex`; ValueError when not on the curve."""
    point = bytes.fromhex("04" + xy_hex)
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def _signature_candidates(signature: str, *, der: bool = True) -> list[bytes]:
    """DER encodings to try for a hex signature: raw r||s (128 hex, what the firmware and
    FTW send) and, if `der`, DER hex (`3045...`, what newer docs show). See §0.3."""
    text = signature.strip().lower()
    if not _HEX.fullmatch(text):
        return []
    raw = bytes.fromhex(text)
    candidates = []
    if len(raw) == 64:
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        candidates.append(encode_dss_signature(r, s))
    if der:
        candidates.append(raw)
    return candidates


def verify_es256(xy_hex: str, message: str, signature: str, *, der: bool = True) -> bool:
    """Whether `signature` is the gateway's ES256 signature over SHA-256(message); DER
    hex is read too when `der`."""
    key = _ec_key(xy_hex)
    for candidate in _signature_candidates(signature, der=der):
        try:
            key.verify(candidate, message.encode(), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def message_time(text: str) -> float | None:
    """Unix time of a claim message's timestamp, or None if unreadable.

    The Zap writes `YYYY-MM-DDTHH:MM:SSZ`, FTW writes unix seconds (platform-apis §0.4);
    13 digits are read as epoch milliseconds, which the docs' conventions also allow.
    """
    if _EPOCH.fullmatch(text):
        value = int(text)
        return value / 1000.0 if value >= 10**11 else float(value)
    if _ISO_SECONDS.fullmatch(text):
        try:
            return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None
    return None


def parse_claim_message(message: str) -> ClaimMessage:
    """Nova "splits on | and expects exactly four parts" (FTW client_test.go)."""
    parts = message.split("|")
    if len(parts) != 4 or not all(parts):
        raise ApiError(
            400,
            "invalid_message_format",
            f"invalid message format: expected claimer_id|nonce|timestamp|"
            f"gateway_serial, got {len(parts)} part(s)",
        )
    return ClaimMessage(*parts)


def device_type_of(value: str) -> vocab.DeviceType:
    try:
        return vocab.DeviceType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in vocab.DeviceType)
        raise ApiError(
            422, "invalid_device_type", f"Unknown device_type '{value}'; allowed: {allowed}"
        ) from None


def check_der(device_type: vocab.DeviceType, name: Any, der_type: Any) -> tuple[str, str]:
    """(name, type) of one DER if it obeys the name and type rules of §1.4."""
    if not isinstance(name, str) or not isinstance(der_type, str):
        raise ApiError(400, "invalid_request", "Each DER needs string 'name' and 'type'")
    if not _DER_NAME.fullmatch(name):
        raise ApiError(
            422, "invalid_der_name", f"DER name '{name}' must be 1-64 letters, digits, '-' or '_'"
        )
    allowed = vocab.ALLOWED_DER_TYPES[device_type]
    if der_type not in allowed:
        names = ", ".join(sorted(t.value for t in allowed))
        raise ApiError(
            422,
            "invalid_der_type",
            f"DER type '{der_type}' is not allowed for device type "
            f"'{device_type.value}'; allowed: {names}",
        )
    return name, der_type


def check_ders(device_type: vocab.DeviceType, raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        raise ApiError(400, "invalid_request", "'ders' must be an array")
    specs: list[tuple[str, str]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_request", "Each DER must be an object")
        specs.append(check_der(device_type, item.get("name"), item.get("type")))
    names = [name for name, _ in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ApiError(
            422,
            "duplicate_der_name",
            f"DER names must be unique per device: {', '.join(duplicates)}",
        )
    return specs


async def read_body(
    request: web.Request, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> dict[str, Any]:
    """The JSON object body; 400 when it is not one, lacks a required field or has extras.

    Unknown fields are refused rather than ignored so that a client relying on an
    undocumented field finds out here, not in production.
    """
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "Request body must be a JSON object")
    required, optional = list(required), list(optional)
    missing = [key for key in required if body.get(key) is None]
    if missing:
        raise ApiError(400, "invalid_request", f"Missing required field(s): {', '.join(missing)}")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise ApiError(
            400,
            "invalid_request",
            f"Unknown field(s): {', '.join(unknown)}; allowed: {', '.join(required + optional)}",
        )
    return {key: value for key, value in body.items() if value is not None}


def text_field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_request", f"'{key}' must be a non-empty string")
    return value


def der_json(der: Der) -> dict[str, Any]:
    return {"id": der.id, "name": der.name, "type": der.type}


def site_json(site: Site) -> dict[str, Any]:
    return {"id": site.id, "org_id": site.org_id, "name": site.name, "created_at": site.created_at}


def org_json(org: Org) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "created_at": org.created_at}


SUCCESS = {"success": True}


# -- the simulator ----------------------------------------------------------------------


class NovacoreSimulator(SimServer):
    """Novacore as documented in platform-apis §1.4. State lives in memory; `snapshot` and
    `restore` carry it (including the token secret) across restarts."""

    name = "novacore"

    def __init__(
        self,
        *,
        seed: int = 0,
        faults: FaultConfig | None = None,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
        claim_window_s: float = CLAIM_WINDOW_S,
        token_ttl_s: int = TOKEN_TTL_S,
        public_key_format: PublicKeyFormat = "raw",
        claim_encodings: ClaimEncodings = "ftw",
    ) -> None:
        self.clock = clock
        self.claim_encodings: ClaimEncodings = claim_encodings
        self.claim_window_s = claim_window_s
        self.token_ttl_s = token_ttl_s
        self.public_key_format: PublicKeyFormat = public_key_format
        self._seed = seed
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        # SHA-256 digests of the tokens `expire_token` made expire before their time.
        self._expired: set[str] = set()
        self._counter = 0
        self._clear()
        super().__init__(seed=seed, faults=faults)

    def _clear(self) -> None:
        self.orgs: dict[str, Org] = {}
        self.members: dict[str, dict[str, str]] = {}  # identity id -> {org id: role}
        self.sites: dict[str, Site] = {}
        self.gateways: dict[str, Gateway] = {}
        self.devices: dict[str, Device] = {}
        self.ders: dict[str, Der] = {}
        self._reindex()

    def _reindex(self) -> None:
        """Rebuild the lookup tables that keep every handler O(1) or O(devices of a site)."""
        self._org_sites: dict[str, dict[str, None]] = {org: {} for org in self.orgs}
        self._org_gateways: dict[str, dict[str, None]] = {org: {} for org in self.orgs}
        self._site_devices: dict[str, dict[str, None]] = {site: {} for site in self.sites}
        self._gateway_devices: dict[str, dict[str, None]] = {gw: {} for gw in self.gateways}
        self._device_by_key: dict[tuple[str, str], str] = {}
        self._hardware_devices: dict[str, dict[str, None]] = {}  # hardware id -> device ids
        for site in self.sites.values():
            self._org_sites[site.org_id][site.id] = None
        for gateway in self.gateways.values():
            if gateway.org_id is not None:
                self._org_gateways[gateway.org_id][gateway.serial] = None
        for device in self.devices.values():
            self._index_device(device)

    def _index_device(self, device: Device) -> None:
        self._site_devices[device.site_id][device.id] = None
        self._gateway_devices.setdefault(device.gateway_serial, {})[device.id] = None
        self._device_by_key[(device.gateway_serial, device.hardware_id)] = device.id
        self._hardware_devices.setdefault(device.hardware_id, {})[device.id] = None

    def _unindex_device(self, device: Device) -> None:
        self._site_devices[device.site_id].pop(device.id, None)
        self._gateway_devices[device.gateway_serial].pop(device.id, None)
        self._device_by_key.pop((device.gateway_serial, device.hardware_id), None)
        self._hardware_devices[device.hardware_id].pop(device.id, None)

    # -- ids and time ---------------------------------------------------------------------

    def _digest(self, salt: str) -> bytes:
        # Deterministic for a seed and call order, and the counter is persisted, so ids stay
        # reproducible in tests and never repeat after a restore.
        self._counter += 1
        return hashlib.sha256(f"{self._seed}:{self._counter}:{salt}".encode()).digest()

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{self._digest(prefix).hex()[:12]}"

    def new_identity_id(self) -> str:
        """A fresh `idt-{uuid}` identity id."""
        return f"idt-{uuid.UUID(bytes=self._digest('idt')[:16], version=4)}"

    def _new_der_id(self) -> str:
        """`der-{uuid7}`: 48 bits of milliseconds, version 7, variant, 74 pseudo-random bits."""
        ms = int(self.clock() * 1000) & ((1 << 48) - 1)
        rand = int.from_bytes(self._digest("der")[:10], "big") & ((1 << 74) - 1)
        value = (
            (ms << 80)
            | (0x7 << 76)
            | ((rand >> 62) << 64)
            | (0b10 << 62)
            | (rand & ((1 << 62) - 1))
        )
        return f"der-{uuid.UUID(int=value)}"

    def _now(self) -> str:
        return iso_time(self.clock())

    # -- in-process API (tests, `reconciler sim`) -----------------------------------------

    def add_org(self, org_id: str | None = None, name: str | None = None) -> str:
        """Create an organisation (Novacore's `POST /organizations`); returns its id."""
        org_id = org_id or self._new_id("org")
        if org_id in self.orgs:
            raise ValueError(f"organisation {org_id} exists")
        self.orgs[org_id] = Org(org_id, name or org_id, self._now())
        self._org_sites[org_id] = {}
        self._org_gateways[org_id] = {}
        return org_id

    def add_site(self, org_id: str, name: str, site_id: str | None = None) -> str:
        """Create a site in `org_id` (as `POST /sites` does, or with a given id, as an
        existing site to adopt); returns its id."""
        if org_id not in self.orgs:
            raise KeyError(org_id)
        # UNDOCUMENTED: site names are not unique; the docs show no such rule.
        site = Site(site_id or self._new_id("sit"), org_id, name, self._now())
        self.sites[site.id] = site
        self._org_sites[org_id][site.id] = None
        self._site_devices[site.id] = {}
        return site.id

    def add_member(self, org_id: str, identity_id: str, role: str = "owner") -> None:
        """Make `identity_id` a member of `org_id`. Roles are stored, not enforced."""
        if org_id not in self.orgs:
            raise KeyError(org_id)
        self.members.setdefault(identity_id, {})[org_id] = role

    def issue_token(
        self,
        identity_id: str | None = None,
        org_ids: Iterable[str] = (),
        *,
        identity_type: str = "user",
        ttl_s: int | None = None,
    ) -> str:
        """An HS256 JWT for a human operator who owns `org_ids` (created if unknown)."""
        identity_id = identity_id or self.new_identity_id()
        if isinstance(org_ids, str):  # one org id given bare: not its characters
            org_ids = [org_ids]
        for org_id in org_ids:
            if org_id not in self.orgs:
                self.add_org(org_id)
            self.add_member(org_id, identity_id)
        now = int(self.clock())
        claims = {
            "sub": identity_id,
            "identity_id": identity_id,
            "identity_type": identity_type,
            "iat": now,
            "exp": now + (self.token_ttl_s if ttl_s is None else ttl_s),
            # Two tokens issued to one identity in the same second differ, so one of them
            # can be made to expire (`expire_token`) and not the other.
            "jti": secrets.token_hex(8),
        }
        return jwt_hs256.encode(claims, self._secret)

    def expire_token(self, token: str) -> None:
        """Answer `token` from now on as Novacore answers one past its 24 h (401, "Token
        expired"), whatever time it has left: a test of a token's rotation need not wait
        for its expiry, nor move the clock of every other token."""
        self._expired.add(_digest(token))

    def identity_of(self, token: str) -> str:
        """The identity id a token of this simulator was issued to (signature checked)."""
        return str(jwt_hs256.decode(token, self._secret, now=self.clock())["identity_id"])

    def register_gateway(self, serial: str, public_key_hex: str) -> None:
        """Record a gateway's public key, as manufacturing does. Re-registering replaces the
        key and keeps any claim. ValueError when the key is not a P-256 point."""
        key = normalize_public_key(public_key_hex)
        if key is None:
            raise ValueError("public key must be 128 hex (X||Y) or 130 hex starting with 04")
        _ec_key(key)
        gateway = self.gateways.get(serial)
        if gateway is None:
            self.gateways[serial] = Gateway(serial, key)
            self._gateway_devices[serial] = {}
        else:
            gateway.public_key = key

    def rename_device(self, device_id: str, name: str) -> None:
        """Drift: rename a device behind the reconciler's back."""
        self.drift_device(device_id, name=name)

    def drift_device(self, device_id: str, **changes: str | None) -> dict[str, Any]:
        """Drift: overwrite any of name, manufacturer, model, state of a device."""
        device = self.devices[device_id]
        for key, value in changes.items():
            if key not in {"name", "manufacturer", "model", "state"}:
                raise KeyError(key)
            setattr(device, key, value)
        return self.device_json(device)

    def remove_device(self, device_id: str) -> None:
        """Drift (or cleanup): delete a device and its DERs."""
        device = self.devices.pop(device_id)
        for der_id in device.der_ids:
            self.ders.pop(der_id, None)
        self._unindex_device(device)

    def add_der(self, device_id: str, name: str, der_type: str) -> str:
        """Drift: add a DER to a device (no check of its type: someone else's change);
        returns its id."""
        der = Der(self._new_der_id(), name, der_type, device_id)
        self.ders[der.id] = der
        self.devices[device_id].der_ids.append(der.id)
        return der.id

    def remove_der(self, der_id: str) -> None:
        """Drift: delete one DER."""
        der = self.ders.pop(der_id)
        self.devices[der.device_id].der_ids.remove(der_id)

    def rename_site(self, site_id: str, name: str) -> None:
        """Drift: rename a site."""
        self.sites[site_id].name = name

    def remove_site(self, site_id: str) -> None:
        """Drift: delete a site together with its devices (the API itself refuses that)."""
        for device_id in list(self._site_devices[site_id]):
            self.remove_device(device_id)
        site = self.sites.pop(site_id)
        del self._site_devices[site_id]
        self._org_sites[site.org_id].pop(site_id, None)

    def claim_gateway_into(self, serial: str, org_id: str) -> None:
        """Drift: someone else claims the gateway into `org_id` (its devices in the
        organisation it left are orphaned, as a claim there does)."""
        self._apply_claim(self.gateways[serial], org_id)

    def release_gateway(self, serial: str) -> int:
        """Unclaim a gateway; its devices become orphaned. Returns how many were orphaned."""
        gateway = self.gateways[serial]
        if gateway.org_id is None:
            return 0
        orphaned = self._orphan_devices(serial, gateway.org_id)
        self._org_gateways[gateway.org_id].pop(serial, None)
        gateway.org_id = gateway.claimed_at = None
        return orphaned

    def _orphan_devices(self, serial: str, org_id: str) -> int:
        """Devices on `serial` in `org_id` lose their gateway: mark them orphaned."""
        count = 0
        for device_id in self._gateway_devices.get(serial, {}):
            device = self.devices[device_id]
            if self.sites[device.site_id].org_id == org_id:
                device.state = DEVICE_ORPHANED
                count += 1
        return count

    # -- views ------------------------------------------------------------------------------

    def device_json(self, device: Device | str) -> dict[str, Any]:
        """One device as every device endpoint renders it.

        UNDOCUMENTED beyond `GET /sites/{id}/devices`' example (id, name, type, state,
        hardware_id, ders); gateway_serial, site_id, manufacturer and model are added so
        drift in them can be observed.
        """
        if isinstance(device, str):
            device = self.devices[device]
        return {
            "id": device.id,
            "name": device.name,
            "type": device.type,
            "state": device.state,
            "hardware_id": device.hardware_id,
            "gateway_serial": device.gateway_serial,
            "site_id": device.site_id,
            "manufacturer": device.manufacturer,
            "model": device.model,
            "ders": [der_json(self.ders[d]) for d in device.der_ids],
        }

    def gateway_json(self, gateway: Gateway) -> dict[str, Any]:
        # UNDOCUMENTED: the docs do not show GET /gateways' response at all.
        key = gateway.public_key if self.public_key_format == "raw" else "04" + gateway.public_key
        return {
            "serial": gateway.serial,
            "org_id": gateway.org_id,
            "claimed_at": gateway.claimed_at,
            "public_key": key,
        }

    def _site_devices_json(self, site_id: str) -> list[dict[str, Any]]:
        return [self.device_json(self.devices[d]) for d in self._site_devices[site_id]]

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        state = self.public_state()
        state["secret"] = self._secret.hex()
        state["expired_tokens"] = sorted(self._expired)
        return state

    def public_state(self) -> dict[str, Any]:
        """Everything but the token secret (served at /_sim/state)."""
        return {
            "version": 1,
            "counter": self._counter,
            "orgs": [asdict(o) for o in self.orgs.values()],
            "members": {idt: dict(orgs) for idt, orgs in self.members.items()},
            "sites": [asdict(s) for s in self.sites.values()],
            "gateways": [asdict(g) for g in self.gateways.values()],
            "devices": [asdict(d) for d in self.devices.values()],
            "ders": [asdict(d) for d in self.ders.values()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        if "secret" in state:
            self._secret = bytes.fromhex(state["secret"])
        self._expired = set(state.get("expired_tokens", []))
        self._counter = int(state.get("counter", 0))
        self.orgs = {o["id"]: Org(**o) for o in state.get("orgs", [])}
        self.members = {idt: dict(orgs) for idt, orgs in state.get("members", {}).items()}
        self.sites = {s["id"]: Site(**s) for s in state.get("sites", [])}
        self.gateways = {g["serial"]: Gateway(**g) for g in state.get("gateways", [])}
        self.devices = {d["id"]: Device(**d) for d in state.get("devices", [])}
        self.ders = {d["id"]: Der(**d) for d in state.get("ders", [])}
        self._reindex()

    # -- routing ------------------------------------------------------------------------------

    def error_body(self, status: int, code: str, message: str) -> Any:
        """Novacore's one documented error shape: `{"error":"not_found","message":"..."}`."""
        return {"error": code, "message": message}

    def _endpoint(self, handler: Endpoint, *, admin_write: bool = False) -> Handler:
        """An aiohttp handler that renders `handler`'s result or its `ApiError`."""

        async def handle(request: web.Request) -> web.Response:
            try:
                status, body = await handler(request)
            except ApiError as exc:
                return json_response(
                    self.error_body(exc.status, exc.code, exc.message), status=exc.status
                )
            finally:
                # The base class only reports changes made through the platform API; drift
                # made through /_sim/ must be persisted too.
                if admin_write and self._on_change is not None:
                    self._on_change()
            return json_response(body, status=status)

        return handle

    def add_routes(self, router: web.UrlDispatcher) -> None:
        api = self._endpoint
        router.add_get("/sites", api(self._list_sites))
        router.add_post("/sites", api(self._create_site))
        router.add_get("/sites/{site_id}", api(self._get_site))
        router.add_put("/sites/{site_id}", api(self._update_site))
        router.add_delete("/sites/{site_id}", api(self._delete_site))
        router.add_get("/sites/{site_id}/devices", api(self._list_site_devices))
        router.add_post("/gateways/claim", api(self._claim_gateway))
        router.add_get("/gateways", api(self._list_gateways))
        router.add_delete("/gateways/{serial}", api(self._release_gateway))
        router.add_post("/devices/provision", api(self._provision_device))
        router.add_get("/devices/{device_id}", api(self._get_device))
        router.add_put("/devices/{device_id}", api(self._update_device))
        router.add_delete("/devices/{device_id}", api(self._delete_device))
        router.add_post("/devices/{device_id}/ders", api(self._create_der))
        router.add_get("/ders/{der_id}", api(self._get_der))
        self._add_admin_routes(router)

    def _add_admin_routes(self, router: web.UrlDispatcher) -> None:
        def admin(handler: Endpoint) -> Handler:
            return self._endpoint(handler, admin_write=True)

        prefix = ADMIN_PREFIX
        router.add_post(f"{prefix}/orgs", admin(self._admin_add_org))
        router.add_post(f"{prefix}/tokens", admin(self._admin_issue_token))
        router.add_post(f"{prefix}/tokens/expire", admin(self._admin_expire_token))
        router.add_post(f"{prefix}/gateways/register", admin(self._admin_register_gateway))
        router.add_delete(f"{prefix}/gateways/{{serial}}", admin(self._admin_release_gateway))
        router.add_put(f"{prefix}/sites/{{site_id}}", admin(self._admin_update_site))
        router.add_delete(f"{prefix}/sites/{{site_id}}", admin(self._admin_delete_site))
        router.add_put(f"{prefix}/devices/{{device_id}}", admin(self._admin_update_device))
        router.add_delete(f"{prefix}/devices/{{device_id}}", admin(self._admin_delete_device))
        router.add_delete(f"{prefix}/ders/{{der_id}}", admin(self._admin_delete_der))

    # -- auth -----------------------------------------------------------------------------------

    def _caller(self, request: web.Request) -> Caller:
        """The identity behind `Authorization: Bearer <jwt>`; 401 when there is none."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "Missing bearer token")
        try:
            claims = jwt_hs256.decode(token, self._secret, now=self.clock())
            if _digest(token) in self._expired:
                raise jwt_hs256.ExpiredToken("expired early by /_sim/tokens/expire")
        except jwt_hs256.ExpiredToken:
            raise ApiError(401, "unauthorized", "Token expired") from None
        except jwt_hs256.InvalidToken as exc:
            raise ApiError(401, "unauthorized", f"Invalid token: {exc}") from None
        identity = claims.get("identity_id") or claims.get("sub")
        if not isinstance(identity, str):
            raise ApiError(401, "unauthorized", "Invalid token: no identity")
        return Caller(identity, str(claims.get("identity_type", "user")))

    def _human(self, request: web.Request) -> Caller:
        """Claim and provision need a human operator's token (FTW docs/nova-integration.md)."""
        caller = self._caller(request)
        if caller.identity_type not in HUMAN_IDENTITY_TYPES:
            raise ApiError(
                403,
                "forbidden",
                f"Identity type '{caller.identity_type}' may not do this; "
                "a human operator token is required",
            )
        return caller

    def _member_orgs(self, caller: Caller) -> dict[str, str]:
        return self.members.get(caller.identity_id, {})

    def _require_member(self, caller: Caller, org_id: str) -> Org:
        org = self.orgs.get(org_id)
        if org is None:
            raise ApiError(404, "not_found", "Organization not found")
        if org_id not in self._member_orgs(caller):
            raise ApiError(
                403, "forbidden", f"Identity {caller.identity_id} is not a member of {org_id}"
            )
        return org

    def _orgs_in_scope(self, request: web.Request, caller: Caller) -> list[str]:
        """`?org_id=` if given (must be a member), else every organisation of the caller."""
        org_id = request.query.get("org_id")
        if org_id:
            self._require_member(caller, org_id)
            return [org_id]
        return [org for org in self._member_orgs(caller) if org in self.orgs]

    def _site_for(self, caller: Caller, site_id: str) -> Site:
        site = self.sites.get(site_id)
        if site is None:
            raise ApiError(404, "not_found", "Site not found")
        self._require_member(caller, site.org_id)
        return site

    def _device_for(self, caller: Caller, device_id: str) -> Device:
        device = self.devices.get(device_id)
        if device is None:
            raise ApiError(404, "not_found", "Device not found")
        self._require_member(caller, self.sites[device.site_id].org_id)
        return device

    # -- sites ------------------------------------------------------------------------------------

    async def _list_sites(self, request: web.Request) -> Result:
        caller = self._caller(request)
        return 200, [
            site_json(self.sites[site_id])
            for org_id in self._orgs_in_scope(request, caller)
            for site_id in self._org_sites[org_id]
        ]

    async def _create_site(self, request: web.Request) -> Result:
        caller = self._caller(request)
        body = await read_body(request, required=("org_id", "name"))
        self._require_member(caller, text_field(body, "org_id"))
        site_id = self.add_site(body["org_id"], text_field(body, "name"))
        return 201, site_json(self.sites[site_id])

    async def _get_site(self, request: web.Request) -> Result:
        site = self._site_for(self._caller(request), request.match_info["site_id"])
        # "includes connected devices" (§1.4 Sites).
        return 200, {**site_json(site), "devices": self._site_devices_json(site.id)}

    async def _update_site(self, request: web.Request) -> Result:
        site = self._site_for(self._caller(request), request.match_info["site_id"])
        body = await read_body(request, required=("name",))
        site.name = text_field(body, "name")
        return 200, site_json(site)

    async def _delete_site(self, request: web.Request) -> Result:
        site = self._site_for(self._caller(request), request.match_info["site_id"])
        # UNDOCUMENTED: refuse rather than cascade, so a client that deletes in the wrong
        # order (site before its devices) is caught.
        if self._site_devices[site.id]:
            raise ApiError(
                409,
                "site_not_empty",
                f"Site {site.id} still has {len(self._site_devices[site.id])} "
                "device(s); delete them first",
            )
        self.remove_site(site.id)
        return 200, SUCCESS

    async def _list_site_devices(self, request: web.Request) -> Result:
        site = self._site_for(self._caller(request), request.match_info["site_id"])
        return 200, self._site_devices_json(site.id)

    # -- gateways ---------------------------------------------------------------------------------

    async def _claim_gateway(self, request: web.Request) -> Result:
        caller = self._human(request)
        body = await read_body(
            request, required=("org_id", "gateway_serial", "public_key", "message", "signature")
        )
        org_id = text_field(body, "org_id")
        self._require_member(caller, org_id)
        gateway, message = self._verify_claim(caller, body)
        self._use_nonce(gateway, message)
        return self._apply_claim(gateway, org_id)

    def _verify_claim(self, caller: Caller, body: dict[str, Any]) -> tuple[Gateway, ClaimMessage]:
        """Check a claim's message, key and signature; nothing is changed here."""
        serial = text_field(body, "gateway_serial")
        message = parse_claim_message(text_field(body, "message"))
        if message.gateway_serial != serial:
            raise ApiError(
                400,
                "serial_mismatch",
                f"The message is for gateway '{message.gateway_serial}', not '{serial}'",
            )
        if message.claimer_id != caller.identity_id:
            raise ApiError(
                403,
                "claimer_mismatch",
                "The message's claimer_id is not the identity of this token",
            )
        gateway = self.gateways.get(serial)
        if gateway is None:
            raise ApiError(404, "not_found", "Gateway not found")
        any_encoding = self.claim_encodings == "any"
        sent_key = text_field(body, "public_key")
        key = normalize_public_key(sent_key)
        if key is None or (not any_encoding and len(sent_key.strip()) != 128):
            raise ApiError(
                400,
                "invalid_public_key",
                "public_key must be 128 hex (X||Y) or 130 hex starting with 04"
                if any_encoding
                else "public_key must be 128 hex (X||Y, no 04 prefix)",
            )
        if key != gateway.public_key:
            raise ApiError(
                403,
                "public_key_mismatch",
                f"public_key is not the key registered for gateway {serial}",
            )
        signature = text_field(body, "signature")
        if not verify_es256(key, body["message"], signature, der=any_encoding):
            raise ApiError(
                403,
                "invalid_signature",
                "signature is not the gateway's ES256 signature of message"
                + ("" if any_encoding else " (hex of raw r||s, 128 characters)"),
            )
        self._check_fresh(message)
        return gateway, message

    def _check_fresh(self, message: ClaimMessage) -> None:
        sent = message_time(message.timestamp)
        if sent is None:
            raise ApiError(
                400, "invalid_timestamp", "timestamp must be YYYY-MM-DDTHH:MM:SSZ or unix seconds"
            )
        skew = abs(self.clock() - sent)
        if skew > self.claim_window_s:
            raise ApiError(
                400,
                "stale_timestamp",
                f"timestamp is {skew:.0f} s from server time; at most "
                f"{self.claim_window_s:.0f} s allowed",
            )

    def _use_nonce(self, gateway: Gateway, message: ClaimMessage) -> None:
        """Refuse a replayed nonce, then remember this one (only after the signature held,
        so nobody can burn a gateway's nonces)."""
        horizon = self.clock() - self.claim_window_s
        gateway.nonces = {n: t for n, t in gateway.nonces.items() if t >= horizon}
        if message.nonce in gateway.nonces:
            raise ApiError(
                409,
                "replayed_nonce",
                f"nonce {message.nonce} was already used for {gateway.serial}",
            )
        gateway.nonces[message.nonce] = message_time(message.timestamp) or self.clock()

    def _apply_claim(self, gateway: Gateway, org_id: str) -> Result:
        """Ownership rules of §1.4: claim, idempotent re-claim, or transfer that orphans."""
        previous = gateway.org_id
        if previous == org_id:
            return 200, self._claim_json(gateway, created=False)
        orphaned = 0
        if previous is not None:
            orphaned = self._orphan_devices(gateway.serial, previous)
            self._org_gateways[previous].pop(gateway.serial, None)
        gateway.org_id, gateway.claimed_at = org_id, self._now()
        self._org_gateways[org_id][gateway.serial] = None
        if previous is None:
            return 201, self._claim_json(gateway, created=True)
        # UNDOCUMENTED: a transfer answers 200 and says what it did.
        return 200, {
            **self._claim_json(gateway, created=False),
            "transferred": True,
            "previous_org_id": previous,
            "orphaned_devices": orphaned,
        }

    def _claim_json(self, gateway: Gateway, *, created: bool) -> dict[str, Any]:
        # FTW's stub answers {"success": true}; the other fields are UNDOCUMENTED additions.
        return {
            "success": True,
            "gateway_serial": gateway.serial,
            "org_id": gateway.org_id,
            "claimed_at": gateway.claimed_at,
            "created": created,
            "transferred": False,
        }

    async def _list_gateways(self, request: web.Request) -> Result:
        caller = self._caller(request)
        return 200, [
            self.gateway_json(self.gateways[serial])
            for org_id in self._orgs_in_scope(request, caller)
            for serial in self._org_gateways[org_id]
        ]

    async def _release_gateway(self, request: web.Request) -> Result:
        caller = self._caller(request)
        serial = request.match_info["serial"]
        gateway = self.gateways.get(serial)
        # A gateway of another organisation is reported as absent, like an unknown one.
        if gateway is None or gateway.org_id not in self._member_orgs(caller):
            raise ApiError(404, "not_found", "Gateway not found")
        # UNDOCUMENTED: release orphans the gateway's devices, as a transfer does.
        orphaned = self.release_gateway(serial)
        return 200, {**SUCCESS, "gateway_serial": serial, "orphaned_devices": orphaned}

    # -- devices and DERs -----------------------------------------------------------------------

    async def _provision_device(self, request: web.Request) -> Result:
        caller = self._human(request)
        body = await read_body(
            request,
            required=("gateway_serial", "hardware_id", "device_type", "site_id"),
            optional=("name", "manufacturer", "model", "ders", "identity"),
        )
        for key in ("name", "manufacturer", "model"):
            if key in body:
                text_field(body, key)
        site = self._site_for(caller, text_field(body, "site_id"))
        device_type = device_type_of(text_field(body, "device_type"))
        ders = check_ders(device_type, body["ders"]) if "ders" in body else None
        serial, hardware_id = text_field(body, "gateway_serial"), text_field(body, "hardware_id")
        gateway = self.gateways.get(serial)
        if gateway is None or gateway.org_id != site.org_id:
            raise ApiError(
                403,
                "gateway_not_in_org",
                f"Gateway {serial} is not claimed by organization {site.org_id}",
            )
        existing = self._rebind_target(serial, hardware_id, site.org_id)
        if existing is None:
            device = self._create_device(body, site, device_type, ders or [])
            return 201, self._provision_json(device, created=True)
        device = self._rebind_device(existing, body, site, gateway, device_type, ders)
        return 200, self._provision_json(device, created=False)

    def _rebind_target(self, serial: str, hardware_id: str, org_id: str) -> Device | None:
        """The device that provisioning `hardware_id` behind `serial` into `org_id` rebinds
        (200 with `created: false`, §1.4) rather than creates: the one already behind that
        gateway (an orphaned device adopted by the gateway's new organisation), else the one
        with that hardware id in the organisation, behind another gateway or in another site
        (the hardware was re-wired: it moves, and keeps its id and DERs).
        UNDOCUMENTED: whether a hardware id of another organisation is rebound too; here it
        is not (one organisation never takes another's device), a new device is created."""
        same_gateway = self._device_by_key.get((serial, hardware_id))
        if same_gateway is not None:
            return self.devices[same_gateway]
        for device_id in self._hardware_devices.get(hardware_id, {}):
            device = self.devices[device_id]
            if self.sites[device.site_id].org_id == org_id:
                return device
        return None

    def _create_device(
        self,
        body: dict[str, Any],
        site: Site,
        device_type: vocab.DeviceType,
        ders: list[tuple[str, str]],
    ) -> Device:
        device = Device(
            id=self._new_id("dev"),
            name=body.get("name", body["hardware_id"]),
            type=device_type.value,
            state=DEVICE_ACTIVE,
            hardware_id=body["hardware_id"],
            gateway_serial=body["gateway_serial"],
            site_id=site.id,
            manufacturer=body.get("manufacturer"),
            model=body.get("model"),
            created_at=self._now(),
        )
        self.devices[device.id] = device
        self._index_device(device)
        self._set_ders(device, ders)
        return device

    def _rebind_device(
        self,
        device: Device,
        body: dict[str, Any],
        site: Site,
        gateway: Gateway,
        device_type: vocab.DeviceType,
        ders: list[tuple[str, str]] | None,
    ) -> Device:
        """A hardware id provisioned again (`_rebind_target`): bind it to `gateway` and
        `site`, take the given fields, and reactivate it."""
        if ders is None:
            # No `ders` in the body keeps the current ones; they must still suit the type.
            current = [(self.ders[d].name, self.ders[d].type) for d in device.der_ids]
            ders = check_ders(device_type, [{"name": n, "type": t} for n, t in current])
        self._unindex_device(device)
        device.site_id, device.gateway_serial = site.id, gateway.serial
        self._index_device(device)
        device.type, device.state = device_type.value, DEVICE_ACTIVE
        for key in ("name", "manufacturer", "model"):
            if key in body:
                setattr(device, key, body[key])
        self._set_ders(device, ders)
        return device

    def _set_ders(self, device: Device, specs: list[tuple[str, str]]) -> None:
        """Make the device's DERs exactly `specs`, keeping the id of any DER whose name stays."""
        by_name = {self.ders[d].name: self.ders[d] for d in device.der_ids}
        wanted = {name for name, _ in specs}
        for name, der in by_name.items():
            if name not in wanted:
                del self.ders[der.id]
        device.der_ids = []
        for name, der_type in specs:
            der = by_name.get(name) or Der(self._new_der_id(), name, der_type, device.id)
            der.type = der_type
            self.ders[der.id] = der
            device.der_ids.append(der.id)

    def _provision_json(self, device: Device, *, created: bool) -> dict[str, Any]:
        # FTW's ProvisionResponse (§1.4 Devices and DERs).
        return {
            "device_id": device.id,
            "hardware_id": device.hardware_id,
            "device_type": device.type,
            "site_id": device.site_id,
            "state": device.state,
            "created": created,
            "ders": [der_json(self.ders[d]) for d in device.der_ids],
        }

    async def _get_device(self, request: web.Request) -> Result:
        device = self._device_for(self._caller(request), request.match_info["device_id"])
        return 200, self.device_json(device)

    async def _update_device(self, request: web.Request) -> Result:
        device = self._device_for(self._caller(request), request.match_info["device_id"])
        body = await read_body(request, optional=("name", "manufacturer", "model"))
        for key in body:
            setattr(device, key, text_field(body, key))
        return 200, self.device_json(device)

    async def _delete_device(self, request: web.Request) -> Result:
        device = self._device_for(self._caller(request), request.match_info["device_id"])
        self.remove_device(device.id)
        return 200, SUCCESS

    async def _create_der(self, request: web.Request) -> Result:
        device = self._device_for(self._caller(request), request.match_info["device_id"])
        body = await read_body(request, required=("name", "type"))
        name, der_type = check_der(vocab.DeviceType(device.type), body["name"], body["type"])
        if any(self.ders[d].name == name for d in device.der_ids):
            raise ApiError(
                409, "duplicate_der_name", f"Device {device.id} already has a DER named '{name}'"
            )
        der = Der(self._new_der_id(), name, der_type, device.id)
        self.ders[der.id] = der
        device.der_ids.append(der.id)
        return 201, {**der_json(der), "device_id": device.id}

    async def _get_der(self, request: web.Request) -> Result:
        der = self.ders.get(request.match_info["der_id"])
        if der is None:
            raise ApiError(404, "not_found", "DER not found")
        self._device_for(self._caller(request), der.device_id)
        return 200, {**der_json(der), "device_id": der.device_id}

    # -- admin (/_sim/) -------------------------------------------------------------------------

    async def _admin_add_org(self, request: web.Request) -> Result:
        body = await read_body(request, required=("name",), optional=("id",))
        try:
            org_id = self.add_org(body.get("id"), text_field(body, "name"))
        except ValueError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return 201, org_json(self.orgs[org_id])

    async def _admin_issue_token(self, request: web.Request) -> Result:
        body = await read_body(
            request, optional=("identity_id", "org_ids", "identity_type", "ttl_s")
        )
        org_ids = body.get("org_ids", [])
        if not isinstance(org_ids, list) or not all(isinstance(o, str) for o in org_ids):
            raise ApiError(400, "invalid_request", "'org_ids' must be an array of strings")
        identity_id = str(body.get("identity_id") or self.new_identity_id())
        ttl_s = body.get("ttl_s", self.token_ttl_s)
        if not isinstance(ttl_s, int) or isinstance(ttl_s, bool):
            raise ApiError(400, "invalid_request", "'ttl_s' must be an integer")
        token = self.issue_token(
            identity_id, org_ids, identity_type=str(body.get("identity_type", "user")), ttl_s=ttl_s
        )
        # The same shape as Novacore's POST /auth/verify, plus the expiry.
        return 201, {
            "token": token,
            "identity_id": identity_id,
            "expires_at": iso_time(self.clock() + ttl_s),
        }

    async def _admin_expire_token(self, request: web.Request) -> Result:
        body = await read_body(request, required=("token",))
        self.expire_token(text_field(body, "token"))
        return 200, {"expired": True}

    async def _admin_register_gateway(self, request: web.Request) -> Result:
        body = await read_body(request, required=("serial", "public_key"))
        try:
            self.register_gateway(text_field(body, "serial"), text_field(body, "public_key"))
        except ValueError as exc:
            raise ApiError(400, "invalid_public_key", str(exc)) from None
        return 201, {
            "serial": body["serial"],
            "public_key": self.gateways[body["serial"]].public_key,
        }

    async def _admin_release_gateway(self, request: web.Request) -> Result:
        serial = request.match_info["serial"]
        if serial not in self.gateways:
            raise ApiError(404, "not_found", "Gateway not found")
        return 200, {**SUCCESS, "orphaned_devices": self.release_gateway(serial)}

    async def _admin_update_site(self, request: web.Request) -> Result:
        site = self._admin_lookup(self.sites, request.match_info["site_id"], "Site")
        body = await read_body(request, required=("name",))
        self.rename_site(site.id, text_field(body, "name"))
        return 200, site_json(site)

    async def _admin_delete_site(self, request: web.Request) -> Result:
        site = self._admin_lookup(self.sites, request.match_info["site_id"], "Site")
        self.remove_site(site.id)
        return 200, SUCCESS

    async def _admin_update_device(self, request: web.Request) -> Result:
        device = self._admin_lookup(self.devices, request.match_info["device_id"], "Device")
        body = await read_body(request, optional=("name", "manufacturer", "model", "state"))
        return 200, self.drift_device(device.id, **{k: str(v) for k, v in body.items()})

    async def _admin_delete_device(self, request: web.Request) -> Result:
        device = self._admin_lookup(self.devices, request.match_info["device_id"], "Device")
        self.remove_device(device.id)
        return 200, SUCCESS

    async def _admin_delete_der(self, request: web.Request) -> Result:
        der = self._admin_lookup(self.ders, request.match_info["der_id"], "DER")
        self.remove_der(der.id)
        return 200, SUCCESS

    @staticmethod
    def _admin_lookup(table: dict[str, T], key: str, what: str) -> T:
        if key not in table:
            raise ApiError(404, "not_found", f"{what} not found")
        return table[key]
