"""PURE: the connection endpoint a device takes on its Zap, by the Zap's own rules, and how
to say it. The Zap refuses (409) to add a device at an endpoint a device it has takes
already (platform-apis: "its UART/TCP endpoint conflicts with another"):

- Modbus TCP: the same address, port and unit id;
- Modbus RTU: the same unit id, whatever the serial settings (one RS-485 bus per Zap);
- P1: any other P1 device (one P1 UART per Zap);
- MQTT: the same broker host and port with the same profile (the Zap names an MQTT device
  after them, so a second one there has the first one's serial).

A host is compared as written, normalised only as far as the text says: a host name
without regard to case, an IP address in its one canonical form (`::1` is
`0:0:0:0:0:0:0:1`, `::ffff:192.168.1.60` is `192.168.1.60`). A name is never resolved:
a plan must not depend on the resolver of the machine that makes it (nor wait for it),
so a name and the address it resolves to are two endpoints here, as they may be to the
Zap.

`model.fleet` compares two declared Devices of one Gateway with it, and
`plan.zap_endpoint_clashes` a declared Device with the devices a Zap reports (in the Zap's
own field names: `of_zap_settings`).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.model.device import Connection, ModbusRtu, ModbusTcp, Mqtt
from reconciler.printable import printable

# The Zap's defaults, for a setting a device entry leaves out (`GET /api/devices/types`).
_DEFAULT_MODBUS_PORT = 502
_DEFAULT_UNIT_ID = 1
_DEFAULT_BROKER_PORT = 1883

# The spec's name of each connection type (`spec.connection.<name>`).
SPEC_NAMES = {
    "modbus_tcp": "modbusTcp",
    "modbus_rtu": "modbusRtu",
    "p1_uart": "p1Uart",
    "mqtt": "mqtt",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What two devices of one Zap may not share: the connection type and the settings
    the Zap tells devices of that type apart by."""

    type: str
    key: tuple[str | int, ...]

    def described(self) -> str:
        """`RS-485 unit id 3`, `Modbus TCP 192.168.1.60:502 unit id 1`, ... (what a Zap
        reported escaped, as it is shown on one line)."""
        if self.type == "modbus_tcp":
            host, port, unit = map(_shown, self.key)
            return f"Modbus TCP {_bracketed(host)}:{port} unit id {unit}"
        if self.type == "modbus_rtu":
            return f"RS-485 unit id {_shown(self.key[0])}"
        if self.type == "p1_uart":
            return "the P1 UART"
        host, port, profile = map(_shown, self.key)
        return f"MQTT broker {_bracketed(host)}:{port} with profile {profile}"

    @property
    def field(self) -> tuple[str, ...]:
        """The spec field to change to move a device off the endpoint."""
        block = ("spec", "connection", SPEC_NAMES.get(self.type, self.type))
        return (*block, "unitId") if self.type == "modbus_rtu" else block

    def remedy(self) -> str:
        """What would be valid instead: said to the user after the clash."""
        if self.type == "modbus_tcp":
            return "give each device on the Zap its own host, port or unitId"
        if self.type == "modbus_rtu":
            return "give each device on the Zap's RS-485 bus its own unitId"
        if self.type == "p1_uart":
            return "a Zap has one P1 port: declare one P1 device per Gateway"
        return "declare one device per broker host, port and profile on a Zap"


def of_connection(connection: Connection) -> Endpoint:
    """The endpoint a declared connection takes."""
    connection_type, settings = connection.chosen()
    if isinstance(settings, ModbusTcp):
        return Endpoint(
            connection_type, (normal_host(settings.host), settings.port, settings.unit_id)
        )
    if isinstance(settings, ModbusRtu):
        return Endpoint(connection_type, (settings.unit_id,))
    if isinstance(settings, Mqtt):
        return Endpoint(
            connection_type,
            (normal_host(settings.broker_host), settings.broker_port, settings.profile),
        )
    return Endpoint(connection_type, ())


def of_zap_settings(
    connection_type: str, profile: str | None, settings: Mapping[str, Any]
) -> Endpoint | None:
    """The endpoint of a device as the Zap has it, or would be sent it (`type`, `profile`
    and settings in the Zap's field names); None for a type the Zap does not document."""
    if connection_type == "modbus_tcp":
        return Endpoint(connection_type, (
            normal_host(str(settings.get("ip", ""))),
            _number(settings.get("port"), _DEFAULT_MODBUS_PORT),
            _number(settings.get("unit_id"), _DEFAULT_UNIT_ID),
        ))
    if connection_type == "modbus_rtu":
        return Endpoint(connection_type, (_number(settings.get("unit_id"), _DEFAULT_UNIT_ID),))
    if connection_type == "p1_uart":
        return Endpoint(connection_type, ())
    if connection_type == "mqtt":
        return Endpoint(connection_type, (
            normal_host(str(settings.get("broker_host", ""))),
            _number(settings.get("broker_port"), _DEFAULT_BROKER_PORT),
            str(profile or ""),
        ))
    return None


@functools.lru_cache(maxsize=16384)
def normal_host(host: str) -> str:
    """`host` as endpoints compare it: an IP address in its canonical form (an IPv4 one
    mapped into IPv6 as the IPv4 one), a host name in lower case (names are not case
    sensitive). Never resolved (see the module's docstring). Kept per host: every check
    of a fleet asks it of every device, and parsing an address costs more than the rest
    of the device's endpoint."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped if mapped is not None else address)


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets before a port, as in a URL (`[::1]:502`)."""
    return f"[{host}]" if ":" in host else host


def _shown(value: str | int) -> str:
    return printable(str(value))


def _number(value: Any, default: int) -> int | str:
    """A setting the Zap reported, or its default when it left it out. One it reported in
    another shape (`"502"`) is compared as written: guessed equal, it could block an add."""
    if value is None:
        return default
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)
