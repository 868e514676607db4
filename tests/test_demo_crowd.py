"""`listenloop demo`'s simulated crowd: who is in it, that it labels through the server and
finishes clips, that it stops at once, and that it keeps its accounts across restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from listenloop.demo.crowd import PREFIX, members, start_crowd
from listenloop.demo.setup import DEMO_CLASSES, prepare_demo
from listenloop.server.app import create_app
from listenloop.store.database import Database
from listenloop.store.models import Clip, Project, Task, User, WorkerTrust
from web_support import serving


def test_the_crowd_is_mixed_with_one_spammer() -> None:
    crowd = members(6, 10)
    assert [m.username for m in crowd] == [f"{PREFIX}{i}" for i in range(1, 7)]
    honest = [m for m in crowd if not m.spammer]
    assert [m.skill for m in honest] == pytest.approx([0.95, 0.8875, 0.825, 0.7625, 0.7])
    assert crowd[-1].spammer and crowd[-1].skill == pytest.approx(0.1)  # random among 10 digits
    assert crowd[-1].think < min(m.think for m in honest)  # a spammer does not listen
    assert all(3.0 <= m.think <= 5.0 for m in honest)
    assert not any(m.spammer for m in members(2, 10))  # too few for a spammer
    assert members(0, 10) == []
    with pytest.raises(ValueError):
        members(51, 10)


def _crowd_work(db: Database, pid: int) -> tuple[int, int, dict[str, tuple[float, int]]]:
    """(answers by the crowd, clips finished without a seed label, username -> (trust, checks))."""
    with db.read() as s:
        answers = s.scalar(
            select(func.count())
            .select_from(Task)
            .join(User, User.id == Task.annotator_id)
            .where(Task.project_id == pid, Task.answered_at.is_not(None), User.username.like(f"{PREFIX}%"))
        )
        finished = s.scalar(
            select(func.count())
            .select_from(Clip)
            .where(
                Clip.project_id == pid, Clip.seed_label.is_(None), Clip.status.in_(["done", "low_agreement"])
            )
        )
        trust = {
            u: (float(t), int(n))
            for u, t, n in s.execute(
                select(User.username, WorkerTrust.trust, WorkerTrust.n_checked)
                .join(User, User.id == WorkerTrust.user_id)
                .where(WorkerTrust.project_id == pid)
            )
        }
    return int(answers or 0), int(finished or 0), trust


def test_the_crowd_labels_through_the_api_and_finishes_clips(tmp_path: Path) -> None:
    """Sped up 100 times: within seconds the crowd's answers close clips, the spammer's trust falls
    below a newcomer's, and stop() ends every thread at once."""
    url = f"sqlite:///{tmp_path / 'listenloop.db'}"
    db = Database(url)
    db.upgrade()
    logins = prepare_demo(db, tmp_path)
    app = create_app(url, tmp_path, migrate=False, learning=False)
    with serving(app) as base:
        crowd, crowd_db = start_crowd(url, base, logins.project_id, DEMO_CLASSES, 6, speed=100, seed=1)
        try:
            deadline = time.monotonic() + 90
            spammer = f"{PREFIX}6"
            while time.monotonic() < deadline:
                answers, finished, trust = _crowd_work(db, logins.project_id)
                if finished >= 10 and trust.get(spammer, (0.5, 0))[1] >= 10:
                    break
                time.sleep(0.5)
        finally:
            t0 = time.monotonic()
            assert crowd.stop(), "a crowd thread did not end"
            stopped_in = time.monotonic() - t0
            crowd_db.dispose()
        assert crowd.alive == 0 and stopped_in < 5
    answers, finished, trust = _crowd_work(db, logins.project_id)
    with db.read() as s:
        used = s.get(Project, logins.project_id).answers_used
    db.dispose()
    assert finished >= 10, f"the crowd finished {finished} clips with {answers} answers"
    assert answers == used == sum(crowd.answered.values())  # every answer went through the API and counted
    assert all(n > 0 for n in crowd.answered.values())  # everybody worked
    spam_trust, checks = trust[spammer]
    assert checks >= 10 and spam_trust < 0.5  # control questions found the spammer out
