"""The live loop without HTTP: leases, check questions, trust, redundancy decisions, conflicts."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from listenloop.crowd.checks import CONTROL_REUSE_AFTER, RAISED_CONTROL_RATE
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.crowd.trust import PRIOR_STRENGTH, PRIOR_TRUST
from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig
from listenloop.engine.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from listenloop.engine.gamification import CANT_TELL_POINTS, POINTS_PER_ANSWER
from listenloop.engine.live.tasks import (
    CONSISTENCY_DELAY,
    LEASE,
    Assignment,
    next_task,
    submit_answer,
    undo_answer,
)
from listenloop.engine.projects import create_project
from listenloop.store.database import Database
from listenloop.store.models import Clip, Project, Task, WorkerTrust, utcnow
from row_support import queued_clip


@pytest.fixture
def world(tmp_path: Path) -> tuple[Database, int, list[Principal]]:
    """A 6-clip digit project (the last 2 are control clips, answer "0") and three annotators."""
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.upgrade()
    with db.write() as s:
        owner = create_user(s, "owner", "x", "owner")
        people = [create_user(s, f"a{i}", "x") for i in range(3)]
        config = ProjectConfig(
            name="p",
            task_type="classification",
            classes=[str(d) for d in range(10)],
            redundancy={"min": 2, "max": 3, "tau": 0.75},
            control_rate=0.0,
            consistency_rate=0.0,
        )
        project = create_project(s, Principal(owner.id, "owner", "owner"), config)
        for i in range(6):
            s.add(queued_clip(project.id, i, is_gold=i >= 4, gold_label="0" if i >= 4 else None))
        pid = project.id
        who = [Principal(p.id, p.username, "annotator") for p in people]
    yield db, pid, who
    db.dispose()


def set_rates(db: Database, pid: int, control: float, consistency: float) -> None:
    with db.write() as s:
        project = s.get(Project, pid)
        project.control_rate, project.consistency_rate = control, consistency


def test_queue_order_leases_and_redundancy(world) -> None:
    db, pid, (a, b, c) = world
    with db.write() as s:
        first = next_task(s, pid, a)
        assert next_task(s, pid, a).task_id == first.task_id  # an open lease comes back
    with db.write() as s:
        assert next_task(s, pid, b).clip_id == first.clip_id  # min=2: two at once on the top clip
        assert next_task(s, pid, c).clip_id != first.clip_id  # the third waits for a verdict
    assert first.clip_id == 1  # lowest rank first, control clips never in the regular queue


def test_answer_conflicts_and_expiry(world) -> None:
    db, pid, (a, b, _) = world
    now = utcnow()
    with db.write() as s:
        task = next_task(s, pid, a, now=now)
    with pytest.raises(ForbiddenError), db.write() as s:
        submit_answer(s, task.task_id, b, "1", now=now)
    with pytest.raises(InvalidError), db.write() as s:
        submit_answer(s, task.task_id, a, "eleven", now=now)
    with pytest.raises(ConflictError), db.write() as s:
        submit_answer(s, task.task_id, a, "1", now=now + LEASE + timedelta(seconds=1))
    with db.write() as s:
        out = submit_answer(s, task.task_id, a, CANT_TELL, now=now)
    assert out["points"] == CANT_TELL_POINTS and out["level"] == 1  # capped
    with pytest.raises(ConflictError), db.write() as s:
        submit_answer(s, task.task_id, a, "1", now=now)
    with db.read() as s:
        stored = s.scalars(select(Task).where(Task.answered_at.is_not(None))).all()
    assert [t.answer for t in stored] == [CANT_TELL]


def test_agreement_closes_a_clip_and_disagreement_runs_to_max(world) -> None:
    db, pid, (a, b, c) = world
    answers = {a: ["1", "2"], b: ["1", "0"]}
    for who, labels in answers.items():
        for label in labels:
            with db.write() as s:
                task = next_task(s, pid, who)
                submit_answer(s, task.task_id, who, label)
    with db.read() as s:
        clips = {c.id: c for c in s.scalars(select(Clip))}
    assert clips[1].status == "done" and clips[1].label == "1" and clips[1].n_answers == 2
    assert clips[1].soft["1"] == 1.0 and clips[1].confidence >= 0.75
    assert clips[2].status == "queued" and clips[2].n_answers == 2  # 2 against 0: a third is asked
    with db.write() as s:
        task = next_task(s, pid, c)
        assert task.clip_id == 2
        submit_answer(s, task.task_id, c, "1")
    with db.read() as s:
        clip = s.get(Clip, 2)
        labels_count = s.get(Project, pid).labels_count
    assert clip.status == "low_agreement" and clip.n_answers == 3
    assert labels_count == 1  # the learning service's running count: done clip 1, not clip 2


def test_control_answers_move_trust_and_look_like_any_task(world) -> None:
    db, pid, (a, _, _) = world
    set_rates(db, pid, 0.5, 0.0)
    rng = random.Random(1)
    kinds = []
    for _ in range(4):
        with db.write() as s:
            task = next_task(s, pid, a, rng=rng)
            kind = s.get(Task, task.task_id).kind
            gold = s.get(Clip, task.clip_id).gold_label
            kinds.append(kind)
            submit_answer(s, task.task_id, a, "2" if kind == "control" else "1")  # wrong on controls
            assert gold is None or kind == "control"
    assert kinds.count("control") == 2  # both control clips, each once
    with db.read() as s:
        trust = s.get(WorkerTrust, (pid, a.id))
    assert trust.n_checked == 2 and trust.n_right == 0 and trust.n_answers == 4
    assert trust.trust == pytest.approx(PRIOR_TRUST * PRIOR_STRENGTH / (PRIOR_STRENGTH + 2))


def test_consistency_repeats_an_earlier_clip(world) -> None:
    db, pid, (a, _, _) = world
    set_rates(db, pid, 0.0, 0.5)
    start = utcnow()
    with db.write() as s:
        first = next_task(s, pid, a, now=start)
        submit_answer(s, first.task_id, a, "2", now=start)
    later = start + CONSISTENCY_DELAY + timedelta(seconds=1)
    rng = random.Random(0)
    for _ in range(10):
        with db.write() as s:
            task = next_task(s, pid, a, now=later, rng=rng)
            kind = s.get(Task, task.task_id).kind
            submit_answer(s, task.task_id, a, "2", now=later)
        if kind == "consistency":
            assert task.clip_id == first.clip_id
            break
    else:
        raise AssertionError("no consistency question in 10 tasks at rate 0.5")
    with db.read() as s:
        trust = s.get(WorkerTrust, (pid, a.id))
    assert trust.n_checked == 1 and trust.n_right == 1 and trust.trust > 0.5


def test_budget_and_membership(world) -> None:
    db, pid, (a, b, _) = world
    from listenloop.store.models import Project

    with db.write() as s:
        project = s.get(Project, pid)
        project.budget, project.invite_only = 1, True
    with pytest.raises(ForbiddenError), db.write() as s:
        next_task(s, pid, a)
    with db.write() as s:
        project = s.get(Project, pid)
        project.invite_only = False
    with db.write() as s:
        task = next_task(s, pid, a)
        assert next_task(s, pid, b) is None  # the one answer of the budget is leased out
        submit_answer(s, task.task_id, a, "1")
    with db.write() as s:
        assert next_task(s, pid, b) is None


def test_ahead_leases_one_more_task_to_load_while_the_first_plays(world) -> None:
    db, pid, (a, _, _) = world
    with db.write() as s:
        first = next_task(s, pid, a)
        second = next_task(s, pid, a, ahead=True)
        assert second.clip_id != first.clip_id
        assert next_task(s, pid, a, ahead=True).task_id == second.task_id  # at most two open
        assert next_task(s, pid, a).task_id == first.task_id  # the oldest open one comes first
        submit_answer(s, first.task_id, a, "1")
        assert next_task(s, pid, a).task_id == second.task_id
        third = next_task(s, pid, a, ahead=True)
        assert third.clip_id not in (first.clip_id, second.clip_id)


def control_task(db: Database, pid: int, who: Principal) -> Assignment:
    """The annotator's next task, drawn as a control question."""
    set_rates(db, pid, 0.5, 0.0)
    for seed in range(100):  # a draw below the control rate
        if random.Random(seed).random() < 0.5:
            break
    with db.write() as s:
        task = next_task(s, pid, who, rng=random.Random(seed))
        assert s.get(Task, task.task_id).kind == "control"
    return task


