"""One learning round of a live project: features of its clips, retrain on the labels so far, re-rank.

No storage here: `learning_round` gets the clips' audio paths and what is known of them,
and returns the new queue order and the model's score; the learning service (`engine/
learning/service.py`) reads them from the store and writes the results back. Features come
from `features.extraction` (on Dask: the local cluster, or the `--scheduler` address), with
the content-hash cache under the data folder, so a round only computes new clips.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from listenloop.engine.config import TAG_TASKS
from listenloop.engine.labels import TAG_SEP
from listenloop.engine.learning.pool_map import pool_map
from listenloop.engine.learning.relabel import QUEUE_TASKS, relabel_or_new_order
from listenloop.engine.learning.retrain import (
    MIN_HELDOUT,
    QUEUE_SIZE,
    heldout_comparison,
    rank_by_tags,
    retrain_and_rank,
    score_of,
)
from listenloop.errors import ListenloopError
from listenloop.features.registry import get_extractor
from listenloop.learners.registry import DEFAULT_LEARNER
from listenloop.rows import Standardised
from listenloop.strategies.al_round import interleave_passive
from listenloop.strategies.auto import remap_state

#: Folder of the projects' consolidated feature matrices, under the feature cache.
MATRIX_FOLDER = "matrices"
#: A model version's training labels (clip id, audio sha256, label), beside its model files.
TRAINING_LABELS = "labels.csv"
STANDARDISATION = "features minus the mean, over the std, of the round's labelled and pool clips"

# The learning core's task per project task type; multi-label projects are ranked tag by tag
# (`retrain.rank_by_tags`, binary relevance) with classification models.
LEARNING_TASK = {
    "classification": "classification",
    "binary": "classification",
    "continuous": "regression",
    "multilabel": "classification",
    "events": "classification",
}


@dataclass
class RoundResult:
    """Clip ids in queue order (best first), the model's score (None before one can be fitted),
    and the dashboard's map of the pool (`engine.learning.pool_map`)."""

    order: list[int]
    score: float | None
    labels: int
    cold_start: bool
    skipped: int  # clips whose audio gave no features (they keep their place at the end)
    map: dict[str, Any] | None = None
    admitted: list[int] = field(default_factory=list)  # stream mode: window clips sent to people
    passed: list[int] = field(default_factory=list)  # stream mode: window clips the model let pass
    passive: list[int] = field(default_factory=list)  # clips newly drawn into the passive arm
    # auto's bandit after the round (weights, the batch waiting for its answers, clips by id)
    strategy_state: dict[str, Any] | None = None
    # The model against passive learning, both scored on the same held-out random clips (the
    # passive arm's labelled clips, each left out of both fits: `retrain.heldout_comparison`):
    passive_score: float | None = None  # the learner on the randomly chosen labels alone
    passive_labels: int | None = None  # randomly chosen labels (seed, control, passive arm)
    heldout_score: float | None = None  # the round's model (every label) on the held-out clips
    heldout_size: int | None = None  # how many held-out clips both were scored on
    pseudo_labelled: list[int] = field(default_factory=list)  # self_training: clips trained on with
    # the model's own confident prediction (a pseudo-label: never stored or exported as a label)
    # The model version (`model_dir` given and a model fitted): its folder (`learners.model_files`,
    # relative to `root` when under it), the configuration it was trained with, and the snapshot id
    # of its training labels (sha256 over the sorted `audio sha256, label` pairs it trained on).
    model_files: str | None = None
    config: dict[str, Any] | None = None
    labels_snapshot: str | None = None
    # The model itself on the project's test clips (labelled, held out of every fit and of the
    # queue): the score an exported copy of this version reproduces on the same clips.
    test_score: float | None = None
    test_size: int | None = None


