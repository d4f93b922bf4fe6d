"""Closing a simulator's listening port without dropping the connections it has just accepted.

asyncio accepts a connection in one turn of the loop and makes its transport in a task that
runs at the next. A server closed in between makes that task fail (CPython's
`Server._attach` asserts that the server is still open: python/cpython#109564), and the
accepted socket is then dropped without being closed, for the garbage collector to find
later as `ResourceWarning: unclosed <socket ... laddr=('127.0.0.1', <the port>)>`, in
whatever test happens to be running. A client that connected an instant before a simulator
went offline or stopped was enough. `stop_accepting` shuts that window: no connection is
accepted any more, and every one accepted already has its transport and its protocol, so
closing the server and then its connections leaves none behind.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def stop_accepting(server: Any) -> None:
    """Stop `server` (an `asyncio.Server`) accepting connections, and return once every
    connection it accepted has been handed to its protocol. The port stays bound and
    listening (connections wait in the backlog) until the server is closed, which the
    caller does next."""
    loop = asyncio.get_running_loop()
    for sock in getattr(server, "sockets", None) or ():
        loop.remove_reader(sock.fileno())
    # The tasks making the accepted connections' transports were queued when they were
    # accepted, so before this turn's: they run first. Each queues its protocol's
    # `connection_made` as it runs, so that one needs a turn of its own.
    for _ in range(2):
        await asyncio.sleep(0)