def test_points_are_one_rule_for_every_kind_and_never_follow_trust(world) -> None:
    """A reply's points must not tell a check from a regular task, at the check or after it."""
    db, pid, (a, _, _) = world
    with db.write() as s:
        s.add(
            WorkerTrust(
                project_id=pid, user_id=a.id, trust=0.69, n_checked=10, n_right=7, n_answers=10, points=100
            )
        )
    task = control_task(db, pid, a)
    with db.write() as s:
        out = submit_answer(s, task.task_id, a, "0")  # right: trust rises past 0.7 ...
        trust = s.get(WorkerTrust, (pid, a.id)).trust
    assert trust > 0.7 and out["points"] == POINTS_PER_ANSWER
    assert set(out) == {"task_id", "points", "total_points", "level"}  # no clip id, no trust
    task = control_task(db, pid, a)
    with db.write() as s:
        assert submit_answer(s, task.task_id, a, CANT_TELL)["points"] == CANT_TELL_POINTS
    set_rates(db, pid, 0.0, 0.0)
    for answer, points in (("1", POINTS_PER_ANSWER), (CANT_TELL, CANT_TELL_POINTS)):
        with db.write() as s:
            task = next_task(s, pid, a)
            assert submit_answer(s, task.task_id, a, answer)["points"] == points  # ... and no bonus


