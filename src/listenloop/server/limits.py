"""Request-body limits belong to the route and are decided before the body is read.

Every route takes a body of at most `JSON_LIMIT` (the app's `max_body_size`); only the upload
routes (`UploadRoute`, included with `max_body_size=UploadLimits.max_upload_bytes`) take more,
whatever the client's Content-Type says. Starlette's body-limit middleware does the counting:
a declared Content-Length over the limit is a 413 at the first read of the body, and a chunked
body is cut (413) as soon as it passes the limit.

An upload route first checks its caller (token or session cookie, owner of the project): a
stranger's 1 GiB upload is refused (401/403) before a byte of its body is read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from listenloop.engine import projects as ops
from listenloop.engine.errors import InvalidError
from listenloop.server.deps import MAX_ID, current_user, oauth2
from listenloop.server.json_body import StrictJSONRoute

JSON_LIMIT = 1 << 20  # every body but an upload's: JSON, forms, and anything sent to a wrong route


async def require_project_owner(request: Request) -> None:
    """401/403/404 unless the caller owns the project in the path (no body is read)."""
    who = await current_user(request, await oauth2(request))
    raw = request.path_params.get("project_id", "")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID):
        raise InvalidError(f"project_id must be a whole number from 1 to {MAX_ID}")
    with request.app.state.db.read() as session:
        ops.require_owner(ops.load_project(session, int(raw)), who)


class UploadRoute(StrictJSONRoute):
    """A route whose (large) body is read only after its caller proved to own the project."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def owner_first(request: Request) -> Response:
            await require_project_owner(request)
            return await handler(request)

        return owner_first
