"""The listening sockets of `serve --workers N`: one per worker on the same port (SO_REUSEPORT).

uvicorn's workers share the one socket its parent binds, and whichever worker wakes first
accepts every connection that is waiting (uvloop accepts until the queue is empty). A crowd
that connects at once, as the load checks' 64 annotators do, then lands almost entirely on
one worker (63 of 64 connections in a measured start), and since an annotator keeps their
connection, the other worker idles for the whole campaign. With a socket of its own per
worker, bound with SO_REUSEPORT, the kernel spreads new connections over the workers by a hash
of their addresses (BENCHMARKS.md, "Issue 17: a listening socket per worker, group commit").

The parent binds the port first without listening on it: that reserves it, resolves port 0
to a real port, and reports a port in use at once, in the parent. Each worker's socket is
made in the worker itself: the parent hands uvicorn a `PerWorkerSocket`, which a worker
unpickles (uvicorn spawns its workers) into a socket of its own, bound and listening.
Where the system has no SO_REUSEPORT, the workers share the parent's socket, as uvicorn's.
"""

from __future__ import annotations

import socket
from typing import Any

REUSE_PORT = getattr(socket, "SO_REUSEPORT", None)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bound(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEADDR and SO_REUSEPORT, not listening."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if REUSE_PORT is not None:
            sock.setsockopt(socket.SOL_SOCKET, REUSE_PORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def worker_socket(host: str, port: int, backlog: int) -> socket.socket:
    """This worker's own listening socket on (host, port)."""
    sock = _bound(host, port)
    try:
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class PerWorkerSocket:
    """What the parent passes to uvicorn's workers: unpickled in a worker, a listening socket
    of its own on the parent's port (`worker_socket`)."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        self.host, self.port, self.backlog = host, port, backlog

    def __reduce__(self) -> tuple[Any, tuple[str, int, int]]:
        return worker_socket, (self.host, self.port, self.backlog)


def reserve(host: str, port: int) -> tuple[socket.socket, int]:
    """The parent's socket on (host, port), bound and not listening, and the port it got (port
    0: one the system chose). OSError where the port is taken."""
    sock = _bound(host, port)
    return sock, int(sock.getsockname()[1])


def balanced() -> bool:
    """Whether the workers can have sockets of their own (Linux's SO_REUSEPORT spreads the
    connections; on other systems SO_REUSEPORT does not, and the workers share one socket)."""
    import sys

    return REUSE_PORT is not None and sys.platform.startswith("linux")