def test_undo_takes_the_last_answer_back_and_serves_the_task_again(world) -> None:
    db, pid, (a, b, _) = world
    now = utcnow()
    with db.write() as s:
        task = next_task(s, pid, a, now=now)
        submit_answer(s, task.task_id, a, "1", now=now)
    later = now + timedelta(minutes=4)  # within the 5-minute lease
    with pytest.raises(ForbiddenError), db.write() as s:
        undo_answer(s, task.task_id, b, now=later)
    with pytest.raises(NotFoundError), db.write() as s:
        undo_answer(s, 9999, a, now=later)
    with db.write() as s:
        out = undo_answer(s, task.task_id, a, now=later)
    assert out == {"task_id": task.task_id, "project_id": pid, "points": 10, "total_points": 0, "level": 1}
    with db.read() as s:
        stored = s.get(Task, task.task_id)
        clip = s.get(Clip, task.clip_id)
        trust = s.get(WorkerTrust, (pid, a.id))
        used = s.get(Project, pid).answers_used
    assert stored.answer is None and stored.answered_at is None and stored.points == 0
    assert stored.leased_until > later + timedelta(minutes=4)  # a fresh lease to answer again
    assert clip.n_answers == 0 and clip.label is None and clip.status == "queued"
    assert (trust.n_answers, trust.points, used) == (0, 0, 0)
    with pytest.raises(ConflictError, match="no answer to undo"), db.write() as s:
        undo_answer(s, task.task_id, a, now=later)
    with db.write() as s:
        again = next_task(s, pid, a, now=later)
        assert again.task_id == task.task_id  # the same task, to answer again
        submit_answer(s, task.task_id, a, "2", now=later)
    with db.read() as s:
        assert s.get(Task, task.task_id).answer == "2" and s.get(Clip, task.clip_id).n_answers == 1


