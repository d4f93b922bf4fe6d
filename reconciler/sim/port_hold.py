"""The port of a simulator that refuses connections, kept its own while it does.

A simulator put offline in refuse mode stops listening, and comes back on the same port so
that the URLs handed out stay right. A port merely closed is free for any other program
to take meanwhile: another simulator asking the system for a free port (many start and
stop side by side in a test run) can be given it, and then answers in this one's place,
with other devices, and this one cannot come back. A socket bound to the port but never
listening holds it: the system still refuses every connection to it (there is no
listener), never hands it out as a free port, and no other socket can bind it either,
until the hold is released, right before the simulator listens again. While connections
of the closed listener are still closing (TIME_WAIT), only a hold that lets them be
(`SO_REUSEADDR`, as the listener did) can be had: it still keeps the port from being
handed out as a free one, though a program that asks for this very port, as reusable,
may then take it."""

from __future__ import annotations

import contextlib
import socket


class PortHold:
    """`host:port` bound, not listening, until `release()`."""

    def __init__(self, host: str, port: int) -> None:
        self._socket: socket.socket | None = None
        with contextlib.suppress(OSError):
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM)[0]
            for reusable in (False, True):
                held = socket.socket(family, kind, proto)
                try:
                    if reusable:
                        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    held.bind(address)
                except OSError:
                    held.close()
                    continue
                self._socket = held
                return
        # Could not bind (taken already in the instant since the listener closed): the
        # simulator is offline all the same, and its return says why it cannot listen.

    @property
    def held(self) -> bool:
        return self._socket is not None

    def release(self) -> None:
        """Free the port, for the simulator to listen on it again."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
