"""Deferred aggregation (engine/live/settle.py, server/settle_soon.py): an answer taken while
other requests wait leaves its clip in `pending_aggregates`; settling it later gives exactly
what aggregating it at once gives, `next` never hands the clip out past its maximum meanwhile,
an undo settles it first, and what a crash leaves is settled at start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api_support import annotator, login, wavs, zip_of
from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig
from listenloop.engine.errors import ConflictError
from listenloop.engine.live import tasks as live
from listenloop.engine.live.settle import apply_pending, plan_clips, settle_all, settle_pending
from listenloop.engine.live.tasks import next_task, reaggregate_clips, submit_answer, undo_answer
from listenloop.engine.projects import create_project
from listenloop.server.http_protocol import REQUESTS
from listenloop.server.settle_soon import IDLE_GAP
from listenloop.store.database import Database
from listenloop.store.models import Clip, PendingAggregate
from row_support import queued_clip

CLASSES = [str(d) for d in range(10)]


def _world(path: Path, most: int = 3) -> tuple[Database, int, list[Principal]]:
    """A 3-clip project (2 to `most` answers a clip) and three annotators."""
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.write() as s:
        owner = create_user(s, "owner", "x", "owner")
        people = [create_user(s, f"a{i}", "x") for i in range(3)]
        config = ProjectConfig(
            name="p",
            task_type="classification",
            classes=CLASSES,
            redundancy={"min": 2, "max": most, "tau": 0.75},
            control_rate=0.0,
            consistency_rate=0.0,
        )
        project = create_project(s, Principal(owner.id, "owner", "owner"), config)
        for i in range(3):
            s.add(queued_clip(project.id, i))
        pid = project.id
        who = [Principal(p.id, p.username, "annotator") for p in people]
    return db, pid, who


def _answer(db: Database, pid: int, who: Principal, label: str, defer: bool) -> int:
    with db.direct() as conn:
        task = next_task(conn, pid, who)
        assert task is not None
        submit_answer(conn, task.task_id, who, label, defer_aggregate=defer)
    return task.clip_id


def _clips(db: Database) -> list[tuple[Any, ...]]:
    with db.read() as s:
        columns = (Clip.id, Clip.status, Clip.label, Clip.confidence, Clip.soft, Clip.n_answers)
        rows = s.execute(select(*columns).order_by(Clip.id))
        return [tuple(r) for r in rows]


def _pending(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(PendingAggregate)) or 0)


def test_settling_later_gives_what_aggregating_at_once_gives(tmp_path: Path) -> None:
    """The same answers, one database aggregating each at once and one deferring every one:
    after settling, both hold the same labels, soft labels, confidences, statuses and counts as
    aggregating every clip at that moment gives (the class prior then rests on every answer)."""
    now_db, pid, people = _world(tmp_path / "now.db")
    later_db, pid2, people2 = _world(tmp_path / "later.db")
    # all disagree: no clip is decided early, so both hand out the same clips in the same order
    script = [(0, "1"), (1, "2"), (2, "3"), (0, "4"), (1, "5"), (2, "6"), (0, "7"), (1, "8"), (2, "9")]
    for person, label in script:
        assert _answer(now_db, pid, people[person], label, defer=False) == _answer(
            later_db, pid2, people2[person], label, defer=True
        )
    before = _clips(later_db)
    assert all(status == "queued" and label is None for _, status, label, *_ in before)
    assert [n for *_, n in before] == [n for *_, n in _clips(now_db)]  # counts went up at once
    assert _pending(later_db) == 3
    live._EARLY_PRIORS.clear()  # per project id, which both databases share
    with later_db.direct() as conn:
        assert settle_pending(conn) == 3
    assert _pending(later_db) == 0
    live._EARLY_PRIORS.clear()
    with now_db.direct() as conn:
        reaggregate_clips(conn, pid, [1, 2, 3])
    assert _clips(later_db) == _clips(now_db)
    assert {status for _, status, *_ in _clips(now_db)} == {"low_agreement"}  # decided, both
    now_db.dispose()
    later_db.dispose()


def test_a_pending_clip_is_not_handed_out_past_its_maximum(tmp_path: Path) -> None:
    db, pid, (a, b, c) = _world(tmp_path / "l.db", most=2)
    with db.write() as s:  # one clip only, at most 2 answers
        for clip in s.scalars(select(Clip)).all()[1:]:
            clip.status = "done"
    for who, label in ((a, "1"), (b, "2")):
        _answer(db, pid, who, label, defer=True)
    assert _pending(db) == 1
    with db.direct() as conn:
        assert next_task(conn, pid, c) is None  # its count is 2 already, though not yet settled
    with db.read() as s:
        assert s.get(Clip, 1).n_answers == 2 and s.get(Clip, 1).status == "queued"
    db.dispose()


def test_an_undo_settles_its_clip_first(tmp_path: Path) -> None:
    """Two agreeing answers decide clip 1; the second was deferred. Its undo must see the clip
    as decided (as it would have been at once) and refuse."""
    db, pid, (a, b, _) = _world(tmp_path / "l.db")
    _answer(db, pid, a, "1", defer=False)
    with db.direct() as conn:
        task = next_task(conn, pid, b)
        submit_answer(conn, task.task_id, b, "1", defer_aggregate=True)
    assert task.clip_id == 1
    with pytest.raises(ConflictError, match="already decided"), db.direct() as conn:
        undo_answer(conn, task.task_id, b)
    settle_all(db)
    assert _clips(db)[0][1] == "done"
    db.dispose()


def test_a_plan_read_before_a_new_answer_or_an_undo_is_not_written(tmp_path: Path) -> None:
    """The server reads and aggregates a pending clip outside the write transaction; an answer
    (or an undo and a new answer: the same count again) stored in between leaves the clip
    pending and unchanged, and a plan read afterwards settles it as aggregating it then would."""
    db, pid, (a, b, _) = _world(tmp_path / "l.db", most=5)
    with db.write() as s:  # one clip
        for clip in s.scalars(select(Clip)).all()[1:]:
            clip.status = "done"
    _answer(db, pid, a, "1", defer=True)
    with db.direct_read() as conn:
        stale = plan_clips(conn, [1])
    assert [p.plan.answers for p in stale] == [1]
    with db.direct() as conn:  # meanwhile b answers (they disagree: the clip stays open)
        task = next_task(conn, pid, b)
        submit_answer(conn, task.task_id, b, "2", defer_aggregate=True)
    with db.direct() as conn:
        assert apply_pending(conn, stale) == []
    assert _pending(db) == 1 and _clips(db)[0][1:3] == ("queued", None)
    with db.direct_read() as conn:
        stale = plan_clips(conn, [1])
    assert [p.plan.answers for p in stale] == [2]
    with db.direct() as conn:  # then takes it back and answers again: two answers, as planned
        undo_answer(conn, task.task_id, b)
        submit_answer(conn, task.task_id, b, "3", defer_aggregate=True)
    assert _pending(db) == 1 and _clips(db)[0][5] == 2
    with db.direct() as conn:
        assert apply_pending(conn, stale) == []
    live._EARLY_PRIORS.clear()
    with db.direct_read() as conn:
        fresh = plan_clips(conn, [1])
    with db.direct() as conn:
        assert apply_pending(conn, fresh) == [1]
    assert _pending(db) == 0
    with db.direct_read() as conn:
        assert plan_clips(conn, [1]) == []  # settled: nothing left to plan
    settled = _clips(db)[0]
    live._EARLY_PRIORS.clear()
    with db.direct() as conn:
        reaggregate_clips(conn, pid, [1])
    assert _clips(db)[0] == settled and settled[5] == 2
    db.dispose()


def test_a_server_start_settles_what_a_crash_left(tmp_path: Path) -> None:
    from listenloop.server import create_app

    db, pid, (a, b, _) = _world(tmp_path / "l.db")
    for who in (a, b):
        _answer(db, pid, who, "4", defer=True)
    assert _pending(db) == 1
    db.dispose()
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "data", learning=False)
    with TestClient(app):
        pass
    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    assert _pending(db) == 0 and _clips(db)[0][1:3] == ("done", "4")
    db.dispose()


def _post_answer(
    client: TestClient, headers: dict[str, str], tid: int, waiting: int, then: Any = None
) -> int:
    """POST an answer through the app's middleware stack as uvicorn would, with `waiting` other
    requests in this process's queue; `then`: a coroutine function awaited on the same loop."""
    app = client.app.build_middleware_stack()
    body = b'{"answer": "5"}'
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/v1/tasks/{tid}/answer",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", headers["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "app": client.app,
        REQUESTS: set(range(1 + waiting)),
    }
    out: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    async def run() -> None:
        await app(scope, receive, send)
        if then is not None:
            await then()

    asyncio.run(run())
    return int(out[0]["status"])


