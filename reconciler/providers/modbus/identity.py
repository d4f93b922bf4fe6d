"""Read a device's serial over Modbus, to check its identity before provisioning: the
Sungrow serial (input registers 4989, 10 registers) or the SunSpec common model's SN
(holding registers from 40000, or from SunSpec's other base addresses 0 and 50000).
Directly with pymodbus, or through the Zap's /api/modbus/read when only the gateway
reaches the device. See platform-apis §5."""

from __future__ import annotations

import asyncio
import contextlib
import re
import string
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from reconciler.errors import ProviderError, ProviderRejected, ProviderUnavailable

T = TypeVar("T")

SUNGROW_SERIAL = (4989, 10, "input")
SUNSPEC_BASE = 40000
# Where a SunSpec device may start its map (§5.1), the usual one first.
SUNSPEC_BASES = (SUNSPEC_BASE, 0, 50000)
_SUNS = (0x5375, 0x6E53)
_COMMON_MODEL = 1
# From the base: the marker (2), the common model's ID and L, Mn (16), Md (16), Opt (8),
# Vr (8), SN (16). Read up to the SN and no further: what follows (DA, and Pad in the
# 66-register model but not the 65-register one of older devices, then the next model or
# the end marker, which some devices leave out) a device may not have, and refuse the read.
_SN = slice(4 + 16 + 16 + 8 + 8, 4 + 16 + 16 + 8 + 8 + 16)
SUNSPEC_LENGTH = _SN.stop  # 68
# The shortest common model (L, registers after ID and L) that holds the whole SN.
_MIN_COMMON_LENGTH = _SN.stop - 4

# Modbus exception codes (Modbus application protocol §7) a read may be answered with...
_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# ...and those saying that the device, or the Modbus gateway in front of it, cannot answer
# now (busy; or no device answers at that unit id), not that it lacks the registers: worth
# trying again, as a device that does not answer at all is.
_TRANSIENT = frozenset({5, 6, 10, 11})
# ...and those saying that the registers asked for are not there (a SunSpec map elsewhere).
_ABSENT = frozenset({2, 3})
# ...and those from a Modbus gateway saying that no device answered behind it.
_SILENT_CODES = frozenset({10, 11})


# What pads a string in registers, at either end.
_PADDING = "\x00" + string.whitespace


class RegistersAbsent(ProviderRejected):
    """The device answered that it has no such registers: its map may be elsewhere."""


class NoAnswer(ProviderUnavailable):
    """The device did not answer within the timeout. Not retried in the run: a device that
    does not answer in time rarely does when asked again at once, and every attempt waits
    the whole timeout (three of them, for a thousand devices that never answer, held a plan
    for minutes). The plan says the serial is not read; an apply's check of it, or the next
    plan, asks again. Retryable all the same: a device busy, rebooting or behind a slow bus
    answers later, so an apply's check that failed so is tried again at the next run (the
    operator's next reconcile), not held as a wrong serial is."""

    retried_at_once = False


class GatewayReadFailed(ProviderUnavailable):
    """The Zap answered the read with a 502 that does not say why (`gateway_reader`): not
    retried, as a device that did not answer through it is not (`NoAnswer`). A 502 of
    /api/modbus/read is the Zap's word that its own Modbus read failed (platform-apis
    §1.2), often after its own Modbus timeout, not a failure of the Zap that the next call
    may not meet. The SunSpec map is still looked for at the next base address: the device
    may have no registers at this one. Retryable at the next run, as `NoAnswer` is."""

    retried_at_once = False


# (register, count, "input" | "holding") -> register values
RegisterReader = Callable[[int, int, str], Awaitable[list[int]]]


def decode_string(registers: list[int]) -> str:
    """Two bytes per register, high byte first; UTF-8, of which ASCII is a part (Sungrow
    documents its serial as UTF-8/ASCII, SunSpec as ASCII). A byte that is not UTF-8 is
    kept as its escape, `\\xff`: replaced by U+FFFD, what the device holds was lost, and
    two devices' different bytes read as the same serial.

    NUL bytes and spaces around the text are padding, on either side. A NUL inside it is
    kept, as the rest is: cut there, a serial after a NUL read as none, and one with more
    after a NUL as only what came before it; messages show it as `\\x00`."""
    raw = b"".join(int(r).to_bytes(2, "big") for r in registers)
    return raw.decode("utf-8", errors="backslashreplace").strip(_PADDING)


async def read_serial(profile: str, read: RegisterReader) -> str:
    """The serial a device reports, using the register map its profile implies. Registers
    that hold no serial (only NUL bytes and spaces: not set, or not passed on by a dongle
    in front of the device) are no serial, not another device's: they are said so, as the
    serial is not read, rather than compared with `hardwareId`."""
    if profile == "sungrow":
        register, count, kind = SUNGROW_SERIAL
        serial = decode_string(await read(register, count, kind))
        where = f"input registers {register}-{register + count - 1}"
    else:
        base, serial = await _sunspec_serial(profile, read)
        first = base + _SN.start
        where = f"the SunSpec common model's SN, holding registers {first}-{base + _SN.stop - 1}"
    if not serial:
        raise ProviderRejected(
            f"the device reports no serial: {where} are empty (profile {profile!r})",
            operation="modbus.read_serial",
        )
    return serial


