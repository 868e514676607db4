"""The live loop's learning step: cold-start order, strategy ranking and the model score."""

from __future__ import annotations

import numpy as np
import pytest

from listenloop.engine.retrain import diverse_order, retrain_and_rank
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
