"""Users and tokens: self-registration of annotators, password login for a bearer token.

`POST /token` only returns the token (API clients keep no cookie jar state from it);
`POST /session` is the pages' sign-in: the same token in an HttpOnly, SameSite=Strict cookie.
`logout` revokes the caller's token and clears the cookie."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from listenloop.engine.accounts import (
    TOKEN_LIFETIME,
    check_credentials,
    create_user,
    hash_password,
    issue_token,
    password_hash_of,
    principal_for_username,
    revoke_token,
    verify_password,
)
from listenloop.engine.errors import UnauthorizedError
from listenloop.server.deps import DB, SESSION_COOKIE, MaybeUser, User, caller_token
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.schemas import SessionOut, TokenOut, UserCreate, UserOut
from listenloop.store.models import utcnow

router = APIRouter(tags=["users"], route_class=StrictJSONRoute)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def register(body: UserCreate, db: DB) -> UserOut:
    """Register an annotator (owners are made with `listenloop user create`)."""
    check_credentials(body.username, body.password)
    digest = await run_in_threadpool(hash_password, body.password)
    with db.write() as session:
        user = create_user(session, body.username, digest, "annotator")
        return UserOut(id=user.id, username=user.username, role=user.role)


async def _issue(db: DB, username: str, password: str) -> tuple[str, datetime]:
    """A new token for a correct username and password (UnauthorizedError otherwise)."""
    with db.read() as session:
        digest = password_hash_of(session, username)
    if not await run_in_threadpool(verify_password, digest, password):
        raise UnauthorizedError("wrong username or password")
    now = utcnow()
    with db.write() as session:
        token = issue_token(session, username, now)
    return token, now + TOKEN_LIFETIME


@router.post("/token", response_model=TokenOut)
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], db: DB) -> TokenOut:
    """Exchange form fields `username` and `password` for a bearer token."""
    token, expires = await _issue(db, form.username, form.password)
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
    HttpOnly session cookie instead of the body."""
    token, _ = await _issue(db, form.username, form.password)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(TOKEN_LIFETIME.total_seconds()),
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
