"""The request path's cost does not grow with the project (issue 17): every statement that `next`,
`answer`, `undo`, progress, `status`, the leaderboards and the dashboard's summary run is
recorded and explained (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN with sequential scans
disabled, so that a plan still scanning has no index to use), and none may read all of `tasks`,
`events` or `clips`, nor sort its candidates by random(). Also: the clip tallies the triggers keep match
the clips, and expired leases are reclaimed.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from listenloop.engine import dashboard as dash
from listenloop.engine import gamification as game
from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig
from listenloop.engine.errors import ConflictError
from listenloop.engine.live.settle import settle_pending
from listenloop.engine.live.tasks import LEASE, RECLAIM_AFTER, next_task, submit_answer, undo_answer
from listenloop.engine.projects import create_project, project_status
from listenloop.store import prepared
from listenloop.store.answer_tallies import answer_tallies
from listenloop.store.clip_tallies import tallies
from listenloop.store.database import Database
from listenloop.store.label_tallies import label_tallies
from listenloop.store.models import Clip, Event, Project, Task, utcnow
from row_support import queued_clip

BIG = ("tasks", "clips", "events")


@pytest.fixture
def db(tmp_path: Path, database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


def _project(
    db: Database, regular: int = 30, gold: int = 3, **config: Any
) -> tuple[int, Principal, list[Principal]]:
    """A digit project: a seed clip, `regular` - 1 queued clips, `gold` control clips; 3 annotators."""
    with db.write() as s:
        owner = create_user(s, "owner", "x", "owner")
        people = [create_user(s, f"a{i}", "x") for i in range(3)]
        settings = {"control_rate": 0.0, "consistency_rate": 0.0, **config}
        boss = Principal(owner.id, "owner", "owner")
        config = ProjectConfig(name="p", task_type="classification", classes=list("0123456789"), **settings)
        project = create_project(s, boss, config)
        for i in range(regular + gold):
            s.add(
                queued_clip(
                    project.id,
                    i,
                    status="done" if i == 0 else "queued",  # a seed clip, then the queue
                    is_gold=i >= regular,
                    gold_label="0" if i >= regular else None,
                    seed_label="3" if i == 0 else None,
                )
            )
        return project.id, boss, [Principal(p.id, p.username, "annotator") for p in people]


@contextmanager
def recorded(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """Every statement run on `db`'s engine or through a prepared statement, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def orm(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    original = prepared.Prepared._cursor

    def spy(self: prepared.Prepared, conn: Any, params: dict[str, Any]) -> Any:
        cursor, compiled = original(self, conn, params)
        seen.append((compiled.sql, _args(compiled, params)))
        return cursor, compiled

    def _args(c: Any, params: dict[str, Any]) -> Any:
        values = {**c.fixed, **params}
        for name in c.defaults:
            values.setdefault(name, c.defaults[name]())
        for name, process in c.to_db.items():
            values[name] = process(values[name])
        return [values[n] for n in c.names] if c.positional else {n: values[n] for n in c.names}

    event.listen(db.engine, "before_cursor_execute", orm)
    prepared.Prepared._cursor = spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        prepared.Prepared._cursor = original  # type: ignore[method-assign]
        event.remove(db.engine, "before_cursor_execute", orm)


def _aliases(sql: str) -> dict[str, str]:
    """Table (and alias) names in a statement, each to its table."""
    names = {t: t for t in BIG}
    for table, alias in re.findall(r"\b(tasks|clips|events)\s+AS\s+(\w+)", sql):
        names[alias] = table
    return names


def sqlite_problems(driver: Any, sql: str, args: Any) -> list[str]:
    """Full scans (of a table or a whole index) of tasks, clips or events."""
    rows = driver.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
    names = _aliases(sql)
    bad = []
    for row in rows:
        detail = str(row[-1])
        scan = re.match(r"SCAN (\w+)", detail)
        if scan and scan.group(1) in names:
            bad.append(detail)
    return bad


def _pg_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _pg_nodes(child)


def pg_problems(driver: Any, sql: str, args: Any) -> list[str]:
    """The same on PostgreSQL: a sequential scan, or an index scan with no condition (all of it)."""
    with driver.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, args)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    bad = []
    for node in _pg_nodes(plan[0]["Plan"]):
        if node.get("Relation Name") not in BIG:
            continue
        kind = node["Node Type"]
        if kind == "Seq Scan" or (kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node):
            bad.append(f"{kind} on {node['Relation Name']} ({node.get('Index Name')})")
    return bad


