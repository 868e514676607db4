"""Request-body limits belong to the route and are decided before the body is read.

`BodyLimitMiddleware` gives every request a limit of `JSON_LIMIT`, checked when the route first
reads the body: a declared Content-Length over the limit is a 413 before a byte is read, and a
chunked body is cut (413) as soon as it passes the limit. Only an upload route (`UploadRoute`)
raises its request's limit, to `UploadLimits.max_upload_bytes`, and only after its caller proved
to own the project (token or session cookie): a stranger's upload gets its 401/403 without a
byte of its body read, whatever its Content-Type says.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from listenloop.engine import projects as ops
from listenloop.engine.errors import InvalidError
from listenloop.server.deps import MAX_ID, current_user, oauth2
from listenloop.server.json_body import StrictJSONRoute

Scope = dict[str, Any]
Message = dict[str, Any]

JSON_LIMIT = 1 << 20  # every body but an upload's: JSON, forms, and anything sent to a wrong route
LIMIT_KEY = "listenloop.max_body_size"  # the request's limit in its ASGI scope (a route may raise it)


class _TooLargeError(Exception):
    pass


class BodyLimitMiddleware:
    """413 for a body over its request's limit (`scope[LIMIT_KEY]`, `default` unless the route
    raised it): by its Content-Length at the first read, or counted as it streams."""

    def __init__(self, app: Any, default: int = JSON_LIMIT) -> None:
        self.app = app
        self.default = default

    @staticmethod
    async def _reject(send: Any, limit: int) -> None:
        body = json.dumps({"detail": f"request body over the limit of {limit} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[LIMIT_KEY] = self.default
        declared = dict(scope.get("headers") or []).get(b"content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        state = {"received": 0, "over": 0, "started": False}

        async def limited_receive() -> Message:
            limit = scope[LIMIT_KEY]
            if size is not None and size > limit:
                state["over"] = limit
                raise _TooLargeError
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = limit
                    raise _TooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                if message["type"] == "http.response.start" and not state["started"]:
                    state["started"] = True
                    await self._reject(send, state["over"])
                return  # whatever the app says about a body it could not read, 413 stands
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLargeError:
            if not state["started"]:
                await self._reject(send, state["over"])


async def require_project_owner(request: Request) -> None:
    """401/403/404 unless the caller owns the project in the path (no body is read)."""
    who = await current_user(request, await oauth2(request))
    raw = request.path_params.get("project_id", "")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID):
        raise InvalidError(f"project_id must be a whole number from 1 to {MAX_ID}")
    with request.app.state.db.read() as session:
        ops.require_owner(ops.load_project(session, int(raw)), who)


async def require_project_reviewer(request: Request) -> None:
    """401/403/404 unless the caller owns or reviews the project in the path (no body is read)."""
    who = await current_user(request, await oauth2(request))
    raw = request.path_params.get("project_id", "")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID):
        raise InvalidError(f"project_id must be a whole number from 1 to {MAX_ID}")
    with request.app.state.db.read() as session:
        ops.require_reviewer(session, ops.load_project(session, int(raw)), who)


class UploadRoute(StrictJSONRoute):
    """A route whose body may reach the upload limit, read only after its caller proved to own
    the project."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def owner_first(request: Request) -> Response:
            await require_project_owner(request)
            request.scope[LIMIT_KEY] = request.app.state.limits.max_upload_bytes
            return await handler(request)

        return owner_first


class ReviewUploadRoute(StrictJSONRoute):
    """An upload route for the project's owner and its reviewers (search by an example clip),
    the caller checked before the body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def reviewer_first(request: Request) -> Response:
            await require_project_reviewer(request)
            request.scope[LIMIT_KEY] = request.app.state.limits.max_upload_bytes
            return await handler(request)

        return reviewer_first
