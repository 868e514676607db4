"""Whole-project crowd skills, refreshed in the background (000_ Table 1; issue 4's live loop).

The request path re-aggregates only the clip just answered, with each annotator's current
confusion matrix (`engine/live/aggregate.py`). This module refreshes those matrices and the class
prior from every regular answer of a project with Dawid-Skene (`crowd.worker_model.
fit_project_skills`), plus the control answers on gold clips with those clips clamped at
their gold label (crowd-kit's `true_labels`): reading and writing rows here, the fit itself
anywhere (the learning service runs it in its own process, so the server's event loop never
holds the GIL for it). The same refresh runs spammer detection first (`engine/learning/spammers.py`,
`refresh`): the answers of detected spammers are left out of the fit.

A rating project has no classes either: its refresh fits each annotator's noise sd from all
their answers, regular ones against their clip's consensus (`crowd.aggregation.continuous.
fit_rating_noise`), and stores it as their `noise`, the weight of their ratings.

An events project has no classes to confuse but presence marks per segment and class: its
refresh fits MACE on them (`crowd.soft_labels.presence_competence`, 004_ sec. 2.1) and stores
each annotator's competence θ as their skill, the weight of the soft labels (no matrices).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select, update
from sqlalchemy import bindparam as bp

from listenloop.crowd.aggregation.continuous import fit_rating_noise, parse_rating
from listenloop.crowd.aggregation.label_table import per_tag_answers
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.crowd.soft_labels import answer_tags, presence_competence
from listenloop.crowd.worker_model import ProjectSkills, fit_project_skills
from listenloop.engine.config import PRESENCE_TASKS
from listenloop.engine.learning.spammers import SpamInputs, chance_workers, find_spammers
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, Project, Task, WorkerTrust

SKILL_TASKS = ("classification", "binary")  # Dawid-Skene needs classes
NOISE_TASKS = ("continuous",)  # ratings: a noise sd per annotator instead
MIN_ANSWERS = 10  # regular answers before the first fit
REFRESH_ANSWERS = 20  # new answers (of any kind) before the next fit ...
REFRESH_SHARE = 0.1  # ... or this share of the answers the last fit saw, whichever is larger

P, T, W, C = Project.__table__, Task.__table__, WorkerTrust.__table__, Clip.__table__
_SET_WORKER = (
    update(W)
    .where(W.c.project_id == bp("project"), W.c.user_id == bp("user"))
    .values(confusion=bp("v_confusion"), skill=bp("v_skill"))
)
_SET_NOISE = (
    update(W).where(W.c.project_id == bp("project"), W.c.user_id == bp("user")).values(noise=bp("v_noise"))
)


def skills_due(answers_used: int, skills_answers: int) -> bool:
    """Whether enough answers arrived since the last fit (answers_used counts every kind)."""
    if answers_used < MIN_ANSWERS:
        return False
    return answers_used - skills_answers >= max(REFRESH_ANSWERS, REFRESH_SHARE * skills_answers)


@dataclass
class SkillInputs:
    """What a fit needs, read from the store: the answers table, classes, control-question trust."""

    project_id: int
    classes: list[str]
    answers: pd.DataFrame  # item (clip id), worker (user id), label; strings
    trust: dict[str, float]
    answers_used: int
    gold: dict[str, str] = field(default_factory=dict)  # gold clip id -> gold label (clamped)
    # ratings only: regular answers as item, worker, rating (float); control answers' errors
    # against their truth as worker, error; the project's range
    ratings: pd.DataFrame | None = None
    control_errors: pd.DataFrame | None = None
    bounds: tuple[float, float] = (0.0, 1.0)


def _number(text: object) -> float | None:
    """A stored rating or truth as a number, None where it is none."""
    try:
        return parse_rating(str(text))
    except ValueError:
        return None


def read_rating_inputs(db: Database, project_id: int, project: Any) -> SkillInputs:
    """A rating project's regular answers and control answers' errors against their clip's truth
    (gold, else expert, else the clip's label: what `store.tasks.CONTROL_ERRORS` checks against),
    can't-tell and non-numbers left out."""
    truth = func.coalesce(C.c.gold_label, C.c.expert_label, C.c.label)
    with db.read() as session:
        rows = (
            session.connection()
            .execute(
                select(T.c.clip_id, T.c.annotator_id, T.c.answer, T.c.kind, truth)
                .select_from(T.join(C, C.c.id == T.c.clip_id))
                .where(
                    T.c.project_id == project_id,
                    T.c.kind.in_(("regular", "control")),
                    T.c.answered_at.is_not(None),
                    T.c.answer != CANT_TELL,
                )
            )
            .all()
        )
    regular, errors = [], []
    for clip, user, answer, kind, true in rows:
        value = _number(answer)
        if value is None:
            continue
        if kind == "regular":
            regular.append((str(clip), str(user), value))
        elif (known := _number(true)) is not None:
            errors.append((str(user), value - known))
    ratings = pd.DataFrame(regular, columns=["item", "worker", "rating"])
    return SkillInputs(
        project_id,
        [],
        ratings.rename(columns={"rating": "label"}),
        {},
        int(project.answers_used or 0),
        ratings=ratings,
        control_errors=pd.DataFrame(errors, columns=["worker", "error"]),
        bounds=(float(project.range_min or 0.0), float(project.range_max or 1.0)),
    )


def read_skill_inputs(db: Database, project_id: int) -> SkillInputs:
    """The project's regular answers and control answers on gold clips (can't-tell left out),
    the gold labels, and its annotators' trust; a rating project's `read_rating_inputs`."""
    with db.read() as session:
        conn = session.connection()
        project = conn.execute(
            select(P.c.classes, P.c.answers_used, P.c.task_type, P.c.range_min, P.c.range_max).where(
                P.c.id == project_id
            )
        ).one()
    if project.task_type in NOISE_TASKS:
        return read_rating_inputs(db, project_id, project)
    with db.read() as session:
        conn = session.connection()
        rows = conn.execute(
            select(T.c.clip_id, T.c.annotator_id, T.c.answer).where(
                and_(
                    T.c.project_id == project_id,
                    T.c.kind.in_(("regular", "control")),
                    T.c.answered_at.is_not(None),
                    T.c.answer != CANT_TELL,
                )
            )
        ).all()
        trust = conn.execute(select(W.c.user_id, W.c.trust).where(W.c.project_id == project_id)).all()
        gold = conn.execute(
            select(C.c.id, C.c.gold_label).where(C.c.project_id == project_id, C.c.gold_label.is_not(None))
        ).all()
    classes = [str(c) for c in project.classes or []]
    known = set(classes)
    tags = project.task_type in PRESENCE_TASKS

    def fits(label: object) -> bool:  # a class, or for tags a set of the project's classes
        return answer_tags(str(label)) <= known if tags else str(label) in known

    table = pd.DataFrame(
        [(str(c), str(u), str(a)) for c, u, a in rows if fits(a)], columns=["item", "worker", "label"]
    )
    return SkillInputs(
        project_id,
        classes,
        table,
        {str(u): float(t) for u, t in trust},
        int(project.answers_used or 0),
        {str(c): str(g) for c, g in gold if fits(g)},
    )


def fit_skills(inputs: SkillInputs) -> ProjectSkills | None:
    """The Dawid-Skene fit (pure), or None with too few answers."""
    if len(inputs.answers) < MIN_ANSWERS or len(inputs.classes) < 2:
        return None
    return fit_project_skills(inputs.answers, inputs.classes, inputs.trust, gold=inputs.gold)


def fit_presence(inputs: SkillInputs) -> pd.Series | None:
    """An events project's MACE competence θ per worker (pure) from its segment answers seen
    class by class as present/absent, control segments clamped at their gold tag sets; None
    with too few answers."""
    if len(inputs.answers) < MIN_ANSWERS or not inputs.classes:
        return None
    binary = per_tag_answers(inputs.answers, inputs.classes)
    gold = per_tag_answers(
        pd.DataFrame({"item": list(inputs.gold), "worker": "", "label": list(inputs.gold.values())}),
        inputs.classes,
    )
    return presence_competence(binary, dict(zip(gold["item"], gold["label"], strict=True)))


def fit_noise(inputs: SkillInputs) -> dict[str, float] | None:
    """A rating project's noise sd per annotator from all their answers (pure); None with too
    few answers."""
    if inputs.ratings is None or inputs.control_errors is None:
        return None
    if len(inputs.ratings) + len(inputs.control_errors) < MIN_ANSWERS:
        return None
    return fit_rating_noise(inputs.ratings, inputs.control_errors, *inputs.bounds)


@dataclass
class Refresh:
    """What a background refresh found: the fit (None: too few answers, or no classes to fit),
    an events project's MACE competences instead, and the spammers to flag now
    (`crowd.trust.detect_spammers`' table)."""

    skills: ProjectSkills | None
    spammers: pd.DataFrame
    competence: pd.Series | None = None
    noise: dict[str, float] | None = None  # a rating project's noise sd per annotator


def refresh(inputs: SkillInputs, spam: SpamInputs) -> Refresh:
    """Spammer detection, then the Dawid-Skene fit without the answers of detected spammers
    (theirs count at chance level: no evidence), or on an events project the MACE fit on all
    answers (MACE's θ is the probability of not marking at random: a spammer's comes out
    near 0, and stays their weight should the owner clear the flag). Pure."""
    found = find_spammers(spam)
    if spam.task_type in NOISE_TASKS:
        return Refresh(None, found, noise=fit_noise(inputs))
    if spam.task_type not in (*SKILL_TASKS, *PRESENCE_TASKS):
        return Refresh(None, found)
    if spam.task_type in PRESENCE_TASKS:  # MACE models spammers itself: their θ is what shows them
        return Refresh(None, found, fit_presence(inputs))
    chance = chance_workers(spam, found)
    kept = inputs.answers[~inputs.answers["worker"].isin(chance)] if chance else inputs.answers
    return Refresh(fit_skills(replace(inputs, answers=kept)), found)


def write_skills(
    db: Database,
    inputs: SkillInputs,
    skills: ProjectSkills | None,
    seconds: float,
    competence: pd.Series | None = None,
    noise: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Store the matrices, skills and class prior, or an events project's MACE `competence` as
    the skills, or a rating project's `noise` sds (one transaction), and log a `skills_refreshed`
    event."""
    data: dict[str, Any] = {"answers": len(inputs.answers), "seconds": round(seconds, 3)}
    with db.write() as session:
        conn = session.connection()
        values: dict[str, Any] = {"skills_answers": inputs.answers_used}
        if competence is not None:
            rows = [
                {
                    "project": inputs.project_id,
                    "user": int(w),
                    "v_confusion": None,
                    "v_skill": round(float(t), 5),
                }
                for w, t in competence.items()
            ]
            if rows:
                conn.execute(_SET_WORKER, rows)
            data.update(workers=len(rows), model="mace")
        if noise is not None:
            rows = [
                {"project": inputs.project_id, "user": int(w), "v_noise": round(float(sd), 5)}
                for w, sd in noise.items()
            ]
            if rows:
                conn.execute(_SET_NOISE, rows)
            data.update(workers=len(rows), model="noise")
        if skills is not None:
            rows = [
                {
                    "project": inputs.project_id,
                    "user": int(worker),
                    "v_confusion": np.round(skills.confusion[i], 5).tolist(),
                    "v_skill": round(float(skills.skills[i]), 5),
                }
                for i, worker in enumerate(skills.workers)
            ]
            if rows:
                conn.execute(_SET_WORKER, rows)
            values["class_prior"] = np.round(skills.prior, 6).tolist()
            data.update(workers=len(rows), iterations=skills.iterations)
        conn.execute(update(P).where(P.c.id == inputs.project_id).values(**values))
        session.add(Event(project_id=inputs.project_id, kind="skills_refreshed", data=data))
    return data
