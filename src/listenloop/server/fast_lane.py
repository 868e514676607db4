"""The annotators' loop (`next`, `answer`) without FastAPI's machinery, on its happy path only.

Hand-written because FastAPI's routing, dependency solving, validation and response wrappers
cost about as much CPU as the engine's own work for these two requests (BENCHMARKS.md, "Issue
17: the annotator fast lane"), and at a campaign's start every annotator asks at once: each
request's cost is every later request's wait. The lane takes a request only when it is
plainly valid: a bearer token that is valid (this process's `TokenCache`, else one read of the
tokens table, as `deps.current_user` does: with several workers an annotator's first request
often reaches a worker that did not log them in), a well-formed id, and for an answer a JSON
body of exactly `{"answer": ...}` of an accepted type. It then runs the same engine calls as
the routes (`routers/tasks.py`: `idle_now`, `lease_next_in`; `submit_answer`), in one
transaction with the requests of the same loop turn (`server/group_commit.py`); an answer
taken while other requests wait leaves its clip's re-aggregation until they are served
(`engine/live/settle.py`, `server/settle_soon.py`). Anything
else, and any request whose engine call raises (the transaction is rolled back first), goes to
the full application unchanged, which answers it, errors included, as it always has.
"""

from __future__ import annotations

import json
import math
import re
import time
from functools import partial
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from listenloop.engine.accounts import principal_for_token
from listenloop.engine.errors import UnauthorizedError
from listenloop.engine.live.tasks import submit_answer
from listenloop.server.deps import MAX_ID, REFUSED_TOKEN, TokenCache
from listenloop.server.group_commit import GroupCommit
from listenloop.server.http_protocol import REQUESTS
from listenloop.server.json_body import loads_strict
from listenloop.server.routers.tasks import idle_now, lease_next_in
from listenloop.server.settle_soon import SettleSoon

_NEXT = re.compile(r"/api/v1/projects/([1-9][0-9]{0,18})/next")
_ANSWER = re.compile(r"/api/v1/tasks/([1-9][0-9]{0,18})/answer")
_AHEAD = {b"": False, b"ahead=true": True, b"ahead=false": False}
_JSON = [(b"content-type", b"application/json")]


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value
    return None


def _answer_value(body: bytes) -> Any:
    """The answer of a body that AnswerIn would take as it is; None for anything else."""
    try:
        data = loads_strict(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or len(data) != 1 or "answer" not in data:
        return None
    value = data["answer"]
    if isinstance(value, bool):  # JSON true is neither a class nor the number 1
        return None
    if isinstance(value, str | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


class AnnotatorFastLane:
    """Serves plainly valid `next`/`answer` requests of known bearer tokens; passes on the rest."""

    def __init__(self, app: ASGIApp, state: Any, body_limit: int) -> None:
        self.app = app
        self.state = state
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and (match := _NEXT.fullmatch(path)):
                if await self._next(scope, send, int(match[1])):
                    return
            elif method == "POST" and (match := _ANSWER.fullmatch(path)):
                replay = await self._answer(scope, receive, send, int(match[1]))
                if replay is None:
                    return
                receive = replay
        await self.app(scope, receive, send)

    def _who(self, scope: Scope) -> Any:
        token = _bearer(scope)
        if not token:
            return None
        cache: TokenCache = self.state.token_cache
        who = cache.get(token)
        if who is None:
            try:
                with self.state.db.direct_read() as conn:
                    who = principal_for_token(conn, token)
            except UnauthorizedError:  # the application answers 401 without reading it again
                scope.setdefault("state", {})[REFUSED_TOKEN] = token
                return None
            except Exception:  # no database: the full application answers it
                return None
            cache.put(token, who)
        return who

    async def _next(self, scope: Scope, send: Send, project_id: int) -> bool:
        """True when served here."""
        self.state.settle_soon.last_request = time.monotonic()
        ahead = _AHEAD.get(scope["query_string"])
        who = self._who(scope)
        if ahead is None or who is None or project_id > MAX_ID:
            return False
        group: GroupCommit = self.state.group_commit
        try:
            if idle_now(self.state, project_id, who, ahead):
                body = None
            else:
                work = partial(lease_next_in, state=self.state, project_id=project_id, who=who, ahead=ahead)
                body = await group.run(work)
        except Exception:  # rolled back: the full application answers it, errors and all
            return False
        if body is None:
            await _respond(send, 204, None)
        else:
            await _respond(send, 200, body)
        return True

    async def _answer(self, scope: Scope, receive: Receive, send: Send, task_id: int) -> Receive | None:
        """None when served here, else the `receive` for the full application (which replays
        any part of the body the lane read)."""
        who = self._who(scope)
        length = _header(scope, b"content-length")
        kind = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if who is None or task_id > MAX_ID or kind != b"application/json":
            return receive
        if length is None or not length.isdigit() or int(length) > self.body_limit:
            return receive  # the full application's body limit answers it
        body = b""
        while True:  # at most body_limit bytes: the server holds the body to its Content-Length
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return _replaying(body, message, receive)
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        answer = _answer_value(body)
        if answer is None:
            return _replaying(body, None, receive)
        # other requests wait behind this one: its clip's re-aggregation waits until they are served
        requests = scope.get(REQUESTS, ())
        settler: SettleSoon = self.state.settle_soon
        settler.last_request = time.monotonic()
        queued = len(requests) > 1 and settler.room()
        group: GroupCommit = self.state.group_commit
        deferred: list[int] = []
        work = partial(
            submit_answer, task_id=task_id, who=who, value=answer, defer_aggregate=queued, deferred=deferred
        )
        try:
            result = await group.run(work)
        except Exception:  # rolled back: the full application answers it, errors and all
            return _replaying(body, None, receive)
        await _respond(send, 201, result)
        for clip in deferred:
            settler.deferred(clip)
        return None


def _replaying(body: bytes, then: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives the body read so far (then `then`, a disconnect), then goes on."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": then is not None}]
    if then is not None:
        pending.append(then)

    async def again() -> Message:
        return pending.pop(0) if pending else await receive()

    return again


async def _respond(send: Send, status: int, body: Any) -> None:
    """A JSON response as Starlette's JSONResponse writes it (or an empty 204)."""
    if body is None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    raw = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    headers = [(b"content-length", str(len(raw)).encode()), *_JSON]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
