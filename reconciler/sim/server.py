"""`SimServer`: the part every HTTP simulator shares. An aiohttp application on a loopback
port with request counting per endpoint, the fault layer, and admin endpoints under
`/_sim/` (state, request counts, faults) that the fault layer never touches.

A platform simulator subclasses it, adds its routes in `add_routes`, renders errors in its
platform's body shape in `error_body`, and implements `snapshot`/`restore` so its state can
be persisted to a file and survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reconciler.sim.faults import Decision, FaultConfig, FaultInjector, Offline
from reconciler.sim.listener import stop_accepting
from reconciler.sim.port_hold import PortHold

ADMIN_PREFIX = "/_sim"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def json_response(body: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", **kwargs
    )


def bound_port(site: web.TCPSite) -> int:
    """The port a started site listens on (the one the system chose for port 0)."""
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    port: int = sockets[0].getsockname()[1]
    return port


class SimServer:
    """Base of the HTTP simulators. Not started until `start()`."""

    name = "sim"

    def __init__(self, *, seed: int = 0, faults: FaultConfig | None = None) -> None:
        self.injector = FaultInjector(faults or FaultConfig(), seed)
        self.requests: Counter[str] = Counter()
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port_hold: PortHold | None = None  # while offline in refuse mode
        self._offline_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._on_change: Callable[[], None] | None = None
        # Where this simulator's faults can be changed while its port is closed (set by the
        # fleet, `sim.control`): said in the answer that closes it.
        self.control_url: str | None = None
        self.app = web.Application(middlewares=[self._middleware], client_max_size=1024**2)
        self.app.router.add_get(f"{ADMIN_PREFIX}/state", self._admin_state)
        self.app.router.add_get(f"{ADMIN_PREFIX}/requests", self._admin_requests)
        self.app.router.add_delete(f"{ADMIN_PREFIX}/requests", self._admin_reset_requests)
        self.app.router.add_get(f"{ADMIN_PREFIX}/faults", self._admin_faults)
        self.app.router.add_put(f"{ADMIN_PREFIX}/faults", self._admin_set_faults)
        self.add_routes(self.app.router)

    # -- to be provided by each platform ------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def error_body(self, status: int, code: str, message: str) -> Any:
        """The platform's error body for `status`."""
        return {"error": code, "message": message}

    def snapshot(self) -> dict[str, Any]:
        """State as JSON-compatible data (persistence and /_sim/state)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Load state saved by `snapshot`."""

    def public_state(self) -> dict[str, Any]:
        """What /_sim/state shows; by default the snapshot."""
        return self.snapshot()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def faults(self) -> FaultConfig:
        return self.injector.config

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on `host:port` (0 picks a free port) and return the base URL."""
        self.host = host
        if self._runner is None:
            # handler_cancellation: aiohttp otherwise keeps running a handler whose client
            # has gone, so a hanging request (Offline.HANG) would never end, even after stop().
            self._runner = web.AppRunner(
                self.app,
                access_log=None,
                handle_signals=False,
                shutdown_timeout=0.5,
                handler_cancellation=True,
            )
            await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port or self.port, reuse_address=True)
        await self._site.start()
        self.port = bound_port(self._site)
        return self.url

    async def stop(self) -> None:
        # Under the lock: a change of offline mode under way (the admin API's, in the
        # background) would otherwise hold the port again after it was released here.
        async with self._offline_lock:
            await self._close_listener()
            self._release_port()
            if self._runner is not None:
                await self._runner.cleanup()
            self._runner = None

    async def set_offline(self, mode: Offline | str) -> None:
        """Go offline (refuse or hang) or come back online on the same port, which is kept
        meanwhile (`port_hold`)."""
        mode = Offline(mode)
        # Closing the listener takes turns of the loop (`listener`): a second change (the
        # admin API's, the fleet control API's) or a stop waits for the first to be done.
        async with self._offline_lock:
            await self._set_offline(mode)

    async def _set_offline(self, mode: Offline) -> None:
        previous = self.faults.offline
        self.faults.offline = mode
        if mode is Offline.REFUSE and previous is not Offline.REFUSE and self._site is not None:
            await self._close_listener()
            self._port_hold = PortHold(self.host, self.port)
            # A gateway gone from the network answers nothing, not even on a connection a
            # client keeps alive: stopping the listener alone left those answering.
            if self._runner is not None and self._runner.server is not None:
                for connection in self._runner.server.connections:
                    connection.force_close()
        elif mode is not Offline.REFUSE and previous is Offline.REFUSE and self._runner is not None:
            self._release_port()
            await self.start(self.host, self.port)

    async def _close_listener(self) -> None:
        """Stop listening, without dropping a connection just accepted (`listener`)."""
        site, self._site = self._site, None
        if site is not None:
            await stop_accepting(site._server)
            await site.stop()

    def _release_port(self) -> None:
        if self._port_hold is not None:
            self._port_hold.release()
            self._port_hold = None

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every request that may have changed state."""
        self._on_change = callback

    # -- counting ---------------------------------------------------------------------------

    def count(self, method: str | None = None) -> int:
        """Requests served (excluding admin), optionally only of one method."""
        if method is None:
            return sum(self.requests.values())
        return sum(n for key, n in self.requests.items() if key.startswith(method + " "))

    def writes(self) -> int:
        """Requests that could change state (any method but GET/HEAD/OPTIONS)."""
        return sum(
            n for key, n in self.requests.items() if key.split(" ", 1)[0] not in READ_METHODS
        )

    # -- middleware and admin ---------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX + "/"):
            return await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else request.path
        self.requests[f"{request.method} {route}"] += 1
        decision = self.injector.decide(write=request.method not in READ_METHODS)
        if decision.hang:
            await asyncio.Event().wait()  # never answers; cancelled when the client gives up
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        if decision.status is not None and not decision.lose_answer:
            return self._fault_response(decision)
        try:
            response = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            # The router found no route (or not for this method): answer in the platform's shape.
            code = "not_found" if exc.status == 404 else "method_not_allowed"
            return json_response(self.error_body(exc.status, code, exc.reason), status=exc.status)
        finally:
            if request.method not in READ_METHODS and self._on_change is not None:
                self._on_change()
        if decision.answer_delay_s:
            await asyncio.sleep(decision.answer_delay_s)
        if decision.lose_answer:
            return self._fault_response(decision)  # the write took effect all the same
        if decision.garbled:
            return json_response(self.faults.garble_body)
        return response

    def _fault_response(self, decision: Decision) -> web.Response:
        assert decision.status is not None
        headers = {}
        if self.faults.retry_after:
            headers["Retry-After"] = self.faults.retry_after
        elif decision.retry_after_s is not None:
            headers["Retry-After"] = f"{decision.retry_after_s:g}"
        code = "rate_limited" if decision.status == 429 else "unavailable"
        message = (
            "Too many requests"
            if decision.status == 429
            else "Service temporarily unavailable (simulated fault)"
        )
        return json_response(
            self.error_body(decision.status, code, message), status=decision.status, headers=headers
        )

    async def _admin_state(self, request: web.Request) -> web.Response:
        return json_response(self.public_state())

    async def _admin_requests(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "total": self.count(),
                "writes": self.writes(),
                "by_endpoint": dict(sorted(self.requests.items())),
            }
        )

    async def _admin_reset_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return json_response({"total": 0})

    async def _admin_faults(self, request: web.Request) -> web.Response:
        return json_response(self.faults.as_dict())

    async def update_faults(self, request: web.Request) -> tuple[web.Response, Offline | None]:
        """Apply the fault update in `request` (a JSON object of `FaultConfig` fields, and
        `?seed=`), all of it or none; the answer, and the offline mode asked for, which
        the caller sets (`set_offline`) when it can: here, or through the fleet's control
        API (`sim.control`) for a simulator whose port is closed."""
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            offline = changes.pop("offline", None)
            if offline is not None and offline not in {m.value for m in Offline}:
                raise ValueError(
                    f"offline must be one of {', '.join(m.value for m in Offline)}, "
                    f"not {offline!r}"
                )
            self.faults.update(changes)
            if "seed" in request.query:
                self.injector.reseed(int(request.query["seed"]))
        except (KeyError, ValueError, TypeError) as exc:
            error = {"error": "invalid_fault", "message": str(exc)}
            return json_response(error, status=400), None
        answer = self.faults.as_dict()
        if offline is None:
            return json_response(answer), None
        answer["offline"] = offline  # the mode it is about to be in
        if offline == Offline.REFUSE and self.control_url:
            answer["back_online"] = f"PUT {self.control_url} {{\"offline\": \"online\"}}"
        return json_response(answer), Offline(offline)

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        answer, offline = await self.update_faults(request)
        if offline is not None:
            # Turning REFUSE on closes the port this request came in on: answer first. The
            # task is kept referenced until it ends (the loop holds only weak references).
            task = asyncio.get_running_loop().create_task(self.set_offline(offline))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return answer


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or None when it is not valid JSON."""
    with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
        return json.loads(await request.text())
    return None
