"""Users and tokens: self-registration of annotators, password login for a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from listenloop.engine.accounts import (
    TOKEN_LIFETIME,
    check_credentials,
    create_user,
    hash_password,
    issue_token,
    password_hash_of,
    verify_password,
)
from listenloop.engine.errors import UnauthorizedError
from listenloop.server.deps import DB, User
from listenloop.server.schemas import TokenOut, UserCreate, UserOut
from listenloop.store.models import utcnow

router = APIRouter(tags=["users"])


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def register(body: UserCreate, db: DB) -> UserOut:
    """Register an annotator (owners are made with `listenloop user create`)."""
    check_credentials(body.username, body.password)
    digest = await run_in_threadpool(hash_password, body.password)
    with db.write() as session:
        user = create_user(session, body.username, digest, "annotator")
        return UserOut(id=user.id, username=user.username, role=user.role)


@router.post("/token", response_model=TokenOut)
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], db: DB) -> TokenOut:
    """Exchange form fields `username` and `password` for a bearer token."""
    with db.read() as session:
        digest = password_hash_of(session, form.username)
    if not await run_in_threadpool(verify_password, digest, form.password):
        raise UnauthorizedError("wrong username or password")
    now = utcnow()
    with db.write() as session:
        token = issue_token(session, form.username, now)
    return TokenOut(access_token=token, expires_at=now + TOKEN_LIFETIME)


@router.get("/users/me", response_model=UserOut)
async def me(who: User) -> UserOut:
    """The caller."""
    return UserOut(id=who.id, username=who.username, role=who.role)
