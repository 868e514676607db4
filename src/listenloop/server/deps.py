"""Dependencies shared by the routers: the database, the data folder, the caller.

They are `async def` on purpose: FastAPI would run plain functions in its thread pool, and
the hot paths (`next`, `answer`) avoid that hop. Their database work is short and runs on
the event loop, which also serialises this process's SQLite writers without lock waits; the
owner's long reads and the storing of uploads are the routes' plain functions (thread pool).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi import Path as PathParam
from fastapi.security import OAuth2PasswordBearer

from listenloop.engine.accounts import TOKEN_REFUSED, Principal, principal_for_token
from listenloop.engine.errors import ForbiddenError, UnauthorizedError
from listenloop.engine.uploads import UploadLimits
from listenloop.store.database import Database

SESSION_COOKIE = "listenloop_session"
# Requests that change something with only the session cookie must carry this header: a
# cross-site form cannot set it (SameSite=Strict already keeps the cookie off such requests;
# this is the second lock).
CSRF_HEADER = ("x-requested-with", "listenloop")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_CACHE_SECONDS = 30.0
TOKEN_CACHE_SIZE = 10_000
# scope["state"] key: a bearer token the fast lane found unknown or expired in this request
REFUSED_TOKEN = "listenloop.refused_token"


class TokenCache:
    """Who a bearer token belongs to, remembered for a few seconds.

    Derived state only (the database stays the truth): it saves one query on every request
    of an annotator's next/answer loop, and an expired token is still refused within
    TOKEN_CACHE_SECONDS. Each worker process has its own.
    """

    def __init__(self, seconds: float = TOKEN_CACHE_SECONDS, size: int = TOKEN_CACHE_SIZE) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        """The cached caller, or None when unknown or stale."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(token, None)
            return None
        return entry[1]

    def put(self, token: str, who: Principal) -> None:
        """Remember `who` for `seconds`; the oldest entries go when the cache is full."""
        if len(self._entries) >= self.size:
            for key in list(self._entries)[: self.size // 10 + 1]:
                self._entries.pop(key, None)
        self._entries[token] = (time.monotonic() + self.seconds, who)

    def drop(self, token: str) -> None:
        """Forget a token (it was revoked)."""
        self._entries.pop(token, None)

    def drop_user(self, user_id: int, keep: str | None = None) -> None:
        """Forget every token of a user but `keep` (their other sessions were ended)."""
        for token, (_, who) in list(self._entries.items()):
            if who.id == user_id and token != keep:
                self._entries.pop(token, None)


oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/token", auto_error=False)


async def get_db(request: Request) -> Database:
    """The app's database."""
    return request.app.state.db


async def get_data_dir(request: Request) -> Path:
    """The data folder (audio, spectrograms, temporary uploads)."""
    return request.app.state.data_dir


async def get_limits(request: Request) -> UploadLimits:
    """Upload limits of this app."""
    return request.app.state.limits


def require_csrf_header(request: Request) -> None:
    """403 unless the request carries `X-Requested-With: listenloop` (which a cross-site form
    or link cannot send)."""
    if request.headers.get(CSRF_HEADER[0]) != CSRF_HEADER[1]:
        raise ForbiddenError(
            "a session-cookie request that changes data needs the X-Requested-With: listenloop header"
        )


async def current_user(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Principal:
    """The caller from `Authorization: Bearer TOKEN` (or the session cookie of the pages); 401 otherwise.

    A cookie-only request that changes something needs `X-Requested-With: listenloop` (403).
    """
    return await _caller(request, token, request.method not in SAFE_METHODS)


async def acting_user(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Principal:
    """`current_user` for a GET that changes state (`next` leases a clip): with the cookie alone
    it needs `X-Requested-With: listenloop` too."""
    return await _caller(request, token, True)


async def _caller(request: Request, token: str | None, writes: bool) -> Principal:
    """The caller; a cookie-only request that `writes` must carry the CSRF header."""
    if not token:
        token = request.cookies.get(SESSION_COOKIE)
        if token and writes:
            require_csrf_header(request)
    if not token:
        raise UnauthorizedError("not authenticated: send Authorization: Bearer TOKEN (POST /api/v1/token)")
    cache: TokenCache = request.app.state.token_cache
    who = cache.get(token)
    if who is None:
        if request.scope.get("state", {}).get(REFUSED_TOKEN) == token:  # the fast lane read it
            raise UnauthorizedError(TOKEN_REFUSED)
        with request.app.state.db.direct_read() as conn:
            who = principal_for_token(conn, token)
        cache.put(token, who)
    return who


def caller_token(request: Request) -> str | None:
    """The token the request authenticated with: the bearer token, else the session cookie."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value
    return request.cookies.get(SESSION_COOKIE)


async def maybe_user(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Principal | None:
    """The caller, or None when the request carries no valid token or session."""
    try:
        return await current_user(request, token)
    except (UnauthorizedError, ForbiddenError):
        return None


async def owner_user(who: Annotated[Principal, Depends(current_user)]) -> Principal:
    """The caller, who must be an owner or an admin (403 for annotators)."""
    if who.role not in ("owner", "admin"):
        raise ForbiddenError("this needs an owner account")
    return who


class IdleCache:
    """Annotators who just got "nothing to do" (204) from a project, for about a second.

    When a pool runs dry, every annotator polls `next`; answering those polls from memory
    for a second keeps them off the database's write lock. Derived state only, per process.
    """

    def __init__(self, seconds: float = 1.0, size: int = 100_000) -> None:
        self.seconds = seconds
        self.size = size
        self._until: dict[tuple[int, int], float] = {}

    def idle(self, project_id: int, user_id: int) -> bool:
        """True while a recent `next` of this annotator on this project found nothing."""
        until = self._until.get((project_id, user_id))
        if until is None:
            return False
        if until < time.monotonic():
            self._until.pop((project_id, user_id), None)
            return False
        return True

    def mark(self, project_id: int, user_id: int) -> None:
        """Remember that there was nothing to do."""
        if len(self._until) >= self.size:
            self._until.clear()
        self._until[(project_id, user_id)] = time.monotonic() + self.seconds

    def forget(self, project_id: int, user_id: int) -> None:
        """There is something to do again (an undone answer reopened a task)."""
        self._until.pop((project_id, user_id), None)


DB = Annotated[Database, Depends(get_db)]
DataDir = Annotated[Path, Depends(get_data_dir)]
Limits = Annotated[UploadLimits, Depends(get_limits)]
User = Annotated[Principal, Depends(current_user)]
Actor = Annotated[Principal, Depends(acting_user)]
MaybeUser = Annotated[Principal | None, Depends(maybe_user)]
Owner = Annotated[Principal, Depends(owner_user)]


MAX_ID = 2**63 - 1  # the largest integer the databases store: larger ids are a 422, not a crash
ProjectId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="A project's id.")]
ClipId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="A clip's id.")]
TaskId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="A task's id.")]
