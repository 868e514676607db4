"""`listenloop bench campaign --inline`: the campaign in one process, through the engine, deterministic.

The same project, clips, seed labels, control questions and crowd as `bench.campaign` (same
`seed`: same sample and picks), but the annotators call the engine's request path
(`engine.live.tasks.next_task` / `submit_answer`) in turn, one answer at a time, and the learning
service runs inline (`LearningService(inline=True)`, no Dask) whenever a round is due, checked
every `CHECK_EVERY` answers. Nothing depends on timing or on how busy the machine is: a
campaign over HTTP on a loaded machine may see no learning round at all before its budget is
spent (the service's worker runs at the lowest CPU priority), which says nothing about a
queue. After every round the model's predictions are scored against the truth, so the result
has the model's UAR per answer spent (`curve`); at the end one more round is run on every label,
so that each queue's final model sees all it bought.
"""

from __future__ import annotations

import io
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from listenloop.bench.campaign import (
    DEFAULT_SKILLS,
    EARLY_CLIPS,
    FIXED_ANSWERS,
    CampaignResult,
    _pick,
    _uar,
    _zip,
    binary_truth,
    class_answer,
    early_clips,
    read_truth,
)

CHECK_EVERY = 5  # answers between two checks whether a learning round is due


def run_inline_campaign(
    folder: Path,
    *,
    skills: Sequence[float] = DEFAULT_SKILLS,
    positive: Sequence[str] | None = None,
    redundancy: dict[str, float] | None = None,
    seeds: int = 2,
    gold: int = 1,
    limit: int | None = None,
    feature_set: str = "compare",
    retrain_every: int = 20,
    seed: int = 0,
    queue: str | None = None,
    budget: int | None = None,
    progress: Callable[[str], None] | None = None,
    heldout: int = 0,
) -> CampaignResult:
    """One campaign through the engine in this process (see the module docstring). `heldout` > 0:
    also score the final labels' model on that many clips of `folder` outside the campaign
    (`heldout_score`)."""
    from sqlalchemy import select

    from listenloop.engine.accounts import Principal, create_user
    from listenloop.engine.clips import newest_predictions
    from listenloop.engine.config import ProjectConfig
    from listenloop.engine.exports import answer_rows, clip_rows
    from listenloop.engine.learning.service import LearningService
    from listenloop.engine.live.tasks import next_task, submit_answer
    from listenloop.engine.projects import create_project, project_status
    from listenloop.engine.uploads import mark_gold, store_clips, unpack_archive
    from listenloop.store.database import Database
    from listenloop.store.models import Clip, ModelRun, Project, Task

    say = progress or (lambda _line: None)
    rng = random.Random(seed)
    truth = read_truth(folder)
    if limit is not None and limit < len(truth):
        keep = set(rng.sample(sorted(truth), limit))
        truth = {n: v for n, v in truth.items() if n in keep}
    if positive:
        truth = binary_truth(truth, positive)
    classes = sorted(set(truth.values()))
    seed_labels = _pick(truth, seeds, rng, set())
    gold_labels = _pick(truth, gold, rng, set(seed_labels))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="listenloop-inline-campaign-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'listenloop.db'}")
        db.upgrade()
        data = Path(tmp) / "data"
        data.mkdir()
        unpacked = unpack_archive(io.BytesIO(_zip(folder, sorted(truth))), Path(tmp))
        body: dict[str, Any] = {
            "name": "campaign",
            "task_type": "binary" if positive else "classification",
            "classes": classes,
            "feature_set": feature_set,
            "retrain_every": retrain_every,
        }
        body |= {"redundancy": redundancy} if redundancy else {}
        body |= {"queue": queue} if queue else {}
        body |= {"budget": budget} if budget else {}
        try:
            with db.write() as s:
                owner = create_user(s, "owner", "x", "owner")
                project = create_project(s, Principal(owner.id, "owner", "owner"), ProjectConfig(**body))
                store_clips(s, project, unpacked, data, labels=seed_labels, rng=random.Random(seed))
                mark_gold(s, project, gold_labels)
                people = [create_user(s, f"sim{k}", "x") for k in range(len(skills))]
                who = [Principal(p.id, p.username, "annotator") for p in people]
                pid = project.id
                names = {c.id: c.file_name for c in s.scalars(select(Clip).where(Clip.project_id == pid))}
        finally:
            unpacked.cleanup()
        clip_truth = {cid: truth[name] for cid, name in names.items()}
        unseeded = [cid for cid, name in names.items() if name not in seed_labels and name not in gold_labels]
        service = LearningService(db, data, inline=True)
        answer_of = class_answer(classes)
        rngs = [random.Random(seed * 1000 + k) for k in range(len(skills))]
        task_rng = random.Random(seed)
        curve: list[dict[str, Any]] = []
        spent = regular = 0

        last_run: list[int | None] = [None]

        def learn(force: bool = False) -> None:
            if force:
                service.run_project(pid)
            else:
                service.run_once()
            with db.read() as s:
                info, guesses = newest_predictions(s, s.get(Project, pid))
                run = s.get(ModelRun, info["run_id"]) if info else None
                trained = (
                    {int(p[0]) for p in (run.map or {}).get("points", []) if p[4] is not None}
                    if run
                    else set()
                )
            if info is None or info["run_id"] == last_run[0]:
                return  # no new learning round (perhaps a skills refresh)
            last_run[0] = info["run_id"]
            scored = [c for c in unseeded if c in guesses and c not in trained]
            uar = _uar([clip_truth[c] for c in scored], [guesses[c] for c in scored])
            curve.append(
                {
                    "answers": spent,
                    "regular": regular,
                    "labels": info["labels"],
                    "uar": uar,
                    "clips": len(scored),
                }
            )
            say(f"{spent} answers ({regular} regular): model on {info['labels']} labels, UAR {uar}")

        learn()
        idle: set[int] = set()
        while len(idle) < len(who):
            for k, person in enumerate(who):
                if k in idle:
                    continue
                with db.write() as s:
                    task = next_task(s, pid, person, rng=task_rng)
                    if task is None:  # answered every clip open to them (or the budget is spent)
                        idle.add(k)
                        continue
                    kind = s.get(Task, task.task_id).kind
                    submit_answer(
                        s, task.task_id, person, answer_of(clip_truth[task.clip_id], skills[k], rngs[k])
                    )
                spent += 1
                regular += kind == "regular"
                if spent % CHECK_EVERY == 0:
                    learn()
        learn(force=True)  # the final model, on every label bought
        with db.read() as s:
            project = s.get(Project, pid)
            rows = [{**r, "clip_id": str(r["clip_id"])} for r in clip_rows(s, project)]
            answers = [
                {**a, "clip_id": str(a["clip_id"]), "answered_at": str(a["answered_at"])}
                for a in answer_rows(s, project)
            ]
            status = project_status(s, project)
        service.stop()
        db.dispose()
    result = _result(rows, answers, status, truth, curve, queue, budget, time.monotonic() - t0)
    if heldout:
        result.heldout_uar, result.heldout_clips = heldout_score(
            folder, rows, set(truth), feature_set, heldout, seed, positive
        )
        say(f"the final labels' model on {result.heldout_clips} held-out clips: UAR {result.heldout_uar}")
    return result


