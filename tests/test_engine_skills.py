"""Background crowd skills: the whole-project Dawid-Skene fit, its shrinkage, the stored
matrices the request path uses, and the learning service's refresh on a real SQLite database."""

from __future__ import annotations

import dataclasses
import os
import random
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from listenloop.crowd.aggregation.continuous import fit_rating_noise, rating_noise
from listenloop.crowd.worker_model import fit_project_skills, stored_evidence
from listenloop.crowd.worker_prior import PRIOR_TRUST, unknown_confusion
from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig
from listenloop.engine.learning import service as service_module
from listenloop.engine.learning.service import LearningService
from listenloop.engine.learning.skills import (
    MIN_ANSWERS,
    REFRESH_ANSWERS,
    SkillInputs,
    fit_presence,
    fit_skills,
    read_skill_inputs,
    skills_due,
)
from listenloop.engine.live.aggregate import aggregate_clip
from listenloop.engine.live.tasks import next_task, submit_answer
from listenloop.engine.live.views import load_view
from listenloop.engine.projects import create_project
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, Project, WorkerTrust


def crowd(n_items: int = 300, seed: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    """Three 90 %-right workers and one who always answers 'b' when the truth is 'a'."""
    rng = np.random.default_rng(seed)
    truth = {f"i{i}": str(rng.choice(["a", "b", "c"])) for i in range(n_items)}
    rows = []
    for item, true in truth.items():
        for worker in ("good1", "good2", "good3"):
            wrong = [c for c in "abc" if c != true]
            rows.append((item, worker, true if rng.random() < 0.9 else str(rng.choice(wrong))))
        rows.append((item, "swapper", "b" if true == "a" else true))
    return pd.DataFrame(rows, columns=["item", "worker", "label"]), truth


def test_fit_finds_a_systematic_confusion_and_the_prior() -> None:
    answers, truth = crowd()
    fit = fit_project_skills(answers, ["a", "b", "c"], {})
    swapper = fit.workers.index("swapper")
    # P(answer b | true a) is high for the swapper, low for the good workers
    assert fit.confusion[swapper, 1, 0] > 0.9
    assert fit.confusion[fit.workers.index("good1"), 1, 0] < 0.15
    # columns are distributions over the answered class, up to the prior's part (a likelihood
    # table: the crowd's errors on true a all go to b, which the prior then allows every worker)
    np.testing.assert_allclose(fit.confusion.sum(axis=1), 1.0, atol=0.01)
    assert fit.error_shares is not None and fit.error_shares[1, 0] > 0.8
    shares = pd.Series(truth).value_counts(normalize=True).reindex(["a", "b", "c"]).to_numpy()
    np.testing.assert_allclose(fit.prior, shares, atol=0.05)
    assert fit.skills[fit.workers.index("good1")] > fit.skills[swapper]


def test_a_worker_seen_once_stays_near_the_prior_at_their_trust() -> None:
    answers, _ = crowd(60)
    answers = pd.concat([answers, pd.DataFrame([("i0", "newbie", "c")], columns=answers.columns)])
    fit = fit_project_skills(answers, ["a", "b", "c"], {"newbie": 0.6})
    newbie = fit.confusion[fit.workers.index("newbie")]
    # one answer against 5 pseudo-answers per true class: within 0.1 of the prior at 0.6, which
    # errs as the crowd does (its errors on true a go to b: the swapper's)
    prior = unknown_confusion(np.array([0.6]), 3, fit.error_shares)[0]
    assert np.abs(newbie - prior).max() < 0.1 and prior[1, 0] > 0.3


def test_the_prior_matrix_on_three_classes_is_one_coin() -> None:
    m = unknown_confusion(np.array([0.7]), 3)[0]
    np.testing.assert_allclose(m, [[0.7, 0.15, 0.15], [0.15, 0.7, 0.15], [0.15, 0.15, 0.7]])


def test_stored_evidence_rows() -> None:
    matrix = [[0.8, 0.3], [0.2, 0.7]]
    ev = stored_evidence(
        ["a", "b", "?", "a", "a"],
        [matrix, matrix, matrix, None, [[1.0]]],
        [0.5, 0.5, 0.5, 0.9, 0.6],
        ["a", "b"],
    )
    np.testing.assert_allclose(ev[0], np.log([0.8, 0.3]))
    np.testing.assert_allclose(ev[1], np.log([0.2, 0.7]))
    np.testing.assert_allclose(ev[2], [0.0, 0.0])  # can't-tell: no evidence
    np.testing.assert_allclose(ev[3], np.log([0.9, 0.1]))  # no matrix: one-coin at trust
    np.testing.assert_allclose(ev[4], np.log([0.6, 0.4]))  # a matrix of another shape: one-coin


def test_skills_due_thresholds() -> None:
    assert not skills_due(MIN_ANSWERS - 1, 0)
    assert skills_due(REFRESH_ANSWERS, 0)
    assert not skills_due(1000 + 99, 1000)  # 10 % of 1000 = 100 new answers needed
    assert skills_due(1000 + 100, 1000)


def test_the_request_path_uses_stored_confusions(tmp_path: Path) -> None:
    """Two answers 'a' from annotators who also answer 'a' for half the true b's: not done,
    though the one-coin model at their trust would call it done."""
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    with db.write() as s:
        owner = create_user(s, "o", "x", "owner")
        config = ProjectConfig(
            name="p",
            task_type="classification",
            classes=["a", "b"],
            redundancy={"min": 2, "max": 5, "tau": 0.9},
        )
        pid = create_project(s, Principal(owner.id, "o", "owner"), config).id
    with db.read() as s:
        view = load_view(s, pid)
    plain = aggregate_clip(view, ["a", "a"], [0.9, 0.9])
    assert plain.done and plain.label == "a"
    sloppy = [[1.0, 0.5], [0.0, 0.5]]
    informed = dataclasses.replace(view, class_prior=[0.5, 0.5])
    verdict = aggregate_clip(informed, ["a", "a"], [0.9, 0.9], [sloppy, sloppy])
    assert not verdict.done and verdict.label == "a"
    assert verdict.confidence == pytest.approx(0.8)  # 1 / (1 + 0.25)


def test_the_service_refreshes_skills_from_live_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    rng = random.Random(0)
    with db.write() as s:
        owner = create_user(s, "o", "x", "owner")
        config = ProjectConfig(
            name="p",
            task_type="classification",
            classes=["a", "b"],
            control_rate=0,
            consistency_rate=0,
            redundancy={"min": 3, "max": 3, "tau": 0.99},
        )
        pid = create_project(s, Principal(owner.id, "o", "owner"), config).id
        truth = {}
        for i in range(20):
            clip = Clip(
                project_id=pid,
                file_name=f"c{i}.wav",
                sha256=f"{i:064x}",
                path=f"x/{i}.wav",
                duration=1.0,
                sample_rate=16000,
                rank=float(i),
            )
            s.add(clip)
            s.flush()
            truth[clip.id] = "a" if i % 2 else "b"
        people = [Principal(create_user(s, name, "x").id, name, "annotator") for name in ("u1", "u2", "liar")]
    for who in people:
        while True:
            with db.write() as s:
                task = next_task(s, pid, who, rng=rng)
                if task is None:
                    break
                right = truth[task.clip_id]
                answer = ("b" if right == "a" else "a") if who.username == "liar" else right
                submit_answer(s, task.task_id, who, answer)
    service = LearningService(db, tmp_path, inline=True)
    assert pid in service.skills_due_projects()
    fitted_in: list[tuple[str, int]] = []
    real_refresh = service_module.crowd_skills.refresh

    def refresh(*args: object) -> object:  # where the fit runs: its own thread, niced (Linux)
        fitted_in.append(
            (threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        )
        return real_refresh(*args)

    monkeypatch.setattr(service_module.crowd_skills, "refresh", refresh)
    outcome = service.refresh_skills(pid)
    assert outcome.state == "ran", outcome.error
    [(thread, nice)] = fitted_in
    assert thread.startswith("listenloop-skills")
    assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + service_module.SKILLS_NICE)
    service.stop()
    with db.read() as s:
        project = s.get(Project, pid)
        assert project.class_prior == pytest.approx([0.5, 0.5], abs=0.01)
        assert project.skills_answers == 60
        rows = {r.user_id: r for r in s.scalars(select(WorkerTrust).where(WorkerTrust.project_id == pid))}
        liar = rows[people[2].id]
        # answers a when the truth is b (10 answers per true class, shrunk towards one-coin at the prior)
        assert liar.confusion is not None and liar.confusion[0][1] > 0.7
        assert rows[people[0].id].skill > 0.8 > liar.skill
        assert (
            s.scalar(select(Event.data).where(Event.project_id == pid, Event.kind == "skills_refreshed"))[
                "workers"
            ]
            == 3
        )
    assert pid not in service.skills_due_projects()  # nothing new since
    db.dispose()


def _binary_project(db: Database, n_clips: int) -> tuple[int, list[int]]:
    """A binary project without checks (dynamic redundancy, tau 0.95) and its clips' ids."""
    with db.write() as s:
        owner = create_user(s, "o", "x", "owner")
        config = ProjectConfig(
            name="p",
            task_type="binary",
            classes=["0", "1"],
            control_rate=0,
            consistency_rate=0,
            redundancy={"min": 2, "max": 9, "tau": 0.95},
        )
        pid = create_project(s, Principal(owner.id, "o", "owner"), config).id
        ids = []
        for i in range(n_clips):
            clip = Clip(
                project_id=pid,
                file_name=f"c{i}.wav",
                sha256=f"{i:064x}",
                path=f"x/{i}.wav",
                duration=1.0,
                sample_rate=16000,
                rank=float(i),
            )
            s.add(clip)
            s.flush()
            ids.append(clip.id)
    return pid, ids


def test_three_new_annotators_who_agree_finish_a_binary_clip(tmp_path: Path) -> None:
    """The prior of an unknown worker carries evidence: at 0.5 a binary answer carried none and
    seven agreeing newcomers ended a clip low-agreement at confidence 0.507."""
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    pid, (clip_id,) = _binary_project(db, 1)
    with db.write() as s:
        people = [Principal(create_user(s, f"u{k}", "x").id, f"u{k}", "annotator") for k in range(4)]
    rng = random.Random(0)
    for who in people[:3]:
        with db.write() as s:
            task = next_task(s, pid, who, rng=rng)
            assert task is not None
            submit_answer(s, task.task_id, who, "1")
    with db.read() as s:
        clip = s.get(Clip, clip_id)
        assert (clip.status, clip.label, clip.n_answers) == ("done", "1", 3)
        assert clip.confidence >= 0.95
    with db.write() as s:
        assert next_task(s, pid, people[3], rng=rng) is None  # nothing left to ask
    db.dispose()


def test_after_a_fit_newcomers_without_a_matrix_keep_the_prior(tmp_path: Path) -> None:
    """Once the background fit has set the class prior, a newcomer has no confusion matrix:
    they count as one-coin at the prior (not at 0.5), so three agreeing newcomers finish."""
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    pid, _ = _binary_project(db, 1)
    with db.read() as s:
        view = dataclasses.replace(load_view(s, pid), class_prior=[0.5, 0.5])
    verdict = aggregate_clip(view, ["0", "0", "0"], [PRIOR_TRUST] * 3, [None, None, None])
    assert verdict.done and verdict.label == "0" and verdict.confidence >= 0.95
    ev = stored_evidence(["0"], [None], [PRIOR_TRUST], ["0", "1"])
    assert ev[0] == pytest.approx(np.log([PRIOR_TRUST, 1 - PRIOR_TRUST]))
    db.dispose()


def test_the_refresh_fits_control_answers_with_their_gold_clamped(tmp_path: Path) -> None:
    """Control answers on gold clips join the Dawid-Skene fit, their clips held at the gold label:
    the pair who agree on the wrong class there lose skill, the expert gains."""
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    with db.write() as s:
        owner = create_user(s, "o", "x", "owner")
        config = ProjectConfig(
            name="p",
            task_type="classification",
            classes=["a", "b"],
            control_rate=0.5,
            consistency_rate=0,
            redundancy={"min": 3, "max": 3, "tau": 0.99},
        )
        pid = create_project(s, Principal(owner.id, "o", "owner"), config).id
        truth: dict[int, str] = {}
        for i in range(24):
            gold = i >= 16
            clip = Clip(
                project_id=pid,
                file_name=f"c{i}.wav",
                sha256=f"{i:064x}",
                path=f"x/{i}.wav",
                duration=1.0,
                sample_rate=16000,
                rank=float(i),
                is_gold=gold,
                gold_label=("a" if i % 2 else "b") if gold else None,
            )
            s.add(clip)
            s.flush()
            truth[clip.id] = "a" if i % 2 else "b"
        names = ("expert", "pair1", "pair2")
        people = [Principal(create_user(s, name, "x").id, name, "annotator") for name in names]
    rng = random.Random(0)
    for who in people:
        while True:
            with db.write() as s:
                task = next_task(s, pid, who, rng=rng)
                if task is None:
                    break
                right = truth[task.clip_id]
                # the pair answer "a" on every b clip: a swap the majority cannot see
                answer = right if who.username == "expert" else "a"
                submit_answer(s, task.task_id, who, answer)
    inputs = read_skill_inputs(db, pid)
    with db.read() as s:
        golds = {str(c.id): c.gold_label for c in s.scalars(select(Clip).where(Clip.is_gold))}
    assert inputs.gold == golds
    controls = inputs.answers[inputs.answers["item"].isin(golds)]
    assert len(controls) > 0  # the control answers are in the fit
    clamped, plain = fit_skills(inputs), fit_skills(dataclasses.replace(inputs, gold={}))
    assert clamped is not None and plain is not None
    ids = {p.username: str(p.id) for p in people}
    skill = {name: clamped.skills[clamped.workers.index(ids[name])] for name in names}
    before = {name: plain.skills[plain.workers.index(ids[name])] for name in names}
    assert skill["expert"] > before["expert"]
    assert skill["pair1"] < before["pair1"] and skill["pair2"] < before["pair2"]
    db.dispose()


def _answer_clips(db: Database, pid: int, people: list[Principal], truths: list[str]) -> None:
    """`people` answer in turns until nothing is left for them, each the class in `truths` of the
    clip served (clip i in id order has truth `truths[i]`)."""
    rng = random.Random(0)
    with db.read() as s:
        order = {c.id: i for i, c in enumerate(s.scalars(select(Clip).where(Clip.project_id == pid)))}
    served = True
    while served:  # until nothing is left for them
        served = False
        for who in people:
            with db.write() as s:
                task = next_task(s, pid, who, rng=rng)
                if task is not None:
                    submit_answer(s, task.task_id, who, truths[order[task.clip_id]])
                    served = True


@pytest.mark.parametrize(("history", "done_after"), [("0" * 12, 4), ("01" * 6, 3)])
def test_before_a_fit_the_class_prior_comes_from_the_answers(
    tmp_path: Path, history: str, done_after: int
) -> None:
    """Before the first Dawid-Skene fit the live posterior's class prior is estimated from the
    project's answers (`crowd.worker_prior.class_prior`): after twelve clips answered "0" three
    agreeing newcomers no longer finish a "1" (a fourth does), while with balanced classes they
    still do. A uniform prior finished it with three either way."""
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    pid, ids = _binary_project(db, len(history) + 1)
    with db.write() as s:
        people = [Principal(create_user(s, f"u{k}", "x").id, f"u{k}", "annotator") for k in range(4)]
    _answer_clips(db, pid, people[:3], [*history, "1"])
    with db.read() as s:
        assert [s.get(Clip, i).label for i in ids[:-1]] == list(history)
        assert s.get(Project, pid).class_prior is None  # no fit has run
        last = s.get(Clip, ids[-1])
        assert last.n_answers == 3 and last.label == "1"
        assert (last.status == "done") == (done_after == 3), last.confidence
    if done_after == 4:
        with db.write() as s:
            task = next_task(s, pid, people[3], rng=random.Random(1))
            assert task is not None and task.clip_id == ids[-1]
            submit_answer(s, task.task_id, people[3], "1")
        with db.read() as s:
            assert s.get(Clip, ids[-1]).status == "done"
    db.dispose()


def test_the_events_fit_is_mace_on_presence_marks_with_control_segments_clamped() -> None:
    """An events project's refresh fits MACE θ per annotator on one yes/no item per segment and
    class: a random marker comes out near 0; on control segments (gold tag sets clamped) a pair
    who agree on wrong marks loses competence and the annotator who marks the gold gains."""
    rng = np.random.default_rng(0)
    tags = ["car", "bird"]
    truth = {f"s{i}": "|".join(t for t in tags if rng.random() < 0.5) for i in range(40)}
    rows = []
    for seg, true in truth.items():
        rows += [(seg, w, true) for w in ("good1", "good2")]
        rows.append((seg, "rnd", "|".join(t for t in tags if rng.random() < 0.5)))
    controls = {f"g{i}": "car" if i % 2 else "bird" for i in range(12)}
    for seg, gold in controls.items():
        wrong = "bird" if gold == "car" else "car|bird"
        rows += [(seg, "expert", gold), (seg, "pair1", wrong), (seg, "pair2", wrong)]
    answers = pd.DataFrame(rows, columns=["item", "worker", "label"])
    inputs = SkillInputs(1, tags, answers, {}, len(rows), controls)
    theta = fit_presence(inputs)
    plain = fit_presence(dataclasses.replace(inputs, gold={}))
    assert theta is not None and plain is not None
    assert theta["rnd"] < 0.3 < 0.9 < min(theta["good1"], theta["good2"])
    assert theta["expert"] > plain["expert"]
    assert theta["pair1"] < plain["pair1"] and theta["pair2"] < plain["pair2"]
    assert fit_presence(dataclasses.replace(inputs, answers=answers.head(MIN_ANSWERS - 1))) is None


def test_rating_noise_from_all_answers_needs_no_control_answer() -> None:
    """EM over regular answers recovers each sd without a control answer; a control answer alone
    gives `rating_noise`'s sd."""
    rng = np.random.default_rng(0)
    sds = {"w1": 1.0, "w2": 1.5, "w3": 2.0, "w4": 3.0, "w5": 4.0, "w6": 6.0}
    rows = []
    for i in range(200):
        true = rng.uniform(-15, 15)
        rows += [(f"i{i}", w, true + rng.normal(0, sd)) for w, sd in sds.items()]
    ratings = pd.DataFrame(rows, columns=["item", "worker", "rating"])
    none = pd.DataFrame(columns=["worker", "error"])
    fit = fit_rating_noise(ratings, none, -20.0, 20.0)
    for worker, sd in sds.items():
        assert fit[worker] == pytest.approx(sd, rel=0.2)
    assert fit_rating_noise(
        ratings.iloc[:0], pd.DataFrame([("w1", 0.5)], columns=["worker", "error"]), -20, 20
    )["w1"] == pytest.approx(rating_noise(0.25, 1, -20, 20))


def test_the_refresh_fits_rating_noise_and_the_request_path_weights_by_it(tmp_path: Path) -> None:
    """A rating project without control answers: before a refresh every annotator has the prior's
    sd (5 on [-20, 20]) and two answers leave a standard error of 3.5; after it, the two precise
    annotators' small sds close a clip on their two answers, the noisy one's stays large."""
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.upgrade()
    rng = random.Random(0)
    try:
        with db.write() as s:
            owner = create_user(s, "o", "x", "owner")
            config = ProjectConfig(
                name="r", task_type="continuous", range=[-20, 20], control_rate=0, consistency_rate=0,
                redundancy={"min": 2, "max": 3, "tau": 0.95}, rating_tolerance=1.0,
            )  # fmt: skip
            pid = create_project(s, Principal(owner.id, "o", "owner"), config).id
            truth = {}
            for i in range(31):
                clip = Clip(project_id=pid, file_name=f"c{i}.wav", sha256=f"{i:064x}", path=f"x/{i}.wav",
                            duration=1.0, sample_rate=16000, rank=float(i))  # fmt: skip
                s.add(clip)
                s.flush()
                truth[clip.id] = float(i % 15 - 7)
            people = [Principal(create_user(s, n, "x").id, n, "annotator") for n in ("p1", "p2", "noisy")]
        last = max(truth)
        sd = {"p1": 0.3, "p2": 0.3, "noisy": 6.0}

        def answer(who: Principal, skip_last: bool) -> None:
            while True:
                with db.write() as s:
                    task = next_task(s, pid, who, rng=rng)
                    if task is None or (skip_last and task.clip_id == last):
                        return
                    value = truth[task.clip_id] + rng.gauss(0, sd[who.username])
                    submit_answer(s, task.task_id, who, f"{value:.1f}")

        for who in people:
            answer(who, skip_last=True)
        with db.read() as s:
            assert all(c.n_answers == 3 for c in s.scalars(select(Clip).where(Clip.id != last)))
            assert all(w.noise is None for w in s.scalars(select(WorkerTrust)))
        service = LearningService(db, tmp_path, inline=True)
        assert pid in service.skills_due_projects()
        assert service.refresh_skills(pid).state == "ran"
        with db.read() as s:
            noise = {
                r.user_id: r.noise
                for r in s.scalars(select(WorkerTrust).where(WorkerTrust.project_id == pid))
            }
        assert noise[people[0].id] < 0.8 and noise[people[1].id] < 0.8 and noise[people[2].id] > 4
        for who in people[:2]:
            with db.write() as s:
                task = next_task(s, pid, who, rng=rng)
                assert task is not None and task.clip_id == last
                submit_answer(s, task.task_id, who, f"{truth[last] + rng.gauss(0, 0.3):.1f}")
        with db.read() as s:
            clip = s.get(Clip, last)
            assert clip.status == "done" and clip.n_answers == 2
            assert float(clip.label) == pytest.approx(truth[last], abs=1.0)
    finally:
        db.dispose()
