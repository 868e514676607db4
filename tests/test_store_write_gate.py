"""The SQLite writers' queue (store/write_gate.py): one writer at a time across threads and
processes, handed over at once, re-entrant, bounded by the busy timeout, and freed when its
holder dies."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from listenloop.settings import Settings
from listenloop.store.database import Database
from listenloop.store.write_gate import WriteGate


@contextmanager
def _held_by_another_thread(gate: WriteGate) -> Iterator[None]:
    """Another thread holds `gate` for the block."""
    inside, release = threading.Event(), threading.Event()

    def holder() -> None:
        with gate.held():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert inside.wait(5)
        yield
    finally:
        release.set()
        thread.join(5)


def _hold_forever(path: str, ready: multiprocessing.synchronize.Event) -> None:
    gate = WriteGate(Path(path), 1000)
    with gate.held():
        ready.set()
        time.sleep(60)


def test_a_waiter_gets_the_gate_as_soon_as_it_is_released(tmp_path: Path) -> None:
    gate = WriteGate(tmp_path / "l.db", 5000)
    inside = threading.Event()
    release = threading.Event()
    times: dict[str, float] = {}

    def holder() -> None:
        with gate.held():
            inside.set()
            release.wait(5)
            times["released"] = time.monotonic()

    def waiter() -> None:
        with gate.held():
            times["entered"] = time.monotonic()

    first = threading.Thread(target=holder)
    first.start()
    assert inside.wait(5)
    second = threading.Thread(target=waiter)
    second.start()
    time.sleep(0.2)
    assert "entered" not in times, "two threads held the gate at once"
    release.set()
    first.join(5)
    second.join(5)
    handover = times["entered"] - times["released"]
    assert 0 <= handover < 0.05, f"the waiter came in {handover * 1000:.1f} ms after the release"


def test_the_gate_is_reentrant_within_a_thread_and_free_after(tmp_path: Path) -> None:
    gate = WriteGate(tmp_path / "l.db", 200)
    with gate.held(), gate.held():
        pass
    other: list[bool] = []

    def take() -> None:
        with gate.held():
            other.append(True)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(5)
    assert other == [True], "the gate stayed taken after a nested hold ended"


def test_a_waiter_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    gate = WriteGate(tmp_path / "l.db", 150)
    with _held_by_another_thread(gate):
        start = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"), gate.held():
            pass
        waited = time.monotonic() - start
    assert 0.14 <= waited < 1.0, waited


def test_a_killed_holder_frees_the_gate(tmp_path: Path) -> None:
    """Another process holds it; once that process is killed (-9), a writer here gets in."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_forever, args=(str(tmp_path / "l.db"), ready))
    child.start()
    try:
        assert ready.wait(30)
        gate = WriteGate(tmp_path / "l.db", 100)
        with pytest.raises(OperationalError), gate.held():
            pass
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(10)
        with WriteGate(tmp_path / "l.db", 2000).held():
            pass
    finally:
        if child.is_alive():
            child.kill()


def test_write_transactions_of_a_sqlite_file_pass_the_gate(tmp_path: Path) -> None:
    """While another thread holds the gate, a write transaction waits for it (and, past the busy
    timeout, fails as SQLite's own lock would: 'database is locked', which the server answers
    with 503); reads never wait."""
    settings = Settings(db=f"sqlite:///{tmp_path / 'l.db'}", busy_timeout_ms=150)
    db = Database(settings.db, settings)
    db.upgrade()
    with _held_by_another_thread(WriteGate(tmp_path / "l.db", 5000)):
        with db.read() as session:
            assert session.execute(text("SELECT count(*) FROM users")).scalar() == 0
        with db.direct_read() as conn:  # the request path's reads (a new token's lookup)
            cursor = conn.connection.driver_connection.execute("SELECT count(*) FROM users")
            assert cursor.fetchone()[0] == 0
        with pytest.raises(DBAPIError, match="no such table"), db.direct_read() as conn:
            conn.connection.driver_connection.execute("SELECT * FROM nowhere")  # as SQLAlchemy's
        for writer in (db.transaction, db.direct):
            with pytest.raises(OperationalError, match="database is locked"), writer():
                pass
    with db.transaction() as conn:
        conn.execute(text("SELECT 1"))
    db.dispose()


def test_a_file_system_without_flock_leaves_the_ordering_to_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import listenloop.store.write_gate as wg

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    gate = WriteGate(tmp_path / "l.db", 200)
    monkeypatch.setattr(wg.fcntl, "flock", no_locks)
    with gate.held(), gate.held():
        pass
    assert gate.open is False
    with gate.held():  # and no second try
        pass