def learning_round(
    root: Path,
    clip_ids: Sequence[int],
    paths: Sequence[str],
    labels: Sequence[str | None],
    in_pool: Sequence[bool],
    *,
    task_type: str,
    classes: list[str] | None,
    feature_set: str = "compare",
    learner: str | None = None,
    strategy: str = "margin",
    iteration: int = 0,
    cache_dir: Path | None = None,
    scheduler: str | None = None,
    workers: int | None = 1,
    waiting: Sequence[bool] | None = None,
    window: int = 0,
    passive_share: float = 0.0,
    in_arm: Sequence[bool] | None = None,
    random_label: Sequence[bool] | None = None,
    digests: Sequence[str | None] | None = None,
    matrix: str = "pool",
    queue: str = "redundancy",
    answers: Sequence[tuple[int, str, str]] | None = None,
    strategy_state: dict[str, Any] | None = None,
    held_out: Sequence[bool] | None = None,
    model_dir: Path | None = None,
) -> RoundResult:
    """Fit on the labelled clips and order the pool clips for the queue.

    `paths` are relative to `root`; `labels[i]` is the clip's training label (seed or
    aggregated) or None; `in_pool[i]` says whether the clip still waits for answers.
    `digests[i]` is the clip's stored content sha256 (None: its file is hashed). Features come
    from the consolidated matrix `matrix` under `cache_dir/matrices` (`features.matrix`: one
    memory-mapped file per project, new clips added to it), read a chunk of rows at a time.

    Stream mode (001_'s stream-based AL), with `window` > 0: `waiting[i]` marks clips that
    arrived but were not yet judged. The next `window` of them in arrival order (clip id)
    are scored with the queued clips; the more informative half of the window joins the
    queue (`admitted`), the rest is let pass unheard (`passed`). At cold start the whole
    window is admitted: the model needs examples of every class first.

    The passive arm (pool mode, `passive_share` > 0): that share of the queue's head is drawn
    uniformly at random and interleaved with the strategy's picks (`in_arm[i]`: drawn by an
    earlier round; `passive` lists the new draws). `random_label[i]` marks labelled clips that
    were chosen at random (seed, control, passive arm). The comparison with passive learning
    is scored on the passive arm's labelled clips, held out of both fits fold by fold: the
    round's model on every other label (`heldout_score`) and the learner on the other randomly
    chosen labels (`passive_score`, `passive_labels` random labels), on the same
    `heldout_size` clips. (Cross-validating the model on its actively chosen labels and the
    passive arm on random ones compared two different test sets.)

    `queue` "relabel_or_new" (classification and binary projects, pool mode, once a model is
    fitted): the queued clips, heard or new, in ActiveLab order instead of the strategy's
    (`engine.learning.relabel`), from `answers`, the regular answers so far as (clip id, annotator, answer).

    `strategy_state`: what a strategy that learns across rounds (auto's bandit) kept from the
    last round, clips named by id; the new state comes back in the result, the same way.

    The test set: `held_out[i]` marks the project's test clips. They never train and are never
    queued by the round; those with a label score the round's model itself (`test_score`).
    With `model_dir`, a fitted model is written to a new folder under it (`model_files`).
    """
    if task_type not in LEARNING_TASK:
        raise ListenloopError(
            f"active learning supports {', '.join(LEARNING_TASK)} projects, not {task_type!r}: "
            "its queue keeps the upload order"
        )
    if not (len(clip_ids) == len(paths) == len(labels) == len(in_pool)):
        raise ListenloopError("clip ids, paths, labels and pool flags must have the same length")
    from listenloop.features.cache import default_cache_dir
    from listenloop.features.matrix import pool_features

    task = LEARNING_TASK[task_type]
    ids = np.asarray(clip_ids, dtype=np.int64)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    table = pool_features(
        root,
        ids,
        paths,
        digests,
        feature_set,
        matrix_dir=cache / MATRIX_FOLDER,
        name=matrix,
        cache_dir=cache,
        workers=workers,
        scheduler=scheduler,
    )
    kept = np.asarray(table.kept, dtype=np.int64)
    testing = np.array([bool(held_out[i]) for i in kept] if held_out is not None else [], dtype=bool)
    testing = testing if len(testing) == len(kept) else np.zeros(len(kept), dtype=bool)
    has_label = np.array([labels[i] is not None for i in kept], dtype=bool)
    test_rows = np.flatnonzero(has_label & testing)
    has_label &= ~testing
    pool_mask = np.array([bool(in_pool[i]) for i in kept], dtype=bool) & ~has_label & ~testing
    labelled_rows = np.flatnonzero(has_label)
    waits = np.zeros(len(kept), dtype=bool)
    if window > 0 and waiting is not None:
        waits = np.array([bool(waiting[i]) for i in kept], dtype=bool) & pool_mask
    # kept is in clip-id order (the service reads clips by id): arrival order
    window_rows = np.flatnonzero(waits)[:window] if window > 0 else np.zeros(0, dtype=np.int64)
    pool_rows = np.flatnonzero(pool_mask & ~waits)
    pool_rows = np.sort(np.concatenate([pool_rows, window_rows]))
    y = [labels[i] for i in kept[labelled_rows]]
    target: np.ndarray = np.asarray(y, dtype=str if task == "classification" else float)
    if task_type in TAG_TASKS:
        result = rank_by_tags(
            table.X,
            labelled_rows,
            tag_matrix(y, classes or []),
            pool_rows,
            strategy=strategy,
            learner=learner,
            iteration=iteration,
        )
    else:
        result = retrain_and_rank(
            table.X,
            labelled_rows,
            target,
            pool_rows,
            classes=classes if task == "classification" else None,
            strategy=strategy,
            learner=learner,
            task=task,
            iteration=iteration,
            strategy_state=remap_state(strategy_state, ids[kept], np.arange(len(kept))),
        )
    if (
        queue == "relabel_or_new"
        and task_type in QUEUE_TASKS
        and window == 0
        and result.model is not None
        and result.mean is not None
        and classes
        and len(pool_rows)
    ):
        result.order = _relabel_order(
            table.X, result, labelled_rows, target, pool_rows, kept, ids, answers, classes, learner, iteration
        )
    order = np.asarray(result.order, dtype=np.int64)
    admitted_rows, passed_rows = _judge_window(order, window_rows, result.cold_start)
    order = order[~np.isin(order, passed_rows)]
    drawn_rows = np.zeros(0, dtype=np.int64)
    if passive_share > 0 and window == 0 and in_arm is not None:
        arm_rows = np.array([bool(in_arm[i]) for i in kept], dtype=bool)
        order, drawn_rows = interleave_passive(
            order, arm_rows, passive_share, np.random.default_rng([7, iteration]), QUEUE_SIZE
        )
    ordered = ids[kept[order]].tolist()
    passive_score = passive_labels = heldout_score = heldout_size = None
    if random_label is not None and in_arm is not None and result.mean is not None and not result.cold_start:
        rand = labelled_rows[[bool(random_label[i]) for i in kept[labelled_rows]]]
        held = labelled_rows[[bool(in_arm[i]) for i in kept[labelled_rows]]]
        passive_labels = len(rand)
        if len(held) >= MIN_HELDOUT:
            Z = Standardised(table.X, result.mean, result.std)  # the round's standardisation
            compared = heldout_comparison(
                Z,
                labelled_rows,
                tag_matrix(y, classes or []) if task_type in TAG_TASKS else target,
                held,
                rand,
                pool_rows,
                task=task,
                strategy=strategy,
                learner=learner,
                iteration=iteration,
            )
            if compared is not None:
                heldout_size = len(compared.rows)
                heldout_score, passive_score = compared.model_score, compared.passive_score
    # every clip with features: also low-agreement, passed and waiting ones, whose predictions
    # the owner's clip browser shows beside the crowd's answers
    rows = np.arange(len(kept))
    drawn = None
    if result.mean is not None and result.std is not None:
        drawn = pool_map(
            table.X,
            rows,
            ids[kept[rows]],
            [labels[i] for i in kept[rows]],
            mean=result.mean,
            std=result.std,
            model=result.model,
            rng=np.random.default_rng(iteration),
            pseudo=result.pseudo_rows,
        )
    version: dict[str, Any] = {}
    if result.model is not None and result.mean is not None and result.std is not None:
        truth = [labels[i] for i in kept[test_rows]]
        if len(test_rows):
            Z = Standardised(table.X, result.mean, result.std)
            pred = np.asarray(result.model.predict(Z[test_rows]))
            want = np.asarray(truth, dtype=str if task == "classification" else float)
            version["test_score"] = score_of(task, want, pred.astype(want.dtype))
            version["test_size"] = len(test_rows)
        if model_dir is not None:
            version |= _store_version(
                Path(root),
                Path(model_dir),
                result,
                [
                    (digests[i] if digests is not None else None) or f"clip-{ids[i]}"
                    for i in kept[labelled_rows]
                ],
                ids[kept[labelled_rows]].tolist(),
                y,
                {
                    "task_type": task_type,
                    "task": task,
                    "classes": classes,
                    "feature_set": feature_set,
                    "features": json.loads(get_extractor(feature_set).cache_token()),
                    "learner": learner or DEFAULT_LEARNER[task],
                    "strategy": strategy,
                    "iteration": iteration,
                    "training_labels": len(labelled_rows),
                    "test_clips": len(test_rows),
                    "standardisation": STANDARDISATION,
                },
            )
    unread = np.setdiff1d(np.arange(len(ids)), kept)
    missing = [int(ids[i]) for i in unread if in_pool[i] and labels[i] is None]
    unread_waiting = [int(ids[i]) for i in unread if waiting is not None and waiting[i] and labels[i] is None]
    return RoundResult(
        order=ordered + missing,
        score=result.score,
        labels=len(labelled_rows),
        cold_start=result.cold_start,
        skipped=len(ids) - len(kept),
        map=drawn,
        # clips whose audio gave no features cannot be judged: people hear them
        admitted=ids[kept[admitted_rows]].tolist() + (unread_waiting if window > 0 else []),
        passed=ids[kept[passed_rows]].tolist(),
        passive=ids[kept[drawn_rows]].tolist(),
        passive_score=passive_score,
        passive_labels=passive_labels,
        heldout_score=heldout_score,
        heldout_size=heldout_size,
        pseudo_labelled=ids[kept[np.asarray(result.pseudo_rows, dtype=np.int64)]].tolist(),
        strategy_state=remap_state(
            getattr(result, "strategy_state", strategy_state), np.arange(len(kept)), ids[kept]
        ),
        **version,
    )


