"""Group commit for the annotators' loop: the `next` and `answer` requests that a server process
takes in one turn of its event loop share one write transaction.

Each write transaction of the request path pays for itself: the writers' gate (and, with two
workers, the other worker's turn), a pooled connection, `BEGIN IMMEDIATE` and a `COMMIT` that
writes the touched pages to the WAL, about 150 µs of a `next` that costs some 450 µs under the
lock. When a crowd asks at once (a campaign's first second, a server at full speed) a worker
has tens of requests waiting, and runs them one transaction each, taking turns with the other
worker for every one. Here the requests that arrive together wait for the end of the loop's
turn, then run in one transaction, each in a savepoint of its own: one that fails is rolled
back alone (its request then goes to the full application, as a failed fast-lane request
always did) and the others commit. No reply leaves before the COMMIT: an acknowledged answer
is stored (BENCHMARKS.md, "Issue 17: a listening socket per worker, group commit").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from listenloop.store.database import Database, DirectConnection

# Requests in one transaction at most. Their replies all wait for its COMMIT, so a large group
# turns a queue's spread of waits into one long wait for all of it; eight take most of the saving.
MAX_GROUP = 8

Work = Callable[[DirectConnection], Any]


class GroupCommit:
    """Runs the request path's write work of one loop turn in one transaction (one per process)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, work: Work) -> Any:
        """`work(conn)` inside a write transaction shared with the other requests of this loop
        turn; its result once that transaction committed, or the exception it (or the
        transaction) raised, after which nothing of it is stored."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._loop is not loop:  # what an ended loop left (a test's) is dropped
            self._loop, self._queue, self._scheduled = loop, [], False
        self._queue.append((work, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """One group, then back to the loop: its replies go out before the next group runs."""
        group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        try:
            self._commit(group)
        finally:  # after the group's wake-ups, so that its replies are sent first
            self._scheduled = bool(self._queue)
            if self._scheduled:
                asyncio.get_running_loop().call_soon(self._flush)

    def _commit(self, group: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.db.direct() as conn:
                if len(group) == 1:  # alone: the transaction itself is the savepoint
                    outcomes.append((True, group[0][0](conn)))
                else:
                    driver = conn.connection.driver_connection
                    for work, _ in group:
                        outcomes.append(_in_savepoint(driver, conn, work))
        except Exception as exc:  # the transaction failed (or the lone work): none of it stands
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), (ok, value) in zip(group, outcomes, strict=True):
            if future.done():  # its request was cancelled (the client went away)
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _in_savepoint(driver: Any, conn: DirectConnection, work: Work) -> tuple[bool, Any]:
    """(True, result) of `work`, or (False, its exception) with what it wrote rolled back."""
    driver.execute("SAVEPOINT grouped")
    try:
        result = work(conn)
    except Exception as exc:
        driver.execute("ROLLBACK TO SAVEPOINT grouped")
        driver.execute("RELEASE SAVEPOINT grouped")
        return False, exc
    driver.execute("RELEASE SAVEPOINT grouped")
    return True, result
