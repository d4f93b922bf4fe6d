"""`ZapSimulator`: one Sourceful Zap gateway's local HTTP API (platform-apis §1.2, §1.3) on a
loopback port. One process hosts many, each on its own port.

Each gateway has a serial (`zap-<16 hex>`), a real P-256 key pair that signs on
`/api/crypto/sign`, a firmware version, and the devices configured on it, keyed by the
`sn` the device itself reports. Adding a Modbus TCP device really connects (with pymodbus)
to the Modbus device simulator the `Lan` maps the declared address to and reads its
serial; RTU, P1 and MQTT devices are simulated through the `Lan`. Every DER starts
disabled. MQTT passwords are never stored: only whether one was given.

Drift and setup endpoints live under `/_sim/` (see `add_routes`); the same operations are
Python methods for in-process tests. `snapshot`/`restore` persist the gateway, including
its private key; `public_state` (what `/_sim/state` shows) leaves the key out.

`GET /api/devices` is served from a cached body rebuilt only when the devices change: the
fleet benchmark polls it on 1,000 gateways.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import secrets
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from reconciler.model import profiles, vocab
from reconciler.sim import modbus_device
from reconciler.sim.faults import FaultConfig
from reconciler.sim.lan import Lan
from reconciler.sim.server import SimServer, json_response, read_json

CONNECTION_TYPES = ("modbus_tcp", "modbus_rtu", "p1_uart", "mqtt")
DEVICE_NAME = "software_zap"
DEFAULT_PV_RATED_POWER_W = 10000
# Local DER names in the order the firmware lists them.
_DER_ORDER = (
    vocab.DerType.SOLAR,
    vocab.DerType.BATTERY,
    vocab.DerType.METER,
    vocab.DerType.EV_CHARGER_PORT,
)
# Metadata a freshly detected DER reports (§1.2, the 201 example), by cloud DER type.
_DER_DEFAULTS: dict[vocab.DerType, dict[str, int]] = {
    vocab.DerType.SOLAR: {"rated_power": DEFAULT_PV_RATED_POWER_W},
    vocab.DerType.BATTERY: {"rated_power": 0, "capacity": 0},
    vocab.DerType.METER: {},
    vocab.DerType.EV_CHARGER_PORT: {"capacity": 0},
}
DER_NUMBER_FIELDS = ("rated_power", "installed_power", "capacity")
REGISTER_TYPES = {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "f32": 2, "u64": 4, "i64": 4, "str": 0}
_STRUCT_CODES = {"u16": "H", "i16": "h", "u32": "I", "i32": "i", "f32": "f", "u64": "Q", "i64": "q"}
MAX_READ_COUNT = 125  # Modbus limit for one register read
PIPE_ERRORS = {
    "message": "Message cannot contain | characters",
    "timestamp": "Timestamp cannot contain | characters",
}

KeyFormat = Literal["xy", "sec1"]
SignatureFormat = Literal["raw", "der"]


class ApiError(Exception):
    """An error answer: HTTP status and the `message` of the body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModbusUnavailable(Exception):
    """The Modbus device did not answer (refused, timed out, wrong unit id)."""


class ModbusRefused(Exception):
    """The Modbus device answered with an exception code, or not what the profile expects."""


# -- talking Modbus, as the firmware does --------------------------------------------------


@asynccontextmanager
async def modbus_link(
    host: str, port: int, timeout_s: float
) -> AsyncIterator[AsyncModbusTcpClient]:
    """A connected pymodbus client for one exchange; ModbusUnavailable when it cannot connect."""
    # No retries and no reconnect task: the firmware reports a failure rather than waiting.
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0)
    try:
        if not await client.connect():
            raise ModbusUnavailable(f"cannot connect to {host}:{port}")
        yield client
    finally:
        client.close()


async def read_registers(
    client: AsyncModbusTcpClient, unit_id: int, address: int, count: int, *, input_registers: bool
) -> list[int]:
    read = client.read_input_registers if input_registers else client.read_holding_registers
    try:
        response = await read(address, count=count, device_id=unit_id)
    except ModbusException as exc:
        raise ModbusUnavailable(str(exc)) from exc
    if response.isError():
        raise ModbusRefused(f"Modbus exception code {getattr(response, 'exception_code', '?')}")
    return list(response.registers)


async def modbus_read(
    host: str,
    port: int,
    unit_id: int,
    address: int,
    count: int,
    *,
    input_registers: bool,
    timeout_s: float,
) -> list[int]:
    """Connect, read one block of registers, disconnect."""
    try:
        async with asyncio.timeout(timeout_s * 2), modbus_link(host, port, timeout_s) as client:
            return await read_registers(
                client, unit_id, address, count, input_registers=input_registers
            )
    except TimeoutError as exc:
        raise ModbusUnavailable(f"no answer from {host}:{port}") from exc


@dataclass(frozen=True)
class ModbusIdentity:
    serial: str
    rated_power_w: int = DEFAULT_PV_RATED_POWER_W


