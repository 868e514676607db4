"""Re-aggregating one clip from its regular answers and the annotators' current skills.

The request path calls this for the one clip that was just answered; the redundancy policy
(`listenloop.crowd.redundancy.DynamicPolicy`) says whether the clip is done, for every task
type: classes by the clip's posterior, multi-label clips by their tag set's posterior, ratings
by the standard error of their mean (each annotator weighted by the inverse of their noise
variance: the background fit's over all their answers, else their control answers').
Whole-project aggregation (Dawid-Skene, and the ratings' noise fit) is background work
(`engine/learning/skills.py`): once it has run, each answer counts with its annotator's confusion
matrix and the project's class prior (the E-step of Dawid-Skene for this one clip); before,
with a one-coin model at their trust. The soft label is 004_ eq. 1 (`crowd.soft_labels`)
with each annotator's competence (`competence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from listenloop.crowd.aggregation.continuous import prior_noise, rating_noise
from listenloop.crowd.redundancy import CANT_TELL, MIN_WEIGHT, DynamicPolicy
from listenloop.crowd.soft_labels import encode_votes, soft_label, soft_labels, tag_matrix, weak_to_strong
from listenloop.crowd.worker_model import stored_evidence
from listenloop.crowd.worker_prior import PRIOR_TRUST, class_prior
from listenloop.engine.config import PRESENCE_TASKS, TAG_TASKS
from listenloop.engine.labels import TAG_SEP
from listenloop.engine.live.views import ProjectView
from listenloop.store.models import Clip, Project, ProjectMember, Task, WorkerTrust

PRIOR_ANSWERS = 1000
"""The newest regular answers the class prior before the first fit is estimated from
(`early_class_prior`): enough for the frequencies, bounded however large the project."""
CHANCE_NOISE = 1e3  # a detected spammer's rating noise sd, in range widths: no weight in the mean


@dataclass(frozen=True)
class ClipVerdict:
    """The aggregated state of one clip after its answers so far."""

    label: str | None
    confidence: float
    soft: dict[str, float]
    done: bool
    low_agreement: bool


def policy_for(project: Project | ProjectView) -> DynamicPolicy:
    """The project's redundancy policy."""
    return DynamicPolicy(
        min_answers=project.redundancy_min,
        max_answers=project.redundancy_max,
        tau=project.redundancy_tau,
        untrusted_below=project.trust_threshold,
        tolerance=project.rating_tolerance,
    )


def competence(trust: float, skill: float | None, chance: bool = False) -> float:
    """An annotator's weight in soft labels and the policy: the fitted worker model's skill
    (background Dawid-Skene) where it has one, else control-question trust (the prior for a
    newcomer); the floor for a detected spammer (`chance`); never exactly 0, so that every
    answer is in the weighted share."""
    if chance:
        return MIN_WEIGHT
    return max(float(trust if skill is None else skill), MIN_WEIGHT)


def soft_competence(task_type: str, trust: float, skill: float | None, chance: bool = False) -> float:
    """An annotator's θ in the soft labels (004_ eq. 1): `competence`, except on an events
    project, where θ is the MACE competence of the background refresh (stored as the skill)
    and, before a fit, the unknown worker's prior (`crowd.worker_prior`) for everyone."""
    if task_type in PRESENCE_TASKS:
        trust = PRIOR_TRUST
    return competence(trust, skill, chance)


