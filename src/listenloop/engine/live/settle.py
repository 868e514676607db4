"""Deferred aggregation: clips whose newest answers wait in `pending_aggregates` get their
label, soft label and status here.

When a crowd starts, every annotator's first `next` and `answer` arrive together and each
request waits for all those before it; re-aggregating a clip is a third of an answered pair's
work (BENCHMARKS.md, "Issue 17: SQLite's writers in turn, deferred aggregation in the first
second"). So while other requests queue, the server stores an answer and leaves its clip here
(`submit_answer(defer_aggregate=True)`: the clip's answer count goes up at once, so `next`
never hands it out beyond its maximum), and settles the clips in the next lull, within
`SETTLE_WITHIN` seconds at the latest (`server/settle_soon.py`). Meanwhile a clip its policy
would already call done may get an answer more, never more than its maximum. Rows left by a
crash are settled when the server starts (`settle_all`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from listenloop.engine.live.tasks import reaggregate_clip
from listenloop.engine.live.views import load_view
from listenloop.store import tasks as q
from listenloop.store.database import AnyConnection, Database, connection_of
from listenloop.store.models import utcnow

SETTLE_WITHIN = 0.25  # seconds a deferred clip may wait while requests keep queuing
SETTLE_BATCH = 200  # clips per write transaction: a short hold on the write lock


def settle_pending(session: AnyConnection, limit: int = SETTLE_BATCH, now: datetime | None = None) -> int:
    """Re-aggregate up to `limit` pending clips inside the caller's write transaction, and take
    them off the list; how many were settled."""
    now = now or utcnow()
    conn = connection_of(session)
    rows = q.PENDING_TAKE.all(conn, {"n": limit})
    by_project: dict[int, list[tuple[int, int | None]]] = defaultdict(list)
    for row in rows:
        by_project[int(row.project_id)].append((int(row.clip_id), row.user_id))
    for project_id, clips in by_project.items():
        view = load_view(conn, project_id)
        for clip_id, user_id in clips:
            reaggregate_clip(conn, view, clip_id, user_id, now)
            q.PENDING_DROP.run(conn, {"clip": clip_id})
    return len(rows)


def settle_all(db: Database) -> int:
    """Settle every pending clip, a batch per transaction (at start-up: what a crash left)."""
    total = 0
    while True:
        with db.direct() as conn:
            done = settle_pending(conn)
        total += done
        if done < SETTLE_BATCH:
            return total
