"""Helpers for the end-to-end tests (tests/engine and tests/cli/test_plan_apply.py): small
fleets written as YAML documents, the simulated world for them (started in the test's own
event loop, or in a background thread for tests that run the CLI), and read-outs of the
simulators' state.

Every fleet here uses two organisations the simulated Novacore token can see: `org-alpha`
and `org-beta`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from reconciler.engine.apply import ApplyReport
from reconciler.engine.config import Settings
from reconciler.engine.reconcile import PlanResult, Reconciler
from reconciler.model.fleet import Fleet
from reconciler.plan.advice import Audience
from reconciler.plan.planner import PlanOptions
from reconciler.sim.fleet import SimFleet
from reconciler.sim.novacore import Device as NovacoreDevice
from reconciler.sources import loader

T = TypeVar("T")
API = "energy.reconciler.dev/v1alpha1"
# What a plan of the world is for when a test names no options: the CLI's user.
CLI = PlanOptions(audience=Audience.CLI)
ORG_A = "org-alpha"
ORG_B = "org-beta"
Doc = dict[str, Any]


# -- desired state ------------------------------------------------------------------------------


def serial_of(index: int) -> str:
    return f"zap-{0xA000 + index:016x}"


def site(name: str, *, org: str = ORG_A, display: str | None = None,
         labels: dict[str, str] | None = None) -> Doc:
    return {"apiVersion": API, "kind": "Site",
            "metadata": {"name": name, **({"labels": labels} if labels else {})},
            "spec": {"displayName": display or f"Site {name}", "timezone": "Europe/Stockholm",
                     "novacore": {"orgId": org}}}


def gateway(name: str, site_name: str, serial: str, *, org: str | None = None,
            allow_transfer: bool = False, labels: dict[str, str] | None = None) -> Doc:
    zap: dict[str, Any] = {"serial": serial, "url": "http://192.168.1.2"}
    if org:
        zap["orgId"] = org
    if allow_transfer:
        zap["allowTransfer"] = True
    return {"apiVersion": API, "kind": "Gateway",
            "metadata": {"name": name, **({"labels": labels} if labels else {})},
            "spec": {"siteRef": site_name, "zap": zap}}


def device(name: str, gateway_name: str, hardware_id: str, device_type: str,
           connection: dict[str, Any], ders: list[dict[str, Any]], **spec: Any) -> Doc:
    return {"apiVersion": API, "kind": "Device", "metadata": {"name": name},
            "spec": {"gatewayRef": gateway_name, "hardwareId": hardware_id,
                     "deviceType": device_type, "connection": connection, "ders": ders, **spec}}


def inverter(name: str, gateway_name: str, hardware_id: str, *, unit: int = 1,
             check_serial: bool = False) -> Doc:
    spec: dict[str, Any] = {"manufacturer": "Sungrow", "model": "SH10RT"}
    if check_serial:
        spec["verification"] = {"checkSerial": True, "via": "gateway"}
    return device(name, gateway_name, hardware_id, "inverter",
                  {"modbusTcp": {"host": "192.168.1.60", "port": 502, "unitId": unit,
                                 "profile": "sungrow"}},
                  [{"name": "pv", "type": "solar"}, {"name": "battery", "type": "battery"},
                   {"name": "grid", "type": "meter", "publish": False}], **spec)


def p1_meter(name: str, gateway_name: str, hardware_id: str) -> Doc:
    return device(name, gateway_name, hardware_id, "energy_meter", {"p1Uart": {}},
                  [{"name": "grid", "type": "meter"}])


def mqtt_battery(name: str, gateway_name: str, hardware_id: str, *,
                 broker: str = "192.168.1.70", password_from: dict[str, Any] | None = None) -> Doc:
    mqtt: dict[str, Any] = {"profile": "ferroamp", "brokerHost": broker}
    if password_from is not None:
        mqtt |= {"username": "extapi", "passwordFrom": password_from}
    return device(name, gateway_name, hardware_id, "battery", {"mqtt": mqtt},
                  [{"name": "battery", "type": "battery"}])


def standard_site(index: int, *, org: str = ORG_A, check_serial: bool = False,
                  labels: dict[str, str] | None = None) -> list[Doc]:
    """Site `s<index>` with gateway `s<index>-zap`, an inverter `s<index>-inv` (hardware id
    SG<index>) and a P1 meter `s<index>-p1` (P1M<index>)."""
    name = f"s{index}"
    return [site(name, org=org, labels=labels),
            gateway(f"{name}-zap", name, serial_of(index)),
            inverter(f"{name}-inv", f"{name}-zap", f"SG{index:04d}", check_serial=check_serial),
            p1_meter(f"{name}-p1", f"{name}-zap", f"P1M{index:04d}")]


TRANSFER_SERIAL = serial_of(7)


def shop_in_org_b() -> list[Doc]:
    """Gateway TRANSFER_SERIAL at org-beta's shop with an inverter and a battery; org-alpha's
    home exists without a gateway (so both organisations are declared, and observed)."""
    return [site("shop", org=ORG_B), gateway("gw", "shop", TRANSFER_SERIAL),
            inverter("inv", "gw", "SG-X"), mqtt_battery("legacy", "gw", "FERRO-LEGACY"),
            site("home", org=ORG_A)]


def gateway_moved_to_home(*, allow_transfer: bool) -> list[Doc]:
    """The same gateway declared at org-alpha's home, with only the inverter."""
    return [site("shop", org=ORG_B), site("home", org=ORG_A),
            gateway("gw", "home", TRANSFER_SERIAL, allow_transfer=allow_transfer),
            inverter("inv", "gw", "SG-X")]


