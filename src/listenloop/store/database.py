"""Engine, sessions and migrations for a database URL (SQLite by default, or PostgreSQL).

SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout and foreign
keys on. Write transactions start with `BEGIN IMMEDIATE` there: a transaction that reads
first and writes later would otherwise fail with "database is locked" when another process
wrote in between (the lock-upgrade deadlock), instead of waiting its turn.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from listenloop.errors import ListenloopError
from listenloop.settings import Settings
from listenloop.store.write_gate import WriteGate

DEFAULT_URL = "sqlite:///./listenloop.db"
AUTOCHECKPOINT_PAGES = 20_000
MIGRATIONS = Path(__file__).with_name("migrations")


def is_sqlite(url: str) -> bool:
    """True for a SQLite URL."""
    return url.startswith("sqlite")


def is_sqlite_memory(url: str) -> bool:
    """True for an in-memory SQLite URL (its database exists in one engine of one process)."""
    return is_sqlite(url) and make_url(url).database in (None, "", ":memory:")


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3 (the driver we ship), not psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def display_url(url: str) -> str:
    """`url` as it may be printed or logged: the password hidden (`***`)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def _create_private(path: Path) -> None:
    """Create an empty SQLite file readable by its owner only (SQLite gives its -wal and -shm
    files the same permissions); an existing file is left as it is."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    """The connect hook: WAL, busy timeout and foreign keys on every new SQLite connection; BEGIN
    is ours to emit."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        _set_pragmas(dbapi_connection, busy_timeout_ms)

    return on_connect


def _set_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    dbapi_connection.isolation_level = None  # pysqlite must not emit its own BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across a process crash
    # Checkpoints (and their fsync) run in Database's background thread, not inside a request's
    # commit; this threshold is only the safety net should that thread fall behind.
    cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    """BEGIN IMMEDIATE for write sessions (they take the write lock up front), BEGIN otherwise.

    On the driver's own connection: SQLAlchemy's execution machinery costs more than this
    statement, which starts every request of the annotators' loop.
    """
    immediate = conn.get_execution_options().get("listenloop_write", False)
    conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _query_only(dbapi_connection: Any, _record: Any) -> None:
    """SQLite: this connection may read only (a write is an error, never a held lock)."""
    dbapi_connection.execute("PRAGMA query_only=ON")


def make_engine(
    url: str = DEFAULT_URL, busy_timeout_ms: int | None = None, *, read_only: bool = False
) -> Engine:
    """An engine for `url`; a URL that cannot be used is a ListenloopError naming it.
    `busy_timeout_ms` (SQLite): how long a writer waits for the lock (default: the settings').
    `read_only` (SQLite): every connection is `query_only` (PostgreSQL: see `Database.read_only`)."""
    url = normalize_url(url)
    if busy_timeout_ms is None:
        busy_timeout_ms = Settings.from_env().busy_timeout_ms
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ListenloopError(
            f"--db {display_url(url)!r}: not a database URL (e.g. sqlite:///./listenloop.db)"
        ) from None
    if is_sqlite(url):
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise ListenloopError(f"--db {url}: folder {folder} does not exist")
            _create_private(Path(database).expanduser())
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        )
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        if read_only:
            event.listen(engine, "connect", _query_only)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.drivername not in ("postgresql+psycopg",):
        raise ListenloopError(
            f"--db {display_url(url)}: only sqlite:/// and postgresql+psycopg:// URLs are supported"
        )
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to `revision` (idempotent: a current database is left as it is).

    On SQLite, foreign keys are off while the migrations run: a batch migration rebuilds a table
    (copy, DROP, rename), and with foreign keys on, dropping `projects` would delete every row
    that refers to it (ON DELETE CASCADE: members, clips, tasks). The pragma cannot change inside
    a transaction, so it is set on the driver's connection before BEGIN and restored after.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.connect() as connection:
            driver = connection.connection.driver_connection if is_sqlite(str(engine.url)) else None
            if driver is not None:
                driver.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    config.attributes["connection"] = connection
                    command.upgrade(config, revision)
            finally:
                if driver is not None:
                    driver.execute("PRAGMA foreign_keys=ON")
    except OperationalError as exc:
        raise ListenloopError(f"database {engine.url.render_as_string()}: {exc.orig}") from None


