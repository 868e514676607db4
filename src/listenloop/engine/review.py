"""The review queue of the clip browser: the clips where the owner's (or a reviewer's) ear is
worth most, ordered by what a correction would change most.

Three kinds of clip enter it (`KINDS`); a clip may be several at once (`reasons`):

- `low_agreement`: the redundancy policy asked its maximum of answers without reaching
  confidence (status low_agreement);
- `disagreement`: the crowd finished the clip (done, label from the crowd) and the newest
  learning round's model predicts another class (the round's pool map holds predictions for up
  to 2,000 clips: only those can be compared);
- `cant_tell`: more than half of its regular answers are "can't tell" (at least one answer).

Left out: control questions, clips with a seed or an expert label (the owner's word already),
and discarded clips.

**Score** (the queue's order, highest first): `score = p_change + adds_label`, in [0, 2].

- `p_change`, the chance that a correction changes the clip's label, is estimated from the
  crowd's own posterior: 1 - s(label), where s is the soft label stored with the clip's aggregate
  (004_ eq. 1, weighted by the annotators' competences at its last answer; the clip browser shows
  it recomputed with today's) and `label` the clip's current label; s is the crowd's confidence
  where the soft label has no entry for it (tag sets, ratings); 1 for a clip with no label (or
  "can't tell"). Reading the stored soft label keeps the queue one pass over its candidates.
- `adds_label` is 1 when the clip gives the model no training label now (low agreement, mostly
  "can't tell"): a correction adds one, which changes the training set as much as flipping a label.

Ties go to the clip the model disputes (`disagreement`), then to more answers spent on it (the
crowd's effort it settles), then to the older clip. The queue is computed in Python over the
candidates (a few thousand clips in practice) and paged like the clip browser.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.accounts import Principal
from listenloop.engine.clips import DEFAULT_PAGE, MAX_PAGE, newest_predictions
from listenloop.engine.config import TAG_TASKS
from listenloop.engine.errors import InvalidError
from listenloop.engine.learning.service import training_label
from listenloop.engine.projects import require_reviewer
from listenloop.store.models import Clip, Project, Task

KINDS = ("low_agreement", "disagreement", "cant_tell")
KIND_CHOICES = ("all", *KINDS)
_OPEN = and_(Clip.is_gold.is_(False), Clip.seed_label.is_(None), Clip.expert_label.is_(None))


def _candidates(session: Session, project: Project, kinds: tuple[str, ...]) -> dict[int, set[str]]:
    """{clip_id: reasons} of the clips of `kinds` (one SQL query per kind)."""
    found: dict[int, set[str]] = {}
    base = (Clip.project_id == project.id, _OPEN, Clip.status != "discarded")
    if "low_agreement" in kinds:
        for clip_id in session.scalars(select(Clip.id).where(*base, Clip.status == "low_agreement")):
            found.setdefault(int(clip_id), set()).add("low_agreement")
    if "cant_tell" in kinds:
        cant = func.sum(case((Task.answer == CANT_TELL, 1), else_=0))
        rows = session.execute(
            select(Task.clip_id)
            .join(Clip, Clip.id == Task.clip_id)
            .where(
                Task.project_id == project.id,
                Task.kind == "regular",
                Task.answered_at.is_not(None),
                *base,
            )
            .group_by(Task.clip_id)
            .having(2 * cant > func.count())
        )
        for (clip_id,) in rows:
            found.setdefault(int(clip_id), set()).add("cant_tell")
    if "disagreement" in kinds and project.task_type != "continuous":
        _, predicted = newest_predictions(session, project)
        ids = sorted(predicted)
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            rows = session.execute(
                select(Clip.id, Clip.label).where(
                    *base, Clip.status == "done", Clip.id.in_(batch), Clip.label.is_not(None)
                )
            )
            for clip_id, label in rows:
                if label != CANT_TELL and predicted[int(clip_id)] != label:
                    found.setdefault(int(clip_id), set()).add("disagreement")
    return found


def change_chance(
    project: Project, label: str | None, confidence: float | None, soft: dict[str, float]
) -> float:
    """`p_change` of the module's score: how likely a correction changes this label."""
    if label is None or label == CANT_TELL:
        return 1.0
    if project.task_type not in TAG_TASKS and project.task_type != "continuous" and soft:
        support = soft.get(label, 0.0)
    else:
        support = confidence if confidence is not None else 0.0
    return min(max(1.0 - float(support), 0.0), 1.0)


def review_queue(
    session: Session,
    project: Project,
    who: Principal,
    *,
    kind: str = "all",
    offset: int = 0,
    limit: int = DEFAULT_PAGE,
) -> dict[str, Any]:
    """One page of the review queue (owner or reviewer): `{kind, total, offset, limit,
    prediction_run, score, clips: [{clip_id, file, status, label, confidence, n_answers,
    cant_tell, predicted, soft, reasons, p_change, adds_label, score, duration}]}`, highest
    score first. InvalidError (422) for an unknown kind or a bad page."""
    require_reviewer(session, project, who)
    if kind not in KIND_CHOICES:
        raise InvalidError(f"kind {kind!r} is not one of {', '.join(KIND_CHOICES)}")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidError(f"limit must be from 1 to {MAX_PAGE}, not {limit}")
    if offset < 0:
        raise InvalidError(f"offset must be at least 0, not {offset}")
    found = _candidates(session, project, KINDS if kind == "all" else (kind,))
    run, predicted = newest_predictions(session, project)
    ids = sorted(found)
    rows: list[Any] = []
    cant: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        rows.extend(
            session.execute(
                select(
                    Clip.id,
                    Clip.file_name,
                    Clip.status,
                    Clip.label,
                    Clip.confidence,
                    Clip.n_answers,
                    Clip.duration,
                    Clip.soft,
                ).where(Clip.id.in_(batch))
            )
        )
        counted = session.execute(
            select(Task.clip_id, func.count())
            .where(
                Task.clip_id.in_(batch),
                Task.kind == "regular",
                Task.answered_at.is_not(None),
                Task.answer == CANT_TELL,
            )
            .group_by(Task.clip_id)
        )
        cant.update({int(c): int(n) for c, n in counted})
    items = []
    for r in rows:
        clip_soft = {str(k): float(v) for k, v in (r.soft or {}).items()} if isinstance(r.soft, dict) else {}
        p_change = change_chance(project, r.label, r.confidence, clip_soft)
        adds = training_label(None, r.status, False, None, r.label, None) is None
        reasons = sorted(found[int(r.id)], key=KINDS.index)
        items.append(
            {
                "clip_id": int(r.id),
                "file": r.file_name,
                "status": r.status,
                "label": r.label if r.n_answers else None,
                "confidence": None if r.confidence is None or not r.n_answers else float(r.confidence),
                "n_answers": int(r.n_answers),
                "cant_tell": cant.get(int(r.id), 0),
                "predicted": predicted.get(int(r.id)),
                "soft": clip_soft,
                "reasons": reasons,
                "p_change": round(p_change, 4),
                "adds_label": adds,
                "score": round(p_change + float(adds), 4),
                "duration": round(float(r.duration), 3),
            }
        )
    items.sort(key=lambda c: (-c["score"], "disagreement" not in c["reasons"], -c["n_answers"], c["clip_id"]))
    return {
        "kind": kind,
        "total": len(items),
        "offset": offset,
        "limit": limit,
        "prediction_run": run,
        "score": "p_change + adds_label: p_change = 1 - the crowd's soft-label share of the current "
        "label (1 without a label); adds_label = 1 when the clip has no training label yet",
        "clips": items[offset : offset + limit],
    }