async def read_identity(
    host: str, port: int, unit_id: int, profile: str, timeout_s: float
) -> ModbusIdentity:
    """The serial (and rated power where known) a Modbus device reports for its profile:
    Sungrow input registers 4989.., or the SunSpec common model at 40000."""
    md = modbus_device
    if profile == "sungrow":
        regs = await modbus_read(
            host,
            port,
            unit_id,
            md.SUNGROW_SERIAL,
            md.SUNGROW_RATED_POWER - md.SUNGROW_SERIAL + 1,
            input_registers=True,
            timeout_s=timeout_s,
        )
        serial = md.decode_string(regs[: md.SUNGROW_SERIAL_REGS])
        rated = regs[-1] * 100 or DEFAULT_PV_RATED_POWER_W
        identity = ModbusIdentity(serial, rated)
    else:
        regs = await modbus_read(
            host,
            port,
            unit_id,
            md.SUNSPEC_BASE,
            md.SUNSPEC_SN + md.SUNSPEC_SN_REGS - md.SUNSPEC_BASE,  # up to the SN, no more
            input_registers=False,
            timeout_s=timeout_s,
        )
        if tuple(regs[:2]) != md.SUNSPEC_MARKER:
            raise ModbusRefused("no SunSpec marker at 40000")
        offset = md.SUNSPEC_SN - md.SUNSPEC_BASE
        identity = ModbusIdentity(md.decode_string(regs[offset : offset + md.SUNSPEC_SN_REGS]))
    if not identity.serial:
        raise ModbusRefused("device reported an empty serial number")
    return identity


async def read_live(
    host: str, port: int, unit_id: int, timeout_s: float
) -> modbus_device.LiveValues:
    """Harvest: the live values from the input registers of the Sungrow map."""
    md = modbus_device
    async with asyncio.timeout(timeout_s * 2), modbus_link(host, port, timeout_s) as client:
        pv = await read_registers(client, unit_id, md.SUNGROW_PV_POWER, 2, input_registers=True)
        block = await read_registers(
            client,
            unit_id,
            md.SUNGROW_RUNNING_STATE,
            md.SUNGROW_IMPORT_ENERGY + 2 - md.SUNGROW_RUNNING_STATE,
            input_registers=True,
        )

    def at(address: int, count: int = 1) -> list[int]:
        start = address - md.SUNGROW_RUNNING_STATE
        return block[start : start + count]

    state = at(md.SUNGROW_RUNNING_STATE)[0]
    battery = at(md.SUNGROW_BATTERY_POWER)[0]
    return md.LiveValues(
        pv_w=md.from_u32_low_first(pv),
        grid_w=-md.from_u32_low_first(at(md.SUNGROW_GRID_POWER, 2), signed=True),
        battery_w=-battery if state & md.STATE_DISCHARGING else battery,
        soc=at(md.SUNGROW_SOC)[0] / 1000,
        pv_energy_wh=md.from_u32_low_first(at(md.SUNGROW_PV_ENERGY, 2)) * 100,
        import_energy_wh=md.from_u32_low_first(at(md.SUNGROW_IMPORT_ENERGY, 2)) * 100,
    )


def decode_value(registers: Sequence[int], kind: str, word_order: str) -> int | float | str:
    """A register value as GET /registers/{address} reports it."""
    if kind == "str":
        return modbus_device.decode_string(registers)
    words = list(registers) if word_order == "big" else list(reversed(registers))
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    value: int | float = struct.unpack(">" + _STRUCT_CODES[kind], raw)[0]
    return value


# -- request validation ------------------------------------------------------------------------


def _get_int(body: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int:
    value = body.get(key, default)
    if value is None:
        raise ApiError(400, f"Missing required field: {key}")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"Invalid {key}: expected an integer in {low}..{high}")
    return value