async def _sunspec_serial(profile: str, read: RegisterReader) -> tuple[int, str]:
    """The SN of the common model at the first base address that has the SunSpec marker,
    with that base address."""
    unread: ProviderUnavailable | None = None
    for base in SUNSPEC_BASES:
        try:
            block = await read(base, SUNSPEC_LENGTH, "holding")
        except RegistersAbsent:
            continue  # the map is elsewhere
        except ProviderUnavailable as exc:
            # A gateway's 502 that does not say why (`gateway_reader`) may be a device with
            # no such registers, whose map may be at the next base. No answer at all (a
            # timeout, a refused connection, directly or through the gateway) is tried at
            # no other: the device is not there to answer at any.
            if exc.status != 502:
                raise
            unread = unread or exc
            continue
        if tuple(block[:2]) != _SUNS:
            continue
        if block[2] != _COMMON_MODEL:
            raise ProviderRejected(
                f"the SunSpec map at {base} starts with model {block[2]}, not the common "
                f"model (1) that holds the serial (profile {profile!r})",
                operation="modbus.read_serial",
            )
        if block[3] < _MIN_COMMON_LENGTH:
            raise ProviderRejected(
                f"the SunSpec common model at {base} is {block[3]} registers long, too short "
                f"to hold the serial (SN), which needs {_MIN_COMMON_LENGTH} (profile "
                f"{profile!r})",
                operation="modbus.read_serial",
            )
        return base, decode_string(block[_SN])
    if unread is not None:
        raise unread
    raise ProviderRejected(
        f"no SunSpec marker at {', '.join(map(str, SUNSPEC_BASES))}: the device does not "
        f"speak SunSpec (profile {profile!r})",
        operation="modbus.read_serial",
    )


# Said of a read not answered in time: which setting's time it was, and that it was asked
# once in this run (`NoAnswer`).
_NOT_AGAIN = " (RECONCILER_MODBUS_TIMEOUT; not retried in this run)"


def direct_reader(
    host: str,
    port: int,
    unit_id: int,
    *,
    timeout: float = 3.0,  # RECONCILER_MODBUS_TIMEOUT
    admit: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
) -> RegisterReader:
    """Reads registers with a pymodbus TCP client (one connection per read batch). Each
    read connects only once `admit()` lets it in, and holds it until the connection is
    closed (the caller's concurrency and rate limits)."""

    async def read(register: int, count: int, kind: str) -> list[int]:
        async with admit():
            return await _read_direct(host, port, unit_id, register, count, kind, timeout)

    return read


async def _read_direct(
    host: str, port: int, unit_id: int, register: int, count: int, kind: str, timeout_s: float
) -> list[int]:
    lost = asyncio.Event()
    other_units: list[int] = []  # unit ids of the answers to other unit ids than asked

    def traced(connected: bool) -> None:
        if not connected:
            lost.set()

    def received(sending: bool, data: bytes) -> bytes:
        # pymodbus skips an answer from another unit id than the one asked (byte 6 of the
        # MBAP header), logging it with a hex dump, and waits on for one that does not
        # come: seen here, it is not passed on, and the read ends at once, saying which
        # unit id answered. Unit id 0 asks whichever device is there.
        if not sending and unit_id and len(data) > 6 and data[6] != unit_id:
            other_units.append(data[6])
            lost.set()
            return b""
        return data

    # Imported here, not with the module: pymodbus is some 25 ms of every command's start
    # otherwise, and only a device verified directly reads through it.
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusException

    # No reconnecting: a device that closes the connection has answered for this read. Our
    # own timeout ends a read that is not answered, with a message that says so, before
    # pymodbus's ("No response received after 0 retries") does.
    client = AsyncModbusTcpClient(
        host,
        port=port,
        timeout=timeout_s + 1,
        retries=0,
        reconnect_delay=0,
        trace_connect=traced,
        trace_packet=received,
    )
    try:
        try:
            connected = await asyncio.wait_for(client.connect(), timeout_s)
        except TimeoutError:
            raise NoAnswer(
                f"Modbus device {host}:{port} did not accept the connection within "
                f"{timeout_s:g} s{_NOT_AGAIN}",
                operation="modbus.read",
            ) from None
        if not connected:
            raise ProviderUnavailable(
                f"cannot connect to Modbus device {host}:{port}", operation="modbus.read"
            )
        call = client.read_input_registers if kind == "input" else client.read_holding_registers
        result = await _unless_closed(
            call(register, count=count, device_id=unit_id), lost, timeout_s
        )
    except TimeoutError as exc:  # says nothing itself: the message says how long we waited
        # Named in full: many devices leave a read for a unit id they do not have unanswered.
        raise NoAnswer(
            f"Modbus device {host}:{port} did not answer the read of {count} registers at "
            f"{register} (unit id {unit_id}) within {timeout_s:g} s{_NOT_AGAIN}",
            operation="modbus.read",
        ) from exc
    except (_Closed, ModbusException, OSError) as exc:
        if other_units:
            # Not asked again: it answers as the same unit id the next time.
            raise ProviderRejected(
                f"Modbus device {host}:{port} answered the read of {count} registers at "
                f"{register} as unit id {other_units[0]}, not as unit id {unit_id} that was "
                f"asked; if it is the device, its `unitId` is {other_units[0]}",
                operation="modbus.read",
            ) from exc
        # Closed before the read was sent, pymodbus says "Not connected": the device closed it.
        if lost.is_set() or isinstance(exc, _Closed):
            raise ProviderUnavailable(
                f"Modbus device {host}:{port} closed the connection without answering the "
                f"read of {count} registers at {register} (unit id {unit_id}); a device "
                "that serves one client at a time does so while it serves another",
                operation="modbus.read",
            ) from exc
        raise ProviderUnavailable(
            f"Modbus device {host}:{port} did not answer: {exc}", operation="modbus.read"
        ) from exc
    finally:
        client.close()
    if result.isError():
        code = getattr(result, "exception_code", None)
        raise _answered(
            code or 0,
            f"Modbus device {host}:{port} answered the read of {count} registers at "
            f"{register} (unit id {unit_id})",
        )
    return list(result.registers)


