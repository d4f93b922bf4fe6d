"""`SimFleet`: the whole simulated world for a fleet, in one process. It starts a Novacore
cloud, one Zap per declared gateway (each at its own loopback port), the Modbus devices
behind them on each site's own simulated LAN, and the Enapter and Flatpeak clouds, seeded
so that the hardware declared in the site YAML really exists. `env()` gives the variables
the reconciler reads to reach them; `control` (`sim.control`) changes any simulator's
faults from a port of its own, also while that simulator's port is closed.

State can be persisted to a file (`state_file`): saved after every change, restored on the
next start, with the same ports where they are free. A save that fails (its folder removed,
the disk full) is logged, naming the file and why, and tried again at the next change and
at the stop; the simulators go on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import secrets
from collections import defaultdict
from pathlib import Path
from typing import Any

from reconciler.engine.fanout import ended
from reconciler.engine.state import atomic_write
from reconciler.errors import ConfigError, Diagnostic
from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.sim.control import FleetControl
from reconciler.sim.enapter import EnapterSimulator
from reconciler.sim.enapter import Site as EnapterSite
from reconciler.sim.flatpeak import FlatpeakSimulator, derive_region
from reconciler.sim.flatpeak import timestamp as flatpeak_timestamp
from reconciler.sim.lan import Lan, MqttDevice
from reconciler.sim.modbus_device import ModbusDevice, ModbusDeviceSimulator
from reconciler.sim.novacore import NovacoreSimulator
from reconciler.sim.server import SimServer
from reconciler.sim.zap import ZapSimulator
from reconciler.sources import json_text

logger = logging.getLogger(__name__)

_MAX_UNITS = 247  # Modbus unit ids 1..247 on one simulated server


class SimFleet:
    """The simulated platforms and hardware of one fleet. Use as an async context manager."""

    def __init__(
        self,
        *,
        seed: int = 0,
        state_file: str | None = None,
        identity_id: str = "idt-00000000-0000-4000-8000-000000000001",
    ) -> None:
        self.seed = seed
        self.state_file = Path(state_file) if state_file else None
        self.identity_id = identity_id
        self.novacore = NovacoreSimulator(seed=seed)
        self.enapter = EnapterSimulator(seed=seed)
        self.flatpeak = FlatpeakSimulator(seed=seed)
        self.zaps: dict[str, ZapSimulator] = {}
        self.control = FleetControl(lambda: dict(self.zaps), self._clouds)
        self.lans: dict[str, Lan] = {}  # site name -> its LAN
        self.modbus: list[ModbusDeviceSimulator] = []
        self.enapter_token = f"enapter-{secrets.token_hex(12)}"
        self.flatpeak_account = "acc_" + secrets.token_hex(12)
        self.flatpeak_key = secrets.token_hex(16)
        self.novacore_token = ""
        self._orgs: set[str] = set()
        self._dirty = asyncio.Event()
        self._saver: asyncio.Task[None] | None = None
        self._ports: dict[str, int] = {}
        self._attachments: list[tuple[ModbusDeviceSimulator, Lan, str, int]] = []

    # -- seeding ---------------------------------------------------------------------------

    def seed_fleet(self, fleet: Fleet, *, shared_modbus: bool = False) -> None:
        """Create the hardware and accounts the fleet declares (not started yet).

        `shared_modbus` packs Modbus devices of many sites into few servers by unit id
        (large generated fleets); otherwise each declared host:port gets its own server."""
        for site in fleet.sites.values():
            self.lans.setdefault(site.name, Lan())
            if site.spec.novacore is not None:
                self._orgs.add(site.spec.novacore.org_id)
        by_endpoint: dict[tuple[str, str, int], list[ModbusDevice]] = defaultdict(list)
        for gateway in fleet.gateways.values():
            zap = gateway.spec.zap
            if zap is None:
                continue
            if zap.org_id:
                self._orgs.add(zap.org_id)
            lan = self.lans.setdefault(gateway.spec.site_ref, Lan())
            self.zaps[zap.serial] = ZapSimulator(serial=zap.serial, lan=lan, seed=self.seed)
            for device in fleet.devices_of(gateway.name):
                connection = device.spec.connection
                serial = device.spec.hardware_id or ""
                if connection is None:
                    continue
                if connection.modbus_tcp is not None:
                    tcp = connection.modbus_tcp
                    by_endpoint[(gateway.spec.site_ref, tcp.host, tcp.port)].append(
                        ModbusDevice(
                            serial=serial,
                            profile=tcp.profile,
                            unit_id=tcp.unit_id,
                            model=device.spec.model or "",
                        )
                    )
                elif connection.mqtt is not None:
                    mqtt = connection.mqtt
                    lan.mqtt_devices[(mqtt.broker_host, mqtt.broker_port, mqtt.profile)] = (
                        MqttDevice(serial=serial, profile=mqtt.profile)
                    )
                elif connection.p1_uart is not None:
                    lan.p1_meters[zap.serial] = serial
                elif connection.modbus_rtu is not None:
                    rtu = connection.modbus_rtu
                    lan.rtu_devices[(rtu.unit_id, rtu.profile)] = serial
        self._seed_modbus(by_endpoint, shared_modbus)
        for org in sorted(self._orgs):
            with contextlib.suppress(ValueError):
                self.novacore.add_org(org, org)
        for site in fleet.sites.values():
            novacore = site.spec.novacore
            if (
                novacore is not None
                and novacore.site_id
                and novacore.site_id not in self.novacore.sites
            ):
                # A declared siteId names a site that already exists in the cloud.
                self.novacore.add_site(novacore.org_id, site.spec.display_name, novacore.site_id)
        for zap_sim in self.zaps.values():
            self.novacore.register_gateway(zap_sim.serial, zap_sim.public_key_hex)
        self._seed_enapter_and_flatpeak(fleet)

    def _seed_enapter_and_flatpeak(self, fleet: Fleet) -> None:
        """A declared Enapter `siteId` or Flatpeak `locationId` names an object that already
        exists in that cloud: create it there, with the site's declared details."""
        for site in fleet.sites.values():
            enapter, flatpeak = site.spec.enapter, site.spec.flatpeak
            location = site.spec.location
            if (
                enapter is not None
                and enapter.site_id
                and enapter.site_id not in self.enapter.sites
            ):
                place = (
                    {
                        "name": location.name or site.spec.display_name,
                        "latitude": location.latitude,
                        "longitude": location.longitude,
                    }
                    if location is not None
                    else None
                )
                self.enapter.sites[enapter.site_id] = EnapterSite(
                    id=enapter.site_id,
                    name=site.spec.display_name,
                    timezone=site.spec.timezone,
                    location=place,
                )
            if (
                flatpeak is not None
                and flatpeak.location_id
                and flatpeak.location_id not in self.flatpeak.locations
            ):
                self.flatpeak.locations[flatpeak.location_id] = self._flatpeak_location(
                    site, flatpeak.location_id, flatpeak.customer_id
                )

    def _flatpeak_location(
        self, site: Site, location_id: str, customer_id: str | None
    ) -> dict[str, Any]:
        address = site.spec.location.address if site.spec.location is not None else None
        # A site adopting a location need not declare its address: the cloud has one.
        postal: dict[str, Any] = {
            "address_line1": "Unknown",
            "address_line2": None,
            "city": "Unknown",
            "state": None,
            "post_code": "00000",
            "country_code": "SE",
        }
        if address is not None:
            postal |= {
                "address_line1": address.line1,
                "address_line2": address.line2,
                "city": address.city,
                "post_code": address.post_code,
                "country_code": address.country_code,
            }
        location: dict[str, Any] = {
            "id": location_id,
            "object": "location",
            "live_mode": self.flatpeak.live_mode,
            "reference_id": site.name,
            "customer_id": customer_id,
            "timezone": None,
            "currency_code": None,
            "postal_address": postal,
            "geo_location": None,
            "time_created": flatpeak_timestamp(self.flatpeak.now()),
            # The account is created at start(); the location must belong to it.
            "account_id": self.flatpeak_account,
        }
        derive_region(location)
        return location

    def _seed_modbus(
        self, by_endpoint: dict[tuple[str, str, int], list[ModbusDevice]], shared: bool
    ) -> None:
        if not shared:
            for (site, host, port), devices in by_endpoint.items():
                server = ModbusDeviceSimulator(devices)
                self.modbus.append(server)
                self._attachments.append((server, self.lans[site], host, port))
            return
        # Shared: one server per unit id slot; each site's endpoint maps to its server.
        servers: dict[int, ModbusDeviceSimulator] = {}
        for (site, host, port), devices in by_endpoint.items():
            for device in devices:
                index = 0
                while index in servers and device.unit_id in servers[index].devices:
                    index += 1
                if index not in servers:
                    servers[index] = ModbusDeviceSimulator()
                    self.modbus.append(servers[index])
                servers[index].add(device)
                self._attachments.append((servers[index], self.lans[site], host, port))

    # -- lifecycle -------------------------------------------------------------------------

    def http_servers(self) -> list[SimServer]:
        return [self.novacore, self.enapter, self.flatpeak, *self.zaps.values()]

    async def start(self) -> None:
        self._restore()
        for modbus in self.modbus:
            await modbus.start()
        for attached, lan, host, port in self._attachments:
            attached.attach(lan, host, port)
        for key, server in self._named_servers().items():
            port = self._ports.get(key, 0)
            try:
                await server.start(port=port)
            except OSError:
                await server.start()
        try:
            await self.control.start(port=self._ports.get("control", 0))
        except OSError:
            await self.control.start()
        for serial, zap in self.zaps.items():
            zap.control_url = self.control.faults_url("gateways", serial)
        for name, cloud in self._clouds().items():
            cloud.control_url = self.control.faults_url("clouds", name)
        orgs = sorted(self._orgs)
        self.novacore_token = self.novacore.issue_token(self.identity_id, orgs)
        self.enapter.add_token(self.enapter_token)
        self.flatpeak.add_account(self.flatpeak_account, self.flatpeak_key)
        if self.state_file is not None:
            for server in self.http_servers():
                server.on_change(self._dirty.set)
            self._saver = asyncio.create_task(self._save_loop())

    @staticmethod
    def freeze_heap() -> None:
        """For a process that only serves simulators: move everything alive now (the seeded
        world, thousands of objects) out of the garbage collector's sight, so collections
        stop rescanning it while requests are served. Process-wide: not for tests, which
        run simulators in the test process."""
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            await ended(self._saver)
            self._save_or_log()
        await self.control.stop()
        for server in self.http_servers():
            await server.stop()
        for modbus in self.modbus:
            await modbus.stop()

    async def __aenter__(self) -> SimFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _clouds(self) -> dict[str, SimServer]:
        return {"novacore": self.novacore, "enapter": self.enapter, "flatpeak": self.flatpeak}

    def _named_servers(self) -> dict[str, SimServer]:
        named = self._clouds()
        named |= {f"zap:{serial}": sim for serial, sim in self.zaps.items()}
        return named

    # -- endpoints ---------------------------------------------------------------------------

    @property
    def gateway_urls(self) -> dict[str, str]:
        return {serial: sim.url for serial, sim in self.zaps.items()}

    def env(self) -> dict[str, str]:
        """RECONCILER_* variables that point the reconciler at this world."""
        return {
            "RECONCILER_NOVACORE_URL": self.novacore.url,
            "RECONCILER_NOVACORE_TOKEN": self.novacore_token,
            "RECONCILER_NOVACORE_IDENTITY": self.identity_id,
            "RECONCILER_GATEWAY_URLS": ",".join(f"{s}={u}" for s, u in self.gateway_urls.items()),
            "RECONCILER_ENAPTER_URL": self.enapter.url,
            "RECONCILER_ENAPTER_TOKEN": self.enapter_token,
            "RECONCILER_FLATPEAK_URL": self.flatpeak.url,
            "RECONCILER_FLATPEAK_ACCOUNT_ID": self.flatpeak_account,
            "RECONCILER_FLATPEAK_API_KEY": self.flatpeak_key,
        }

    # -- counting ------------------------------------------------------------------------------

    def requests(self) -> int:
        return sum(s.count() for s in self.http_servers())

    def writes(self) -> int:
        return sum(s.writes() for s in self.http_servers())

    def reset_counts(self) -> None:
        for server in self.http_servers():
            server.requests.clear()

    # -- persistence -------------------------------------------------------------------------

    def save(self) -> None:
        if self.state_file is None:
            return
        state = {
            "ports": {k: s.port for k, s in self._named_servers().items()}
            | {"control": self.control.port},
            "novacore": self.novacore.snapshot(),
            "enapter": self.enapter.snapshot(),
            "flatpeak": self.flatpeak.snapshot(),
            "zaps": {serial: sim.snapshot() for serial, sim in self.zaps.items()},
            "credentials": {
                "enapter_token": self.enapter_token,
                "flatpeak_account": self.flatpeak_account,
                "flatpeak_key": self.flatpeak_key,
            },
        }
        # It holds simulated keys and tokens: readable by its owner only from its creation
        # on, and a symlink left at its temporary name is replaced, not written through.
        atomic_write(self.state_file, json.dumps(state), private=True)

    def _restore(self) -> None:
        """Restore the saved world; a file that is not one is a ConfigError naming it, raised
        before any server starts."""
        if self.state_file is None or not self.state_file.is_file():
            return
        where = str(self.state_file)
        advice = "; delete it to start afresh, or pass another --state"
        try:
            state = json_text.loads(self.state_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                [Diagnostic(f"not valid JSON: {exc.msg}{advice}", file=where, line=exc.lineno,
                            column=exc.colno)],
                subject="simulator state",
            ) from None
        except json_text.TooComplex as exc:  # no state file the simulators wrote holds it
            raise ConfigError([Diagnostic(f"not a simulator state file: it holds {exc}{advice}",
                                          file=where)],
                              subject="simulator state") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([Diagnostic(f"cannot read it: {exc}{advice}", file=where)],
                              subject="simulator state") from None
        try:
            self._apply_saved(state)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A hand-edited or foreign file: say so instead of a traceback from deep inside.
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ConfigError(
                [Diagnostic(f"not a simulator state file ({what}){advice}", file=where)],
                subject="simulator state",
            ) from None

    def _apply_saved(self, state: dict[str, Any]) -> None:
        self._ports = {k: int(v) for k, v in state.get("ports", {}).items()}
        self.novacore.restore(state["novacore"])
        self.enapter.restore(state["enapter"])
        self.flatpeak.restore(state["flatpeak"])
        for serial, snapshot in state.get("zaps", {}).items():
            if serial in self.zaps:
                self.zaps[serial].restore(snapshot)
        credentials = state.get("credentials", {})
        self.enapter_token = credentials.get("enapter_token", self.enapter_token)
        self.flatpeak_account = credentials.get("flatpeak_account", self.flatpeak_account)
        self.flatpeak_key = credentials.get("flatpeak_key", self.flatpeak_key)

    async def _save_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._save_or_log()
            await asyncio.sleep(0.2)

    def _save_or_log(self) -> None:
        try:
            self.save()
        except OSError as exc:  # the world is still served; the file says less than it
            logger.error("cannot save the simulators' state to %s: %s", self.state_file,
                         exc.strerror or exc)
