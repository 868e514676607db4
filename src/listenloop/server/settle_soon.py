"""When the server settles deferred clips (`engine/live/settle.py`): on the event loop, a few at
a time, once no annotator's request has come for `IDLE_GAP` seconds, and within
`SETTLE_WITHIN` seconds of the first deferral whatever the traffic.

Settling in every short lull measured worse than not deferring at all: a crowd's first second
has many lulls of a millisecond, and a slice of settling in each delayed the requests that came
right after (BENCHMARKS.md, "Issue 17: SQLite's writers in turn, deferred aggregation in the
first second"). The settling runs on the loop's own thread, so it never overlaps a request's
write transaction of this process, in slices of `SLICE` clips (a few milliseconds), each read and
aggregated before its short write transaction (`engine/live/settle.py`). Each process settles
the clips it deferred; what a process that died left is settled when it starts again (the
application's start-up runs `settle_all`, as does its shutdown). At most `MAX_DEFERRED` clips
wait per process: past that, answers are aggregated at once again (under a sustained overload
deferring would pile up work).
"""

from __future__ import annotations

import asyncio
import logging
import time

from listenloop.engine.live.settle import SETTLE_WITHIN, apply_pending, plan_clips
from listenloop.store.database import Database

log = logging.getLogger(__name__)

SLICE = 4  # clips settled at a time: a few milliseconds of the loop
MAX_DEFERRED = 64  # clips this process leaves waiting at most
IDLE_GAP = 0.01  # seconds without an annotator's request that count as a lull


class SettleSoon:
    """Settles this server's deferred clips on its event loop (one per process)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.clips: dict[int, None] = {}  # the clips this process left pending, oldest first
        self.last_request = 0.0  # when an annotator's request last came (time.monotonic)
        self._first: float | None = None  # when the oldest of them was deferred
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def room(self) -> bool:
        """Whether another answer may leave its clip waiting."""
        return len(self.clips) < MAX_DEFERRED

    def deferred(self, clip_id: int) -> None:
        """The clip `clip_id` was left pending."""
        self.clips[clip_id] = None
        if self._first is None:
            self._first = time.monotonic()
        self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:  # (a test's loop may have ended)
            self._loop = loop
            self._timer = loop.call_later(IDLE_GAP, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        due = self._first is not None and now - self._first >= SETTLE_WITHIN
        if due or now - self.last_request >= IDLE_GAP:
            self._slice()
        if self.clips:
            self._arm()
        else:
            self._first = None

    def _slice(self) -> None:
        batch = list(self.clips)[:SLICE]
        try:
            with self.db.direct_read() as conn:  # outside the write transaction: see settle.py
                plans = plan_clips(conn, batch)
            settled: list[int] = []
            if plans:
                with self.db.direct() as conn:
                    settled = apply_pending(conn, plans)
        except Exception:  # the lock timed out or the database is away: the next tick retries
            log.warning("settling deferred clips failed; retrying", exc_info=True)
            return
        # what stays: the clips answered (or undone) between the read and the write
        moved = {pending.plan.clip_id for pending in plans}.difference(settled)
        for clip in batch:
            if clip not in moved:
                del self.clips[clip]
