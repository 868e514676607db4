"""The live loop's learning step: cold-start order, strategy ranking and the model score."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from listenloop.engine.learning.retrain import rank_by_tags, retrain_and_rank, tags_cv_score
from listenloop.errors import ListenloopError
from listenloop.rows import LazyRows
from listenloop.strategies.al_round import diverse_order


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


def test_self_training_adds_pseudo_labels_in_the_live_round_by_the_simulations_rule() -> None:
    """self_training ran as plain least confidence in the live loop: its pseudo-labels were never
    used. The round now fits through the one rule the simulation uses (`fit_round`)."""
    from listenloop.learners import make_learner
    from listenloop.strategies import make_strategy
    from listenloop.strategies.training_set import fit_round

    X, y = blobs()
    labelled = np.concatenate([np.arange(0, 180, 60) + i for i in range(4)])
    pool = np.setdiff1d(np.arange(len(X)), labelled)
    options = {
        "classes": ["0", "1", "2"],
        "learner": "logreg",
        "learner_params": {"C": 100.0},
        "queue_size": 20,
    }
    res = retrain_and_rank(X, labelled, y[labelled], pool, strategy="self_training", **options)
    plain = retrain_and_rank(X, labelled, y[labelled], pool, strategy="least_confidence", **options)
    assert len(res.pseudo_rows) > 0 and set(res.pseudo_rows.tolist()) <= set(pool.tolist())
    assert (res.pseudo_labels == y[res.pseudo_rows]).mean() > 0.9  # confident predictions, well separated
    assert len(plain.pseudo_rows) == 0
    assert not np.allclose(res.model.coef_, plain.model.coef_)  # trained on more than the labels
    # the simulation's rule on the same standardised features gives the same pseudo-labels
    rows = np.concatenate([labelled, pool])
    Z = (X - X[rows].mean(0)) / X[rows].std(0)
    same = fit_round(
        lambda: make_learner("logreg", "classification", C=100.0),
        Z.astype(np.float32),
        labelled,
        y[labelled],
        pool,
        make_strategy("self_training"),
        iteration=0,
        rng=np.random.default_rng(0),
    )
    assert same.pseudo_rows.tolist() == res.pseudo_rows.tolist()


class _Spy:
    """A learner that remembers which rows (feature 0 holds the row id) it was fitted on and
    refuses to predict a row it has seen; it predicts the majority class."""

    calls: ClassVar[list[tuple[set[int], set[int]]]] = []

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> _Spy:
        self.seen = {round(float(v)) for v in X[:, 0]}
        values, counts = np.unique(y, return_counts=True)
        self.classes_, self.top = values, values[np.argmax(counts)]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        rows = {round(float(v)) for v in X[:, 0]}
        assert not rows & self.seen, "a held-out clip was in the fit"
        _Spy.calls.append((self.seen, rows))
        return np.full(len(X), self.top)


def test_the_model_and_the_passive_arm_are_scored_on_the_same_held_out_clips(monkeypatch) -> None:
    """Both arms predict every held-out clip, each from a fit that did not see it; the passive
    arm's fits hold random labels only, the model's every label."""
    import listenloop.engine.learning.retrain as retrain

    monkeypatch.setattr(retrain, "make_learner", lambda *a, **k: _Spy())
    _Spy.calls = []
    n = 60
    Z = np.column_stack([np.arange(n), np.zeros(n)]).astype(np.float32)
    y = np.array(["a", "b"] * 15)
    labelled = np.arange(30)  # rows 30.. are the pool
    random = np.arange(10, 30)  # seeds and passive arm
    heldout = np.arange(20, 30)  # the passive arm's labelled clips
    out = retrain.heldout_comparison(
        Z, labelled, y, heldout, random, np.arange(30, n), task="classification", strategy="margin"
    )
    assert out is not None and out.rows.tolist() == heldout.tolist()
    assert len(out.model_pred) == len(out.passive_pred) == 10 and None not in out.model_pred.tolist()
    predicted = [rows for _, rows in _Spy.calls]
    assert len(predicted) == 2 * 5  # 5 folds x 2 arms
    assert sorted(r for rows in predicted for r in rows) == sorted(heldout.tolist() * 2)  # each twice
    for seen, rows in _Spy.calls:
        assert seen <= set(labelled.tolist()) - rows
    passive_fits = [seen for seen, _ in _Spy.calls if seen <= set(random.tolist())]
    assert len(passive_fits) == 5 and all(not seen & set(range(10)) for seen in passive_fits)
    assert out.model_score is not None and out.passive_score is not None
    # too few held-out clips: no comparison yet
    few = retrain.heldout_comparison(
        Z, labelled, y, heldout[:4], random, np.arange(30, n), task="classification", strategy="margin"
    )
    assert few is None


def test_held_out_scores_do_not_see_the_held_out_labels() -> None:
    """With labels that are pure noise, a memorising learner scores at chance on held-out clips
    (it would score near 1 on clips it was fitted on)."""
    from listenloop.engine.learning.retrain import heldout_comparison

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(200, 5)).astype(np.float32)
    y = rng.choice(["a", "b"], size=120)
    labelled = np.arange(120)
    out = heldout_comparison(
        Z, labelled, y, np.arange(60, 120), np.arange(40, 120), np.arange(120, 200),
        task="classification", strategy="margin", learner="rf",
    )  # fmt: skip
    assert out is not None and out.model_score < 0.7 and out.passive_score < 0.7


class CountingRows(LazyRows):
    """An in-memory matrix that can only be read by rows (never whole), and remembers its largest read."""

    def __init__(self, X: np.ndarray) -> None:
        super().__init__(*X.shape)
        self.X = X
        self.largest = 0

    def _take(self, rows: np.ndarray) -> np.ndarray:
        self.largest = max(self.largest, len(rows))
        return self.X[rows].astype(np.float32)


@pytest.mark.parametrize("strategy", ["margin", "entropy", "medium_certainty", "self_training"])
def test_a_lazy_pool_is_ranked_a_chunk_at_a_time_as_the_whole_matrix_is(monkeypatch, strategy: str) -> None:
    """Ranking reads the pool in chunks of CHUNK_BYTES (no dense standardised copy), with the order,
    model and score that the matrix in memory gives."""
    import listenloop.rows

    monkeypatch.setattr(listenloop.rows, "CHUNK_BYTES", 4 * 5 * 50)  # 50 rows of 5 values
    X, y = blobs(n_per=400)
    labelled = np.concatenate([np.arange(0, 1200, 400) + i for i in range(5)])
    pool = np.setdiff1d(np.arange(len(X)), labelled)
    options = {"classes": ["0", "1", "2"], "strategy": strategy, "learner": "logreg", "queue_size": 30}
    lazy = CountingRows(X)
    got = retrain_and_rank(lazy, labelled, y[labelled], pool, **options)
    want = retrain_and_rank(X, labelled, y[labelled], pool, **options)
    assert got.order.tolist() == want.order.tolist() and got.score == pytest.approx(want.score)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-6, atol=1e-9)
    assert lazy.largest <= max(50, len(labelled)) < len(pool)
    with pytest.raises(TypeError, match="read by rows"):
        np.asarray(lazy)


def test_a_large_cold_start_clusters_a_sample_and_assigns_every_row(monkeypatch) -> None:
    import listenloop.rows

    monkeypatch.setattr(listenloop.rows, "CHUNK_BYTES", 4 * 5 * 40)  # 40 rows of 5 values
    X, y = blobs()
    lazy = CountingRows(X)
    order = diverse_order(lazy, np.arange(len(X)), np.random.default_rng(0), clusters=3, sample=60)
    assert sorted(order.tolist()) == list(range(len(X)))
    assert set(y[order[:3]]) == {"0", "1", "2"}
    assert lazy.largest == 60  # fitted on the sample, then assigned 40 rows at a time