def _answered(code: int, what: str) -> ProviderError:
    """The error of a read `what` answered with Modbus exception `code`."""
    reason = f"{_EXCEPTIONS.get(code, 'exception')} (exception {code})"
    error = (
        ProviderUnavailable
        if code in _TRANSIENT
        else RegistersAbsent
        if code in _ABSENT
        else ProviderRejected
    )
    return error(f"{what} with {reason}", operation="modbus.read")


class _Closed(Exception):
    """The device closed the connection before it answered."""


async def _unless_closed(answer: Awaitable[T], lost: asyncio.Event, timeout_s: float) -> T:
    """`answer`, unless the connection is lost first: pymodbus does not end a read whose
    connection closes, which then waited its whole timeout, and again at every attempt, for
    an answer that could no longer come."""
    read = asyncio.ensure_future(answer)
    closed = asyncio.ensure_future(lost.wait())
    try:
        done, _ = await asyncio.wait(
            (read, closed), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (read, closed):
            task.cancel()
        await asyncio.gather(read, closed, return_exceptions=True)
    if read in done:
        return read.result()
    if closed in done:
        raise _Closed
    raise TimeoutError


# What a gateway's 502 says of the device: the Modbus exception it answered with, or that
# it could not be reached or did not answer (platform-apis §1.2: "connection failed or read
# failed"; the simulator: "cannot connect", "no answer", "no device at").
_GATEWAY_EXCEPTION = re.compile(r"exception(?: code)?:? *(\d+)", re.IGNORECASE)
_GATEWAY_SILENT = re.compile(
    r"connect|time ?out|timed out|no (answer|response|device)|not respond|unreachable",
    re.IGNORECASE,
)


def gateway_reader(
    modbus_read: Callable[..., Awaitable[list[int]]], host: str, port: int, unit_id: int
) -> RegisterReader:
    """Reads registers through the Zap's POST /api/modbus/read. The Zap answers 502 both
    for a device that did not answer and for one that answered with a Modbus exception
    (platform-apis §1.2): its text says which. A device that did not answer is said so, and
    its SunSpec map not looked for at the next base address, where it would not answer
    either (each time after the Zap's own Modbus timeout); one without the registers is
    looked for there. No 502 is asked again, as no read left unanswered directly is: three
    attempts held the plan for three of the Zap's timeouts, at each base address, for a
    device that did not answer the first. A device busy (exception 5 or 6) answered at
    once, and is asked again."""

    async def read(register: int, count: int, kind: str) -> list[int]:
        try:
            return await modbus_read(
                ip=host,
                port=port,
                unit_id=unit_id,
                register=register,
                count=count,
                register_type=kind,
            )
        except ProviderUnavailable as exc:
            if exc.status != 502:
                raise
            what = f"Modbus device {host}:{port}"
            asked = f"the read of {count} registers at {register} (unit id {unit_id})"
            text = str(exc)
            code = _GATEWAY_EXCEPTION.search(text)
            if code is not None and int(code.group(1)) not in _SILENT_CODES:
                raise _answered(
                    int(code.group(1)), f"{what} answered {asked} through the gateway"
                ) from exc
            if code is not None or _GATEWAY_SILENT.search(text):
                raise NoAnswer(
                    f"{what} did not answer {asked} through the gateway ({text}; "
                    "not retried in this run)",
                    operation="modbus.read",
                ) from exc
            raise GatewayReadFailed(
                f"the gateway could not read {what}: {asked} failed ({text}; not retried "
                "in this run)",
                operation=exc.operation,
                address=exc.address,
                status=502,
            ) from exc

    return read