def heldout_score(
    folder: Path,
    rows: list[dict[str, Any]],
    used: set[str],
    feature_set: str,
    n: int,
    seed: int,
    positive: Sequence[str] | None,
) -> tuple[float | None, int]:
    """UAR, on `n` clips of `folder` outside the campaign (a random draw fixed by `seed`, the same
    for every queue), of the project's learner fitted on the campaign's final training labels
    (seed, control and confidently done crowd clips, as `engine.learning.service.training_label`)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from listenloop.features.extraction import extract_features, files_dataset
    from listenloop.learners.registry import make_learner

    data = files_dataset(folder)
    names = [Path(f).name for f in data.files]
    truth = dict(zip(names, (str(v) for v in data.labels), strict=True))
    if positive:
        truth = binary_truth(truth, positive)
    train = {
        r["file"]: r["label"] for r in rows if r["final"] and r["status"] != "low_agreement" and r["label"]
    }
    others = sorted(set(names) - used)
    held = sorted(random.Random(f"heldout-{seed}").sample(others, min(n, len(others))))
    if not held or len(set(train.values())) < 2:
        return None, len(held)
    index = {name: i for i, name in enumerate(names)}
    wanted = sorted(set(train) | set(held), key=index.__getitem__)
    table = extract_features(data.subset(np.asarray([index[w] for w in wanted])), feature_set, progress=False)
    rows_of = {wanted[k]: r for r, k in enumerate(table.kept)}
    X = np.asarray(table.X)
    fit_names = [w for w in train if w in rows_of]
    test_names = [w for w in held if w in rows_of]
    model = make_pipeline(StandardScaler(), make_learner(None, "classification"))
    model.fit(X[[rows_of[w] for w in fit_names]], [train[w] for w in fit_names])
    predicted = model.predict(X[[rows_of[w] for w in test_names]])
    return _uar([truth[w] for w in test_names], list(predicted)), len(test_names)


def _result(
    rows: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    status: dict[str, Any],
    truth: dict[str, str],
    curve: list[dict[str, Any]],
    queue: str | None,
    budget: int | None,
    seconds: float,
) -> CampaignResult:
    """The campaign's figures, counted as `bench.campaign` counts them."""
    crowd = [r for r in rows if r["source"] == "crowd"]
    labelled = [r for r in crowd if r["label"] not in ("", None)]
    right = sum(r["label"] == truth[r["file"]] for r in labelled)
    spent = sum(a["kind"] == "regular" for a in answers)
    early = early_clips(crowd, answers, EARLY_CLIPS)
    unseeded = [r for r in rows if r["source"] not in ("seed", "gold") and r["status"] != "gold"]
    guessed = [r for r in unseeded if r.get("model_label") not in ("", None)]
    return CampaignResult(
        clips=len(rows),
        crowd_clips=len(crowd),
        labelled=len(labelled),
        accuracy=round(right / len(labelled), 4) if labelled else None,
        low_agreement=sum(r["status"] == "low_agreement" for r in crowd),
        regular_answers=spent,
        answers_total=len(answers),
        answers_per_clip=round(sum(int(r["answers"] or 0) for r in crowd) / len(crowd), 3) if crowd else None,
        fixed_answers=FIXED_ANSWERS * len(crowd),
        seconds=round(seconds, 1),
        early_answers_per_clip=round(sum(int(r["answers"] or 0) for r in early) / len(early), 3)
        if early
        else None,
        model_scores=list(status.get("model_scores", [])),
        queue=queue or "redundancy",
        budget=budget,
        correct=right,
        answers_per_correct=round(spent / right, 3) if right else None,
        model_uar=_uar([truth[r["file"]] for r in guessed], [r["model_label"] for r in guessed]),
        model_uar_clips=len(guessed),
        curve=curve,
    )
