"""Spammer detection in the platform: the background refresh flags spammers with the reason,
their answers count at chance level (they cannot close a clip, Dawid-Skene leaves them out),
auto-block on and off, the owner's unflag is respected until new evidence, and the API shows
why (on SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_support import annotator, login
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine import dashboard as dash
from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig
from listenloop.engine.errors import ForbiddenError
from listenloop.engine.learning import spammers
from listenloop.engine.learning.service import Held, LearningService, take_lease
from listenloop.engine.live.aggregate import aggregate_clip
from listenloop.engine.live.tasks import next_task, submit_answer
from listenloop.engine.live.views import load_view
from listenloop.engine.projects import create_project
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, Project, ProjectMember, Task, User, WorkerTrust

DIGITS = [str(d) for d in range(10)]


def _clips(s, pid: int, n: int, start: int = 0) -> dict[int, str]:
    truth = {}
    for i in range(start, start + n):
        digest = hashlib.sha256(f"{pid}-{i}".encode()).hexdigest()
        clip = Clip(
            project_id=pid,
            file_name=f"c{i}.wav",
            sha256=digest,
            path=f"x/{digest}.wav",
            duration=1.0,
            sample_rate=8000,
            rank=float(i),
        )
        s.add(clip)
        s.flush()
        truth[clip.id] = DIGITS[i % 10]
    return truth


def _answer(kind: str, truth: str, rng: random.Random) -> str:
    if kind == "honest":
        return truth if rng.random() < 0.9 else rng.choice([d for d in DIGITS if d != truth])
    if kind == "random":
        return rng.choice(DIGITS)
    return "0" if kind == "constant" else CANT_TELL


class Campaign:
    """A 10-class project, 3 honest annotators at 90 % and three spammers, driven through
    next_task / submit_answer one task each per round."""

    def __init__(self, db: Database, *, auto_block: bool = False, clips: int = 200) -> None:
        self.db, self.rng = db, random.Random(4)
        with db.write() as s:
            owner = create_user(s, "own", "x", "owner")
            self.owner = Principal(owner.id, "own", "owner")
            config = ProjectConfig(
                name="digits",
                task_type="classification",
                classes=DIGITS,
                control_rate=0,
                consistency_rate=0,
                redundancy={"min": 2, "max": 4, "tau": 0.95},
                auto_block_spammers=auto_block,
            )
            self.pid = create_project(s, self.owner, config).id
            self.truth = _clips(s, self.pid, clips)
            kinds = {"h1": "honest", "h2": "honest", "h3": "honest"}
            kinds |= {"rand": "random", "const": "constant", "cant": "cant_tell"}
            self.people = {n: Principal(create_user(s, n, "x").id, n, "annotator") for n in kinds}
            self.kinds = kinds

    def run(self, answers: int, who: list[str] | None = None) -> None:
        """Up to `answers` more answers from each of `who` (default: everyone)."""
        names = who or list(self.people)
        for _ in range(answers):
            for name in names:
                with self.db.write() as s:
                    task = next_task(s, self.pid, self.people[name], rng=self.rng)
                    if task is None:
                        continue
                    value = _answer(self.kinds[name], self.truth[task.clip_id], self.rng)
                    submit_answer(s, task.task_id, self.people[name], value)

    def members(self) -> dict[str, ProjectMember]:
        with self.db.read() as s:
            rows = s.execute(
                select(User.username, ProjectMember)
                .join(ProjectMember, ProjectMember.user_id == User.id)
                .where(ProjectMember.project_id == self.pid)
            ).all()
            for _, m in rows:
                s.expunge(m)
            return {name: m for name, m in rows}

    def refresh(self, tmp_path: Path) -> None:
        outcome = LearningService(self.db, tmp_path, inline=True).refresh_skills(self.pid)
        assert outcome.state == "ran", outcome.error


@pytest.fixture
def db(database_url: str) -> Database:
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.mark.parametrize("auto_block", [False, True])
def test_the_refresh_flags_spammers_with_the_reason(db: Database, tmp_path: Path, auto_block: bool) -> None:
    camp = Campaign(db, auto_block=auto_block)
    camp.run(60)
    with db.write() as s:  # the constant spammer holds a lease while the refresh runs
        held = next_task(s, camp.pid, camp.people["const"], rng=camp.rng)
    assert held is not None
    camp.refresh(tmp_path)
    members = camp.members()
    flagged = {n for n, m in members.items() if m.flagged}
    assert flagged == {"rand", "const", "cant"}
    assert all(members[n].flag_auto for n in flagged)
    assert members["rand"].flag_reason.startswith("answers look random: agreement with the crowd kappa")
    assert members["const"].flag_reason.startswith("answers '0' to 100% of")
    assert members["cant"].flag_reason.startswith("answers can't tell to 100% of")
    assert all(members[n].active != auto_block for n in flagged)
    assert all(members[n].active for n in ("h1", "h2", "h3"))
    with db.read() as s:
        events = s.scalars(
            select(Event.data).where(Event.project_id == camp.pid, Event.kind == "annotator_flagged")
        ).all()
        assert {e["username"] for e in events} == flagged
        assert all(e["automatic"] and e["blocked"] == auto_block for e in events)
        # Dawid-Skene left the spammers out: their matrices were never fitted
        fitted = dict(
            s.execute(
                select(User.username, WorkerTrust.confusion)
                .join(WorkerTrust, WorkerTrust.user_id == User.id)
                .where(WorkerTrust.project_id == camp.pid)
            ).all()
        )
        assert all(fitted[n] is not None for n in ("h1", "h2", "h3"))
        assert all(fitted[n] is None for n in flagged)
        table = {r["username"]: r for r in dash.annotator_table(s, s.get(Project, camp.pid))}
    assert table["const"]["flagged"] and table["const"]["flagged_automatically"]
    assert table["const"]["flag_reason"] == members["const"].flag_reason
    assert table["const"]["blocked"] == auto_block
    assert not table["h1"]["flagged"] and table["h1"]["flag_reason"] is None
    with db.write() as s:  # the held lease: ended by the block, still good without it
        if auto_block:
            with pytest.raises(ForbiddenError, match="blocked"):
                submit_answer(s, held.task_id, camp.people["const"], "0")
        else:
            submit_answer(s, held.task_id, camp.people["const"], "0")


def test_a_detected_spammer_cannot_close_a_clip(db: Database, tmp_path: Path) -> None:
    """The request path reads the flag: two agreeing answers by flagged annotators of high trust
    (and sharp confusion matrices) leave a clip open; the same answers unflagged close it."""
    with db.write() as s:
        owner = create_user(s, "own", "x", "owner")
        config = ProjectConfig(
            name="p",
            task_type="binary",
            classes=["yes", "no"],
            control_rate=0,
            consistency_rate=0,
            redundancy={"min": 2, "max": 5, "tau": 0.9},
        )
        pid = create_project(s, Principal(owner.id, "own", "owner"), config).id
        s.get(Project, pid).class_prior = [0.5, 0.5]
        clips = list(_clips(s, pid, 2))
        people = [Principal(create_user(s, n, "x").id, n, "annotator") for n in ("s1", "s2")]
    sharp = [[0.95, 0.05], [0.05, 0.95]]

    def answer_both(flag: bool, rank: float) -> Clip:
        for who in people:
            with db.write() as s:
                task = next_task(s, pid, who, rng=random.Random(0))
                assert task is not None
                s.execute(
                    WorkerTrust.__table__.update()
                    .where(WorkerTrust.project_id == pid, WorkerTrust.user_id == who.id)
                    .values(trust=0.95, confusion=sharp)
                )
                member = s.get(ProjectMember, (pid, who.id))
                member.flagged = member.flag_auto = flag
                s.flush()
                submit_answer(s, task.task_id, who, "yes")
        with db.read() as s:
            return s.scalars(select(Clip).where(Clip.project_id == pid, Clip.n_answers == 2)).all()

    [first] = answer_both(True, 0)
    assert first.status == "queued" and first.confidence == pytest.approx(0.5)
    done = [c for c in answer_both(False, 1) if c.id != first.id]
    assert done[0].status == "done" and done[0].label == "yes"
    with db.read() as s:  # and the pure rule: chance answers carry no evidence
        view = dataclasses.replace(load_view(s, pid), class_prior=[0.5, 0.5])
    verdict = aggregate_clip(view, ["yes"] * 4, [0.95] * 4, [sharp] * 4, chance=[True] * 4)
    assert not verdict.done and verdict.confidence == pytest.approx(0.5)
    assert aggregate_clip(view, ["yes"] * 4, [0.95] * 4, [sharp] * 4, chance=[False] * 4).done
    assert clips


@pytest.mark.parametrize("batch", [50, 1])
def test_flagging_reaggregates_the_clips_spammers_answered(
    db: Database, tmp_path: Path, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queued clip kept open by a random spammer's disagreeing answers is done once the
    spammer is flagged (their answers stop counting), without another answer; also when the
    clips are re-aggregated one per transaction (`batch` 1: every batch is written).

    rand's checks went well (trust 0.9), so their one disagreeing answer holds two honest ones
    at the prior trust 0.75 below tau (0.89); flagged, rand counts at chance and those are 0.988."""
    monkeypatch.setattr(spammers, "REAGGREGATE_BATCH", batch)
    monkeypatch.setattr(spammers, "REAGGREGATE_PAUSE", 0.0)
    camp = Campaign(db)
    camp.run(60)
    with db.write() as s:
        row = s.get(WorkerTrust, (camp.pid, camp.people["rand"].id))
        row.trust = 0.9
    camp.run(8, ["h1", "rand", "h2"])  # clips answered alike by two honest annotators, not by rand
    with db.read() as s:
        before = dict(s.execute(select(Clip.id, Clip.status).where(Clip.project_id == camp.pid)).all())
    camp.refresh(tmp_path)
    with db.read() as s:
        after = dict(s.execute(select(Clip.id, Clip.status).where(Clip.project_id == camp.pid)).all())
        events = s.scalars(
            select(Event.kind).where(
                Event.project_id == camp.pid, Event.kind.in_(("clip_done", "clip_low_agreement"))
            )
        ).all()
    closed = [c for c, st in after.items() if before[c] == "queued" and st == "done"]
    assert len(closed) >= 3, "the re-aggregation settled too few queued clips"
    assert len(events) == sum(st != "queued" for st in after.values())


