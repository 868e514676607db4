"""Points, levels, streaks, badges and leaderboards (engine/gamification.py) with known answers,
and the routes that serve them (/users/me/progress, /leaderboard, /projects/{id}/leaderboard)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import login
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig
from listenloop.engine.gamification import (
    BADGES,
    CANT_TELL_POINTS,
    POINTS_PER_ANSWER,
    POINTS_PER_LEVEL,
    badges_for,
    leaderboard,
    level_info,
    level_of,
    local_day,
    points_for,
    rank_rows,
    streaks,
    user_progress,
)
from listenloop.engine.live.tasks import next_task, submit_answer
from listenloop.engine.projects import create_project, set_member
from listenloop.store.database import Database
from listenloop.store.models import Clip, ProjectMember, WorkerTrust

DAY = date(2026, 3, 10)
NOON = datetime(2026, 3, 10, 12, 0)


# ---- pure rules ----


def test_levels_follow_points_per_level() -> None:
    assert POINTS_PER_LEVEL == 200
    assert [level_of(p) for p in (0, 10, 199, 200, 399, 400, 2000)] == [1, 1, 1, 2, 2, 3, 11]
    assert level_of(-5) == 1
    assert level_info(450) == {"level": 3, "level_at": 400, "next_level_at": 600}
    assert level_info(0) == {"level": 1, "level_at": 0, "next_level_at": 200}


def test_streaks_count_consecutive_days() -> None:
    d = DAY
    assert streaks([], d) == (0, 0)
    assert streaks([d], d) == (1, 1)
    assert streaks([d - timedelta(days=2), d - timedelta(days=1), d], d) == (3, 3)
    # today is not over: a run that ended yesterday still counts
    assert streaks([d - timedelta(days=2), d - timedelta(days=1)], d) == (2, 2)
    # a gap ends it; the best run is remembered
    days = [d - timedelta(days=k) for k in (9, 8, 7, 6, 3)]
    assert streaks(days, d) == (0, 4)
    days = [d - timedelta(days=k) for k in (9, 8, 7, 1, 0)]
    assert streaks(days, d) == (2, 3)
    # several answers a day count once, in any order
    assert streaks([d, d, d - timedelta(days=1), d], d) == (2, 2)


def test_local_day_uses_the_offset() -> None:
    late = datetime(2026, 3, 10, 23, 30)
    assert local_day(late) == date(2026, 3, 10)
    assert local_day(late, 60) == date(2026, 3, 11)
    assert local_day(datetime(2026, 3, 10, 0, 30), -60) == date(2026, 3, 9)


def test_badges() -> None:
    assert badges_for(0, 0, False) == []
    assert badges_for(1, 1, False) == ["first_answer"]
    assert badges_for(10, 3, True) == ["first_answer", "answers_10", "streak_3", "trusted"]
    assert badges_for(1000, 7, False) == [
        "first_answer",
        "answers_10",
        "answers_100",
        "answers_1000",
        "streak_3",
        "streak_7",
    ]
    assert len({b.id for b in BADGES}) == len(BADGES)


def test_leaderboard_ranks_by_score_then_points_then_answers_then_name() -> None:
    rows = [(1, "bea", 100, 5, 90), (2, "ada", 100, 5, 90), (3, "cy", 100, 9, 90), (4, "dan", 50, 1, 45)]
    rows.append((5, "eve", 400, 30, 360))
    rows.append((6, "spam", 600, 60, 60))  # the most points, but the crowd model rates it 10 % accurate
    ranked = rank_rows(rows)
    assert [(e["rank"], e["username"]) for e in ranked] == [
        (1, "eve"),
        (2, "cy"),
        (3, "ada"),
        (3, "bea"),
        (5, "spam"),
        (6, "dan"),
    ]
    assert ranked[0]["level"] == 3 and ranked[-1]["level"] == 1 and ranked[0]["score"] == 360
    assert rank_rows([]) == []


# ---- over the database ----


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'g.db'}")
    database.upgrade()
    yield database
    database.dispose()


def _user(db: Database, name: str, role: str = "annotator") -> Principal:
    with db.write() as session:
        user = create_user(session, name, "not-a-real-hash", role)
        return Principal(user.id, user.username, user.role)


def _project(db: Database, owner: Principal, name: str, clips: int) -> int:
    config = ProjectConfig(
        name=name,
        task_type="classification",
        classes=["a", "b"],
        control_rate=0.0,
        consistency_rate=0.0,
        redundancy={"min": 5, "max": 9, "tau": 0.99},
    )
    with db.write() as session:
        project = create_project(session, owner, config)
        for i in range(clips):
            session.add(
                Clip(
                    project_id=project.id,
                    file_name=f"{i}.wav",
                    sha256=f"{i:064d}",
                    path=f"audio/{i}.wav",
                    duration=1.0,
                    sample_rate=16000,
                )
            )
        return project.id


def _answer(db: Database, project_id: int, who: Principal, when: datetime, n: int = 1) -> None:
    rng = random.Random(0)
    for i in range(n):
        now = when + timedelta(seconds=i)
        with db.write() as session:
            task = next_task(session, project_id, who, now=now, rng=rng)
            assert task is not None
            submit_answer(session, task.task_id, who, "a", now=now + timedelta(milliseconds=500))


def test_progress_over_days(db: Database) -> None:
    owner = _user(db, "owner", "owner")
    ann = _user(db, "ann")
    pid = _project(db, owner, "p", 20)
    with db.read() as session:
        empty = user_progress(session, ann.id, now=NOON)
    assert empty["points"] == 0 and empty["answers"] == 0 and empty["level"] == 1
    assert empty["streak_days"] == 0 and not any(b["earned"] for b in empty["badges"])

    for k in (3, 2, 1):  # three days in a row, ending yesterday
        _answer(db, pid, ann, NOON - timedelta(days=k), n=2)
    _answer(db, pid, ann, NOON, n=5)
    with db.read() as session:
        p = user_progress(session, ann.id, project_id=pid, now=NOON + timedelta(hours=1))
    assert p["answers"] == 11 and p["points"] == 11 * POINTS_PER_ANSWER
    assert p["level"] == 1 and p["next_level_at"] == POINTS_PER_LEVEL
    assert p["streak_days"] == 4 and p["best_streak_days"] == 4 and p["answers_today"] == 5
    earned = [b["id"] for b in p["badges"] if b["earned"]]
    assert earned == ["first_answer", "answers_10", "streak_3"]
    assert p["project"] == {
        "project_id": pid,
        "points": 110,
        "answers": 11,
        "level": 1,
        "level_at": 0,
        "next_level_at": 200,
    }
    # two days later the streak is over, the best run stays
    with db.read() as session:
        later = user_progress(session, ann.id, now=NOON + timedelta(days=2))
    assert later["streak_days"] == 0 and later["best_streak_days"] == 4 and later["answers_today"] == 0
    assert "trust" not in str(sorted(later)).replace("trusted", "")


def test_points_follow_the_answer_alone() -> None:
    assert points_for("3") == points_for("a|b") == points_for("0.5") == POINTS_PER_ANSWER
    assert points_for(CANT_TELL) == CANT_TELL_POINTS < POINTS_PER_ANSWER


def test_trusted_badge_needs_the_background_estimate_and_answers(db: Database) -> None:
    owner = _user(db, "owner", "owner")
    ann = _user(db, "ann")
    pid = _project(db, owner, "p", 3)
    _answer(db, pid, ann, NOON)
    with db.write() as session:
        row = session.get(WorkerTrust, (pid, ann.id))
        row.trust, row.n_checked, row.n_answers = 0.95, 30, 25  # the live trust alone earns nothing
    with db.read() as session:
        badges = {b["id"]: b["earned"] for b in user_progress(session, ann.id, now=NOON)["badges"]}
    assert not badges["trusted"]
    with db.write() as session:
        session.get(WorkerTrust, (pid, ann.id)).skill = 0.8  # the last skills refresh's estimate
    with db.read() as session:
        badges = {b["id"]: b["earned"] for b in user_progress(session, ann.id, now=NOON)["badges"]}
    assert badges["trusted"]
    with db.write() as session:
        session.get(WorkerTrust, (pid, ann.id)).n_answers = 19
    with db.read() as session:
        badges = {b["id"]: b["earned"] for b in user_progress(session, ann.id, now=NOON)["badges"]}
    assert not badges["trusted"]


def test_leaderboard_score_weighs_points_by_the_background_estimate(db: Database) -> None:
    owner = _user(db, "owner", "owner")
    fast, careful = _user(db, "fast"), _user(db, "careful")
    pid = _project(db, owner, "p", 10)
    _answer(db, pid, fast, NOON, n=6)
    _answer(db, pid, careful, NOON, n=3)
    with db.read() as session:
        before = leaderboard(session, project_id=pid)["entries"]
    assert [(e["username"], e["score"]) for e in before] == [("fast", 60), ("careful", 30)]  # no estimate yet
    with db.write() as session:  # a background skills refresh rated them
        session.get(WorkerTrust, (pid, fast.id)).skill = 0.1
        session.get(WorkerTrust, (pid, careful.id)).skill = 0.9
    with db.read() as session:
        after = leaderboard(session, project_id=pid)["entries"]
    assert [(e["username"], e["score"], e["points"]) for e in after] == [("careful", 27, 30), ("fast", 6, 60)]
    with db.write() as session:  # the refresh's spammer detection flagged "fast": no score at all
        session.get(ProjectMember, (pid, fast.id)).flag_auto = True
    with db.read() as session:
        flagged = leaderboard(session, project_id=pid)["entries"]
    assert [(e["username"], e["score"]) for e in flagged] == [("careful", 27), ("fast", 0)]


def test_leaderboards_overall_and_per_project(db: Database) -> None:
    owner = _user(db, "owner", "owner")
    ann, bob, cyd = _user(db, "ann"), _user(db, "bob"), _user(db, "cyd")
    p1 = _project(db, owner, "one", 10)
    p2 = _project(db, owner, "two", 10)
    _answer(db, p1, ann, NOON, n=3)
    _answer(db, p1, bob, NOON, n=5)
    _answer(db, p2, ann, NOON, n=4)
    _answer(db, p2, cyd, NOON, n=1)
    with db.read() as session:
        overall = leaderboard(session, me=ann.id)
        one = leaderboard(session, project_id=p1, me=cyd.id)
        top1 = leaderboard(session, limit=1, me=cyd.id)
    assert [(e["username"], e["points"], e["answers"]) for e in overall["entries"]] == [
        ("ann", 70, 7),
        ("bob", 50, 5),
        ("cyd", 10, 1),
    ]
    assert overall["me"]["username"] == "ann" and overall["entries"][0]["me"]
    assert [e["username"] for e in one["entries"]] == ["bob", "ann"] and one["me"] is None
    assert [e["username"] for e in top1["entries"]] == ["ann"] and top1["me"]["rank"] == 3
    for entry in overall["entries"]:
        assert set(entry) == {"rank", "username", "score", "points", "answers", "level", "me"}
    with db.write() as session:
        from listenloop.engine.projects import load_project

        set_member(session, load_project(session, p1), owner, "bob", False)
    with db.read() as session:
        assert [e["username"] for e in leaderboard(session, project_id=p1)["entries"]] == ["ann"]


# ---- routes ----


def test_routes(client: TestClient) -> None:
    assert client.get("/api/v1/users/me/progress").status_code == 401
    assert client.get("/api/v1/leaderboard").status_code == 401
    oh = login(client, "owner", "owner-pass-1")
    body = {"name": "closed", "task_type": "binary", "classes": ["yes", "no"], "invite_only": True}
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    assert (
        client.post("/api/v1/users", json={"username": "ann", "password": "ann-password"}).status_code == 201
    )
    ah = login(client, "ann", "ann-password")
    r = client.get("/api/v1/users/me/progress?offset_minutes=120", headers=ah)
    assert r.status_code == 200
    progress = r.json()
    assert progress["points"] == 0 and progress["level"] == 1 and progress["project"] is None
    assert len(progress["badges"]) == len(BADGES)
    assert client.get("/api/v1/users/me/progress?offset_minutes=9999", headers=ah).status_code == 422
    assert client.get(f"/api/v1/users/me/progress?project_id={pid}", headers=ah).status_code == 403
    assert client.get("/api/v1/leaderboard", headers=ah).json() == {
        "project_id": None,
        "entries": [],
        "me": None,
    }
    assert client.get(f"/api/v1/projects/{pid}/leaderboard", headers=ah).status_code == 403
    assert client.get(f"/api/v1/projects/{pid}/leaderboard", headers=oh).status_code == 200
    assert client.get("/api/v1/projects/999/leaderboard", headers=ah).status_code == 404
    client.post(f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    board = client.get(f"/api/v1/projects/{pid}/leaderboard?limit=5", headers=ah)
    assert board.status_code == 200 and board.json()["project_id"] == pid


def test_pages_are_served_with_a_content_security_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    for part in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "media-src 'self' blob:"):
        assert part in csp
    assert '<script type="module" src="/static/app.js">' in r.text
    assert "style=" not in r.text and "onclick" not in r.text
    for asset, kind in (("app.js", "javascript"), ("api.js", "javascript"), ("app.css", "css")):
        got = client.get(f"/static/{asset}")
        assert got.status_code == 200 and kind in got.headers["content-type"], asset
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert "script-src 'self'" in client.get("/static/index.html").headers["content-security-policy"]
    assert client.get("/static/swagger-ui/swagger-ui.css").status_code == 200  # the docs' assets still win
