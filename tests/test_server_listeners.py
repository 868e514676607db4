"""`serve --workers N`'s listening sockets: one per worker on one port (server/listeners.py)."""

from __future__ import annotations

import pickle
import select
import socket

import pytest

from listenloop.server.listeners import PerWorkerSocket, balanced, reserve

pytestmark = pytest.mark.skipif(not balanced(), reason="SO_REUSEPORT spreads connections on Linux only")


def _accepted(listeners: list[socket.socket], clients: int) -> list[int]:
    """Connect `clients` times to the listeners' port; how many each listener accepted."""
    port = listeners[0].getsockname()[1]
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
    counts = [0] * len(listeners)
    try:
        while sum(counts) < clients:
            ready, _, _ = select.select(listeners, [], [], 5)
            assert ready, f"{clients - sum(counts)} connections never reached a listener"
            for sock in ready:
                conn, _ = sock.accept()
                conn.close()
                counts[listeners.index(sock)] += 1
    finally:
        for conn in conns:
            conn.close()
    return counts


def test_each_worker_unpickles_a_listening_socket_of_its_own_on_the_parents_port() -> None:
    reserved, port = reserve("127.0.0.1", 0)
    with reserved:
        assert port > 0
        recipe = PerWorkerSocket("127.0.0.1", port, 64)
        # what uvicorn's spawned workers do with the parent's `sockets`
        first, second = (pickle.loads(pickle.dumps(recipe)) for _ in range(2))
        try:
            assert first.fileno() != second.fileno()
            assert first.getsockname()[1] == second.getsockname()[1] == port
            counts = _accepted([first, second], 64)
            assert sum(counts) == 64
            assert min(counts) > 0, f"one socket took every connection: {counts}"
        finally:
            first.close()
            second.close()


def test_the_reserved_port_takes_no_connection_and_refuses_other_servers() -> None:
    reserved, port = reserve("127.0.0.1", 0)
    with reserved:
        with pytest.raises(OSError):  # bound, not listening: a connection finds no one
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        other = socket.socket()
        with pytest.raises(OSError):  # a server without SO_REUSEPORT cannot take the port
            other.bind(("127.0.0.1", port))
        other.close()


def test_a_port_in_use_is_refused_in_the_parent() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(OSError):
            reserve("127.0.0.1", taken.getsockname()[1])