class Database:
    """One database: read sessions, write sessions (BEGIN IMMEDIATE on SQLite) and migrations."""

    def __init__(self, url: str = DEFAULT_URL, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, self.settings.busy_timeout_ms)
        self.sqlite = is_sqlite(self.url)
        self.in_memory = is_sqlite_memory(self.url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = self.engine.execution_options(listenloop_write=True)
        # the owner's long reads (`read_only`)
        self._read_only_engine: Engine | None = None
        self._gate: WriteGate | None = None
        if self.sqlite and not self.in_memory:
            path = Path(str(self.engine.url.database)).expanduser().resolve()
            self._gate = WriteGate(path, self.settings.busy_timeout_ms)
            self._read_only_engine = make_engine(self.url, self.settings.busy_timeout_ms, read_only=True)
            reader: Engine = self._read_only_engine
        elif self.sqlite:  # an in-memory database exists in its own engine only
            reader = self.engine
        else:
            reader = self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        self._read_only = sessionmaker(reader, expire_on_commit=False)

    def upgrade(self) -> None:
        """Bring the schema to the newest revision."""
        upgrade(self.engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; whatever it did is rolled back at the end."""
        with self._read() as session:
            yield session

    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """A session that can only read, in one snapshot: for the owner's long reads (dashboard,
        exports), which run in threads beside the request path. SQLite: a pool of its own whose
        connections are `query_only` (a deferred BEGIN: its snapshot is taken at the first read
        and kept to the end; WAL readers never block the writer); PostgreSQL: a READ ONLY,
        REPEATABLE READ transaction (one snapshot for every chunk of an export)."""
        with self._read_only() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in one write transaction, without an ORM session (the request path,
        whose statements are all Core): committed at the end, rolled back on an exception."""
        with self._gated(), self._writer.begin() as connection:
            yield connection

    def _gated(self) -> AbstractContextManager[None]:
        """SQLite file: the writers' queue (`store/write_gate.py`), held around the whole
        transaction; elsewhere nothing."""
        return self._gate.held() if self._gate is not None else nullcontext()

    @contextmanager
    def direct(self) -> Iterator[DirectConnection]:
        """One write transaction on a pooled driver connection, without SQLAlchemy's Connection
        (its set-up, events and commit cost about 80 µs a request): for the annotators' loop,
        whose statements all run on the driver's cursor (`store/prepared.py`). Committed at
        the end, rolled back on an exception; `BEGIN IMMEDIATE` on SQLite, as `transaction()`.
        The driver's errors come out as SQLAlchemy's (OperationalError, IntegrityError), which
        the server answers with 503 and 409, as it does for `transaction()`."""
        with self._gated():
            yield from self._direct()

    def _direct(self) -> Iterator[DirectConnection]:
        pooled = self.engine.pool.connect()
        driver = pooled.driver_connection
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            if self.sqlite:
                driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            yield DirectConnection(self.engine.dialect, pooled)
            if self.sqlite:
                driver.execute("COMMIT")  # type: ignore[union-attr]
            else:
                driver.commit()  # type: ignore[union-attr]
        except BaseException as exc:
            with suppress(Exception):
                if self.sqlite and driver.in_transaction:  # type: ignore[union-attr]
                    driver.execute("ROLLBACK")  # type: ignore[union-attr]
                elif not self.sqlite:
                    driver.rollback()  # type: ignore[union-attr]
            if isinstance(exc, dbapi_error):
                raise DBAPIError.instance(None, None, exc, dbapi_error) from exc
            raise
        finally:
            pooled.close()

    @contextmanager
    def direct_read(self) -> Iterator[DirectConnection]:
        """Reads on a pooled driver connection, outside any write transaction and without an
        ORM session (which costs about 0.2 ms): for the prepared statements of the request
        path that only read, such as a new bearer token's lookup. Rolled back at the end."""
        pooled = self.engine.pool.connect()
        driver = pooled.driver_connection
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            yield DirectConnection(self.engine.dialect, pooled)
        except dbapi_error as exc:
            raise DBAPIError.instance(None, None, exc, dbapi_error) from exc
        finally:
            with suppress(Exception):
                if not self.sqlite or driver.in_transaction:  # type: ignore[union-attr]
                    driver.rollback()  # type: ignore[union-attr]
            pooled.close()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed at the end, rolled back on an exception.

        The transaction belongs to the connection and the session joins it: this skips the
        ORM's own transaction bookkeeping, which costs as much as a query on the hot paths.
        """
        with self.transaction() as connection:
            session = Session(bind=connection, expire_on_commit=False)
            try:
                yield session
                session.flush()
            finally:
                session.close()

    def start_checkpointer(self, interval: float | None = None) -> Callable[[], None]:
        """SQLite: copy the WAL into the database every `interval` seconds (default: the settings'
        `checkpoint_seconds`) in a daemon thread (PASSIVE: it never waits for readers or writers);
        returns the function that stops it."""
        interval = self.settings.checkpoint_seconds if interval is None else interval
        if not self.sqlite:
            return lambda: None
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                try:
                    raw = self.engine.raw_connection()  # outside any transaction, as checkpoints need
                    try:
                        raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    finally:
                        raw.close()
                except Exception:  # a failed checkpoint is simply retried next time
                    continue

        thread = threading.Thread(target=run, name="listenloop-wal-checkpoint", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)

        return halt

    def dispose(self) -> None:
        """Close pooled connections (after a fork, or at shutdown)."""
        self.engine.dispose()
        if self._read_only_engine is not None:
            self._read_only_engine.dispose()


class DirectConnection:
    """What the prepared statements need of a connection (`dialect`, and `connection` with its
    `driver_connection`), for a transaction that `Database.direct()` runs on the driver."""

    __slots__ = ("connection", "dialect")

    def __init__(self, dialect: Dialect, pooled: Any) -> None:
        self.dialect = dialect
        self.connection = pooled


AnyConnection = Session | Connection | DirectConnection  # what the request path's functions take


def connection_of(session: AnyConnection) -> Connection:
    """The Core connection of a session (or the connection itself; a DirectConnection serves
    the prepared statements as one)."""
    return session.connection() if isinstance(session, Session) else session  # type: ignore[return-value]


def database_from_env() -> str:
    """The database URL of `LISTENLOOP_DB` (the settings'), or the default."""
    return Settings.from_env().db