def explain_all(db: Database, statements: list[tuple[str, Any]]) -> dict[str, list[str]]:
    """Each distinct data statement's problems (empty: none)."""
    out: dict[str, list[str]] = {}
    raw = db.engine.raw_connection()
    try:
        driver = raw.driver_connection
        if not db.sqlite:
            with driver.cursor() as cursor:
                cursor.execute("SET enable_seqscan = off")
        for sql, args in statements:
            if sql in out or not re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT|WITH)\b", sql, re.I):
                continue
            if isinstance(args, (list, tuple)) and args and isinstance(args[0], (list, tuple, dict)):
                args = args[0]  # executemany: one row's parameters are enough to explain it
            out[sql] = sqlite_problems(driver, sql, args) if db.sqlite else pg_problems(driver, sql, args)
            if "random()" in sql.lower():  # a draw that sorts its candidates by a random key
                out[sql].append("ORDER BY random()")
    finally:
        raw.close()
    return out


def test_no_statement_of_the_request_path_scans_tasks_clips_or_events(db: Database) -> None:
    pid, _, (a, b, c) = _project(db, budget=500)
    now = utcnow()
    with recorded(db) as seen:
        # (annotator, (control rate, consistency rate)): every kind of draw
        turns = [(a, (0, 0)), (a, (1, 0)), (b, (0, 0)), (b, (0, 1)), (c, (1, 0))] * 4
        for i, (who, rates) in enumerate(turns):
            with db.write() as s:
                project = s.get(Project, pid)
                project.control_rate, project.consistency_rate = rates
            at = now + timedelta(minutes=2 * i)
            with db.transaction() as conn:
                task = next_task(conn, pid, who, now=at, rng=random.Random(i))
                ahead = next_task(conn, pid, who, now=at, ahead=True, rng=random.Random(i + 1))
            assert task is not None and ahead is not None
            with db.transaction() as conn:  # every other one deferred, as while requests queue
                submit_answer(conn, task.task_id, who, str(i % 3), now=at, defer_aggregate=i % 2 == 1)
            if i % 3 == 2:
                with db.transaction() as conn:
                    settle_pending(conn)
            if i % 5 == 4:
                with db.transaction() as conn:
                    undo_answer(conn, task.task_id, who, now=at)
        with db.read() as s:
            project = s.get(Project, pid)
            game.user_progress(s, a.id, project_id=pid, offset_minutes=90)
            game.leaderboard(s, project_id=pid, me=a.id)
            project_status(s, project)
            dash.dashboard_summary(s, project)
            dash.annotator_table(s, project)
    problems = {sql: bad for sql, bad in explain_all(db, seen).items() if bad}
    assert not problems, "\n\n".join(f"{sql}\n  -> {bad}" for sql, bad in problems.items())


def test_the_plan_check_catches_a_scan(db: Database) -> None:
    """The checks above can fail: a draw sorted by random() over every clip is caught."""
    _project(db)
    sql = str(
        select(Clip.id)
        .where(Clip.is_gold.is_(True))
        .order_by(func.random())
        .limit(1)
        .compile(db.engine, compile_kwargs={"literal_binds": True})
    )
    [bad] = explain_all(db, [(sql, {} if not db.sqlite else ())]).values()
    assert bad