def test_the_owners_unflag_stands_until_new_evidence(db: Database, tmp_path: Path) -> None:
    camp = Campaign(db, clips=400)
    camp.run(40)
    camp.refresh(tmp_path)
    assert camp.members()["const"].flag_auto
    with db.write() as s:
        out = dash.set_member_flags(s, s.get(Project, camp.pid), camp.owner, "const", flagged=False)
    assert out["flagged"] is False
    member = camp.members()["const"]
    assert not member.flag_auto and member.flag_reason is None and member.flag_reviewed_at is not None
    camp.refresh(tmp_path)  # the same answers: the owner's decision stands
    assert not camp.members()["const"].flagged
    camp.run(10, ["h1", "h2", "h3", "const"])  # fewer new answers than detection needs
    camp.refresh(tmp_path)
    assert not camp.members()["const"].flagged
    camp.run(15, ["h1", "h2", "h3", "const"])  # 25 new answers, all "0"
    camp.refresh(tmp_path)
    member = camp.members()["const"]
    assert member.flagged and member.flag_auto and "100% of 2" in member.flag_reason  # 20-25 new ones


def test_the_api_shows_why_and_takes_the_setting(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    body = {"name": "digits", "task_type": "classification", "classes": DIGITS}
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    assert client.get(f"/api/v1/projects/{pid}", headers=oh).json()["auto_block_spammers"] is False
    r = client.patch(f"/api/v1/projects/{pid}", headers=oh, json={"auto_block_spammers": True})
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/projects/{pid}", headers=oh).json()["auto_block_spammers"] is True
    r = client.patch(f"/api/v1/projects/{pid}", headers=oh, json={"auto_block_spammers": "sometimes"})
    assert r.status_code == 422
    annotator(client, "spammy")
    annotator(client, "marked")
    app_db: Database = client.app.state.db  # type: ignore[attr-defined]
    reason = "answers '0' to 100% of 40 answers, where the crowd says it to 10%"
    with app_db.write() as s:
        ids = dict(s.execute(select(User.username, User.id)).all())
        s.add(ProjectMember(project_id=pid, user_id=ids["spammy"], active=True, flagged=True, flag_auto=True,
                            flag_reason=reason))  # fmt: skip
        s.add(ProjectMember(project_id=pid, user_id=ids["marked"], active=True, flagged=True))
    rows = {r["username"]: r for r in client.get(f"/api/v1/projects/{pid}/annotators", headers=oh).json()}
    assert rows["spammy"]["flag_reason"] == reason and rows["spammy"]["flagged_automatically"] is True
    assert rows["marked"]["flagged"] and rows["marked"]["flag_reason"] is None
    assert rows["marked"]["flagged_automatically"] is False
    r = client.patch(f"/api/v1/projects/{pid}/annotators/spammy", headers=oh, json={"flagged": False})
    assert r.status_code == 200 and r.json()["flagged"] is False
    rows = {r["username"]: r for r in client.get(f"/api/v1/projects/{pid}/annotators", headers=oh).json()}
    assert rows["spammy"]["flag_reason"] is None and not rows["spammy"]["flagged_automatically"]
    with app_db.read() as s:
        assert s.get(ProjectMember, (pid, ids["spammy"])).flag_reviewed_at is not None
        assert s.scalar(select(Task.id).where(Task.project_id == pid)) is None


def test_detection_runs_while_a_learning_round_computes(db: Database, tmp_path: Path) -> None:
    """A round holds the project's lease and the Dask workers for minutes (400 clips' features on
    a busy machine): the skills refresh, and so spammer detection, runs meanwhile, under the
    lease the round holds, instead of waiting for it."""
    camp = Campaign(db)
    camp.run(60)

    class Slow:  # a round's future that is ready at the third look
        looks = 0

        def result(self, timeout: float) -> str:
            Slow.looks += 1
            if Slow.looks < 3:
                raise TimeoutError
            return "round done"

        def cancel(self) -> None:
            pass

    class Client:
        def submit(self, *args: object, pure: bool) -> Slow:
            return Slow()

    service = LearningService(db, tmp_path, poll_seconds=0.0)
    service._dask = lambda: (Client(), None)  # type: ignore[method-assign]
    token = take_lease(db, camp.pid)
    assert token is not None
    assert service._compute(Held(camp.pid, token), print, ()) == "round done"
    assert {n for n, m in camp.members().items() if m.flag_auto} == {"rand", "const", "cant"}
    with db.read() as s:
        project = s.get(Project, camp.pid)
        assert project.class_prior is not None and project.learning_lease_until == token  # still the round's