def aggregate_clip(
    project: Project | ProjectView,
    labels: Sequence[str],
    trust: Sequence[float],
    confusions: Sequence[list[list[float]] | None] | None = None,
    skills: Sequence[float | None] | None = None,
    chance: Sequence[bool] | None = None,
    noise: Sequence[float] | None = None,
    prior: Sequence[float] | None = None,
) -> ClipVerdict:
    """Label, confidence, soft label and done/low-agreement of a clip from its answers in order.

    `trust`: each answer's annotator's control-question trust; `skills`: their fitted skill
    (None where not fitted), which replaces trust as their competence; `confusions`: their
    stored confusion matrices (None where not fitted), used with the project's `class_prior`
    once the background fit has set it. `chance`: answers that count at chance level (a
    detected spammer's, `engine/learning/spammers.py`): they count toward the answers a clip used but
    carry no evidence (competence at the floor, so never trusted, and a confusion matrix whose
    rows are uniform) and never close a clip. `noise`: ratings only, each answer's annotator's
    noise sd (`rating_noise_of`; None: the prior's for everyone), the weights of the mean.
    `prior`: classes only, the class prior before the first fit (`early_class_prior`; None:
    uniform), added to the trust-based posterior; once fitted, the project's `class_prior` wins.
    """
    skills = skills if skills is not None else [None] * len(labels)
    if chance is not None and any(chance):
        k = max(len(project.classes or []), 1)
        uniform = [[1.0 / k] * k for _ in range(k)]
        trust = [0.0 if c else t for t, c in zip(trust, chance, strict=True)]
        skills = [None if c else s for s, c in zip(skills, chance, strict=True)]
        if confusions is not None:
            confusions = [uniform if c else m for m, c in zip(confusions, chance, strict=True)]
    weights = np.array([competence(t, s) for t, s in zip(trust, skills, strict=True)], dtype=float)
    policy = policy_for(project)
    if project.task_type == "continuous":
        answered = np.array([lab != CANT_TELL for lab in labels], dtype=bool)
        values = np.array([float(lab) if ok else np.nan for lab, ok in zip(labels, answered, strict=True)])
        low, high = float(project.range_min or 0.0), float(project.range_max or 1.0)
        sd = np.full(len(labels), prior_noise(low, high)) if noise is None else np.array(noise, dtype=float)
        if chance is not None:  # a detected spammer's rating counts, with no weight
            sd[np.asarray(chance, dtype=bool)] = CHANCE_NOISE * (high - low)
        decision = policy.decide_rating(values, answered, weights, low, high, sd)
        return ClipVerdict(
            decision.label, round(decision.confidence, 6), {}, decision.done, decision.low_agreement
        )
    classes = list(project.classes)
    multilabel = project.task_type in TAG_TASKS
    flags = chance if chance is not None else [False] * len(labels)
    theta = [
        soft_competence(project.task_type, t, s, c) for t, s, c in zip(trust, skills, flags, strict=True)
    ]
    soft = soft_label(labels, theta, classes, sep=TAG_SEP if multilabel else None)
    if multilabel:
        answered, rows, codes, _ = encode_votes(labels, classes, sep=TAG_SEP)
        votes = tag_matrix(answered, rows, codes, len(classes))
        decision = policy.decide_tags(votes, answered, weights, classes)
        return ClipVerdict(
            decision.label, round(decision.confidence, 6), soft, decision.done, decision.low_agreement
        )
    evidence = log_prior = None
    fitted = project.class_prior
    if fitted is not None and len(fitted) == len(classes) and confusions is not None:
        evidence = stored_evidence(labels, confusions, trust, classes)
        log_prior = np.log(np.maximum(np.asarray(fitted, dtype=float), 1e-12))
    elif prior is not None and len(prior) == len(classes):
        log_prior = np.log(np.maximum(np.asarray(prior, dtype=float), 1e-12))
    # Classes: once fitted, the confusion matrices carry the worker model (`evidence`); trust
    # stays the one-coin accuracy before a fit and what `trust_threshold` is compared with.
    decision = policy.decide(
        np.asarray(labels, dtype=str), np.asarray(trust, dtype=float), classes, evidence, log_prior
    )
    return ClipVerdict(
        decision.label, float(decision.confidence), soft, bool(decision.done), bool(decision.low_agreement)
    )


def early_class_prior(
    project: Project | ProjectView, answers: Sequence[tuple[object, str, float]]
) -> list[float] | None:
    """The class prior of a classification project without a Dawid-Skene fit yet, from its newest
    regular answers `(clip, answer, annotator's trust)` (`crowd.worker_prior.class_prior`: uniform
    with none); None for other task types, or once the fit has set `class_prior`."""
    if project.task_type not in ("classification", "binary") or project.class_prior is not None:
        return None
    classes = [str(c) for c in project.classes or []]
    lookup = {c: i for i, c in enumerate(classes)}
    n = len(answers)
    # Built with fromiter over the rows: the request path re-estimates this prior as answers come
    # in, and per-element str()/float() lists cost more than the EM itself at 1,000 answers.
    ids = [c for c, _, _ in answers]
    items = np.asarray(ids) if all(type(c) is int for c in ids) else np.array([str(c) for c in ids])
    codes = np.fromiter(
        (lookup.get(a if type(a) is str else str(a), -1) for _, a, _ in answers), dtype=np.int64, count=n
    )
    trust = np.fromiter((t for _, _, t in answers), dtype=float, count=n)
    return class_prior(items, codes, trust, len(classes)).tolist()


def rating_noise_of(
    project: Project | ProjectView, controls: Sequence[tuple[int, str, str | None]]
) -> dict[int | None, float]:
    """Each annotator's noise sd on a rating project from their control answers
    `(annotator, answer, gold)` (`crowd.aggregation.continuous.rating_noise`); key None: the
    prior's, for an annotator with no control answer."""
    low, high = float(project.range_min or 0.0), float(project.range_max or 1.0)
    squared: dict[int, list[float]] = {}
    for user, answer, gold in controls:
        try:
            error = float(answer) - float(gold)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue  # a gold label that is no number checks nothing
        squared.setdefault(int(user), []).append(error * error)
    out: dict[int | None, float] = {u: rating_noise(sum(e), len(e), low, high) for u, e in squared.items()}
    out[None] = prior_noise(low, high)
    return out


