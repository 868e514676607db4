"""Warm-up: the work FastAPI and its libraries leave to the first request, done at start-up.

FastAPI builds each router's route table (dependants, pydantic adapters) on the first request
that walks it, and anyio imports its backend on the first thread-pool call: about 0.2 s of
CPU in all, which otherwise lands on the first requests of a campaign, when every annotator
asks for a clip at once, and delays each of them. `warm_up` sends requests through the whole
application in-process (no socket) before the server takes connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp

# A path no route matches (every router's table gets built while matching it) and a hot route
# called without valid credentials (its dependencies run and answer 401; nothing is written).
_REQUESTS: tuple[tuple[str, str, bytes], ...] = (
    ("GET", "/api/v1/warm-up", b""),
    ("GET", "/api/v1/projects/0/next", b"Bearer warm-up"),
    ("POST", "/api/v1/tasks/0/answer", b"Bearer warm-up"),
)


async def warm_up(app: ASGIApp) -> list[int]:
    """Send the warm-up requests through `app`; their status codes (404, 401, 401)."""
    statuses = []
    for method, path, auth in _REQUESTS:
        headers = [(b"authorization", auth)] if auth else []
        body = b'{"answer": "warm-up"}' if method == "POST" else b""
        statuses.append((await asgi_call(app, method, path, headers, body))[0])
    return statuses


async def asgi_call(
    app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, bytes]:
    """One request straight into the ASGI app, no socket: (status, body). A body is sent as
    JSON; the client never disconnects."""
    headers = [(b"host", b"in-process"), *headers]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    received = False
    status = 0
    out = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            out.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(out)
