"""The simulated local network behind the gateways: which physical devices exist, at which
address, with which serial. The Zap simulator consults it when a device is added, the way
real firmware probes the LAN.

Declared addresses in site YAML are real LAN addresses (192.168.1.60:502); the Modbus
device simulators listen on loopback ports. `modbus_endpoints` maps one to the other, so
examples stay realistic. Devices not registered get deterministic serials derived from
their connection, as the firmware would report for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MqttDevice:
    """A device reachable through an MQTT broker."""

    serial: str
    profile: str
    online: bool = True


@dataclass
class Lan:
    """The physical world the simulated gateways see."""

    # (declared host, declared port) -> (loopback host, port) of a Modbus device simulator.
    modbus_endpoints: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    # (broker host, broker port, profile) -> device behind that broker.
    mqtt_devices: dict[tuple[str, int, str], MqttDevice] = field(default_factory=dict)
    # gateway serial -> serial of the smart meter on its P1 port.
    p1_meters: dict[str, str] = field(default_factory=dict)
    # (unit id, profile) -> serial of a device on the gateway's RS-485 bus.
    rtu_devices: dict[tuple[int, str], str] = field(default_factory=dict)

    def modbus_target(self, host: str, port: int) -> tuple[str, int]:
        """Where a Modbus TCP connection to `host:port` really goes."""
        return self.modbus_endpoints.get((host, port), (host, port))

    def mqtt_device(self, host: str, port: int, profile: str) -> MqttDevice:
        found = self.mqtt_devices.get((host, port, profile))
        return found or MqttDevice(serial=f"{profile}_{host}", profile=profile)

    def rtu_device(self, unit_id: int, profile: str) -> str:
        return self.rtu_devices.get((unit_id, profile), f"rtu_{profile}_{unit_id}")

    def p1_meter(self, gateway_serial: str) -> str:
        return self.p1_meters.get(gateway_serial, f"p1_{gateway_serial.removeprefix('zap-')}")

    def snapshot(self) -> dict[str, Any]:
        return {
            "modbus_endpoints": [
                [h, p, th, tp] for (h, p), (th, tp) in self.modbus_endpoints.items()
            ],
            "mqtt_devices": [
                [h, p, prof, d.serial, d.online] for (h, p, prof), d in self.mqtt_devices.items()
            ],
            "p1_meters": dict(self.p1_meters),
            "rtu_devices": [
                [unit, profile, serial] for (unit, profile), serial in self.rtu_devices.items()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.modbus_endpoints = {
            (h, p): (th, tp) for h, p, th, tp in state.get("modbus_endpoints", [])
        }
        self.mqtt_devices = {
            (h, p, prof): MqttDevice(serial, prof, online)
            for h, p, prof, serial, online in state.get("mqtt_devices", [])
        }
        self.p1_meters = dict(state.get("p1_meters", {}))
        self.rtu_devices = {(int(u), p): s for u, p, s in state.get("rtu_devices", [])}
