"""uvicorn's HTTP/1.1 protocol (httptools) with bounds on what a client may hold open.

uvicorn bounds neither the size of a request's head (request line and headers) nor the time a
client takes to send it: httptools' parsing time grows with the square of one header's length
(an 80 MiB header stalled every request for seconds) and a connection that sends half a
request, or nothing, stays open for good. `GuardedHttpToolsProtocol` adds:

- a head of more than `max_head_bytes` gets 431 and the connection is closed;
- a head must arrive complete within `read_timeout` seconds of its first byte (408, closed);
- a request body may not pause for more than `read_timeout` seconds (closed; a body the
  application is slow to read does not count: then the server is not reading);
- a new connection that sends nothing is closed after the keep-alive time, as a connection
  idle between requests is (uvicorn's `timeout_keep_alive`).

It also puts this process's set of request tasks under the scope key `REQUESTS`: its size
tells the annotators' fast lane whether other requests wait behind the one it serves
(`server/fast_lane.py` then defers a clip's re-aggregation until they are served).

`listenloop serve` hands it to uvicorn as `http=guarded_protocol(...)` (its bounds are in
`cli/startup.py`, flags `--max-header-bytes` and `--read-timeout`).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUESTS = "listenloop.requests"  # scope key: the request tasks of this process, this one included


def _status(code: int, reason: str, text: str) -> bytes:
    body = text.encode()
    head = (
        f"HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a size bound on request heads and read timeouts (module docstring)."""

    def __init__(
        self,
        *args: Any,
        max_head_bytes: int,
        read_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = max_head_bytes
        self.read_timeout = read_timeout
        self._head_bytes = 0  # bytes received since the current head began
        self._head_since: float | None = None  # when the current head's first byte came
        self._body_open = False  # a request body is still arriving
        self._body_seen = 0.0  # when its last bytes came
        self._guard: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Until its first byte a new connection is idle, as one between requests is.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_guard()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._body_open:
            self._body_seen = self.loop.time()
        else:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_since is not None and self._head_bytes > self.max_head_bytes:
            self._refuse(431, "Request Header Fields Too Large", "request line and headers too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[REQUESTS] = self.tasks  # type: ignore[literal-required]
        self._head_since = self.loop.time()
        if self._guard is None:
            self._guard = self.loop.call_later(self.read_timeout, self._check)

    def on_headers_complete(self) -> None:
        self._head_since = None
        self._head_bytes = 0
        self._body_open = True
        self._body_seen = self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_open = False
        self._stop_guard()
        super().on_message_complete()

    def _stop_guard(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _check(self) -> None:
        """The read deadline: refuse a head or a body that is too slow, else look again later."""
        self._guard = None
        if self.transport is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self._head_since is not None:
            left = self._head_since + self.read_timeout - now
            if left <= 0:
                self._refuse(408, "Request Timeout", "the request's headers took too long")
                return
        elif self._body_open:
            if self.flow.read_paused:  # the application has not read what came: not the client's pause
                self._body_seen = now
            left = self._body_seen + self.read_timeout - now
            if left <= 0:
                self.transport.close()  # the app sees a disconnect
                return
        else:
            return
        self._guard = self.loop.call_later(left, self._check)

    def _refuse(self, code: int, reason: str, text: str) -> None:
        """Answer `code` (unless a response is under way on this connection) and close it."""
        self._stop_guard()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_status(code, reason, text))
        self.transport.close()


def guarded_protocol(max_head_bytes: int, read_timeout: float) -> Any:
    """The protocol factory for `uvicorn.run(http=...)` (a partial: it pickles for --workers)."""
    return partial(GuardedHttpToolsProtocol, max_head_bytes=max_head_bytes, read_timeout=read_timeout)