def test_clip_tallies_follow_every_change_of_the_clips(db: Database) -> None:
    pid, _, (a, b, _) = _project(db, regular=4, gold=1, redundancy={"min": 2, "max": 2, "tau": 0.5})
    now = utcnow()
    for who in (a, b):
        with db.transaction() as conn:
            task = next_task(conn, pid, who, now=now, rng=random.Random(0))
            submit_answer(conn, task.task_id, who, "1", now=now)
    with db.write() as s:
        s.execute(update(Clip).where(Clip.file_name == "c3.wav").values(is_gold=True, gold_label="2"))
        s.execute(update(Clip).where(Clip.file_name == "c2.wav").values(seed_label="5", status="done"))
        s.execute(update(Clip).where(Clip.file_name == "c3.wav").values(rank=9.0))  # no tallied column
    with db.read() as s:
        kept = {(t.status, t.is_gold, t.seeded, t.n_answers): t.clips for t in tallies(s, pid)}
        rows = s.execute(
            select(Clip.status, Clip.is_gold, Clip.seed_label.is_not(None), Clip.n_answers, func.count())
            .where(Clip.project_id == pid)
            .group_by(Clip.status, Clip.is_gold, Clip.seed_label.is_not(None), Clip.n_answers)
        ).all()
        counted = {(r[0], bool(r[1]), bool(r[2]), int(r[3])): int(r[4]) for r in rows}
        status = project_status(s, s.get(Project, pid))
    assert kept == counted
    assert kept[("done", False, False, 2)] == 1  # both answered c1: done with 2 answers
    assert kept[("done", False, True, 0)] == 2  # the seed clip c0, and c2 seeded later
    assert status["clips"] == 3 and status["clips_by_status"]["done"] == 3  # c3 became a control


def test_expired_leases_are_reclaimed_and_late_answers_still_get_409(db: Database) -> None:
    pid, _, (a, b, _) = _project(db, regular=3, gold=0)
    now = utcnow()
    with db.transaction() as conn:
        first = next_task(conn, pid, a, now=now)
        prefetch = next_task(conn, pid, a, now=now, ahead=True)  # never answered
    assert first is not None and prefetch is not None
    late = now + LEASE + timedelta(minutes=1)
    with db.transaction() as conn, pytest.raises(ConflictError, match="expired"):
        submit_answer(conn, first.task_id, a, "1", now=late)
    with db.transaction() as conn:
        other = next_task(conn, pid, b, now=now)  # the newest task of all: never reclaimed
    much_later = now + LEASE + RECLAIM_AFTER + timedelta(minutes=1)
    with db.transaction() as conn:
        again = next_task(conn, pid, a, now=much_later, rng=random.Random(0))
        gone = next_task(conn, pid, b, now=much_later, rng=random.Random(0))
    assert again is not None and other is not None and gone is not None
    with db.read() as s:
        left = set(s.scalars(select(Task.id).where(Task.annotator_id == a.id)))
        kept = set(s.scalars(select(Task.id).where(Task.annotator_id == b.id)))
        leased = s.scalars(select(func.count()).select_from(Event).where(Event.kind == "task_leased")).one()
    assert first.task_id not in left and prefetch.task_id not in left and left == {again.task_id}
    assert again.clip_id == first.clip_id  # the clip they never answered is theirs to hear again
    assert again.task_id > other.task_id  # a task id never comes back
    assert kept == {gone.task_id}  # b's expired lease went once it was no longer the newest
    assert leased == 0  # the task row is the lease's record


def test_direct_transactions_commit_or_roll_back_whole(db: Database) -> None:
    """`Database.direct()` (the hot routes' transaction on the driver): an exception leaves
    nothing stored and the pooled connection usable; a clean exit commits."""
    pid, _, (a, _, _) = _project(db, regular=3, gold=0)
    now = utcnow()
    with pytest.raises(RuntimeError, match="boom"), db.direct() as conn:
        assert next_task(conn, pid, a, now=now) is not None
        raise RuntimeError("boom")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Task)) == 0
    for _ in range(3):  # the same pooled connections again, none left inside a transaction
        with db.direct() as conn:
            task = next_task(conn, pid, a, now=now)
    assert task is not None
    with db.direct() as conn:
        submit_answer(conn, task.task_id, a, "1", now=now)
    with db.read() as s:
        stored = s.get(Task, task.task_id)
    assert stored is not None and stored.answer == "1"


def test_a_locked_database_in_a_direct_transaction_is_sqlalchemys_error(tmp_path: Path) -> None:
    """SQLite's "database is locked" past the busy timeout comes out of `direct()` as SQLAlchemy's
    OperationalError, which the server answers with 503 and Retry-After (never a 500)."""
    import sqlalchemy.exc

    from listenloop.settings import Settings

    db = Database(f"sqlite:///{tmp_path / 'locked.db'}")
    db.upgrade()
    other = db.engine.raw_connection()
    try:
        other.driver_connection.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        impatient = Settings.from_env().model_copy(update={"busy_timeout_ms": 50})
        quick = Database(f"sqlite:///{tmp_path / 'locked.db'}", settings=impatient)
        with pytest.raises(sqlalchemy.exc.OperationalError, match="locked"), quick.direct():
            pass
        quick.dispose()
    finally:
        other.driver_connection.execute("ROLLBACK")
        other.close()
        db.dispose()


