"""Shared pytest fixtures: paths of the small datasets under tests/fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    import sqlalchemy as sa

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fsdd_dir() -> Path:
    """100 FSDD clips (6 speakers, 10 per digit), `labels.csv` with file,label,speaker."""
    return FIXTURES / "fsdd"


@pytest.fixture
def office_dir() -> Path:
    """22 DCASE 2016 office events (2 per class) at 16 kHz, `labels.csv` with file,label."""
    return FIXTURES / "office"


@pytest.fixture
def bad_dir() -> Path:
    """Two good FSDD clips plus empty, non-audio, header-only and missing files."""
    return FIXTURES / "bad"


# PostgreSQL for the API tests: a throwaway server that the session starts on a free port the
# first time a PostgreSQL variant runs, and stops at its end (tests/pg_support.py: the system's
# programs, else the pip package pgserver; LISTENLOOP_TEST_PG_BINARIES=system|pip|FOLDER picks),
# or the admin URL in LISTENLOOP_TEST_PG, whose role may create databases. Each test gets a fresh
# database of its own. Without any PostgreSQL the variants fail with the reason: they never skip
# in silence.
PG_OVERRIDE_ENV = "LISTENLOOP_TEST_PG"
PG_SERVER_KEY = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def pg_admin_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The admin URL of the session's PostgreSQL: LISTENLOOP_TEST_PG, or a throwaway server."""
    import os

    from pg_support import BINARIES_ENV, NoPostgresError, ThrowawayPostgres, find_binaries

    override = os.environ.get(PG_OVERRIDE_ENV)
    if override:
        request.config.stash[PG_SERVER_KEY] = f"{PG_OVERRIDE_ENV} ({_shown(override)})"
        yield override
        return
    try:
        server = ThrowawayPostgres(find_binaries(os.environ.get(BINARIES_ENV, "auto"))).start()
    except NoPostgresError as exc:
        pytest.fail(f"no PostgreSQL for the PostgreSQL variants (or set {PG_OVERRIDE_ENV}): {exc}")
    where = _shown(server.admin_url)
    request.config.stash[PG_SERVER_KEY] = f"{server.version} from the {server.binaries.source}, at {where}"
    try:
        yield server.admin_url
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Which PostgreSQL the PostgreSQL variants used, if any ran."""
    if PG_SERVER_KEY in config.stash:
        terminalreporter.write_line(f"PostgreSQL variants ran on {config.stash[PG_SERVER_KEY]}")


def _shown(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for one test: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'listenloop.db'}"
        return
    import uuid

    import sqlalchemy as sa

    admin_url = request.getfixturevalue("pg_admin_url")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"ll_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {_shown(admin_url)}: {exc.orig}")
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin: sa.Engine, name: str) -> None:
    """Drop a test database, retrying while a backend that the test role may not end holds it.

    WITH (FORCE) ends the other sessions, but only those the role may signal: an autovacuum
    worker or a connection still authenticating has no role yet, and PostgreSQL refuses with
    InsufficientPrivilege unless the role has pg_signal_backend (the throwaway server's superuser
    has it; a LISTENLOOP_TEST_PG role may not). Both are gone within moments, so a role without
    it just waits for them.
    """
    import time

    import sqlalchemy as sa

    deadline = time.monotonic() + 30.0
    while True:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except (sa.exc.ProgrammingError, sa.exc.OperationalError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def client(tmp_path: Path, database_url: str):
    """The API (learning service off) through FastAPI's TestClient, on SQLite and on PostgreSQL,
    with two owners: owner / owner-pass-1 and owner2 / owner-pass-2."""
    from fastapi.testclient import TestClient

    from listenloop.engine.accounts import create_user, hash_password
    from listenloop.server import create_app

    app = create_app(database_url, tmp_path / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
        create_user(session, "owner2", hash_password("owner-pass-2"), "owner")
    with TestClient(app) as c:
        yield c
