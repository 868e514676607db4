"""The learning service (`engine/learning/service.py`) in a process of its own, beside the server.

Why a process: the service's own Python work (reading a project's inputs, handing them to
Dask, writing ranks, runs and maps) holds the GIL for milliseconds at a time. In the server's
process every request waits for the GIL after each database call, so under load that work
multiplied `next` and `answer` latency (BENCHMARKS.md, "The annotator API under load"). In a
child process the two share only the database. The child ends with its parent, even on kill -9.

The parent tells the child to stop through a pipe, not a `multiprocessing.Event`: a SIGTERM to
the whole process group (systemd's stop, `kill -- -PGID`) kills the child inside the Event's
`wait()`, and the parent's `set()` then waited for ever for the dead sleeper's acknowledgement,
so the server never exited. Writing to a pipe whose reader died only fails.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from listenloop.engine.learning.service import POLL_SECONDS, LearningService
from listenloop.lifetime import die_with_parent
from listenloop.store.database import Database

log = logging.getLogger("listenloop.learning")
# How long a stop waits for the child to end by itself. A round that a stop interrupts frees
# its lease within WAIT_STEP (1 s); closing the local Dask cluster after it took 5 to 10 s on
# a busy machine, so that SIGINT to the server's group (Ctrl+C: the child ignores it and waits
# for the parent's word) or SIGTERM to the parent alone took up to 15 s. Ending the child then
# loses nothing: its workers end with it, and a lease still held expires.
STOP_SECONDS = 3.0
WATCH_SECONDS = 1.0  # how often the parent looks whether the child still runs
RESTART_SECONDS = 60.0  # a child that keeps dying is restarted at most this often
STOPPED = (0, -signal.SIGTERM)  # exit codes of a child that was stopped, not killed


class LearningProcess:
    """Runs a LearningService on `db_url` in a spawned child process; start() and stop() like it."""

    def __init__(
        self,
        db_url: str,
        data_dir: str | Path,
        scheduler: str | None = None,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.db_url = db_url
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.scheduler = scheduler or None
        self.poll_seconds = poll_seconds  # read at start()
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._stop: Any = None
        self._process: Any = None
        self._lock = threading.RLock()  # start, stop and the watcher's restart
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._restarted_at = -math.inf
        self.restarts = 0

    def start(self) -> None:
        """Start the child (it polls every `poll_seconds`), and a thread that restarts it when it
        is killed (`revive`)."""
        with self._lock:
            self._spawn()
            if self._watcher is None:
                self._stopping.clear()
                self._watcher = threading.Thread(
                    target=self._watch, name="listenloop-learning-watch", daemon=True
                )
                self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            self.revive()

    def revive(self) -> bool:
        """Start the child again if it was killed (SIGKILL: the kernel's out-of-memory killer, or
        a `kill -9` of it alone) or crashed (a signal such as SIGSEGV, or an exit code above 0),
        at most once every RESTART_SECONDS; True when it did. Without this the server went on
        serving with no learning and said nothing. A child that Ctrl+C (its clean exit, 0) or
        SIGTERM ended is not restarted: those reach it when the whole group stops."""
        with self._lock:
            child = self._process
            if child is None or child.is_alive() or self._stopping.is_set():
                return False
            code = child.exitcode
            if code in STOPPED or time.monotonic() - self._restarted_at < RESTART_SECONDS:
                return False
            log.warning("learning service: its process ended (exit code %s); starting it again", code)
            with contextlib.suppress(OSError):
                self._stop.close()
            self._restarted_at = time.monotonic()
            self.restarts += 1
            self._spawn()
            return True

    def _spawn(self) -> None:
        if self.running:
            return
        reader, self._stop = self._context.Pipe(duplex=False)
        args = (self.db_url, str(self.data_dir), self.scheduler, self.poll_seconds, reader, os.getpid())
        # Not a daemon: daemonic processes may not start children, and its Dask cluster has some.
        self._process = self._context.Process(target=_main, args=args, name="listenloop-learning")
        self._process.start()
        reader.close()  # the child's end: when the child dies, a stop only finds the pipe broken

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask the child to stop (a running round is abandoned, its lease freed); kill it after `timeout`."""
        self._stopping.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join()
        with self._lock:
            self._stop_child(timeout)

    def _stop_child(self, timeout: float) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError):  # BrokenPipeError: the child is gone already
            self._stop.send(True)
        self._stop.close()
        self._process.join(timeout)
        if self._process.is_alive():
            log.info("learning service: still closing after %.0f s; ending it", timeout)
            self._process.terminate()
            self._process.join(2)
        if self._process.is_alive():  # e.g. stopped (SIGSTOP): a SIGTERM waits, SIGKILL does not
            self._process.kill()
            self._process.join(2)
        self._process = None

    @property
    def running(self) -> bool:
        """The child is alive."""
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self.running else None


def _main(
    db_url: str, data_dir: str, scheduler: str | None, poll_seconds: float, stop: Any, parent: int
) -> None:
    """The child: run the service until the parent writes to `stop` (or dies: end of file), or
    until Ctrl+C reaches the whole group (SIGINT: it stops at once, beside the parent, instead of
    after the parent's own shutdown; a KeyboardInterrupt would print a traceback)."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the service runs and can be stopped
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    db = Database(db_url)
    lease = db.settings.learning_lease  # LISTENLOOP_LEARNING_LEASE_SECONDS
    service = LearningService(db, Path(data_dir), scheduler, poll_seconds=poll_seconds, lease=lease)
    service.start()
    try:
        signal.signal(signal.SIGINT, _interrupted)
        with contextlib.suppress(EOFError, OSError, _InterruptedError):
            stop.recv()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        service.stop()
        db.dispose()


class _InterruptedError(Exception):
    """SIGINT reached the child: stop as when the parent says so."""


def _interrupted(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # once: a second Ctrl+C does not cut the stop short
    raise _InterruptedError
