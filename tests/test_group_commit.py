"""Group commit (server/group_commit.py): the fast lane's requests of one loop turn share one
write transaction, each in a savepoint; no result before the COMMIT."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

import listenloop.server.group_commit as gc
from api_support import count_transactions
from listenloop.store.database import Database, DirectConnection


@pytest.fixture
def db(database_url: str) -> Any:
    database = Database(database_url)
    with database.transaction() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER UNIQUE)"))
    yield database
    database.dispose()


def _stored(db: Database) -> list[int]:
    with db.read() as session:
        return [r[0] for r in session.execute(text("SELECT x FROM t ORDER BY x"))]


def _insert(x: int) -> gc.Work:
    def work(conn: DirectConnection) -> int:
        mark = "?" if conn.dialect.name == "sqlite" else "%s"
        conn.connection.driver_connection.execute(f"INSERT INTO t VALUES ({mark})", (x,))
        return x

    return work


def test_requests_of_one_loop_turn_share_one_transaction(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = count_transactions(db, monkeypatch)

    async def main() -> list[int]:
        group = gc.GroupCommit(db)
        return await asyncio.gather(*(group.run(_insert(x)) for x in range(5)))

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    assert len(opened) == 1
    assert _stored(db) == [0, 1, 2, 3, 4]


def test_a_failing_request_is_rolled_back_alone(db: Database) -> None:
    def half_then_fail(conn: DirectConnection) -> None:
        conn.connection.driver_connection.execute("INSERT INTO t VALUES (100)")
        raise ValueError("refused")

    async def main() -> list[Any]:
        group = gc.GroupCommit(db)
        works = [_insert(1), half_then_fail, _insert(2), _insert(1)]  # the last: a duplicate
        return await asyncio.gather(*(group.run(w) for w in works), return_exceptions=True)

    one, failed, two, duplicate = asyncio.run(main())
    assert (one, two) == (1, 2)
    assert isinstance(failed, ValueError)
    assert "UNIQUE" in str(duplicate) or "unique" in str(duplicate)
    assert _stored(db) == [1, 2]  # nothing of the failed work, nor of the duplicate


def test_a_lone_failing_request_is_rolled_back(db: Database) -> None:
    async def main() -> Any:
        return await gc.GroupCommit(db).run(_insert(7)), await gc.GroupCommit(db).run(_insert(7))

    with pytest.raises(Exception, match=r"(?i)unique"):
        asyncio.run(main())
    assert _stored(db) == [7]


def test_a_failed_transaction_fails_every_request_of_the_group(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lock() -> Any:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(db, "direct", no_lock)

    async def main() -> list[Any]:
        group = gc.GroupCommit(db)
        return await asyncio.gather(*(group.run(_insert(x)) for x in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def test_groups_are_bounded_and_each_groups_replies_come_before_the_next_group(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = count_transactions(db, monkeypatch)
    log: list[str] = []

    def work(x: int) -> gc.Work:
        def run(conn: DirectConnection) -> int:
            log.append(f"run {x}")
            return _insert(x)(conn)

        return run

    async def request(group: gc.GroupCommit, x: int) -> int:
        result = await group.run(work(x))
        log.append(f"reply {x}")
        with db.read() as session:  # committed before the reply
            assert session.execute(text("SELECT count(*) FROM t WHERE x = :x"), {"x": x}).scalar() == 1
        return result

    async def main() -> list[int]:
        group = gc.GroupCommit(db)
        return await asyncio.gather(*(request(group, x) for x in range(gc.MAX_GROUP + 3)))

    assert asyncio.run(main()) == list(range(gc.MAX_GROUP + 3))
    assert len(opened) == 2
    first_reply = log.index("reply 0")
    assert all(f"run {x}" in log[:first_reply] for x in range(gc.MAX_GROUP))
    assert log.index(f"run {gc.MAX_GROUP}") > first_reply


def test_a_loop_that_ended_with_work_queued_does_not_block_the_next(db: Database) -> None:
    group = gc.GroupCommit(db)
    ended = asyncio.new_event_loop()
    abandoned = ended.create_future()
    group._loop, group._queue, group._scheduled = ended, [(_insert(1), abandoned)], True
    ended.close()  # its flush never runs

    async def main() -> int:
        return await group.run(_insert(2))

    assert asyncio.run(main()) == 2
    assert _stored(db) == [2]
