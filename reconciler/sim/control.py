"""The simulator fleet's control API: the admin API of every simulator of a `SimFleet`, on
a loopback port of its own (`reconciler sim up` prints it as `Control`).

A simulator put in `offline: "refuse"` mode closes its port, and its own `/_sim/faults`
with it; from here it can be brought back, since this port is never faulted or closed:

    PUT $CONTROL/_sim/gateways/zap-3c61a4f0b2d8e917/faults  {"offline": "online"}

Routes (bodies and answers as a simulator's own `/_sim/faults`):

    GET      /_sim/servers                      each simulator's name and URL
    GET|PUT  /_sim/gateways/{serial}/faults     a Zap's faults
    GET|PUT  /_sim/clouds/{name}/faults         novacore, enapter or flatpeak
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from reconciler.sim.server import SimServer, bound_port, json_response

# Name -> simulator, asked at each request (a fleet's simulators are fixed once started).
Servers = Callable[[], dict[str, SimServer]]


class FleetControl:
    """The control API over the simulators `gateways()` and `clouds()` return."""

    def __init__(self, gateways: Servers, clouds: Servers) -> None:
        self.gateways = gateways
        self.clouds = clouds
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.router.add_get("/_sim/servers", self._servers)
        for kind in ("gateways", "clouds"):
            path = f"/_sim/{kind}/{{name}}/faults"
            self.app.router.add_get(path, self._get_faults)
            self.app.router.add_put(path, self._set_faults)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def faults_url(self, kind: str, name: str) -> str:
        return f"{self.url}/_sim/{kind}/{name}/faults"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.host = host
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        self.port = bound_port(site)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    def _server(self, request: web.Request) -> SimServer:
        kind = request.path.split("/")[2]
        servers = self.gateways() if kind == "gateways" else self.clouds()
        name = request.match_info["name"]
        if name not in servers:
            known = ", ".join(sorted(servers)) or "none"
            message = f"no {kind[:-1]} {name!r}; known: {known}"
            raise web.HTTPNotFound(
                text=json.dumps({"error": "not_found", "message": message}),
                content_type="application/json",
            )
        return servers[name]

    async def _servers(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "gateways": {name: sim.url for name, sim in self.gateways().items()},
                "clouds": {name: sim.url for name, sim in self.clouds().items()},
            }
        )

    async def _get_faults(self, request: web.Request) -> web.Response:
        return json_response(self._server(request).faults.as_dict())

    async def _set_faults(self, request: web.Request) -> web.Response:
        server = self._server(request)
        answer, offline = await server.update_faults(request)
        if offline is not None:
            # Not through the port it closes or reopens: done before answering.
            await server.set_offline(offline)
        return answer
