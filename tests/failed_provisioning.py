"""Enapter's provisioning down on demand: a simulator middleware that answers it with a 503
while `failing`, so that a replace (a delete, then a provisioning) stops half done. The
tests of interrupted replaces, through the CLI and the operator, use it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from reconciler.sim.fleet import SimFleet


class FailedProvisioning:
    """Answers Enapter's provisioning with a 503 while `failing` (installed before the
    simulator serves): a replace then deletes the device and cannot provision it again."""

    def __init__(self) -> None:
        self.failing = False

    def install(self, sims: SimFleet) -> None:
        @web.middleware
        async def fail(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.failing and request.method == "POST" and "/provisioning/" in request.path:
                return web.json_response({"errors": [{"code": "UNAVAILABLE", "message":
                                         "provisioning is down"}]}, status=503)
            return await handler(request)

        sims.enapter.app.middlewares.append(fail)
