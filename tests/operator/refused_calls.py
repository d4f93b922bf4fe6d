"""A simulator answering one kind of call with an error while a test says so (`refusing`),
and serving everything else: an outage, a proxy that does not route a path, a token past
its time, for one method under one path. Installed on the simulator's app before it
serves (`operator(..., before_start=...)`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from reconciler.sim.enapter import error_entry


class RefusedCalls:
    """`method` requests under `path` answered `status` with `body` while `refusing`."""

    def __init__(
        self, method: str, path: str, status: int, body: Mapping[str, Any], *,
        refusing: bool = False,
    ) -> None:
        self.method, self.path, self.status, self.body = method, path, status, dict(body)
        self.refusing = refusing

    def install(self, app: web.Application) -> None:
        @web.middleware
        async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
            if (self.refusing and request.method == self.method
                    and request.path.startswith(self.path)):
                return web.json_response(self.body, status=self.status)
            return await handler(request)  # type: ignore[no-any-return]

        app.middlewares.append(refuse)


def enapter_error(code: str, message: str) -> dict[str, Any]:
    """Enapter's error envelope (platform-apis §2.1), as its simulator writes it."""
    return {"errors": [error_entry(code, message)]}
