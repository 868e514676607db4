"""Users and tokens: self-registration of annotators, password login for a bearer token.

`POST /token` only returns the token (API clients keep no cookie jar state from it);
`POST /session` is the pages' sign-in: the same token in an HttpOnly, SameSite=Strict cookie.
`logout` revokes the caller's token and clears the cookie. Every password check goes through
server/login_guard.py: failed logins are throttled per account and address (429 with
Retry-After) and only a few hashes run at once. `POST /users/me/password` changes the caller's
password (the current one required) and ends their other sessions;
`POST /users/me/sessions/end-others` ends those alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from listenloop.engine.accounts import (
    check_credentials,
    check_password,
    create_user,
    end_other_sessions,
    hash_password,
    issue_token,
    password_hash_for_id,
    password_hash_of,
    principal_for_token,
    principal_for_username,
    revoke_token,
    set_password,
    verify_password,
)
from listenloop.engine.errors import ForbiddenError, UnauthorizedError
from listenloop.server.deps import DB, SESSION_COOKIE, MaybeUser, User, caller_token, require_csrf_header
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.login_guard import HashGate, LoginThrottle, client_address
from listenloop.server.schemas import PasswordChange, SessionOut, SessionsEnded, TokenOut, UserCreate, UserOut
from listenloop.store.database import Database
from listenloop.store.models import utcnow

router = APIRouter(tags=["users"], route_class=StrictJSONRoute)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def register(body: UserCreate, db: DB, request: Request) -> UserOut:
    """Register an annotator (owners are made with `listenloop user create`). The password needs
    8 characters and must not be one of the most common passwords."""
    check_credentials(body.username, body.password)
    gate: HashGate = request.app.state.hash_gate
    digest = await gate.run(hash_password, body.password)
    with db.write() as session:
        user = create_user(session, body.username, digest, "annotator")
        return UserOut(id=user.id, username=user.username, role=user.role)


async def _checked(request: Request, account: str, password: str, stored: Callable[[], str | None]) -> bool:
    """Whether `password` matches the hash that `stored()` reads, through the throttle (first: a
    refused attempt costs neither a query nor a hash) and the hashing gate (429)."""
    throttle: LoginThrottle = request.app.state.login_throttle
    gate: HashGate = request.app.state.hash_gate
    attempt = throttle.begin(account[:80], client_address(request))
    try:
        ok = await gate.run(verify_password, stored(), password)
    except HTTPException:
        throttle.cancelled(attempt)
        raise
    if ok:
        throttle.succeeded(attempt)
    return ok


def _stored_hash(db: Database, username: str | None = None, user_id: int | None = None) -> str | None:
    """The stored password hash of a user by name or id (None: no such user)."""
    with db.read() as session:
        if user_id is not None:
            return password_hash_for_id(session, user_id)
        return password_hash_of(session, username or "")


async def _issue(request: Request, db: DB, username: str, password: str) -> tuple[str, datetime]:
    """A new token for a correct username and password (UnauthorizedError otherwise)."""
    if not await _checked(request, username, password, partial(_stored_hash, db, username)):
        raise UnauthorizedError("wrong username or password")
    now = utcnow()
    lifetime = request.app.state.settings.token_lifetime
    with db.write() as session:
        token = issue_token(session, username, now, lifetime)
        who = principal_for_token(session, token, now)
    # Known at once: the first `next` of a new session takes the fast lane (server/fast_lane.py).
    request.app.state.token_cache.put(token, who)
    return token, now + lifetime


@router.post("/token", response_model=TokenOut)
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], db: DB, request: Request) -> TokenOut:
    """Exchange form fields `username` and `password` for a bearer token (429 with Retry-After
    after too many failures for the account or from the address)."""
    token, expires = await _issue(request, db, form.username, form.password)
    return TokenOut(access_token=token, expires_at=expires)


@router.get("/session", response_model=SessionOut)
async def session_user(who: MaybeUser) -> SessionOut:
    """Who the pages are signed in as: `{user}`, null when signed out (200 either way, so that a
    signed-out start page makes no failing request)."""
    return SessionOut(user=None if who is None else UserOut(id=who.id, username=who.username, role=who.role))


@router.post("/session", response_model=UserOut)
async def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], db: DB, request: Request, response: Response
) -> UserOut:
    """The pages' sign-in: form fields `username` and `password`; the token goes into the
    HttpOnly session cookie instead of the body. Needs `X-Requested-With: listenloop` (a
    cross-site form cannot send it: no signing a victim in as someone else)."""
    require_csrf_header(request)
    token, _ = await _issue(request, db, form.username, form.password)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(request.app.state.settings.token_lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    with db.read() as session:
        who = principal_for_username(session, form.username)
    if who is None:  # removed between the two transactions
        raise UnauthorizedError("wrong username or password")
    return UserOut(id=who.id, username=who.username, role=who.role)


@router.get("/users/me", response_model=UserOut)
async def me(who: User) -> UserOut:
    """The caller."""
    return UserOut(id=who.id, username=who.username, role=who.role)


@router.post("/users/me/password", response_model=SessionsEnded)
async def change_password(body: PasswordChange, who: User, request: Request, db: DB) -> SessionsEnded:
    """Change the caller's password: `{current_password, new_password}` (8 characters or more,
    not a common password). Every other session of the caller ends (`ended`: how many); this
    one stays. 403 when the current password is wrong (throttled like logins)."""
    check_password(body.new_password, who.username, field="new_password")
    if not await _checked(
        request, who.username, body.current_password, partial(_stored_hash, db, user_id=who.id)
    ):
        raise ForbiddenError("current_password: wrong password")
    gate: HashGate = request.app.state.hash_gate
    new_digest = await gate.run(hash_password, body.new_password)
    with db.write() as session:
        set_password(session, who.id, new_digest)
        ended = end_other_sessions(session, who.id, keep=caller_token(request))
    request.app.state.token_cache.drop_user(who.id, keep=caller_token(request))
    return SessionsEnded(ended=ended)


@router.post("/users/me/sessions/end-others", response_model=SessionsEnded)
async def end_others(who: User, request: Request, db: DB) -> SessionsEnded:
    """Sign out everywhere else: every token and session cookie of the caller but this one stops
    working (at once in this server process, within 30 s in the other workers)."""
    with db.write() as session:
        ended = end_other_sessions(session, who.id, keep=caller_token(request))
    request.app.state.token_cache.drop_user(who.id, keep=caller_token(request))
    return SessionsEnded(ended=ended)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(who: User, request: Request, db: DB) -> Response:
    """Revoke the caller's token (bearer or cookie) and clear the session cookie."""
    token = caller_token(request)
    if token:
        with db.write() as session:
            revoke_token(session, token)
        request.app.state.token_cache.drop(token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