def _relabel_order(
    X: Any,
    result: Any,
    labelled_rows: np.ndarray,
    target: np.ndarray,
    pool_rows: np.ndarray,
    kept: np.ndarray,
    ids: np.ndarray,
    answers: Sequence[tuple[int, str, str]] | None,
    classes: list[str],
    learner: str | None,
    iteration: int,
) -> np.ndarray:
    """The pool rows in the relabel-or-new order (`engine.learning.relabel`), on the round's
    standardisation."""
    import pandas as pd

    from listenloop.learners.registry import make_learner

    row_of = {int(ids[k]): r for r, k in enumerate(kept)}
    rows = [(row_of[c], w, a) for c, w, a in answers or [] if c in row_of]
    table = pd.DataFrame(
        [(str(r), w, a) for r, w, a in rows], columns=["item", "worker", "label"], dtype=object
    )
    Z = Standardised(X, result.mean, result.std)
    return relabel_or_new_order(
        Z,
        result.model,
        lambda: make_learner(learner, "classification"),
        labelled_rows,
        target,
        pool_rows,
        table,
        classes,
        seed=iteration,
    )


def labels_snapshot(digests: Sequence[str], labels: Sequence[Any]) -> str:
    """The snapshot id of a training set: sha256 over its sorted (audio sha256, label) pairs, so the
    same labelled audio gives the same id whatever the clips' ids or order."""
    lines = sorted(f"{d}\t{label}" for d, label in zip(digests, labels, strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _store_version(
    root: Path,
    model_dir: Path,
    result: Any,
    digests: list[str],
    clip_ids: list[int],
    y: list[Any],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Write the round's model to a new folder under `model_dir`; what RoundResult records of it."""
    import csv

    from listenloop.learners.model_files import save_model

    snapshot = labels_snapshot(digests, y)
    folder = model_dir / f"{int(config['iteration']):05d}-{uuid.uuid4().hex[:12]}"
    save_model(folder, result.model, result.mean, result.std, {**config, "labels_snapshot": snapshot})
    with open(folder / TRAINING_LABELS, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["clip_id", "sha256", "label"])
        out.writerows(zip(clip_ids, digests, y, strict=True))
    try:
        where = str(folder.relative_to(root))
    except ValueError:
        where = str(folder)
    return {"model_files": where, "config": config, "labels_snapshot": snapshot}


def tag_matrix(labels: Sequence[str | None], tags: Sequence[str]) -> np.ndarray:
    """Multi-label training labels ("a|c", "" for none) as a clips x tags matrix of presence."""
    sets = [set(label.split(TAG_SEP)) if label else set() for label in labels]
    return np.array([[tag in s for tag in tags] for s in sets], dtype=bool).reshape(len(sets), len(tags))


def _judge_window(
    order: np.ndarray, window_rows: np.ndarray, cold_start: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(admitted, passed) rows of the stream window: its better-ranked half, and the rest."""
    if len(window_rows) == 0:
        return window_rows, window_rows
    ranked = order[np.isin(order, window_rows)]  # the window in the strategy's order
    keep = len(ranked) if cold_start else (len(ranked) + 1) // 2
    return ranked[:keep], ranked[keep:]