def _label_recount(s: Any, pid: int) -> dict[tuple[str, str], int]:
    """(source, label) -> clips, counted from the clips by the label distribution's rule."""
    out: dict[tuple[str, str], int] = {}
    rows = s.execute(
        select(Clip.is_gold, Clip.status, Clip.label, Clip.seed_label, Clip.expert_label).where(
            Clip.project_id == pid
        )
    )
    for gold, status, label, seed, expert in rows:
        if gold or (seed is None and status != "done"):
            continue
        source = "expert" if expert is not None else "seed" if seed is not None else "crowd"
        value = expert if expert is not None else seed if seed is not None else label
        if value is not None:
            out[(source, value)] = out.get((source, value), 0) + 1
    return out


def _answer_recount(s: Any, pid: int) -> dict[tuple[int, str], tuple[int, int, int]]:
    """(annotator, kind) -> (answered, checked, passed), counted from the tasks."""
    out: dict[tuple[int, str], tuple[int, int, int]] = {}
    rows = s.execute(
        select(Task.annotator_id, Task.kind, Task.passed).where(
            Task.project_id == pid, Task.answered_at.is_not(None)
        )
    )
    for user, kind, passed in rows:
        n, checked, right = out.get((user, kind), (0, 0, 0))
        out[(user, kind)] = (n + 1, checked + (passed is not None), right + bool(passed))
    return out


def test_label_and_answer_tallies_follow_every_change(db: Database) -> None:
    """The tallies the dashboard reads (label distribution, answers by kind, checks) match the
    clips and tasks after answers, an undo, the owner's corrections and deletions."""
    pid, _, people = _project(db, regular=6, gold=2, redundancy={"min": 2, "max": 2, "tau": 0.5})
    now = utcnow()
    for i, who in enumerate(people * 3):
        with db.write() as s:
            s.get(Project, pid).control_rate = float(i % 2)  # control and regular draws
        with db.transaction() as conn:
            task = next_task(conn, pid, who, now=now + timedelta(minutes=i), rng=random.Random(i))
            assert task is not None
            submit_answer(conn, task.task_id, who, str(i % 2), now=now + timedelta(minutes=i))
        if i == 4:
            with db.transaction() as conn:
                undo_answer(conn, task.task_id, who, now=now + timedelta(minutes=i))
    with db.read() as s:
        assert _label_recount(s, pid) and any(k == "control" for _, k in _answer_recount(s, pid))
    with db.write() as s:
        s.execute(update(Clip).where(Clip.file_name == "c1.wav").values(expert_label="7"))
        s.execute(update(Clip).where(Clip.file_name == "c2.wav").values(seed_label="5", status="done"))
        s.execute(update(Clip).where(Clip.file_name == "c3.wav").values(status="done", label="8"))
        s.execute(update(Clip).where(Clip.file_name == "c3.wav").values(label="9"))
        s.execute(update(Clip).where(Clip.file_name == "c0.wav").values(is_gold=True))
        s.execute(update(Task).where(Task.kind == "control").values(passed=False))
        first = s.scalar(select(func.min(Task.id)).where(Task.answered_at.is_not(None)))
        s.execute(Task.__table__.delete().where(Task.id == first))
        s.execute(Clip.__table__.delete().where(Clip.file_name == "c4.wav"))
    with db.read() as s:
        labels = {(source, label): n for source, label, n in label_tallies(s, pid)}
        answers = {(r.user_id, r.kind): (r.answers, r.checked, r.passed) for r in answer_tallies(s, pid)}
        assert labels == _label_recount(s, pid)
        assert answers == _answer_recount(s, pid)
    assert labels[("expert", "7")] == 1 and labels[("seed", "5")] == 1 and labels[("crowd", "9")] == 1
    assert ("seed", "3") not in labels  # the seed clip c0 became a control