def test_undo_refuses_what_later_answers_rest_on(world) -> None:
    db, pid, (a, b, c) = world
    now = utcnow()
    with db.write() as s:
        first = next_task(s, pid, a, now=now)
        submit_answer(s, first.task_id, a, "1", now=now)
        second = next_task(s, pid, a, now=now + timedelta(seconds=1))
        submit_answer(s, second.task_id, a, "1", now=now + timedelta(seconds=1))
    with pytest.raises(ConflictError, match="last answer"), db.write() as s:
        undo_answer(s, first.task_id, a, now=now + timedelta(seconds=2))
    # b answers a's first clip differently after a (2 answers, no agreement: still open)
    with db.write() as s:
        tb = next_task(s, pid, b, now=now + timedelta(seconds=3))
        assert tb.clip_id == first.clip_id
        submit_answer(s, tb.task_id, b, "7", now=now + timedelta(seconds=3))
        assert s.get(Clip, first.clip_id).status == "queued"
        undo_answer(s, second.task_id, a, now=now + timedelta(seconds=4))  # a's last: fine
    with pytest.raises(ConflictError, match="after you"), db.write() as s:
        undo_answer(s, first.task_id, a, now=now + timedelta(seconds=5))
    # c agrees with b: the clip is decided by c's answer, which then stands
    with db.write() as s:
        tc = next_task(s, pid, c, now=now + timedelta(seconds=6))
        assert tc.clip_id == first.clip_id
        submit_answer(s, tc.task_id, c, "1", now=now + timedelta(seconds=6))
        assert s.get(Clip, first.clip_id).status != "queued"
    with pytest.raises(ConflictError, match="decided"), db.write() as s:
        undo_answer(s, tc.task_id, c, now=now + timedelta(seconds=7))
    # a lease that ran out: the answer stands
    with db.write() as s:
        td = next_task(s, pid, c, now=now + timedelta(seconds=8))
        submit_answer(s, td.task_id, c, "3", now=now + timedelta(seconds=8))
    with pytest.raises(ConflictError, match="lease"), db.write() as s:
        undo_answer(s, td.task_id, c, now=now + LEASE + timedelta(seconds=9))


def test_undo_of_a_control_answer_takes_its_trust_back_exactly(world) -> None:
    db, pid, (a, _, _) = world
    task = control_task(db, pid, a)
    with db.write() as s:
        submit_answer(s, task.task_id, a, "3")  # wrong: gold is "0"
        assert s.get(WorkerTrust, (pid, a.id)).trust < PRIOR_TRUST
        undo_answer(s, task.task_id, a)
    with db.read() as s:
        trust = s.get(WorkerTrust, (pid, a.id))
        assert (trust.n_checked, trust.n_right, trust.n_answers) == (0, 0, 0)
        assert trust.trust == pytest.approx(PRIOR_TRUST)
    with db.write() as s:
        submit_answer(s, task.task_id, a, "0")  # answered again, right this time
        trust = s.get(WorkerTrust, (pid, a.id))
        after = (PRIOR_TRUST * PRIOR_STRENGTH + 1) / (PRIOR_STRENGTH + 1)
        assert (trust.n_checked, trust.n_right) == (1, 1) and trust.trust == pytest.approx(after)


def make_project(db: Database, regular: int, gold: int, **config: object) -> tuple[int, list[Principal]]:
    """A digit project with `regular` queued clips and `gold` control clips (answer "0"), and 4 annotators."""
    with db.write() as s:
        owner = create_user(s, "owner", "x", "owner")
        people = [create_user(s, f"a{i}", "x") for i in range(4)]
        settings = {"control_rate": 0.0, "consistency_rate": 0.0, **config}
        project = create_project(
            s,
            Principal(owner.id, "owner", "owner"),
            ProjectConfig(
                name="p", task_type="classification", classes=[str(d) for d in range(10)], **settings
            ),
        )
        for i in range(regular + gold):
            s.add(queued_clip(project.id, i, is_gold=i >= regular, gold_label="0" if i >= regular else None))
        return project.id, [Principal(p.id, p.username, "annotator") for p in people]


@pytest.fixture
def empty_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    db.upgrade()
    yield db
    db.dispose()


def test_gold_comes_back_to_the_same_annotator_after_the_delay(empty_db: Database) -> None:
    """Checks do not run out: one gold clip, served again once CONTROL_REUSE_AFTER other tasks passed."""
    db = empty_db
    pid, (a, *_) = make_project(db, 120, 1, control_rate=0.3, redundancy={"min": 1, "max": 1, "tau": 0.5})
    rng = random.Random(3)
    served = []
    for _ in range(100):
        with db.write() as s:
            task = next_task(s, pid, a, rng=rng)
            kind = s.get(Task, task.task_id).kind
            submit_answer(s, task.task_id, a, "1")
        served.append(kind)
    controls = [i for i, k in enumerate(served) if k == "control"]
    assert len(controls) >= 3  # one gold clip, checked again and again
    assert all(later - earlier > CONTROL_REUSE_AFTER for earlier, later in itertools.pairwise(controls))
    with db.read() as s:
        trust = s.get(WorkerTrust, (pid, a.id))
    assert trust.n_checked == len(controls) and trust.n_right == 0
    assert trust.trust == pytest.approx(PRIOR_TRUST * PRIOR_STRENGTH / (PRIOR_STRENGTH + len(controls)))