def _get_str(body: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(
            400,
            f"Missing required field: {key}"
            if value is None
            else f"Invalid {key}: expected a non-empty string",
        )
    return value


def _get_profile(body: dict[str, Any], connection_type: str, default: str | None = None) -> str:
    name = body.get("profile", default)
    if not isinstance(name, str) or not name:
        raise ApiError(400, "Missing required field: profile")
    profile = profiles.PROFILES.get(name)
    if profile is None:
        raise ApiError(400, f"Unknown profile: {name}")
    if connection_type not in profile.connection_types:
        raise ApiError(400, f"Profile {name} does not support connection type {connection_type}")
    return name


@dataclass(frozen=True)
class DeviceConfig:
    """A validated POST /api/devices body: the fields GET /api/devices shows back (never
    a password) and whether a password was given."""

    type: str
    profile: str
    connection: dict[str, Any]
    password_set: bool = False


def parse_config(body: Any) -> DeviceConfig:
    """Validate a device config per connection type (§1.2, GET /api/devices/types)."""
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON body")
    kind = body.get("type")
    if kind not in CONNECTION_TYPES:
        raise ApiError(
            400, f"Invalid device type: {kind}" if kind else "Missing required field: type"
        )
    if kind == "modbus_tcp":
        return DeviceConfig(
            kind,
            _get_profile(body, kind),
            {
                "ip": _get_str(body, "ip", required=True),
                "port": _get_int(body, "port", 502, 1, 65535),
                "unit_id": _get_int(body, "unit_id", 1, 0, 255),
            },
        )
    if kind == "modbus_rtu":
        return DeviceConfig(
            kind,
            _get_profile(body, kind),
            {
                "baud_rate": _get_int(body, "baud_rate", 9600, 1, 10_000_000),
                "unit_id": _get_int(body, "unit_id", 1, 0, 255),
                "parity": _get_int(body, "parity", 0, 0, 2),
                "data_bits": _get_int(body, "data_bits", 8, 5, 8),
                "stop_bits": _get_int(body, "stop_bits", 1, 1, 2),
            },
        )
    if kind == "p1_uart":
        return _parse_p1(body)
    return _parse_mqtt(body)


def _parse_p1(body: dict[str, Any]) -> DeviceConfig:
    parity = body.get("parity", "none")
    if parity not in ("none", "even", "odd"):
        raise ApiError(400, "Invalid parity: expected none, even or odd")
    connection: dict[str, Any] = {
        "baud_rate": _get_int(body, "baud_rate", 115200, 1, 10_000_000),
        "data_bits": _get_int(body, "data_bits", 8, 5, 8),
        "parity": parity,
        "stop_bits": _get_int(body, "stop_bits", 1, 1, 2),
    }
    manufacturer = _get_str(body, "manufacturer", required=False)
    if manufacturer is not None:
        connection["manufacturer"] = manufacturer
    return DeviceConfig("p1_uart", _get_profile(body, "p1_uart", "p1_meter"), connection)


def _parse_mqtt(body: dict[str, Any]) -> DeviceConfig:
    connection: dict[str, Any] = {
        "broker_host": _get_str(body, "broker_host", required=True),
        "broker_port": _get_int(body, "broker_port", 1883, 1, 65535),
    }
    for key in ("username", "client_id"):
        value = _get_str(body, key, required=False)
        if value is not None:
            connection[key] = value
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise ApiError(400, "Invalid password: expected a string")
    return DeviceConfig("mqtt", _get_profile(body, "mqtt"), connection, password_set=bool(password))


def parse_der_updates(body: Any, *, flags_only: bool) -> list[dict[str, Any]]:
    """The `ders` list of POST /types (type + enabled) or POST /ders (type + optional
    enabled and metadata)."""
    ders = body.get("ders") if isinstance(body, dict) else None
    if not isinstance(ders, list):
        raise ApiError(400, "Missing required field: ders")
    allowed = {"type", "enabled"} if flags_only else {"type", "enabled", *DER_NUMBER_FIELDS}
    for der in ders:
        if not isinstance(der, dict) or not isinstance(der.get("type"), str):
            raise ApiError(400, "Each DER needs a type")
        if flags_only and not isinstance(der.get("enabled"), bool):
            raise ApiError(400, f"DER {der['type']}: enabled must be true or false")
        if "enabled" in der and not isinstance(der["enabled"], bool):
            raise ApiError(400, f"DER {der['type']}: enabled must be true or false")
        unknown = set(der) - allowed
        if unknown:
            raise ApiError(400, f"DER {der['type']}: unknown field {sorted(unknown)[0]}")
        for key in DER_NUMBER_FIELDS:
            value = der.get(key)
            if key in der and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ApiError(400, f"DER {der['type']}: {key} must be a non-negative number")
    return ders


def default_ders(
    profile: str, rated_power_w: int = DEFAULT_PV_RATED_POWER_W
) -> list[dict[str, Any]]:
    """The DERs a device of `profile` reports when detected, all disabled."""
    allowed = vocab.allowed_der_types(profiles.PROFILES[profile].device_type)
    ders = []
    for cloud in _DER_ORDER:
        if cloud in allowed:
            der: dict[str, Any] = {
                "type": vocab.local_der_type(cloud),
                "enabled": False,
                **_DER_DEFAULTS[cloud],
            }
            if cloud is vocab.DerType.SOLAR:
                der["rated_power"] = rated_power_w
            ders.append(der)
    return ders


# -- state -------------------------------------------------------------------------------------


@dataclass
class ZapDevice:
    """One device configured on the gateway."""

    sn: str
    type: str
    profile: str
    device_type: str
    connection: dict[str, Any]
    ders: list[dict[str, Any]]
    connected: bool = True
    last_harvest: int | None = None
    password_set: bool = False

    @property
    def path(self) -> str:
        return f"spiffs/devices/{zlib.crc32(self.sn.encode()):08x}.json"

    def der(self, local_type: str) -> dict[str, Any] | None:
        return next((d for d in self.ders if d["type"] == local_type), None)

    def to_api(self) -> dict[str, Any]:
        """The device as GET /api/devices lists it."""
        body: dict[str, Any] = {
            "type": self.type,
            "profile": self.profile,
            "device_type": self.device_type,
            "sn": self.sn,
            **self.connection,
            "connected": self.connected,
        }
        if self.last_harvest is not None:
            body["last_harvest"] = self.last_harvest
        body["path"] = self.path
        body["ders"] = [dict(d) for d in self.ders]
        return body

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ZapDevice:
        return cls(**state)


def now_ms() -> int:
    return int(time.time() * 1000)


def _supported_body() -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {
        "batteries": [],
        "ev_chargers": [],
        "energy_meters": [],
        "inverters": [],
        "v2x_chargers": [],
    }
    group_of = {
        vocab.DeviceType.BATTERY: "batteries",
        vocab.DeviceType.EV_CHARGER: "ev_chargers",
        vocab.DeviceType.ENERGY_METER: "energy_meters",
        vocab.DeviceType.INVERTER: "inverters",
        vocab.DeviceType.V2X_CHARGER: "v2x_chargers",
    }
    for p in profiles.PROFILES.values():
        groups[group_of[p.device_type]].append(
            {
                "display_name": p.display_name,
                "profile": p.name,
                "device_type": p.device_type.value,
                "connection_types": list(p.connection_types),
            }
        )
    return {"count": len(profiles.PROFILES), **groups}


def _types_body() -> dict[str, Any]:
    def param(
        name: str,
        kind: str,
        default: Any = None,
        required: bool = False,
        options: list[Any] | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "type": kind, "required": required}
        if default is not None:
            entry["default"] = default
        if options is not None:
            entry["options"] = options
        return entry

    def profile_param(kind: str) -> dict[str, Any]:
        return param("profile", "string", required=True, options=profiles.profiles_for(kind))

    return {
        "types": [
            {
                "type": "modbus_tcp",
                "parameters": [
                    param("ip", "string", required=True),
                    param("port", "integer", 502),
                    param("unit_id", "integer", 1),
                    profile_param("modbus_tcp"),
                ],
            },
            {
                "type": "modbus_rtu",
                "parameters": [
                    param("baud_rate", "integer", 9600),
                    param("unit_id", "integer", 1),
                    profile_param("modbus_rtu"),
                    param("parity", "integer", 0, options=[0, 1, 2]),
                    param("data_bits", "integer", 8),
                    param("stop_bits", "integer", 1),
                ],
            },
            {
                "type": "p1_uart",
                "parameters": [
                    param("manufacturer", "string"),
                    param("baud_rate", "integer", 115200),
                    param("data_bits", "integer", 8),
                    param("parity", "string", "none", options=["none", "even", "odd"]),
                    param("stop_bits", "integer", 1),
                ],
            },
            {
                "type": "mqtt",
                "parameters": [
                    param("broker_host", "string", required=True),
                    param("broker_port", "integer", 1883),
                    param("username", "string"),
                    param("password", "string"),
                    param("client_id", "string"),
                    profile_param("mqtt"),
                ],
            },
        ]
    }


SUPPORTED_BODY = json.dumps(_supported_body()).encode()
TYPES_BODY = json.dumps(_types_body()).encode()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _api(handler: Handler) -> Handler:
    """Answer ApiError with the Zap's error body `{"message": ...}`."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return json_response({"message": exc.message}, status=exc.status)

    return wrapped


def _json_bytes(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


# -- the simulator -----------------------------------------------------------------------------


class ZapSimulator(SimServer):
    """One Zap gateway's local API. Not listening until `start()`."""

    name = "zap"

    def __init__(
        self,
        *,
        serial: str | None = None,
        private_key: ec.EllipticCurvePrivateKey | None = None,
        firmware_version: str = "1.8.50",
        device_name: str | None = None,
        lan: Lan | None = None,
        lan_ip: str = "192.168.1.2",
        modbus_timeout_s: float = 1.0,
        public_key_format: KeyFormat = "xy",
        signature_format: SignatureFormat = "raw",
        seed: int = 0,
        faults: FaultConfig | None = None,
    ) -> None:
        self.serial = serial or f"zap-{secrets.token_hex(8)}"
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())
        self.firmware_version = firmware_version
        self.device_name = device_name or self.serial
        self.lan = lan if lan is not None else Lan()
        self.lan_ip = lan_ip
        self.modbus_timeout_s = modbus_timeout_s
        self.public_key_format: KeyFormat = public_key_format
        self.signature_format: SignatureFormat = signature_format
        self.devices: dict[str, ZapDevice] = {}
        self._started_at = time.monotonic()
        # Nonces need not be unpredictable here, and a seeded stream keeps runs repeatable.
        self._random = random.Random(f"{seed}:{self.serial}")  # noqa: S311
        self._devices_body: bytes | None = None
        self._synthetic: dict[str, modbus_device.ModbusDevice] = {}
        super().__init__(seed=seed, faults=faults)

    # -- identity and signing -----------------------------------------------------------

    @property
    def public_key_hex(self) -> str:
        """X‖Y as 128 lowercase hex chars, or with the SEC1 `04` prefix when so configured."""
        numbers = self.private_key.public_key().public_numbers()
        xy = (numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")).hex()
        return "04" + xy if self.public_key_format == "sec1" else xy

    def sign(self, data: bytes) -> str:
        """ECDSA P-256 over SHA-256(data): hex of raw r‖s (64 bytes), or of DER."""
        der = self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        if self.signature_format == "der":
            return der.hex()
        r, s = decode_dss_signature(der)
        return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()

    def signed_message(self, message: str | None, timestamp: str | None) -> str:
        """The string /api/crypto/sign signs: `[message|]nonce|timestamp|serial`."""
        nonce = str(self._random.randint(100000, 999999))
        stamp = timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return "|".join([*([message] if message else []), nonce, stamp, self.serial])

    # -- devices (Python API) -----------------------------------------------------------

    def device(self, sn: str) -> ZapDevice | None:
        return self.devices.get(sn)

    async def add_device(self, body: Any) -> ZapDevice:
        """POST /api/devices: validate, connect to the device and read its sn, save.
        Raises ApiError (400, 409, 503)."""
        config = parse_config(body)
        self._check_endpoint_free(config)
        sn, rated = await self._probe(config)
        if sn in self.devices:
            raise ApiError(409, f"Device already exists: {sn}")
        device = ZapDevice(
            sn=sn,
            type=config.type,
            profile=config.profile,
            device_type=profiles.PROFILES[config.profile].device_type.value,
            connection=config.connection,
            ders=default_ders(config.profile, rated),
            password_set=config.password_set,
            last_harvest=now_ms(),
        )
        self.devices[sn] = device
        self._changed()
        return device

    def install_device(
        self,
        body: Any,
        *,
        sn: str | None = None,
        ders: list[dict[str, Any]] | None = None,
        connected: bool = True,
    ) -> ZapDevice:
        """Put a device on the gateway without connecting to it (setup and drift). `ders`
        entries override the defaults by type (e.g. `{"type": "pv", "enabled": True}`)."""
        config = parse_config(body)
        sn = sn or self._offline_serial(config)
        device = ZapDevice(
            sn=sn,
            type=config.type,
            profile=config.profile,
            device_type=profiles.PROFILES[config.profile].device_type.value,
            connection=config.connection,
            ders=default_ders(config.profile),
            connected=connected,
            password_set=config.password_set,
        )
        self.devices[sn] = device
        if ders:
            self._update_ders(device, parse_der_updates({"ders": ders}, flags_only=False))
        self._changed()
        return device

    def remove_device(self, sn: str) -> bool:
        found = self.devices.pop(sn, None) is not None
        if found:
            self._changed()
        return found

    def remove_all_devices(self) -> None:
        self.devices.clear()
        self._changed()

    def set_der(self, sn: str, der_type: str, **fields: Any) -> None:
        """Change a DER behind the reconciler's back, e.g. `set_der(sn, "pv", enabled=True)`."""
        self._update_ders(self._require(sn), [{"type": der_type, **fields}])
        self._changed()

    def set_connected(self, sn: str, connected: bool) -> None:
        self._require(sn).connected = connected
        self._changed()

    # -- persistence --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            **self._identity_state(),
            "private_key_pem": pem.decode(),
            "devices": [d.to_state() for d in self.devices.values()],
        }

    def public_state(self) -> dict[str, Any]:
        return {
            **self._identity_state(),
            "public_key": self.public_key_hex,
            "devices": [d.to_state() for d in self.devices.values()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.serial = state["serial"]
        self.device_name = state.get("device_name", self.serial)
        self.firmware_version = state.get("firmware_version", self.firmware_version)
        self.public_key_format = state.get("public_key_format", self.public_key_format)
        self.signature_format = state.get("signature_format", self.signature_format)
        key = serialization.load_pem_private_key(state["private_key_pem"].encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the saved private key is not an EC key")
        self.private_key = key
        self.devices = {d["sn"]: ZapDevice.from_state(d) for d in state.get("devices", [])}
        self._changed()

    def _identity_state(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "device_name": self.device_name,
            "firmware_version": self.firmware_version,
            "public_key_format": self.public_key_format,
            "signature_format": self.signature_format,
        }

    # -- HTTP ----------------------------------------------------------------------------

    def error_body(self, status: int, code: str, message: str) -> Any:
        return {"message": message}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        # Fixed paths before `{sn}` ones: aiohttp matches in registration order.
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/api/crypto", self._get_crypto),
            ("POST", "/api/crypto", self._post_crypto),
            ("POST", "/api/crypto/sign", self._post_sign),
            ("GET", "/api/system", self._get_system),
            ("GET", "/api/name", self._get_name),
            ("GET", "/api/devices", self._get_devices),
            ("POST", "/api/devices", self._post_devices),
            ("DELETE", "/api/devices", self._delete_devices),
            ("GET", "/api/devices/supported", self._get_supported),
            ("GET", "/api/devices/types", self._get_types),
            ("GET", "/api/devices/{sn}", self._get_device),
            ("DELETE", "/api/devices/{sn}", self._delete_device),
            ("POST", "/api/devices/{sn}/types", self._post_types),
            ("GET", "/api/devices/{sn}/ders", self._get_ders),
            ("POST", "/api/devices/{sn}/ders", self._post_ders),
            ("GET", "/api/devices/{sn}/data/json", self._get_data),
            ("GET", "/api/devices/{sn}/registers/{address}", self._get_register),
            ("POST", "/api/modbus/read", self._post_modbus_read),
            ("POST", "/_sim/devices", self._admin_install),
            ("DELETE", "/_sim/devices/{sn}", self._admin_remove),
            ("POST", "/_sim/devices/{sn}/ders", self._admin_ders),
            ("POST", "/_sim/devices/{sn}/connected", self._admin_connected),
        ]
        for method, path, handler in routes:
            router.add_route(method, path, _api(handler))

    async def _get_crypto(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "deviceName": DEVICE_NAME,
                "serialNumber": self.serial,
                "publicKey": self.public_key_hex,
            }
        )

    async def _post_crypto(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        wallet = body.get("wallet") if isinstance(body, dict) else None
        if not isinstance(wallet, str) or not wallet:
            raise ApiError(400, "Missing required field: wallet")
        id_and_wallet = f"{self.serial}:{wallet}"
        return json_response(
            {"idAndWallet": id_and_wallet, "signature": self.sign(id_and_wallet.encode())}
        )

    async def _post_sign(self, request: web.Request) -> web.Response:
        body = await read_json(request) if request.can_read_body else {}
        if not isinstance(body, dict):
            return json_response({"status": "error", "message": "Invalid JSON"}, status=400)
        fields: dict[str, str | None] = {}
        for key in ("message", "timestamp"):
            value = body.get(key)
            if value is not None and not isinstance(value, str):
                return json_response({"status": "error", "message": f"Invalid {key}"}, status=400)
            if value is not None and "|" in value:
                return json_response({"status": "error", "message": PIPE_ERRORS[key]}, status=400)
            fields[key] = value
        message = self.signed_message(fields["message"], fields["timestamp"])
        # `sign` first, as the firmware builds it (for BLE).
        return json_response({"sign": self.sign(message.encode()), "message": message})

    async def _get_system(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "time_utc_sec": int(time.time()),
                "uptime_seconds": int(time.monotonic() - self._started_at),
                "temperature_celsius": 41.5,
                "memory_kb": {"free": 182, "total": 320, "min_free": 141},
                "zap": {
                    "deviceId": self.serial,
                    "firmwareVersion": self.firmware_version,
                    "publicKey": self.public_key_hex,
                    "network": {
                        "wifiStatus": "connected",
                        "wifiConnected": True,
                        "localIP": self.lan_ip,
                        "ssid": "sim-lan",
                        "rssi": -52,
                        "internetConnected": True,
                        "mqttConnected": True,
                    },
                },
            }
        )

    async def _get_name(self, request: web.Request) -> web.Response:
        return json_response({"name": self.device_name})

    async def _get_devices(self, request: web.Request) -> web.Response:
        if self._devices_body is None:
            devices = [d.to_api() for d in self.devices.values()]
            self._devices_body = json.dumps({"count": len(devices), "devices": devices}).encode()
        return _json_bytes(self._devices_body)

    async def _post_devices(self, request: web.Request) -> web.Response:
        device = await self.add_device(await read_json(request))
        return json_response(
            {
                "message": "Device added and connected",
                "sn": device.sn,
                "ders": [dict(d) for d in device.ders],
            },
            status=201,
        )

    async def _delete_devices(self, request: web.Request) -> web.Response:
        self.remove_all_devices()
        return json_response({"message": "All devices removed"})

    async def _get_supported(self, request: web.Request) -> web.Response:
        return _json_bytes(SUPPORTED_BODY)

    async def _get_types(self, request: web.Request) -> web.Response:
        return _json_bytes(TYPES_BODY)

    async def _get_device(self, request: web.Request) -> web.Response:
        raise ApiError(501, "Not implemented")

    async def _delete_device(self, request: web.Request) -> web.Response:
        if not self.remove_device(request.match_info["sn"]):
            raise ApiError(404, "Device not found")
        return json_response({"message": "Device removed"})

    async def _post_types(self, request: web.Request) -> web.Response:
        device = self._require(request.match_info["sn"])
        updates = parse_der_updates(await read_json(request), flags_only=True)
        self._update_ders(device, updates)
        self._changed()
        return json_response({"message": "Types updated", "sn": device.sn})

    async def _get_ders(self, request: web.Request) -> web.Response:
        device = self._require(request.match_info["sn"])
        return json_response({"sn": device.sn, "ders": [dict(d) for d in device.ders]})

    async def _post_ders(self, request: web.Request) -> web.Response:
        device = self._require(request.match_info["sn"])
        updates = parse_der_updates(await read_json(request), flags_only=False)
        self._update_ders(device, updates)
        self._changed()
        return json_response({"message": "DERs updated", "sn": device.sn})

    async def _get_data(self, request: web.Request) -> web.Response:
        device = self._require(request.match_info["sn"])
        started = time.monotonic()
        live = await self._harvest(device)
        read_ms = round((time.monotonic() - started) * 1000)
        stamp = now_ms()
        device.last_harvest = stamp
        self._devices_body = None
        body: dict[str, Any] = {
            der["type"]: self._der_data(der["type"], device, live, stamp, read_ms)
            for der in device.ders
        }
        return json_response({**body, "version": "v1", "format": "json"})

    async def _get_register(self, request: web.Request) -> web.Response:
        device = self._require(request.match_info["sn"])
        address = _query_int(request.match_info["address"], "address", None, 0, 65535)
        query = request.query
        kind = query.get("type", "u16")
        if kind not in REGISTER_TYPES:
            raise ApiError(400, f"Invalid type: {kind}")
        count = REGISTER_TYPES[kind] or _query_int(query.get("size"), "size", 1, 1, MAX_READ_COUNT)
        function_code = _query_int(query.get("function_code"), "function_code", 4, 3, 4)
        word_order = query.get("endianness", "big")
        if word_order not in ("big", "little"):
            raise ApiError(400, "Invalid endianness: expected little or big")
        scale = _query_float(query.get("scale_factor"))
        if device.type != "modbus_tcp":
            raise ApiError(400, "Register access needs a Modbus TCP device")
        try:
            host, port = self._modbus_target(device.connection["ip"], device.connection["port"])
            regs = await modbus_read(
                host,
                port,
                device.connection["unit_id"],
                address,
                count,
                input_registers=function_code == 4,
                timeout_s=self.modbus_timeout_s,
            )
        except ModbusUnavailable as exc:
            raise ApiError(503, "Device busy or not responding") from exc
        except ModbusRefused as exc:
            raise ApiError(502, str(exc)) from exc
        value = decode_value(regs, kind, word_order)
        if scale is not None and not isinstance(value, str):
            value = value * scale
        return json_response({"address": address, "value": value, "type": kind, "registers": count})

    async def _post_modbus_read(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid JSON body")
        ip = _get_str(body, "ip", required=True)
        assert ip is not None
        port = _get_int(body, "port", 502, 1, 65535)
        unit_id = _get_int(body, "unit_id", 1, 0, 255)
        register = _get_int(body, "register", None, 0, 65535)
        count = _get_int(body, "count", 1, 1, MAX_READ_COUNT)
        register_type = body.get("register_type", "holding")
        if register_type not in ("holding", "input"):
            raise ApiError(400, "Invalid register_type: expected holding or input")
        try:
            host, target_port = self._modbus_target(ip, port)
            values = await modbus_read(
                host,
                target_port,
                unit_id,
                register,
                count,
                input_registers=register_type == "input",
                timeout_s=self.modbus_timeout_s,
            )
        except (ModbusUnavailable, ModbusRefused) as exc:
            raise ApiError(502, f"Modbus read failed: {exc}") from exc
        return json_response(
            {
                "ip": ip,
                "port": port,
                "unit_id": unit_id,
                "register": register,
                "count": count,
                "register_type": register_type,
                "values": values,
            }
        )

    # -- admin (drift and setup) ----------------------------------------------------------

    async def _admin_install(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid JSON body")
        config = {k: v for k, v in body.items() if k not in ("sn", "ders", "connected")}
        sn, ders, connected = body.get("sn"), body.get("ders"), body.get("connected", True)
        if (
            (sn is not None and not isinstance(sn, str))
            or not isinstance(connected, bool)
            or (ders is not None and not isinstance(ders, list))
        ):
            raise ApiError(400, "sn must be a string, ders a list, connected a boolean")
        device = self.install_device(config, sn=sn, ders=ders, connected=connected)
        self._notify()
        return json_response(device.to_api(), status=201)

    async def _admin_remove(self, request: web.Request) -> web.Response:
        if not self.remove_device(request.match_info["sn"]):
            raise ApiError(404, "Device not found")
        self._notify()
        return json_response({"message": "Device removed"})

    async def _admin_ders(self, request: web.Request) -> web.Response:
        device = self._require(request.match_info["sn"])
        self._update_ders(device, parse_der_updates(await read_json(request), flags_only=False))
        self._changed()
        self._notify()
        return json_response({"sn": device.sn, "ders": [dict(d) for d in device.ders]})

    async def _admin_connected(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        connected = body.get("connected") if isinstance(body, dict) else None
        if not isinstance(connected, bool):
            raise ApiError(400, "connected must be true or false")
        self.set_connected(request.match_info["sn"], connected)
        self._notify()
        return json_response({"sn": request.match_info["sn"], "connected": connected})

    # -- helpers --------------------------------------------------------------------------

    def _modbus_target(self, host: str, port: int) -> tuple[str, int]:
        """Where a Modbus TCP connection to `host:port` goes on the simulated LAN. An address
        the Lan does not map has no device behind it, unless it is a loopback address (a test
        pointing straight at a Modbus simulator): the simulator never probes a real network."""
        target = self.lan.modbus_target(host, port)
        if (host, port) not in self.lan.modbus_endpoints and not _is_loopback(host):
            raise ModbusUnavailable(f"no device at {host}:{port}")
        return target

    def _changed(self) -> None:
        self._devices_body = None

    def _notify(self) -> None:
        # The base class calls `on_change` after API writes only; admin writes change
        # persisted state too.
        if self._on_change is not None:
            self._on_change()

    def _require(self, sn: str) -> ZapDevice:
        device = self.devices.get(sn)
        if device is None:
            raise ApiError(404, "Device not found")
        return device

    @staticmethod
    def _update_ders(device: ZapDevice, updates: list[dict[str, Any]]) -> None:
        """Apply DER updates; only the listed DERs change. All or nothing."""
        unknown = [u["type"] for u in updates if device.der(u["type"]) is None]
        if unknown:
            raise ApiError(400, f"Device {device.sn} has no DER of type {unknown[0]}")
        for update in updates:
            der = device.der(update["type"])
            assert der is not None
            der.update({k: v for k, v in update.items() if k != "type"})

    def _check_endpoint_free(self, config: DeviceConfig) -> None:
        """409 when the device's endpoint (TCP address and unit, RTU unit, the UART) is
        taken by a configured device."""
        keys = {"modbus_tcp": ("ip", "port", "unit_id"), "modbus_rtu": ("unit_id",)}
        for device in self.devices.values():
            if device.type != config.type:
                continue
            same = all(
                device.connection[k] == config.connection[k] for k in keys.get(config.type, ())
            )
            if config.type == "modbus_tcp" and same:
                raise ApiError(409, "A device is already configured at this address and unit id")
            if config.type == "modbus_rtu" and same:
                raise ApiError(409, "A device is already configured at this RS-485 unit id")
            if config.type == "p1_uart":
                raise ApiError(409, "The P1 UART is already in use")

    async def _probe(self, config: DeviceConfig) -> tuple[str, int]:
        """Connect to the device as the firmware does: its sn and PV rated power."""
        if config.type == "modbus_tcp":
            c = config.connection
            try:
                host, port = self._modbus_target(c["ip"], c["port"])
                identity = await read_identity(
                    host, port, c["unit_id"], config.profile, self.modbus_timeout_s
                )
            except (ModbusUnavailable, ModbusRefused) as exc:
                raise ApiError(503, f"Failed to connect to device: {exc}") from exc
            return identity.serial, identity.rated_power_w
        if config.type == "mqtt":
            found = self.lan.mqtt_device(
                config.connection["broker_host"], config.connection["broker_port"], config.profile
            )
            if not found.online:
                raise ApiError(503, "Failed to connect to device: MQTT device not responding")
        return self._offline_serial(config), DEFAULT_PV_RATED_POWER_W

    def _offline_serial(self, config: DeviceConfig) -> str:
        """The sn of a device the simulator does not connect to for real."""
        c = config.connection
        if config.type == "modbus_rtu":
            return self.lan.rtu_device(int(c["unit_id"]), config.profile)
        if config.type == "p1_uart":
            return self.lan.p1_meter(self.serial)
        if config.type == "mqtt":
            return self.lan.mqtt_device(c["broker_host"], c["broker_port"], config.profile).serial
        return f"{config.profile}_{c['ip']}_{c['unit_id']}"

    async def _harvest(self, device: ZapDevice) -> modbus_device.LiveValues:
        if device.type == "modbus_tcp":
            c = device.connection
            try:
                host, port = self._modbus_target(c["ip"], c["port"])
                return await read_live(
                    host, port, device.connection["unit_id"], self.modbus_timeout_s
                )
            except (ModbusUnavailable, ModbusRefused, TimeoutError) as exc:
                raise ApiError(503, "Device busy or not responding") from exc
        # Devices without a real simulator behind them get synthetic values that drift.
        synthetic = self._synthetic.get(device.sn)
        if synthetic is None:
            synthetic = self._synthetic[device.sn] = modbus_device.ModbusDevice(device.sn)
        return synthetic.live()

    @staticmethod
    def _der_data(
        der_type: str, device: ZapDevice, live: modbus_device.LiveValues, stamp: int, read_ms: int
    ) -> dict[str, Any]:
        base = {
            "type": der_type,
            "timestamp": stamp,
            "read_time_ms": read_ms,
            "make": device.profile,
        }
        cloud = vocab.cloud_der_type(der_type)
        if cloud is vocab.DerType.SOLAR:
            # Firmware sign convention: PV production is negative.
            return {**base, "W": -live.pv_w, "total_generation_Wh": live.pv_energy_wh}
        if cloud is vocab.DerType.METER:
            return {**base, "W": live.grid_w, "total_import_Wh": live.import_energy_wh}
        volts = 482.0
        return {
            **base,
            "W": live.battery_w,
            "V": volts,
            "A": round(live.battery_w / volts, 1),
            "SoC_nom_fract": round(live.soc, 3),
        }


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _query_int(raw: str | None, name: str, default: int | None, low: int, high: int) -> int:
    if raw is None and default is not None:
        return default
    try:
        value = int(raw or "")
    except ValueError as exc:
        raise ApiError(400, f"Invalid {name}") from exc
    if not low <= value <= high:
        raise ApiError(400, f"Invalid {name}: expected {low}..{high}")
    return value


def _query_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise ApiError(400, "Invalid scale_factor") from exc