def _grow(db: Database, pid: int, users: list[int], n: int) -> None:
    """n more clips of every kind the dashboard tells apart, n answered tasks of every kind and
    n check events: the project's size and history, ten times over between two measurements."""
    now = utcnow()
    with db.write() as s:
        top = s.scalar(select(func.coalesce(func.max(Clip.id), 0)))
        start = s.scalar(select(func.count()).select_from(Clip))
        rows = []
        for i in range(n):
            k = start + i
            rows.append(
                {
                    "project_id": pid,
                    "file_name": f"g{k}.wav",
                    "sha256": f"g{k:063d}",
                    "path": f"audio/g{k}.wav",
                    "duration": 1.0,
                    "sample_rate": 8000,
                    "status": ("done", "queued", "low_agreement")[i % 3],
                    "rank": float(k),
                    "is_gold": i % 10 == 9,
                    "gold_label": "1" if i % 10 == 9 else None,
                    "seed_label": "2" if i % 7 == 0 else None,
                    "label": str(i % 10),
                    "expert_label": "4" if i % 11 == 0 else None,
                    "n_answers": i % 4,
                }
            )
        s.execute(Clip.__table__.insert(), rows)
        ids = s.scalars(select(Clip.id).where(Clip.id > top).order_by(Clip.id)).all()
        tasks, events = [], []
        for i, clip in enumerate(ids):
            kind = ("regular", "control", "consistency")[i % 3]
            passed = None if kind == "regular" else i % 2 == 0
            user = users[i % len(users)]
            at = now - timedelta(seconds=i)
            tasks.append(
                {
                    "project_id": pid,
                    "clip_id": clip,
                    "annotator_id": user,
                    "kind": kind,
                    "leased_until": at,
                    "answered_at": at,
                    "answer": "1",
                    "points": 10,
                    "passed": passed,
                }
            )
            data = {"task": 0, "clip": clip, "kind": kind, "check": passed}
            events.append({"project_id": pid, "user_id": user, "kind": "answer", "data": data})
        s.execute(Task.__table__.insert(), tasks)
        s.execute(Event.__table__.insert(), events)


def _dashboard_calls(s: Any, pid: int, me: int) -> None:
    """What an open owner's dashboard and an annotator's page poll."""
    project = s.get(Project, pid)
    dash.dashboard_summary(s, project)
    dash.annotator_table(s, project)
    game.leaderboard(s, project_id=pid, me=me)
    game.user_progress(s, me, project_id=pid, offset_minutes=60)
    project_status(s, project)


def _work(db: Database, pid: int, me: int) -> int:
    """The work of `_dashboard_calls`: SQLite's virtual-machine steps (in tens); on
    PostgreSQL the rows its SELECTs read from tasks, clips and events (EXPLAIN ANALYZE)."""
    if db.sqlite:
        steps = [0]

        def tick() -> int:
            steps[0] += 1
            return 0

        with db.read() as s:
            driver = s.connection().connection.driver_connection
            driver.set_progress_handler(tick, 10)
            try:
                _dashboard_calls(s, pid, me)
            finally:
                driver.set_progress_handler(None, 10)
        return steps[0]
    with recorded(db) as seen, db.read() as s:
        _dashboard_calls(s, pid, me)
    rows = 0
    raw = db.engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            for sql, args in {sql: args for sql, args in seen}.items():
                if not re.match(r"\s*(SELECT|WITH)\b", sql, re.I):
                    continue
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, args)
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                for node in _pg_nodes(plan[0]["Plan"]):
                    if node.get("Relation Name") in BIG:
                        read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                        rows += read * node.get("Actual Loops", 1)
    finally:
        raw.close()
    return rows


def test_the_dashboards_work_does_not_grow_with_the_project(db: Database) -> None:
    """The dashboard's summary, the annotator table, the project's leaderboard, progress and
    status read about as much on a project ten times the size and history (clips, answers,
    check events): counts kept on write, never a pass over the project's rows."""
    pid, _, people = _project(db)
    me, others = people[0].id, [p.id for p in people[1:]]
    _grow(db, pid, [me], 10)  # a history of their own, the same in both measurements
    _grow(db, pid, others, 100)
    _work(db, pid, me)  # warm: caches, prepared statements
    small = _work(db, pid, me)
    _grow(db, pid, others, 900)
    large = _work(db, pid, me)
    assert small > 0
    assert large <= 1.2 * small + 20, (small, large)
