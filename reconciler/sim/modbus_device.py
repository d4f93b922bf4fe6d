"""Modbus TCP device simulator: inverters on a loopback port that answer the identity and
live-value registers the Zap (and the reconciler's identity check) read, per
platform-apis §5.

`ModbusDevice` is one device: its profile, serial, manufacturer/model and power values
that drift slowly over time. `ModbusDeviceSimulator` is one pymodbus TCP server hosting
several devices by unit id, so a benchmark can run many devices on few ports. It can
swap a device's serial (a replaced inverter), answer slowly (`slow_ms`), answer every
read with a Modbus exception (`ModbusDevice.fault`), take only so many clients at once
(`max_clients`: many devices serve one, closing the connection of any other at once),
leave reads for a unit id it does not host unanswered (`silent_to_other_units`), answer
every read as one unit id whatever was asked (`answers_as`) and go
offline and come back on the same port. It counts the reads it answers, the most it
was answering at once (`peak_reading`), the most clients it had at once (`peak_clients`)
and the connections it closed for being one too many (`turned_away`).

Register maps (0-based protocol addresses):

* `sungrow`: INPUT registers (FC 4) as Sungrow documents them: serial at 4989 (10 regs),
  device type code at 4999, rated power at 5000, PV power u32 at 5016, running state at
  13000, grid power i32 at 13009 (export positive, evcc reads it with scale -1), battery
  power at 13021 (magnitude; sign in 13000), SoC x0.1 % at 13022. 32-bit values are sent
  low word first (§5.2).
* any other profile: the SunSpec common model (model 1) in HOLDING registers at 40000
  ("SunS", ID 1, L 66, Mn, Md, Opt, Vr, SN, DA, Pad) and the end marker 0xFFFF at 40070
  (§5.1), or at another of SunSpec's base addresses (`sunspec_base`: 0 or 50000); or the
  older 65-register model without Pad (`sunspec_common_length`), and without the end
  marker (`sunspec_end_marker`). These
  devices also serve the live-value input registers of the Sungrow map (5016-5017,
  13000-13049): a simulator convention, so every simulated inverter has data.

Strings are UTF-8 (ASCII, as devices hold them), two bytes per register with the high byte
first, NUL padded.

pymodbus's own datastore (`SimDevice`) lays each register type out as one contiguous array
from the lowest to the highest address (~8,000 registers per Sungrow device) and is fixed
once the server is built. We instead answer through a small table object with the same
interface the server calls (`async_getValues`/`async_setValues`/`device_ids`, as
pymodbus's `SimCore`), which renders a device's registers on each read: values are
live, devices can be added while serving, and reads can be delayed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from reconciler.sim.lan import Lan
from reconciler.sim.listener import stop_accepting
from reconciler.sim.port_hold import PortHold

# Function codes (Modbus application protocol).
FC_READ_HOLDING = 3
FC_READ_INPUT = 4
_HOLDING_WRITE_CODES = frozenset({6, 16, 22, 23})

# Sungrow input-register map (§5.2; evcc's sungrow-hybrid template).
SUNGROW_SERIAL = 4989
SUNGROW_SERIAL_REGS = 10
SUNGROW_DEVICE_TYPE = 4999
SUNGROW_RATED_POWER = 5000  # x100 W
SUNGROW_TEMPERATURE = 5007  # x0.1 degC
SUNGROW_PV_POWER = 5016  # u32 W, low word first
SUNGROW_RUNNING_STATE = 13000  # bit 1 battery charging, bit 2 discharging
SUNGROW_PV_ENERGY = 13002  # u32 x0.1 kWh
SUNGROW_GRID_POWER = 13009  # i32 W, export positive
SUNGROW_BATTERY_VOLTAGE = 13019  # x0.1 V
SUNGROW_BATTERY_CURRENT = 13020  # x0.1 A, magnitude
SUNGROW_BATTERY_POWER = 13021  # W, magnitude
SUNGROW_SOC = 13022  # x0.1 %
SUNGROW_IMPORT_ENERGY = 13036  # u32 x0.1 kWh
STATE_CHARGING = 0x0002
STATE_DISCHARGING = 0x0004

# SunSpec common model (§5.1).
SUNSPEC_BASE = 40000
SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"
SUNSPEC_COMMON_ID = 1
SUNSPEC_COMMON_LENGTH = 66
SUNSPEC_MN = SUNSPEC_BASE + 4  # 16 regs
SUNSPEC_MD = SUNSPEC_BASE + 20  # 16 regs
SUNSPEC_OPT = SUNSPEC_BASE + 36  # 8 regs
SUNSPEC_VR = SUNSPEC_BASE + 44  # 8 regs
SUNSPEC_SN = SUNSPEC_BASE + 52  # 16 regs
SUNSPEC_SN_REGS = 16
SUNSPEC_DA = SUNSPEC_BASE + 68
SUNSPEC_END = SUNSPEC_BASE + 2 + 2 + SUNSPEC_COMMON_LENGTH  # 40070
SUNSPEC_END_ID = 0xFFFF

# Device type codes (§5.2) by model, for the Sungrow profile.
SUNGROW_TYPE_CODES = {"SH5.0RT": 0x0E00, "SH10RT": 0x0E03, "SH10RS": 0x0D1B, "SH5K-20": 0x0D09}

# (manufacturer, model) a device of each profile reports unless told otherwise.
PROFILE_IDENTITY: dict[str, tuple[str, str]] = {
    "sungrow": ("Sungrow", "SH10RT"),
    "solis": ("Ginlong", "RHI-5K-48ES-5G"),
    "deye": ("Deye", "SUN-10K-SG04LP3"),
    "sma": ("SMA", "SBS3.7-10"),
    "huawei": ("Huawei", "SUN2000-10KTL-M1"),
    "fronius": ("Fronius", "Symo GEN24 10.0"),
    "solaredge": ("SolarEdge", "SE10K"),
}

# Blocks a real Sungrow answers as a whole: registers in them we do not model read as 0.
# Every simulated device has the live-value block; only Sungrows the identity block.
SUNGROW_IDENTITY_BLOCK = range(4949, 5050)
LIVE_VALUE_BLOCK = range(13000, 13050)

DRIFT_PERIOD_S = 60.0  # one slow oscillation of the power values per minute


def encode_string(text: str, registers: int) -> list[int]:
    """UTF-8, two bytes per register, high byte first, NUL padded (and truncated). Bytes
    that are no UTF-8 are written as given in `text` by their surrogate escapes:
    `b"SG\\xff".decode("utf-8", "surrogateescape")` (a device holding junk)."""
    raw = text.encode("utf-8", "surrogateescape")[: registers * 2].ljust(registers * 2, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def decode_string(registers: Sequence[int]) -> str:
    """The inverse of `encode_string` (bytes that are no UTF-8 replaced): strips NUL and
    space padding."""
    raw = b"".join(r.to_bytes(2, "big") for r in registers)
    return raw.decode("utf-8", "replace").strip("\0 ")


def u32_low_first(value: int) -> list[int]:
    value &= 0xFFFFFFFF
    return [value & 0xFFFF, value >> 16]


def from_u32_low_first(registers: Sequence[int], *, signed: bool = False) -> int:
    value = registers[0] | (registers[1] << 16)
    if signed and value & 0x80000000:
        value -= 1 << 32
    return value


def to_i16(value: int) -> int:
    return value if value < 0x8000 else value - 0x10000


@dataclass(frozen=True)
class LiveValues:
    """Power values at one instant. Signs: PV production positive, grid import positive,
    battery charging positive."""

    pv_w: int
    grid_w: int
    battery_w: int
    soc: float  # fraction 0..1
    pv_energy_wh: int
    import_energy_wh: int


@dataclass
class ModbusDevice:
    """One simulated Modbus device (an inverter with battery and meter)."""

    serial: str
    profile: str = "sungrow"
    unit_id: int = 1
    manufacturer: str = ""  # default from PROFILE_IDENTITY
    model: str = ""
    version: str = "1.0.0"
    device_type_code: int | None = None  # Sungrow only; default from the model
    sunspec_base: int = SUNSPEC_BASE  # not Sungrow: where the map starts (0, 40000, 50000)
    # The common model's length: 66, or 65 without Pad (older devices); and whether the
    # end marker follows it (some devices end their map without one).
    sunspec_common_length: int = SUNSPEC_COMMON_LENGTH
    sunspec_end_marker: bool = True
    rated_power_w: int = 10000
    pv_w: float = 4200.0
    grid_w: float = -800.0
    battery_w: float = 1500.0
    soc: float = 0.55
    drift: float = 0.03  # relative amplitude of the slow change over time
    holding_writes: dict[int, int] = field(default_factory=dict)
    # Answer every read with this Modbus exception instead (a device in a fault state).
    fault: ExcCodes | None = None
    _epoch: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        manufacturer, model = PROFILE_IDENTITY.get(self.profile, (self.profile.title(), "SIM"))
        self.manufacturer = self.manufacturer or manufacturer
        self.model = self.model or model
        if self.device_type_code is None and self.is_sungrow:
            self.device_type_code = SUNGROW_TYPE_CODES.get(self.model, 0x0E03)

    @property
    def is_sungrow(self) -> bool:
        return self.profile == "sungrow"

    def live(self, now: float | None = None) -> LiveValues:
        """The power values at `now` (monotonic seconds): the configured values plus a slow
        oscillation, so consecutive reads differ slightly."""
        t = (time.monotonic() if now is None else now) - self._epoch
        wave = math.sin(2 * math.pi * t / DRIFT_PERIOD_S)
        pv = max(0, round(self.pv_w * (1 + self.drift * wave)))
        cowave = math.cos(2 * math.pi * t / DRIFT_PERIOD_S)
        battery = round(self.battery_w * (1 + self.drift * cowave))
        grid = round(self.grid_w + self.drift * 100 * wave)
        soc = min(1.0, max(0.0, self.soc + self.drift * 0.01 * wave))
        hours = t / 3600
        return LiveValues(
            pv,
            grid,
            battery,
            soc,
            pv_energy_wh=round(22_698_000 + pv * hours),
            import_energy_wh=round(5_120_000 + max(grid, 0) * hours),
        )

    def input_registers(self, now: float | None = None) -> dict[int, int]:
        """Input registers (FC 4) by address."""
        regs = dict.fromkeys(LIVE_VALUE_BLOCK, 0)
        if self.is_sungrow:
            regs.update(dict.fromkeys(SUNGROW_IDENTITY_BLOCK, 0))
        regs.update(self._live_registers(self.live(now)))
        if self.is_sungrow:
            regs.update(enumerate(encode_string(self.serial, SUNGROW_SERIAL_REGS), SUNGROW_SERIAL))
            regs[SUNGROW_DEVICE_TYPE] = self.device_type_code or 0
            regs[SUNGROW_RATED_POWER] = self.rated_power_w // 100
            regs[SUNGROW_TEMPERATURE] = 352
        return regs

    def holding_registers(self) -> dict[int, int]:
        """Holding registers (FC 3) by address: the SunSpec common model, except on
        Sungrow devices, plus whatever was written."""
        regs: dict[int, int] = {}
        if not self.is_sungrow:
            regs.update(self._sunspec_common())
        regs.update(self.holding_writes)
        return regs

    def _sunspec_common(self) -> dict[int, int]:
        values = [
            *SUNSPEC_MARKER,
            SUNSPEC_COMMON_ID,
            SUNSPEC_COMMON_LENGTH,
            *encode_string(self.manufacturer, 16),
            *encode_string(self.model, 16),
            *encode_string("", 8),
            *encode_string(self.version, 8),
            *encode_string(self.serial, SUNSPEC_SN_REGS),
            self.unit_id,
            *[0] * (self.sunspec_common_length - 65),  # Pad
            *([SUNSPEC_END_ID, 0] if self.sunspec_end_marker else []),
        ]
        values[3] = self.sunspec_common_length
        return dict(enumerate(values, self.sunspec_base))

    @staticmethod
    def _live_registers(live: LiveValues) -> dict[int, int]:
        state = (
            STATE_CHARGING if live.battery_w > 0 else STATE_DISCHARGING if live.battery_w < 0 else 0
        )
        battery_v = 4820  # 482.0 V high-voltage pack
        regs = dict(enumerate(u32_low_first(live.pv_w), SUNGROW_PV_POWER))
        regs[SUNGROW_RUNNING_STATE] = state | (0x0001 if live.pv_w else 0)
        regs.update(enumerate(u32_low_first(live.pv_energy_wh // 100), SUNGROW_PV_ENERGY))
        regs.update(enumerate(u32_low_first(-live.grid_w), SUNGROW_GRID_POWER))
        regs[SUNGROW_BATTERY_VOLTAGE] = battery_v
        regs[SUNGROW_BATTERY_CURRENT] = round(abs(live.battery_w) / (battery_v / 10) * 10)
        regs[SUNGROW_BATTERY_POWER] = min(abs(live.battery_w), 0xFFFF)
        regs[SUNGROW_SOC] = round(live.soc * 1000)
        regs.update(enumerate(u32_low_first(live.import_energy_wh // 100), SUNGROW_IMPORT_ENERGY))
        return regs


def read_registers(
    device: ModbusDevice, function_code: int, address: int, count: int
) -> list[int] | ExcCodes:
    """What `device` answers to a register read: the values, or ILLEGAL_ADDRESS when any
    register in the range is not mapped (as real devices answer)."""
    if device.fault is not None:
        return device.fault
    if function_code == FC_READ_INPUT:
        regs = device.input_registers()
    elif function_code == FC_READ_HOLDING or function_code in _HOLDING_WRITE_CODES:
        # Write requests read back what they wrote with their own function code.
        regs = device.holding_registers()
    else:
        return ExcCodes.ILLEGAL_FUNCTION
    try:
        return [regs[a] for a in range(address, address + count)]
    except KeyError:
        return ExcCodes.ILLEGAL_ADDRESS


class _UnitTable:
    """The datastore the pymodbus server calls; the same interface as pymodbus's `SimCore`.
    Dispatches by unit id, renders registers per read and applies the `slow_ms` delay."""

    def __init__(self, sim: ModbusDeviceSimulator) -> None:
        self._sim = sim
        self.in_flight: set[asyncio.Task[Any]] = set()

    def device_ids(self) -> list[int]:
        return list(self._sim.devices)

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        device = self._device(device_id)
        sim = self._sim
        sim.reading += 1
        sim.peak_reading = max(sim.peak_reading, sim.reading)
        try:
            await self._delay()
        finally:
            sim.reading -= 1
        sim.reads[(device_id, func_code)] += 1
        return read_registers(device, func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        device = self._device(device_id)
        await self._delay()
        if func_code not in _HOLDING_WRITE_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        device.holding_writes.update(enumerate((int(v) for v in values), address))
        return None

    def _device(self, device_id: int) -> ModbusDevice:
        answers_as = self._sim.answers_as
        device = self._sim.devices.get(device_id if answers_as is None else answers_as)
        if device is None:
            # pymodbus answers GATEWAY_NO_RESPONSE for this.
            raise NoSuchIdException(f"no device with unit id {device_id}")
        return device

    async def _delay(self) -> None:
        if self._sim.slow_ms <= 0:
            return
        # Remember the sleeping request so `stop()` can cancel it: pymodbus runs each
        # request in a task nobody awaits, which would otherwise outlive the server.
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        try:
            await asyncio.sleep(self._sim.slow_ms / 1000)
        finally:
            if task is not None:
                self.in_flight.discard(task)


class _ClientHandler(ServerRequestHandler):
    """One client's connection: counted, and closed at once past `max_clients`."""

    def __init__(self, server: _Server) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            server, server.trace_packet, server.trace_pdu, server.trace_connect
        )
        self.sim = server.sim
        self.counted = False

    def callback_connected(self) -> None:
        sim = self.sim
        if sim.max_clients is not None and sim.clients >= sim.max_clients:
            sim.turned_away += 1
            self.close()
            return
        super().callback_connected()
        self.counted = True
        sim.clients += 1
        sim.peak_clients = max(sim.peak_clients, sim.clients)

    def callback_disconnected(self, exc: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.sim.clients -= 1
        super().callback_disconnected(exc)

    def server_send(self, pdu: Any, addr: Any) -> None:
        if pdu and self.sim.answers_as is not None:
            pdu.dev_id = self.sim.answers_as
        super().server_send(pdu, addr)  # type: ignore[no-untyped-call]


class _Server(ModbusTcpServer):
    sim: ModbusDeviceSimulator

    def callback_new_connection(self) -> _ClientHandler:
        return _ClientHandler(self)


class ModbusDeviceSimulator:
    """A Modbus TCP server on loopback hosting devices by unit id. Not listening until
    `start()`; usable as `async with`."""

    def __init__(
        self,
        devices: Iterable[ModbusDevice] = (),
        *,
        slow_ms: float = 0.0,
        max_clients: int | None = None,
        silent_to_other_units: bool = False,
        answers_as: int | None = None,
    ) -> None:
        self.devices: dict[int, ModbusDevice] = {}
        for device in devices:
            self.add(device)
        self.slow_ms = slow_ms
        self.max_clients = max_clients
        # Leave a read for a unit id it does not host unanswered, as a device on its own
        # often does, instead of answering exception 11 as a Modbus gateway does.
        self.silent_to_other_units = silent_to_other_units
        # Answer every read as the device at this unit id, and saying so in the answer,
        # whatever unit id was asked: as a device on its own may.
        self.answers_as = answers_as
        # Clients connected now, the most there were at once, and those turned away.
        self.clients = 0
        self.peak_clients = 0
        self.turned_away = 0
        self.host = "127.0.0.1"
        self.port = 0
        self.reads: Counter[tuple[int, int]] = Counter()  # (unit id, function code) -> reads
        # Reads being answered now, and the most there were at once (clients' concurrency).
        self.reading = 0
        self.peak_reading = 0
        self._table = _UnitTable(self)
        self._server: ModbusTcpServer | None = None
        self._offline = False
        self._port_hold: PortHold | None = None  # while offline

    # -- devices ------------------------------------------------------------------------

    def add(self, device: ModbusDevice) -> ModbusDevice:
        """Host `device` at its unit id (also while serving)."""
        if device.unit_id in self.devices:
            raise ValueError(f"unit id {device.unit_id} is already taken")
        self.devices[device.unit_id] = device
        return device

    def remove(self, unit_id: int) -> None:
        del self.devices[unit_id]

    def device(self, unit_id: int = 1) -> ModbusDevice:
        return self.devices[unit_id]

    def set_serial(self, serial: str, unit_id: int = 1) -> None:
        """Swap the serial the device reports, as if the hardware had been replaced."""
        self.devices[unit_id].serial = serial

    def attach(self, lan: Lan, host: str, port: int = 502) -> None:
        """Make the declared LAN address `host:port` reach this server."""
        lan.modbus_endpoints[(host, port)] = self.endpoint

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def offline(self) -> bool:
        return self._offline

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on `host:port` (0 picks a free port) and return the bound port."""
        if self._server is not None:
            return self.port
        self.host = host
        # The constructor insists on a pymodbus datastore; it is replaced by our unit table
        # right away (see the module docstring).
        placeholder = SimDevice(0, simdata=SimData(0, datatype=DataType.REGISTERS))
        server = _Server(
            placeholder,
            address=(host, port or self.port),
            ignore_missing_devices=self.silent_to_other_units,
        )
        server.sim = self
        self.clients = 0
        server.context = self._table  # type: ignore[assignment]
        await server.serve_forever(background=True)
        listener: Any = server.transport  # an asyncio.Server once listening
        self.port = listener.sockets[0].getsockname()[1]
        self._server = server
        self._offline = False
        return self.port

    async def stop(self) -> None:
        """Close the port and every connection; cancel requests still being delayed."""
        self._release_port()
        await self._close()

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # Not one connection accepted an instant ago is left unclosed (`listener`).
            await stop_accepting(server.transport)
            await server.shutdown()  # type: ignore[no-untyped-call]
        tasks = list(self._table.in_flight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._table.in_flight.clear()

    async def set_offline(self, offline: bool = True) -> None:
        """Stop listening (connections are refused) or listen again on the same port, which
        is kept meanwhile (`port_hold`)."""
        if offline and not self._offline:
            await self._close()
            self._port_hold = PortHold(self.host, self.port)
            self._offline = True
        elif not offline and self._offline:
            self._release_port()
            await self.start(self.host, self.port)

    def _release_port(self) -> None:
        if self._port_hold is not None:
            self._port_hold.release()
            self._port_hold = None

    async def __aenter__(self) -> ModbusDeviceSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