def test_the_control_rate_rises_while_trust_is_uncertain_or_low(empty_db: Database) -> None:
    db = empty_db
    pid, (new, sure, low, _) = make_project(db, 10, 2, control_rate=0.05)
    seed = next(k for k in range(1000) if 0.05 <= random.Random(k).random() < RAISED_CONTROL_RATE)
    with (
        db.write() as s
    ):  # established: many checks, trust well above the threshold; low: many checks, low trust
        s.add(WorkerTrust(project_id=pid, user_id=sure.id, trust=0.9, evidence=20.0, n_checked=20))
        s.add(WorkerTrust(project_id=pid, user_id=low.id, trust=0.55, evidence=20.0, n_checked=20))
    kinds = {}
    for who in (new, sure, low):
        with db.write() as s:
            task = next_task(s, pid, who, rng=random.Random(seed))
            kinds[who.username] = s.get(Task, task.task_id).kind
    assert kinds == {"a0": "control", "a1": "regular", "a2": "control"}


def test_silver_controls_come_from_trusted_agreement_and_never_move_the_clip(empty_db: Database) -> None:
    db = empty_db
    pid, (a, b, c, d) = make_project(db, 3, 0, redundancy={"min": 2, "max": 3, "tau": 0.9})
    with db.write() as s:
        for who in (a, b):
            s.add(
                WorkerTrust(
                    project_id=pid, user_id=who.id, trust=0.95, evidence=20.0, n_checked=20, n_right=19
                )
            )
    for who, answer in ((a, "4"), (b, "4")):  # clip 1: two trusted annotators agree
        with db.write() as s:
            task = next_task(s, pid, who)
            assert task.clip_id == 1
            submit_answer(s, task.task_id, who, answer)
    with db.write() as s:  # clip 2: one trusted annotator and a newcomer agree: not silver
        for who in (a, c):
            task = next_task(s, pid, who)
            assert task.clip_id == 2
            submit_answer(s, task.task_id, who, "5")
    with db.read() as s:
        one, two = s.get(Clip, 1), s.get(Clip, 2)
        before = (one.label, one.confidence, one.n_answers, one.soft, one.status)
    assert one.status == "done" and one.silver and one.label == "4"
    assert not two.silver
    set_rates(db, pid, 0.5, 0.0)
    seed = next(k for k in range(1000) if random.Random(k).random() < 0.3)
    with db.write() as s:
        task = next_task(s, pid, d, rng=random.Random(seed))  # d never answered clip 1: a silver control
        assert s.get(Task, task.task_id).kind == "control" and task.clip_id == 1
        assert submit_answer(s, task.task_id, d, "7")["points"] == POINTS_PER_ANSWER  # wrong
    with db.read() as s:
        one, trust = s.get(Clip, 1), s.get(WorkerTrust, (pid, d.id))
    assert (
        one.label,
        one.confidence,
        one.n_answers,
        one.soft,
        one.status,
    ) == before  # the check moved nothing
    assert trust.n_checked == 1 and trust.n_right == 0 and trust.trust < PRIOR_TRUST
    with db.write() as s:  # a answered clip 1 itself: never a control for a
        task = next_task(s, pid, a, rng=random.Random(seed))
        assert task.clip_id != 1 and s.get(Task, task.task_id).kind == "regular"


