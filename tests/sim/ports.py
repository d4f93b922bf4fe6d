"""What a test of a simulator offline in refuse mode checks of its port: it stays bound, so
nobody else is handed it meanwhile (`reconciler.sim.port_hold`)."""

from __future__ import annotations

import errno
import socket


def assert_port_kept(host: str, port: int) -> None:
    """`host:port` is bound: another socket cannot bind it (a free port, or one with only
    closing connections left, could be)."""
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            other.bind((host, port))
        except OSError as error:
            assert error.errno == errno.EADDRINUSE, error
        else:
            raise AssertionError(f"{host}:{port} was free for another program to take")
    finally:
        other.close()
