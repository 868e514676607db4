"""The `relabel_or_new` queue: the learning round orders heard and new clips on ActiveLab's scale,
and `next` serves that order (the request path only reads the ranks)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig, ProjectPatch
from listenloop.engine.learning.service import LearningService
from listenloop.engine.live.tasks import next_task
from listenloop.engine.project_settings import update_project
from listenloop.engine.projects import project_config
from listenloop.store.database import Database
from listenloop.store.models import Clip, Project, Task, utcnow
from test_engine_learning_service import expected, new_project, queue

QUIET = {"control_rate": 0.0, "consistency_rate": 0.0, "passive_share": 0.0}


@pytest.fixture
def relabel_world(
    tmp_path: Path, fsdd_dir: Path
) -> Iterator[tuple[Database, int, LearningService, dict[int, str]]]:
    """A 100-clip digit project (80 seeds) with the relabel-or-new queue, no check questions,
    and the truth of each clip by id."""
    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    db.upgrade()
    data = tmp_path / "data"
    data.mkdir()
    pid = new_project(db, fsdd_dir, data, seeds=80, queue="relabel_or_new", **QUIET)
    table = pd.read_csv(fsdd_dir / "labels.csv", dtype=str)
    by_name = dict(zip(table["file"].map(lambda f: Path(f).name), table["label"], strict=True))
    with db.read() as s:
        truth = {c.id: by_name[c.file_name] for c in s.scalars(select(Clip).where(Clip.project_id == pid))}
    service = LearningService(db, data, inline=True)
    yield db, pid, service, truth
    service.stop()
    db.dispose()


def answer(db: Database, pid: int, clip: int, user: int, label: str) -> None:
    """A stored regular answer (as the request path leaves it), without the policy's verdict."""
    now = utcnow()
    with db.write() as s:
        s.add(
            Task(
                project_id=pid,
                clip_id=clip,
                annotator_id=user,
                kind="regular",
                leased_until=now + timedelta(minutes=5),
                answered_at=now,
                answer=label,
            )
        )
        s.execute(update(Clip).where(Clip.id == clip).values(n_answers=Clip.n_answers + 1))


def test_the_queue_setting_is_stored_checked_and_changed(relabel_world) -> None:
    db, pid, _, _ = relabel_world
    with db.read() as s:
        project = s.get(Project, pid)
        assert project_config(project).queue == "relabel_or_new"
    with pytest.raises(ValidationError, match="relabel_or_new is for classification and binary"):
        ProjectConfig(name="r", task_type="continuous", range=(0, 1), queue="relabel_or_new")
    with pytest.raises(ValidationError, match="queue"):
        ProjectConfig(name="q", task_type="classification", classes=["a", "b"], queue="sideways")
    with db.write() as s:
        project = s.get(Project, pid)
        update_project(
            s, project, Principal(project.owner_id, "owner", "owner"), ProjectPatch(queue="redundancy")
        )
        assert project_config(project).queue == "redundancy"


def test_split_answers_are_asked_again_before_new_clips_and_next_serves_it(relabel_world) -> None:
    db, pid, service, truth = relabel_world
    service.run_project(pid)
    first = queue(db, pid)
    assert len(first) == 20
    with db.write() as s:
        people = [create_user(s, f"a{i}", "x") for i in range(4)]
        ids = [p.id for p in people]
    # 8 clips answered twice in agreement (the truth), and one the model is sure of (the last of
    # the first order) answered twice, each answer another wrong digit: split
    for clip in first[5:13]:
        answer(db, pid, clip, ids[0], truth[clip])
        answer(db, pid, clip, ids[1], truth[clip])
    split = first[-1]
    answer(db, pid, split, ids[0], str((int(truth[split]) + 1) % 10))
    answer(db, pid, split, ids[1], str((int(truth[split]) + 2) % 10))
    want = expected(service, pid)  # the round's order for these answers (deterministic)
    service.run_project(pid)
    order = queue(db, pid)
    assert order == want.order
    # ask again where the answers split, before any clip whose answers agree
    assert all(order.index(split) < order.index(c) for c in first[5:13])
    # ... and a new clip before each agreed one: the model is no surer of them than of new clips
    new = [c for c in order if c not in first[5:13] and c != split]
    assert all(order.index(new[0]) < order.index(c) for c in first[5:13])
    with db.write() as s:
        served = next_task(s, pid, Principal(ids[2], "a2", "annotator"))
        assert served is not None and served.clip_id == order[0]
    # today's queue on the same answers: the strategy orders the pool (margin), the split clip the
    # model is sure of goes back among the clips it is sure of; `next` serves that order's head
    with db.write() as s:
        project = s.get(Project, pid)
        update_project(
            s, project, Principal(project.owner_id, "owner", "owner"), ProjectPatch(queue="redundancy")
        )
    service.run_project(pid)
    today = queue(db, pid)
    assert today != order and today.index(split) > order.index(split)
    with db.write() as s:
        served = next_task(s, pid, Principal(ids[3], "a3", "annotator"))
        assert served is not None and served.clip_id == today[0]
