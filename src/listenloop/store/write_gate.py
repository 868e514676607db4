"""The SQLite writers' queue: one write transaction at a time per database file, across threads
and processes, handed over the moment the holder commits.

SQLite already lets one writer in at a time, but a writer that finds the lock taken sleeps in
its busy handler (1, 2, 5, 10, ... ms) and usually loses the lock again to the process that
just released it, so with two server workers on one file most of the waiting is sleeping:
the cores idle and a few requests starve for most of a second (BENCHMARKS.md, "Issue 17:
SQLite's writers in turn, deferred aggregation in the first second"). The gate is an exclusive
`flock` on a file beside the database, taken before `BEGIN IMMEDIATE` and released after
`COMMIT`: a waiter gets it within a poll of its release, and the kernel frees it when its
holder dies (a killed worker never leaves it taken).

Writers that do not pass the gate (migrations, other tools) are still correct: SQLite's lock
and busy timeout order them, as before; so is a database on a file system without `flock`
(the gate then stands aside).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import OperationalError

# A blocked `flock` cannot time out, so a waiter polls the non-blocking form: first at once,
# then at this interval (a poll costs a few microseconds; the wait it adds is at most this).
POLL_SECONDS = 0.0002

log = logging.getLogger(__name__)


class WriteGate:
    """An exclusive lock for `path`'s writers; re-entrant within a thread."""

    def __init__(self, database_path: Path, timeout_ms: int) -> None:
        self.path = Path(str(database_path) + "-writers")
        self.timeout = timeout_ms / 1000
        self._local = threading.local()
        self.open = True  # False once the file system refused a lock: SQLite's own lock alone
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)

    def _fd(self) -> int:
        """This thread's own open file (flock locks of two open files exclude each other, even
        within one process); reopened after a fork."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.fd = os.open(self.path, os.O_RDWR)
            local.pid = os.getpid()
            local.depth = 0
        return local.fd

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the gate for the block; an OperationalError ("database is locked", as SQLite's
        own) after the busy timeout, which the server answers with 503."""
        if not self.open:
            yield
            return
        fd = self._fd()
        local = self._local
        if local.depth == 0 and not self._acquire(fd):
            yield
            return
        local.depth += 1
        try:
            yield
        finally:
            local.depth -= 1
            if local.depth == 0:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _acquire(self, fd: int) -> bool:
        """Take the lock (True); False where the file system has no `flock`."""
        deadline = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout
                elif now >= deadline:
                    raise OperationalError(
                        "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
                    ) from None
                time.sleep(POLL_SECONDS)
            except OSError as exc:  # e.g. ENOLCK on some network file systems
                log.warning("no flock on %s (%s): SQLite's own lock orders the writers", self.path, exc)
                self.open = False
                return False