def test_the_server_defers_while_requests_wait_and_settles_when_none_do(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    r = client.post(
        "/api/v1/projects",
        headers=oh,
        json={
            "name": "d",
            "task_type": "classification",
            "classes": CLASSES,
            "control_rate": 0.0,
            "redundancy": {"min": 2, "max": 3, "tau": 0.75},
        },
    )
    pid = r.json()["id"]
    archive = {"archive": ("a.zip", zip_of(wavs(2)))}
    assert client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=archive).status_code == 201
    db: Database = client.app.state.db
    a1, a2 = annotator(client, "ann"), annotator(client, "bob")
    t1 = client.get(f"/api/v1/projects/{pid}/next", headers=a1).json()["task_id"]
    t2 = client.get(f"/api/v1/projects/{pid}/next", headers=a2).json()["task_id"]
    seen: list[int] = []

    async def lull() -> None:
        seen.append(_pending(db))  # others waited: the clip waits too
        await asyncio.sleep(10 * IDLE_GAP)  # a lull: it is settled
        seen.append(_pending(db))

    assert _post_answer(client, a1, t1, waiting=3, then=lull) == 201
    assert seen == [1, 0]
    assert _post_answer(client, a2, t2, waiting=0) == 201
    assert _pending(db) == 0  # nobody waited: aggregated at once
    with db.read() as s:  # both answered the first clip, alike: it is decided
        first = s.scalars(select(Clip).where(Clip.project_id == pid).order_by(Clip.n_answers.desc())).first()
        assert (first.n_answers, first.status, first.label) == (2, "done", "5")
