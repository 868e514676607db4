"""The live loop's learning step: cold-start order, strategy ranking and the model score."""

from __future__ import annotations

import numpy as np
import pytest

from listenloop.engine.retrain import diverse_order, rank_by_tags, retrain_and_rank, tags_cv_score
from listenloop.errors import ListenloopError


def blobs(n_per: int = 60, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(classes, 5))
    y = np.repeat(np.arange(classes), n_per)
    return (centres[y] + rng.normal(size=(len(y), 5))).astype(np.float32), y.astype(str)


def test_cold_start_covers_every_cluster_first() -> None:
    X, y = blobs()
    order = diverse_order(X, np.arange(len(X)), np.random.default_rng(0), clusters=3)
    assert sorted(order.tolist()) == list(range(len(X)))
    assert set(y[order[:3]]) == {"0", "1", "2"}  # one clip of each blob before any repeat


def test_cold_start_until_every_class_has_a_label() -> None:
    X, y = blobs()
    labelled = np.array([0, 60])  # classes 0 and 1 only
    pool = np.setdiff1d(np.arange(len(X)), labelled)
    res = retrain_and_rank(X, labelled, y[labelled], pool, classes=["0", "1", "2"])
    assert res.cold_start and res.model is None and res.score is None
    assert sorted(res.order.tolist()) == pool.tolist()


def test_margin_ranks_the_boundary_first_and_scores_the_model() -> None:
    X, y = blobs()
    labelled = np.concatenate([np.arange(0, 180, 60) + i for i in range(4)])
    pool = np.setdiff1d(np.arange(len(X)), labelled)
    res = retrain_and_rank(
        X,
        labelled,
        y[labelled],
        pool,
        classes=["0", "1", "2"],
        strategy="margin",
        learner="logreg",
        queue_size=20,
    )
    assert not res.cold_start and sorted(res.order.tolist()) == pool.tolist()
    proba = res.model.predict_proba(
        (X - X[np.concatenate([labelled, pool])].mean(0)) / X[np.concatenate([labelled, pool])].std(0)
    )
    top2 = np.sort(proba, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert margin[res.order[:20]].mean() < margin[res.order[20:]].mean()
    assert res.score is not None and res.score > 0.9  # well separated blobs


def test_regression_ranks_and_scores() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    target = X[:, 0] * 3 + rng.normal(scale=0.1, size=120)
    labelled = np.arange(20)
    res = retrain_and_rank(
        X,
        labelled,
        target[labelled],
        np.arange(20, 120),
        classes=None,
        task="regression",
        strategy="regression_binary_confidence",
        learner="ridge",
    )
    assert len(res.order) == 100 and res.score is not None and res.score > 0.9


def test_bad_input_is_a_clear_error() -> None:
    X, y = blobs()
    with pytest.raises(ListenloopError, match="labels"):
        retrain_and_rank(X, np.array([0, 1]), y[:1], np.arange(2, 10), classes=["0"])
    with pytest.raises(ListenloopError, match="task"):
        retrain_and_rank(X, np.array([0]), y[:1], np.arange(2, 10), classes=["0"], task="multilabel")


def tagged(n: int = 240, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two tags, each set by the sign of its own feature (plus three noise features)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    return X, X[:, :2] > 0


def test_multilabel_by_binary_relevance_ranks_clips_unsure_on_every_tag_first() -> None:
    X, present = tagged()
    X[200] = [0.01, -0.01, 0, 0, 0]  # on both tags' boundary
    X[201] = [3.0, 3.0, 0, 0, 0]  # far from both
    labelled = np.arange(0, 120)
    pool = np.arange(120, 240)
    res = rank_by_tags(X, labelled, present[labelled], pool, strategy="least_confidence", learner="logreg")
    assert not res.cold_start and res.model is None
    assert sorted(res.order.tolist()) == pool.tolist()
    place = {int(r): i for i, r in enumerate(res.order)}
    assert place[200] < 15 and place[201] > 60  # top eighth; far back
    assert res.score is not None and res.score > 0.8  # mean UAR of the two tags' models
    # a tag never seen present has no model; the other still ranks and scores
    only_first = present[labelled].copy()
    only_first[:, 1] = False
    res1 = rank_by_tags(X, labelled, only_first, pool, strategy="least_confidence", learner="logreg")
    assert not res1.cold_start and res1.score is not None and res1.score > 0.8


def test_multilabel_cold_start_until_some_tag_was_heard_present_and_absent() -> None:
    X, present = tagged()
    labelled = np.array([0, 1, 2])
    pool = np.arange(3, 240)
    none = np.zeros((3, 2), dtype=bool)
    res = rank_by_tags(X, labelled, none, pool)
    assert res.cold_start and res.score is None and sorted(res.order.tolist()) == pool.tolist()
    assert tags_cv_score("logreg", {}, X[:20], present[:20], 0) is not None
    assert tags_cv_score("logreg", {}, X[:3], none, 0) is None
