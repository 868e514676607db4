"""Prepared statements (store/prepared.py) write and read exactly what the ORM does, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam as bp
from sqlalchemy import func, select

from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, Project, ProjectMember, Task, User
from listenloop.store.prepared import Prepared

P, C, T, M, E = (m.__table__ for m in (Project, Clip, Task, ProjectMember, Event))

JOIN = Prepared(M.insert().values(project_id=bp("project"), user_id=bp("user"), added_at=bp("now")))
MEMBER = Prepared(select(M.c.active, M.c.flagged, M.c.added_at).where(M.c.user_id == bp("user")))
EVENT = Prepared(
    E.insert().values(project_id=bp("project"), kind="answer", data=bp("data")).returning(E.c.id)
)
NEW_TASK = Prepared(
    T.insert()
    .values(project_id=bp("project"), clip_id=bp("clip"), annotator_id=bp("user"), leased_until=bp("until"))
    .returning(T.c.id)
)
# `now` twice and a literal: positional drivers need each in its place.
LIVE = Prepared(
    select(func.count())
    .select_from(T)
    .where(T.c.leased_until > bp("now"), T.c.created_at > bp("now"), T.c.kind == "regular")
)
ANSWER = Prepared(
    T.update().where(T.c.id == bp("task"), T.c.answered_at.is_(None)).values(answered_at=bp("now"))
)
SOFT = Prepared(select(C.c.soft, C.c.is_gold).where(C.c.id == bp("clip")))


def test_prepared_statements_match_the_orm(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    now = datetime(2020, 1, 2, 12, 30, 1, 250_000)  # before any task is created (utcnow)
    with db.write() as s:
        user = User(username="u", password_hash="x", role="annotator")
        project = Project(name="p", owner=user, task_type="classification", classes=["a", "b"])
        clip = Clip(
            project=project,
            file_name="c.wav",
            sha256="0" * 64,
            path="a/c.wav",
            duration=1.0,
            sample_rate=8000,
        )
        clip.soft = {"a": 0.25, "b": 0.75}
        s.add_all([user, project, clip])
        s.flush()
        ids = {"project": project.id, "user": user.id, "clip": clip.id}
        conn = s.connection()
        assert JOIN.run(conn, {**ids, "now": now}) == 1
        event = EVENT.scalar(conn, {**ids, "data": {"check": True, "clip": clip.id}})
        task = NEW_TASK.scalar(conn, {**ids, "until": now + timedelta(minutes=5)})
        member = MEMBER.first(conn, ids)
        assert (member.active, member.flagged, member.added_at) == (True, False, now)  # column defaults
        assert MEMBER.first(conn, {"user": -1}) is None and MEMBER.scalar(conn, {"user": -1}) is None
        assert LIVE.scalar(conn, {"now": now}) == 1
        assert LIVE.scalar(conn, {"now": now + timedelta(minutes=10)}) == 0  # the lease ends before
        assert SOFT.first(conn, ids) == ({"a": 0.25, "b": 0.75}, False)
        assert ANSWER.run(conn, {"task": task, "now": now}) == 1
        assert ANSWER.run(conn, {"task": task, "now": now}) == 0  # answered already: nothing changed
    with db.read() as s:
        stored = s.get(Task, task)
        assert stored is not None and stored.answered_at == now and stored.kind == "regular"
        assert stored.leased_until == now + timedelta(minutes=5) and stored.points == 0
        assert s.get(Event, event).data == {"check": True, "clip": clip.id}
        assert s.scalar(select(ProjectMember.added_at)) == now
    db.dispose()


SHARED_SOFT = Prepared(select(C.c.soft, C.c.id).order_by(C.c.id), shared_json=True)


def test_shared_json_is_decoded_once_per_text(database_url: str) -> None:
    """`shared_json`: rows holding the same JSON text get the same decoded object (the confusion
    matrices of an annotator's answers); a different text, a different object; NULL stays None."""
    db = Database(database_url)
    db.upgrade()
    with db.write() as s:
        user = User(username="u", password_hash="x", role="annotator")
        project = Project(name="p", owner=user, task_type="classification", classes=["a", "b"])
        softs = [{"a": 0.25, "b": 0.75}, {"a": 0.25, "b": 0.75}, {"a": 1.0, "b": 0.0}, None]
        for i, soft in enumerate(softs):
            clip = Clip(
                project=project, file_name=f"{i}.wav", sha256=f"{i}" * 64, path=f"a/{i}.wav", duration=1.0
            )
            clip.sample_rate = 8000
            clip.soft = soft
            s.add(clip)
        s.add_all([user, project])
    with db.direct_read() as conn:
        rows = SHARED_SOFT.all(conn, {})
        again = SHARED_SOFT.all(conn, {})
    assert [r.soft for r in rows] == softs
    if db.sqlite:  # (PostgreSQL's driver decodes JSON itself: nothing to share)
        assert rows[0].soft is rows[1].soft is again[0].soft
        assert rows[2].soft is not rows[0].soft
    db.dispose()