def test_cant_tell_on_a_control_fails_far_above_the_crowd_and_undoes_exactly(empty_db: Database) -> None:
    db = empty_db
    pid, (a, b, *_) = make_project(db, 20, 3)
    with db.write() as s:  # the crowd: 100 answers, 5 can't tell; a: 10 answers, 6 can't tell; b: 10, 1
        project = s.get(Project, pid)
        project.answers_used, project.cant_tell_count = 120, 12
        s.add(WorkerTrust(project_id=pid, user_id=a.id, n_answers=10, n_cant_tell=6, trust=0.5))
        s.add(WorkerTrust(project_id=pid, user_id=b.id, n_answers=10, n_cant_tell=1, trust=0.5))
    results = {}
    for who in (a, b):
        task = control_task(db, pid, who)
        with db.write() as s:
            submit_answer(s, task.task_id, who, CANT_TELL)
            row = s.get(WorkerTrust, (pid, who.id))
            results[who.username] = (
                s.get(Task, task.task_id).passed,
                row.n_checked,
                row.trust,
                row.n_cant_tell,
            )
    assert results["a0"][:2] == (False, 1) and results["a0"][2] < 0.5 and results["a0"][3] == 7
    assert results["a1"][:3] == (None, 0, 0.5) and results["a1"][3] == 2  # like the crowd: nothing checked
    with db.write() as s:  # more can't tell from others since: the undo takes back what the check gave then
        s.get(Project, pid).cant_tell_count += 50
    last_a = s_task = None
    with db.read() as s:
        last_a = s.scalars(select(Task).where(Task.annotator_id == a.id).order_by(Task.id.desc())).first()
        s_task = last_a.id
    with db.write() as s:
        undo_answer(s, s_task, a)
    with db.read() as s:
        row = s.get(WorkerTrust, (pid, a.id))
        assert (row.n_checked, row.n_cant_tell, row.evidence) == (0, 6, 0.0)
        assert row.trust == pytest.approx(0.5)
        assert s.get(Project, pid).cant_tell_count == 12 + 2 + 50 - 1  # a's and b's, the others', a's undone


def test_a_consistency_pass_counts_less_than_a_control_and_undoes_exactly(world) -> None:
    db, pid, (a, _, _) = world
    set_rates(db, pid, 0.0, 0.5)
    start = utcnow()
    with db.write() as s:
        first = next_task(s, pid, a, now=start)
        submit_answer(s, first.task_id, a, "2", now=start)
    rng = random.Random(0)
    for i in range(10):
        later = start + CONSISTENCY_DELAY + timedelta(seconds=1 + i)
        with db.write() as s:
            task = next_task(s, pid, a, now=later, rng=rng)
            kind = s.get(Task, task.task_id).kind
            submit_answer(s, task.task_id, a, "2", now=later)
        if kind == "consistency":
            break
    with db.read() as s:
        row = s.get(WorkerTrust, (pid, a.id))
    assert (
        kind == "consistency"
        and row.evidence == 0.25
        and row.trust == pytest.approx((PRIOR_TRUST * PRIOR_STRENGTH + 0.25) / (PRIOR_STRENGTH + 0.25))
    )
    with db.write() as s:
        undo_answer(s, task.task_id, a, now=later)
    with db.read() as s:
        row = s.get(WorkerTrust, (pid, a.id))
    assert row.evidence == 0.0 and row.n_checked == 0 and row.trust == pytest.approx(PRIOR_TRUST)


def test_the_early_class_prior_is_reestimated_as_answers_grow(world, monkeypatch) -> None:
    """Its EM costs half an answered pair: cached until EARLY_PRIOR_STEP or a quarter more answers came in."""
    import listenloop.engine.live.tasks as tasks_module

    db, pid, (a, b, c) = world
    calls: list[int] = []
    real = tasks_module.early_class_prior
    monkeypatch.setattr(tasks_module, "early_class_prior", lambda p, r: calls.append(len(r)) or real(p, r))
    monkeypatch.setattr(tasks_module, "EARLY_PRIOR_STEP", 2)
    monkeypatch.setattr(tasks_module, "EARLY_PRIOR_REFRESH", 0.5)
    monkeypatch.setattr(tasks_module, "_EARLY_PRIORS", {})
    for who in (a, b, c, a, b, c):
        with db.write() as s:
            task = next_task(s, pid, who)
            if task is None:
                break
            submit_answer(s, task.task_id, who, "1")
    # estimated on the first answer (the answer just given counts), then once the answers since
    # reach the step (2) or half of those it rests on: the 2nd, 4th and 6th answer reuse it
    assert calls == [1, 3, 5], calls
