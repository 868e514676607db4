"""People and credentials: argon2 password hashes, random bearer tokens stored as SHA-256."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib.resources import files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from listenloop.engine.errors import ConflictError, InvalidError, UnauthorizedError
from listenloop.settings import Settings
from listenloop.store.database import AnyConnection, connection_of
from listenloop.store.models import ROLES, ApiToken, Event, User, utcnow
from listenloop.store.prepared import Prepared

MIN_PASSWORD = 8
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# The common passwords refused at registration and on a change: the 8,354 entries of 8 or more
# characters of the list Django ships (django/contrib/auth/common-passwords.txt.gz in Django
# 5.2.17, BSD licence): 20,000 common passwords, lowercased and deduplicated, made by Royce
# Williams (https://gist.github.com/roycewilliams/226886fd01572964e1431ac8afc999ce). Shorter
# ones fail the length rule anyway. Compared lowercased and stripped, as Django does.
COMMON_PASSWORDS = "common-passwords.txt.gz"
# argon2id with OWASP's one-lane setting (19 MiB, 2 passes, parallelism 1) rather than the
# library's RFC 9106 default of 4 lanes: on a 2-core server one 4-lane hash takes both cores, so
# a wave of wrong logins stalled annotators however few hashes ran at once. Hashes made with
# other parameters still verify (argon2 keeps them in the hash).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the user does not exist, so that timing does not tell who exists.
_DUMMY_HASH = _hasher.hash("listenloop-no-such-user")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, detached from any session."""

    id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        """Admins may do everything an owner may, on every project."""
        return self.role == "admin"


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (lowercase), read once."""
    packed = files("listenloop.engine").joinpath(COMMON_PASSWORDS).read_bytes()
    with gzip.open(io.BytesIO(packed), "rt", encoding="utf-8") as f:
        return frozenset(line.strip() for line in f if line.strip())


def check_password(password: str, username: str = "", field: str = "password") -> None:
    """Reject a password shorter than MIN_PASSWORD, one of the common passwords, or the
    username itself (InvalidError naming `field`)."""
    password = password or ""
    if len(password) < MIN_PASSWORD:
        raise InvalidError(f"{field}: at least {MIN_PASSWORD} characters")
    folded = password.strip().lower()
    if folded in common_passwords():
        raise InvalidError(f"{field}: this is one of the most common passwords; choose another")
    if username and folded == username.strip().lower():
        raise InvalidError(f"{field}: must not be the username")


def check_credentials(username: str, password: str, role: str = "annotator") -> None:
    """Reject a malformed username, a short or common password or an unknown role (InvalidError)."""
    if not USERNAME.fullmatch(username or ""):
        raise InvalidError("username: 1 to 64 letters, digits or . _ @ -")
    check_password(password, username)
    if role not in ROLES:
        raise InvalidError(f"role {role!r}: one of {', '.join(ROLES)}")


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (slow on purpose: call it off the event loop)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing user costs the same time as a wrong password."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def create_user(session: Session, username: str, password_hash: str, role: str = "annotator") -> User:
    """Add a user (the hash made by `hash_password`); a taken username is a ConflictError."""
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"username {username!r} is taken")
    user = User(username=username, password_hash=password_hash, role=role)
    session.add(user)
    session.flush()
    session.add(Event(user_id=user.id, kind="user_created", data={"role": role}))
    return user


def password_hash_of(session: Session, username: str) -> str | None:
    """The stored hash of `username`, or None."""
    return session.scalar(select(User.password_hash).where(User.username == username))


def password_hash_for_id(session: Session, user_id: int) -> str | None:
    """The stored hash of the user with id `user_id`, or None."""
    return session.scalar(select(User.password_hash).where(User.id == user_id))


def set_password(session: Session, user_id: int, password_hash: str) -> None:
    """Store a new hash (made by `hash_password`) for the user, and record the change."""
    session.execute(User.__table__.update().where(User.id == user_id).values(password_hash=password_hash))
    session.add(Event(user_id=user_id, kind="password_changed", data={}))


def end_other_sessions(session: Session, user_id: int, keep: str | None) -> int:
    """Revoke every token of the user but `keep` (the caller's own, if any): their other
    sessions, cookie or bearer, stop working. Returns how many ended."""
    query = ApiToken.__table__.delete().where(ApiToken.user_id == user_id)
    if keep:
        query = query.where(ApiToken.token_hash != token_digest(keep))
    return session.execute(query).rowcount or 0


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256 (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session, username: str, now: datetime | None = None, lifetime: timedelta | None = None
) -> str:
    """A new bearer token for `username` (whose password was verified), valid for `lifetime`
    (default: the settings' `token_lifetime_days`); returns the token itself."""
    lifetime = Settings.from_env().token_lifetime if lifetime is None else lifetime
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise UnauthorizedError("wrong username or password")
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user_id, token_hash=token_digest(token), created_at=now, expires_at=now + lifetime)
    )
    session.execute(ApiToken.__table__.delete().where(ApiToken.user_id == user_id, ApiToken.expires_at < now))
    return token


def revoke_token(session: Session, token: str) -> None:
    """Delete a token (logout): it stops working at once in this process, within the token
    cache's lifetime in others."""
    session.execute(ApiToken.__table__.delete().where(ApiToken.token_hash == token_digest(token)))


_U, _T = User.__table__, ApiToken.__table__
_BY_TOKEN = Prepared(
    select(_U.c.id, _U.c.username, _U.c.role)
    .select_from(_U.join(_T, _T.c.user_id == _U.c.id))
    .where(_T.c.token_hash == bindparam("digest"), _T.c.expires_at > bindparam("now"))
)


TOKEN_REFUSED = "invalid or expired token"


def principal_for_token(session: AnyConnection, token: str, now: datetime | None = None) -> Principal:
    """The user behind a bearer token; an unknown or expired token is an UnauthorizedError.
    A prepared statement (`store/prepared.py`): a crowd's first requests each look one up."""
    params = {"digest": token_digest(token), "now": now or utcnow()}
    row = _BY_TOKEN.first(connection_of(session), params)
    if row is None:
        raise UnauthorizedError(TOKEN_REFUSED)
    return Principal(row.id, row.username, row.role)


def principal_for_username(session: Session, username: str) -> Principal | None:
    """The user named `username`, or None."""
    row = session.execute(select(User.id, User.username, User.role).where(User.username == username)).first()
    return None if row is None else Principal(row.id, row.username, row.role)
