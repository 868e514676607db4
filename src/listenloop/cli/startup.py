"""Start-up checks of the server commands (`serve`, `demo`): a clear one-line error before anything
starts, instead of a traceback or a log line after the banner."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from listenloop.errors import ListenloopError


def check_port(host: str, port: int) -> None:
    """The port is a TCP port that nothing listens on yet at `host`."""
    if not 0 < port < 65536:
        raise ListenloopError(f"--port {port}: not a TCP port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ListenloopError(f"--host {host}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(address)
        except OSError as exc:
            reason = exc.strerror
            if exc.errno == errno.EADDRINUSE:
                reason = "the address is already in use (another server?)"
            raise ListenloopError(f"--port {port}: cannot listen on {host}:{port}: {reason or exc}") from None


def private_files() -> None:
    """From here on, what this process (and its children) create is for its owner only
    (umask 077): audio, spectrograms, uploads and the database hold the crowd's work."""
    os.umask(0o077)


def data_folder(data: Path) -> Path:
    """`data` as an existing folder (made for its owner only if missing); a file or an
    unwritable place is an error."""
    data = data.expanduser()
    if data.exists() and not data.is_dir():
        raise ListenloopError(f"--data {data}: not a folder")
    try:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ListenloopError(f"--data {data}: {exc.strerror or exc}") from None
    return data


def check_scheduler(address: str, timeout: float = 5.0) -> None:
    """A Dask scheduler answers at `address` (tcp://HOST:PORT): found now, not at the first round."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or not parts.port:
        raise ListenloopError(f"--scheduler {address}: expected tcp://HOST:PORT")
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout).close()
    except OSError as exc:
        raise ListenloopError(
            f"--scheduler {address}: no Dask scheduler answers there ({exc.strerror or exc})"
        ) from None
