"""What a test of a simulator offline in refuse mode checks of its port: it stays bound, so
nobody else is handed it meanwhile (`reconciler.sim.port_hold`)."""

from __future__ import annotations

import errno
import socket


def assert_port_kept(host: str, port: int) -> None:
    """`host:port` is bound: another socket cannot bind it, not even one that asks for it as
    reusable (`SO_REUSEADDR`) and listens, as a server started on that port would."""
    for reusable in (False, True):
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if reusable:
                other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                other.bind((host, port))
                other.listen()
            except OSError as error:
                assert error.errno == errno.EADDRINUSE, error
            else:
                raise AssertionError(f"{host}:{port} was free for another program to take "
                                     f"({'reusable' if reusable else 'plain'} bind)")
        finally:
            other.close()