def _weighted_answers(
    session: Session, project: Project, clip_ids: Sequence[int] | None = None
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The regular answers as `item` (clip id), `worker`, `label`, and each annotator's
    competence now (`competence`: fitted skill, else trust; detected spammers at the floor)."""
    only = () if clip_ids is None else (Task.clip_id.in_(list(clip_ids)),)
    rows = session.execute(
        select(
            Task.clip_id,
            Task.annotator_id,
            Task.answer,
            WorkerTrust.trust,
            WorkerTrust.skill,
            ProjectMember.flag_auto,
        )
        .outerjoin(
            WorkerTrust,
            and_(WorkerTrust.project_id == Task.project_id, WorkerTrust.user_id == Task.annotator_id),
        )
        .outerjoin(
            ProjectMember,
            and_(ProjectMember.project_id == Task.project_id, ProjectMember.user_id == Task.annotator_id),
        )
        .where(Task.project_id == project.id, Task.kind == "regular", Task.answered_at.is_not(None), *only)
    ).all()
    table = pd.DataFrame(
        [(str(c), str(u), str(a)) for c, u, a, *_ in rows], columns=["item", "worker", "label"]
    )
    weights = {
        str(u): soft_competence(project.task_type, PRIOR_TRUST if t is None else t, s, bool(f))
        for _, u, _, t, s, f in rows
    }
    return table, weights


def soft_by_clip(
    session: Session, project: Project, clip_ids: Sequence[int] | None = None
) -> dict[int, dict[str, float]]:
    """Each answered clip's soft label (004_ eq. 1, `crowd.soft_labels`) from its regular answers,
    weighted by each annotator's competence now (`competence`: fitted skill, else trust): the
    rule of `aggregate_clip`, with the newest worker model (detected spammers at the floor),
    for the exports and the clip browser. Only `clip_ids` when given; none for ratings."""
    if project.task_type == "continuous":
        return {}
    table, weights = _weighted_answers(session, project, clip_ids)
    if table.empty:
        return {}
    sep = TAG_SEP if project.task_type in TAG_TASKS else None
    soft = soft_labels(table, weights, sep=sep, classes=list(project.classes))
    values = np.round(soft.to_numpy(), 6)
    columns = [str(c) for c in soft.columns]
    return {
        int(item): dict(zip(columns, map(float, row), strict=True))
        for item, row in zip(soft.index, values, strict=True)
        if not np.isnan(row).any()
    }


def strong_soft_labels(session: Session, project: Project) -> pd.DataFrame:
    """An events project's temporally strong soft labels: per recording and `hop`-second
    sub-segment, 004_ eq. 1 over the answers of every segment covering it
    (`crowd.soft_labels.weak_to_strong`), weighted by the same competences as `soft_by_clip`.
    Indexed by (recording, onset, offset), one column per class; empty when nothing is answered.
    Sub-segments past a recording's end (a segment shorter than the rest) are left out, and the
    last one stops at the end."""
    from listenloop.engine.projects import segmenting

    classes = list(project.classes)
    table, weights = _weighted_answers(session, project)
    clips = session.execute(
        select(Clip.id, Clip.recording, Clip.onset, Clip.duration).where(
            Clip.project_id == project.id, Clip.recording.is_not(None)
        )
    ).all()
    where = {str(c): (rec, onset) for c, rec, onset, _ in clips}
    ends: dict[str, float] = {}
    for _, rec, onset, duration in clips:
        ends[rec] = max(ends.get(rec, 0.0), float(onset) + float(duration))
    table = table[table["item"].isin(where)]
    empty = pd.MultiIndex.from_arrays([[], [], []], names=["recording", "onset", "offset"])
    if table.empty:
        return pd.DataFrame(index=empty, columns=pd.Index(classes, name="class"), dtype=float)
    answers = pd.DataFrame(
        {
            "recording": [where[i][0] for i in table["item"]],
            "onset": [where[i][1] for i in table["item"]],
            "worker": table["worker"].to_numpy(),
            "label": table["label"].to_numpy(),
        }
    )
    segment, hop = segmenting(project)
    soft = weak_to_strong(answers, weights, segment=segment, hop=hop, classes=classes, sep=TAG_SEP)
    recs = soft.index.get_level_values("recording")
    onsets = soft.index.get_level_values("onset").to_numpy(dtype=float)
    end = np.array([ends[r] for r in recs])
    soft = soft[onsets < end - 1e-9].round(6)
    # The last sub-segment of a recording stops at its end (the final segment reaches it).
    offsets = np.minimum(
        soft.index.get_level_values("offset").to_numpy(dtype=float), end[onsets < end - 1e-9]
    )
    soft.index = pd.MultiIndex.from_arrays(
        [
            soft.index.get_level_values("recording"),
            soft.index.get_level_values("onset"),
            np.round(offsets, 3),
        ],
        names=soft.index.names,
    )
    return soft
