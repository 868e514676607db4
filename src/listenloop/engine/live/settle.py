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

The server reads and aggregates the clips outside any write transaction (`plan_clips`), then
writes the verdicts in a short one (`apply_pending`), each only where the clip is as it was read
(its answer count, status and pending row); a clip that moved stays pending for the next slice.
With the write transaction the one thing the server's processes take in turn, aggregating
inside it made every other request wait for it (BENCHMARKS.md, "Issue 17: settling outside the
write transaction"). The annotators' trust may move between the read and the write: the verdict
is then that of a moment earlier, as if the clip had been settled then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from listenloop.engine.live.tasks import ClipPlan, apply_plan, plan_clip
from listenloop.engine.live.views import ProjectView, load_view
from listenloop.store import tasks as q
from listenloop.store.database import AnyConnection, Database, connection_of
from listenloop.store.models import utcnow

SETTLE_WITHIN = 0.25  # seconds a deferred clip may wait while requests keep queuing
SETTLE_BATCH = 200  # clips per write transaction: a short hold on the write lock


@dataclass(frozen=True)
class PendingPlan:
    """A pending clip's plan and the mark it was read under (answers, status, pending since)."""

    project: ProjectView
    plan: ClipPlan
    mark: tuple[int, str, datetime]


def plan_clips(session: AnyConnection, clip_ids: list[int]) -> list[PendingPlan]:
    """Read and aggregate these clips where they are pending (reads only). Each clip's mark is
    read before its answers, so that an answer stored in between shows as a changed mark."""
    conn = connection_of(session)
    views: dict[int, ProjectView] = {}
    plans = []
    for clip in clip_ids:
        mark = q.PENDING_MARK.first(conn, {"clip": clip})
        if mark is None:  # settled meanwhile
            continue
        view = views.get(mark.project_id)
        if view is None:
            view = views[mark.project_id] = load_view(conn, mark.project_id)
        plan = plan_clip(conn, view, clip, lock=False)  # apply_pending locks and checks the mark
        plans.append(PendingPlan(view, plan, (int(mark[0]), str(mark[1]), mark[2])))
    return plans


def plan_pending(session: AnyConnection, limit: int = SETTLE_BATCH) -> list[PendingPlan]:
    """`plan_clips` of up to `limit` pending clips, whoever deferred them."""
    conn = connection_of(session)
    return plan_clips(conn, [int(row.clip_id) for row in q.PENDING_TAKE.all(conn, {"n": limit})])


def apply_pending(session: AnyConnection, plans: list[PendingPlan], now: datetime | None = None) -> list[int]:
    """Write the plans whose clip is as it was read, inside the caller's write transaction, and
    take those clips off the list; the clips settled."""
    now = now or utcnow()
    conn = connection_of(session)
    mark_stmt = q.PENDING_MARK_PG if conn.dialect.name == "postgresql" else q.PENDING_MARK
    settled = []
    for pending in plans:
        clip = pending.plan.clip_id
        mark = mark_stmt.first(conn, {"clip": clip})
        if mark is None or (int(mark[0]), str(mark[1]), mark[2]) != pending.mark:
            continue  # settled by another, or answered (or undone) since: the next slice
        apply_plan(conn, pending.project, pending.plan, mark[3], now)
        q.PENDING_DROP.run(conn, {"clip": clip})
        settled.append(clip)
    return settled


def settle_pending(session: AnyConnection, limit: int = SETTLE_BATCH, now: datetime | None = None) -> int:
    """Re-aggregate up to `limit` pending clips inside the caller's write transaction, and take
    them off the list; how many were settled."""
    return len(apply_pending(session, plan_pending(session, limit), now))


def settle_all(db: Database) -> int:
    """Settle every pending clip, a batch per transaction (at start-up: what a crash left)."""
    total = 0
    while True:
        with db.direct() as conn:
            done = settle_pending(conn)
        total += done
        if done < SETTLE_BATCH:
            return total
