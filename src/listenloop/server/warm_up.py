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
    return [await _call(app, method, path, auth) for method, path, auth in _REQUESTS]


async def _call(app: ASGIApp, method: str, path: str, auth: bytes) -> int:
    headers = [(b"host", b"warm-up")]
    if auth:
        headers.append((b"authorization", auth))
    body = b'{"answer": "warm-up"}' if method == "POST" else b""
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
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    status: list[int] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))

    await app(scope, receive, send)
    return status[0] if status else 0
