"""The owner's dashboard: label distribution, answers per clip, savings, annotators, model runs.

Plain functions over a session (no HTTP): the router `server/routers/dashboard.py` checks that
the caller owns the project and turns these dicts into JSON.

Savings are counted on the clips the crowd has finished (done or low-agreement; neither seed
nor control clips): the regular answers they took against what a fixed redundancy of K
answers per clip would have taken for the same clips (K = the project's `redundancy.max`, and
K = 5). Control and consistency answers are reported apart, as the quality-control overhead
(a fixed-redundancy campaign with quality control pays it as well).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from listenloop.engine.accounts import Principal
from listenloop.engine.agreement import cached as cached_agreement
from listenloop.engine.config import TAG_TASKS
from listenloop.engine.errors import InvalidError, NotFoundError
from listenloop.engine.labels import TAG_SEP
from listenloop.engine.projects import end_leases, project_status, require_owner
from listenloop.store.answer_tallies import answer_tallies
from listenloop.store.clip_tallies import tallies
from listenloop.store.label_tallies import label_tallies
from listenloop.store.models import (
    Event,
    ModelRun,
    Project,
    ProjectMember,
    User,
    WorkerTrust,
    utcnow,
)

FIXED_REFERENCE = 5  # the second fixed-redundancy reference of the savings panel
CONTINUOUS_BINS = 10
FINISHED = ("done", "low_agreement")


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def label_distribution(session: Session, project: Project) -> list[dict[str, Any]]:
    """Labels so far per class (tag, or range bin for ratings): `[{label, crowd, seed, expert}]`.

    `crowd`: clips the crowd labelled (status done); `seed`: the owner's seed labels; `expert`:
    the owner's corrections (clip browser), which replace the crowd's or seed label. Control
    clips are not counted. Classes come in the project's order, every class listed.
    """
    crowd: Counter[str] = Counter()
    seed: Counter[str] = Counter()
    expert: Counter[str] = Counter()
    counters = {"crowd": crowd, "seed": seed, "expert": expert}
    for source, value, n in label_tallies(session, project.id):  # kept on write: a row per label
        counter = counters[source]
        if project.task_type in TAG_TASKS:
            for tag in value.split(TAG_SEP):
                if tag:
                    counter[tag] += n
        else:
            counter[value] += n
    if project.task_type == "continuous":
        return _binned(project, crowd, seed, expert)
    names = [str(c) for c in project.classes or []]
    names += sorted((set(crowd) | set(seed)) - set(names))  # e.g. "can't tell" winning a clip
    return [{"label": n, "crowd": crowd[n], "seed": seed[n], "expert": expert[n]} for n in names]


def _binned(
    project: Project, crowd: Counter[str], seed: Counter[str], expert: Counter[str]
) -> list[dict[str, Any]]:
    """Ratings in CONTINUOUS_BINS equal bins over the project's range (labelled by their lower edge)."""
    lo, hi = float(project.range_min or 0.0), float(project.range_max or 1.0)
    width = (hi - lo) / CONTINUOUS_BINS or 1.0
    bins = [
        {"label": f"{lo + i * width:g}–{lo + (i + 1) * width:g}", "crowd": 0, "seed": 0, "expert": 0}
        for i in range(CONTINUOUS_BINS)
    ]
    for counter, key in ((crowd, "crowd"), (seed, "seed"), (expert, "expert")):
        for text, n in counter.items():
            try:
                value = float(text)
            except ValueError:
                continue
            if not math.isfinite(value):
                continue
            i = min(max(int((value - lo) // width), 0), CONTINUOUS_BINS - 1)
            bins[i][key] += n
    return bins


def answers_histogram(session: Session, project: Project) -> list[dict[str, Any]]:
    """How many regular answers crowd clips took: `[{answers, done, low_agreement, open}]` for
    1..the most answers any clip has (`open`: still queued with some answers). Seed and control
    clips are left out."""
    rows = [
        (t.n_answers, t.status, t.clips)
        for t in tallies(session, project.id)
        if not t.is_gold and not t.seeded and t.n_answers > 0
    ]
    top = max((n for n, _, _ in rows), default=0)
    bars = [{"answers": k, "done": 0, "low_agreement": 0, "open": 0} for k in range(1, top + 1)]
    for n, status, count in rows:
        key = status if status in FINISHED else "open"
        bars[n - 1][key] += count
    return bars


def savings(session: Session, project: Project) -> dict[str, Any]:
    """Answers the crowd used against fixed redundancy, and labels used against the pool.

    `{finished_clips, answers_on_finished, mean_answers, fixed: [{k, answers, saved, saved_share}],
    quality_answers (control + consistency), answers_used (all kinds, the budget's count),
    labels (seed + crowd done), pool (clips that are not control questions), labels_share}`.
    """
    counts = [t for t in tallies(session, project.id) if not t.is_gold]
    crowd = [t for t in counts if not t.seeded and t.status in FINISHED]
    finished = sum(t.clips for t in crowd)
    on_finished = sum(t.clips * t.n_answers for t in crowd)
    pool = sum(t.clips for t in counts)
    labels = sum(t.clips for t in counts if t.seeded or t.status == "done")
    by_kind: Counter[str] = Counter()
    for row in answer_tallies(session, project.id):  # kept on write: a row per annotator and kind
        by_kind[row.kind] += row.answers
    fixed = []
    for k in sorted({int(project.redundancy_max), FIXED_REFERENCE}):
        would = k * int(finished)
        fixed.append(
            {
                "k": k,
                "answers": would,
                "saved": would - int(on_finished),
                "saved_share": _ratio(would - on_finished, would),
            }
        )
    return {
        "finished_clips": int(finished),
        "answers_on_finished": int(on_finished),
        "mean_answers": _ratio(on_finished, finished),
        "fixed": fixed,
        "regular_answers": int(by_kind.get("regular", 0)),
        "quality_answers": int(by_kind.get("control", 0)) + int(by_kind.get("consistency", 0)),
        "answers_used": int(project.answers_used),
        "labels": int(labels),
        "pool": int(pool),
        "labels_share": _ratio(labels, pool),
    }


def passive_comparison(scores: list[dict[str, Any]], share: float) -> dict[str, Any]:
    """The model against its passive arm (`model_scores` rows, oldest first), both scored on the
    same held-out random clips (`engine.learning.retrain.heldout_comparison`).

    `{share, model_labels, model_score, passive_labels, passive_score, passive_labels_needed,
    heldout_size}`: the newest round's model on its held-out clips (score and labels) and the
    passive arm's score on the same clips; the fewest random labels with which the passive arm
    scored at least the model's score (None: not reached yet), read off the measured curve, not
    extrapolated. Rounds recorded before held-out scoring (no `heldout_size`) are left out: their
    passive score was cross-validated on other clips than the model's.
    """
    fair = [r for r in scores if r.get("heldout_size")]
    model = [r for r in fair if r.get("heldout_score") is not None]
    arm = [r for r in fair if r.get("passive_score") is not None and r.get("passive_labels")]
    out: dict[str, Any] = {"share": share, "model_labels": None, "model_score": None}
    out |= {"passive_labels": None, "passive_score": None, "passive_labels_needed": None}
    out["heldout_size"] = fair[-1]["heldout_size"] if fair else None
    if model:
        out.update(model_labels=model[-1]["labels"], model_score=model[-1]["heldout_score"])
    if arm:
        out.update(passive_labels=arm[-1]["passive_labels"], passive_score=arm[-1]["passive_score"])
    if model and arm:
        reached = [r["passive_labels"] for r in arm if r["passive_score"] >= model[-1]["heldout_score"]]
        out["passive_labels_needed"] = min(reached) if reached else None
    return out


def dashboard_summary(session: Session, project: Project) -> dict[str, Any]:
    """Everything the dashboard polls in one read: status, label distribution, answers per clip,
    savings, the model against its passive arm, the newest model run's id, and the crowd's
    agreement as the background refresh last stored it (None: not yet, or ratings)."""
    newest = session.scalar(select(func.max(ModelRun.id)).where(ModelRun.project_id == project.id))
    status = project_status(session, project)
    return {
        "project_id": project.id,
        "name": project.name,
        "task_type": project.task_type,
        "classes": list(project.classes or []),
        "redundancy": {
            "min": project.redundancy_min,
            "max": project.redundancy_max,
            "tau": project.redundancy_tau,
        },
        "rating_tolerance": project.rating_tolerance,
        "trust_threshold": project.trust_threshold,
        "status": status,
        "label_distribution": label_distribution(session, project),
        "answers_histogram": answers_histogram(session, project),
        "savings": savings(session, project),
        "passive": passive_comparison(status["model_scores"], float(project.passive_share or 0.0)),
        "newest_run": newest,
        "agreement": cached_agreement(session, project.id),
    }


def _checks(session: Session, project_id: int) -> dict[tuple[int, str], list[int]]:
    """Per (user, kind): [checked, passed] of control and consistency answers, as the engine
    judged them when they came in (`tasks.passed`, taken back with an undone answer; None =
    nothing to check, e.g. "can't tell"), from the tallies kept on write."""
    return {
        (row.user_id, row.kind): [row.checked, row.passed]
        for row in answer_tallies(session, project_id)
        if row.kind in ("control", "consistency")
    }


def annotator_table(session: Session, project: Project) -> list[dict[str, Any]]:
    """Every annotator who answered or is a member: `{username, trust, answers, points, checked,
    right, control: {checked, right, accuracy}, consistency: {checked, agreed, agreement},
    owner (the project's owner answering), member, active, blocked, flagged, flag_reason,
    flagged_automatically}`, most answers first. `flag_reason`: why spammer detection flagged them
    (None for the owner's own flag); `flagged_automatically`: the flag is detection's (their
    answers count at chance level until the owner unflags them)."""
    trust = {
        row.user_id: row
        for row in session.scalars(select(WorkerTrust).where(WorkerTrust.project_id == project.id))
    }
    members = {
        row.user_id: row
        for row in session.scalars(select(ProjectMember).where(ProjectMember.project_id == project.id))
    }
    ids = set(trust) | set(members)
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).all()) if ids else {}
    checks = _checks(session, project.id)
    table = []
    for user_id in ids:
        t, m = trust.get(user_id), members.get(user_id)
        control = checks.get((user_id, "control"), [0, 0])
        consistency = checks.get((user_id, "consistency"), [0, 0])
        active = m.active if m is not None else True
        table.append(
            {
                "username": names.get(user_id, f"user {user_id}"),
                "trust": round(t.trust, 4) if t else None,
                "answers": t.n_answers if t else 0,
                "points": t.points if t else 0,
                "checked": t.n_checked if t else 0,
                "right": t.n_right if t else 0,
                "control": {
                    "checked": control[0],
                    "right": control[1],
                    "accuracy": _ratio(control[1], control[0]),
                },
                "consistency": {
                    "checked": consistency[0],
                    "agreed": consistency[1],
                    "agreement": _ratio(consistency[1], consistency[0]),
                },
                "owner": user_id == project.owner_id,
                "member": m is not None,
                "active": active,
                "blocked": not active,
                "flagged": bool(m.flagged) if m is not None else False,
                "flag_reason": m.flag_reason if m is not None and m.flagged else None,
                "flagged_automatically": bool(m.flag_auto) if m is not None else False,
            }
        )
    table.sort(key=lambda r: (-r["answers"], r["username"]))
    return table


def block_member(session: Session, project_id: int, member: ProjectMember) -> None:
    """Block a member (the owner's block, and detection's where the project blocks spammers):
    no more tasks, and their open leases end now, so those clips go back to the others."""
    member.active = False
    end_leases(session, project_id, member.user_id)


def set_member_flags(
    session: Session,
    project: Project,
    who: Principal,
    username: str,
    *,
    flagged: bool | None = None,
    blocked: bool | None = None,
) -> dict[str, Any]:
    """Flag (mark for review) and/or block an annotator: blocked = membership inactive, so no
    more tasks, and the tasks they hold now expire (an answer to one is refused).

    A flag or unflag is the owner's decision on the annotator: it replaces a flag that spammer
    detection set (their answers count again as anyone's), and detection judges only the answers
    given after it (`engine/learning/spammers.py`: the owner's decision wins until new evidence).

    One event per change (`member_flagged`, `member_unflagged`, `member_blocked`,
    `member_unblocked`). Returns the annotator's `{username, flagged, blocked, active}`.
    """
    require_owner(project, who)
    if flagged is None and blocked is None:
        raise InvalidError("say what to change: flagged and/or blocked (true or false)")
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise NotFoundError(f"user {username!r} does not exist")
    if user_id == project.owner_id:
        raise InvalidError("the project's owner cannot be flagged or blocked")
    member = session.get(ProjectMember, (project.id, user_id))
    if member is None:
        member = ProjectMember(project_id=project.id, user_id=user_id, active=True, flagged=False)
        session.add(member)
    changes = []
    if flagged is not None and bool(member.flagged) != flagged:
        changes.append("member_flagged" if flagged else "member_unflagged")
        member.flagged, member.flag_auto, member.flag_reason = flagged, False, None
        member.flag_reviewed_at = utcnow()
    if blocked is not None and (not member.active) != blocked:
        changes.append("member_blocked" if blocked else "member_unblocked")
        if blocked:
            block_member(session, project.id, member)
        else:
            member.active = True
    for kind in changes:
        session.add(Event(project_id=project.id, user_id=who.id, kind=kind, data={"username": username}))
    session.flush()
    return {
        "username": username,
        "flagged": bool(member.flagged),
        "blocked": not member.active,
        "active": member.active,
    }


def _has_map() -> Any:
    """SQL: the run has a map (neither SQL NULL nor a JSON null)."""
    return ModelRun.map.is_not(None) & (cast(ModelRun.map, Text) != "null")


def model_runs(session: Session, project: Project) -> list[dict[str, Any]]:
    """The project's learning rounds, oldest first: `{id, labels, score, metric, strategy,
    cold_start, clips, created_at, has_map}` (maps themselves come from `run_map`)."""
    rows = session.execute(
        select(
            ModelRun.id,
            ModelRun.labels,
            ModelRun.score,
            ModelRun.metric,
            ModelRun.strategy,
            ModelRun.cold_start,
            ModelRun.clips,
            ModelRun.created_at,
            _has_map().label("has_map"),
        )
        .where(ModelRun.project_id == project.id)
        .order_by(ModelRun.id)
    ).all()
    return [
        {
            "id": r.id,
            "labels": r.labels,
            "score": r.score,
            "metric": r.metric,
            "strategy": r.strategy,
            "cold_start": bool(r.cold_start),
            "clips": r.clips,
            "created_at": r.created_at.isoformat(timespec="seconds") + "Z",
            "has_map": bool(r.has_map),
        }
        for r in rows
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def run_map(session: Session, project: Project, run_id: int) -> dict[str, Any]:
    """One run's 2-D map of the pool: `{run_id, labels, score, metric, method, explained,
    points: [[clip_id, x, y, predicted label, training label, pseudo]]}` (None where there is no
    prediction yet, or the clip had no training label; `pseudo` true where the model trained on
    its own prediction for the clip, a self-training pseudo-label); NotFoundError when the run
    is not the project's or has no map."""
    run = session.get(ModelRun, run_id)
    if run is None or run.project_id != project.id:
        raise NotFoundError(f"project {project.id} has no model run {run_id}")
    data = run.map
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        raise NotFoundError(
            f"model run {run_id} has no map (made before maps were recorded, or not mappable)"
        )
    points = [
        [
            int(p[0]),
            float(p[1]),
            float(p[2]),
            _text(p[3]),
            _text(p[4]) if len(p) > 4 else None,
            bool(p[5]) if len(p) > 5 else False,
        ]
        for p in data["points"]
        if isinstance(p, list | tuple) and len(p) >= 4
    ]
    explained = [float(v) for v in data.get("explained") or []]
    return {
        "run_id": run.id,
        "labels": run.labels,
        "score": run.score,
        "metric": run.metric,
        "method": str(data.get("method", "pca")),
        "explained": explained,
        "points": points,
    }