def dump(docs: Iterable[Doc]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def load(docs: Iterable[Doc]) -> Fleet:
    return loader.load_texts([("fleet.yaml", dump(docs))]).fleet()


def write(directory: Path, docs: Iterable[Doc]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fleet.yaml"
    path.write_text(dump(docs), encoding="utf-8")
    return path


def declared_hardware(fleet: Fleet) -> dict[str, str]:
    """Hardware id -> serial of its gateway, for every declared device."""
    return {d.spec.hardware_id or "": fleet.gateways[d.spec.gateway_ref or ""].spec.zap.serial  # type: ignore[union-attr]
            for d in fleet.devices.values()}


# -- read-outs of the simulators ----------------------------------------------------------------


def cloud_devices(sims: SimFleet, hardware_id: str | None = None) -> list[NovacoreDevice]:
    return [d for d in sims.novacore.devices.values()
            if hardware_id is None or d.hardware_id == hardware_id]


def cloud_device(sims: SimFleet, hardware_id: str) -> NovacoreDevice:
    found = cloud_devices(sims, hardware_id)
    assert len(found) == 1, f"{len(found)} Novacore devices with hardware id {hardware_id}"
    return found[0]


def site_names(sims: SimFleet, org: str) -> list[str]:
    return sorted(s.name for s in sims.novacore.sites.values() if s.org_id == org)


def owner(sims: SimFleet, serial: str) -> str | None:
    return sims.novacore.gateways[serial].org_id


def set_latency(sims: SimFleet, latency_ms: float) -> None:
    for server in sims.http_servers():
        server.faults.latency_ms = latency_ms


def converged_exactly_once(sims: SimFleet, fleet: Fleet) -> None:
    """Novacore holds one active device per declared hardware id and one site per declared
    site; each Zap holds exactly its declared devices."""
    for hardware_id in declared_hardware(fleet):
        assert cloud_device(sims, hardware_id).state == "active"
    for declared in fleet.sites.values():
        novacore = declared.spec.novacore
        assert novacore is not None
        names = [s.name for s in sims.novacore.sites.values() if s.org_id == novacore.org_id]
        assert names.count(declared.spec.display_name) == 1, (declared.name, names)
    for gw in fleet.gateways.values():
        assert gw.spec.zap is not None
        expected = sorted(d.spec.hardware_id or "" for d in fleet.devices_of(gw.name))
        assert sorted(sims.zaps[gw.spec.zap.serial].devices) == expected, gw.name


class BodyRecorder:
    """Records the JSON bodies of the requests to one simulator endpoint (installed before
    the simulator starts), to check what was sent, e.g. that a password really reached the
    gateway. Only that endpoint: reading a body ends `can_read_body`, which some handlers
    consult."""

    def __init__(self, method: str, path: str) -> None:
        self.method, self.path = method, path
        self.bodies: list[Any] = []

    def install(self, app: web.Application) -> None:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            if (request.method, request.path) == (self.method, self.path):
                self.bodies.append(json.loads(await request.text()))  # cached for the handler
            return await handler(request)

        app.middlewares.append(record)


# -- a world in the test's event loop -----------------------------------------------------------


@dataclass
class World:
    """Simulators seeded for a fleet, and settings that point the engine at them."""

    sims: SimFleet
    fleet: Fleet
    settings: Settings
    env: dict[str, str] = field(default_factory=dict)

    def engine(self, fleet: Fleet | None = None) -> Reconciler:
        return Reconciler(fleet or self.fleet, self.settings)

    async def plan(self, options: PlanOptions | None = None, *,
                   fleet: Fleet | None = None) -> PlanResult:
        async with self.engine(fleet) as engine:
            return await engine.plan(options or CLI)

    async def apply(self, options: PlanOptions | None = None, *,
                    fleet: Fleet | None = None) -> tuple[PlanResult, ApplyReport]:
        async with self.engine(fleet) as engine:
            result = await engine.plan(options or CLI)
            return result, await engine.apply(result)

    async def noop_writes(self, fleet: Fleet | None = None) -> tuple[PlanResult, int, int]:
        """Plan from clean counters: (result, requests served, write requests served)."""
        self.sims.reset_counts()
        result = await self.plan(fleet=fleet)
        return result, self.sims.requests(), self.sims.writes()


def world_env(sims: SimFleet, state_dir: Path,
              extra: dict[str, str] | None = None) -> dict[str, str]:
    own = {"RECONCILER_STATE_DIR": str(state_dir),
           "RECONCILER_SECRETS_DIR": str(state_dir.parent / "secrets")}
    return sims.env() | own | (extra or {})


# -- a world in a background thread (for the CLI, which runs its own event loop) ---------------


class ThreadedSims:
    """A SimFleet served from a background thread with its own event loop, so that code
    which calls `asyncio.run` (the CLI) or another process can talk to it. Change the
    simulators only through `call`, which runs a function in that loop."""

    def __init__(self, fleet: Fleet, *, shared_modbus: bool = False,
                 before_start: Callable[[SimFleet], None] | None = None) -> None:
        self.sims = SimFleet()
        self.sims.seed_fleet(fleet, shared_modbus=shared_modbus)
        if before_start is not None:
            before_start(self.sims)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sims", daemon=True)

    def __enter__(self) -> ThreadedSims:
        self._thread.start()
        self.run(self.sims.start)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.sims.stop)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def run(self, coroutine: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        """Await `coroutine()` in the simulators' loop and return its result."""
        async def wrapper() -> T:
            return await coroutine()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `function(*args, **kwargs)` in the simulators' loop and return its result."""
        future: Future[T] = Future()

        def target() -> None:
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(target)
        return future.result(timeout=30)

    def env(self) -> dict[str, str]:
        return self.call(self.sims.env)


# What the `make_world` fixture (conftest.py) gives a test.
MakeWorld = Callable[..., Awaitable[World]]
