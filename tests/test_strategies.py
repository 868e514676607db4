"""Every query strategy on small arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from listenloop.errors import ListenloopError
from listenloop.strategies import QueryContext, make_strategy
from listenloop.strategies.selection import middle_k, random_k, top_k
from listenloop.strategies.self_training import balanced_pseudo_labels
from listenloop.strategies.threshold import tune_threshold
from listenloop.strategies.uncertainty import (
    binary_confidence_informativeness,
    confidence,
    entropy,
    least_confidence,
    margin,
)


class TableModel:
    """A 'fitted model' whose probabilities are a lookup table keyed by the row's first feature."""

    def __init__(self, proba: np.ndarray, classes: list[str] | None = None) -> None:
        self.table = np.asarray(proba, float)
        self.classes_ = np.array(classes or [str(i) for i in range(self.table.shape[1])])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


PROBA = np.array(
    [
        [0.90, 0.05, 0.05],  # 0 sure
        [0.40, 0.35, 0.25],  # 1 least confident, small margin
        [0.50, 0.49, 0.01],  # 2 smallest margin
        [0.34, 0.33, 0.33],  # 3 least confident, highest entropy
        [0.70, 0.20, 0.10],  # 4
        [0.60, 0.30, 0.10],  # 5
    ]
)


def ctx_for(proba: np.ndarray, candidates: np.ndarray | None = None, iteration: int = 0) -> QueryContext:
    X = np.arange(len(proba), dtype=float)[:, None]
    cand = np.arange(len(proba)) if candidates is None else candidates
    return QueryContext(
        model=TableModel(proba),
        X=X,
        candidates=cand,
        labelled=np.array([], dtype=int),
        y_labelled=np.array([]),
        iteration=iteration,
        rng=np.random.default_rng(0),
    )


def test_measures_known_values() -> None:
    np.testing.assert_allclose(confidence(PROBA), PROBA.max(axis=1))
    np.testing.assert_allclose(least_confidence(PROBA), 1 - PROBA.max(axis=1))
    np.testing.assert_allclose(margin(PROBA)[:3], [-0.85, -0.05, -0.01])
    assert np.argmax(entropy(PROBA)) == 3
    np.testing.assert_allclose(entropy(np.array([[0.5, 0.5]])), [np.log(2)])
    np.testing.assert_allclose(binary_confidence_informativeness(np.array([0.5, 0.9, 0.1])), [0, -0.4, -0.4])


def test_top_k_orders_best_first_and_breaks_ties_by_index() -> None:
    assert top_k(np.array([0.1, 0.9, 0.5, 0.9, 0.2]), 3).tolist() == [1, 3, 2]
    assert top_k(np.array([1.0, 1.0, 1.0]), 2).tolist() == [0, 1]
    assert top_k(np.array([1.0]), 5).tolist() == [0]
    assert top_k(np.array([1.0, 2.0]), 0).tolist() == []


def test_middle_k_takes_the_centre_of_the_descending_queue() -> None:
    conf = np.array([0.9, 0.1, 0.5, 0.7, 0.3])  # queue: 0(.9) 3(.7) 2(.5) 4(.3) 1(.1)
    assert middle_k(conf, 1).tolist() == [2]
    assert sorted(middle_k(conf, 3).tolist()) == [2, 3, 4]
    assert sorted(middle_k(conf, 5).tolist()) == [0, 1, 2, 3, 4]


def test_random_k_is_distinct_and_seeded() -> None:
    a = random_k(100, 10, np.random.default_rng(1))
    assert len(set(a.tolist())) == 10
    assert a.tolist() == random_k(100, 10, np.random.default_rng(1)).tolist()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("least_confidence", [3, 1]),
        ("margin", [2, 3]),
        ("entropy", [3, 1]),
    ],
)
def test_uncertainty_sampling(name: str, expected: list[int]) -> None:
    assert make_strategy(name).select(ctx_for(PROBA), 2).tolist() == expected


def test_uncertainty_sampling_only_returns_candidates() -> None:
    picked = make_strategy("least_confidence").select(ctx_for(PROBA, np.array([0, 4, 5])), 2)
    assert picked.tolist() == [5, 4]


def test_medium_certainty_picks_the_middle() -> None:
    # confidence queue: 0(.9) 4(.7) 5(.6) 2(.5) 1(.4) 3(.34): centre = position ceil(6/2)-1 = 2
    assert make_strategy("medium_certainty").select(ctx_for(PROBA), 1).tolist() == [5]


def test_random_strategy() -> None:
    picked = make_strategy("random").select(ctx_for(PROBA, np.array([1, 2, 3])), 2)
    assert set(picked.tolist()) <= {1, 2, 3} and len(set(picked.tolist())) == 2


def test_alternating_confidence_adds_one_sure_clip_every_k() -> None:
    strat = make_strategy("alternating_confidence", every=2, high_threshold=0.85)
    plain = strat.select(ctx_for(PROBA, iteration=0), 2)
    assert plain.tolist() == [3, 1]  # least confidence
    ctx = ctx_for(PROBA, iteration=1)
    mixed = strat.select(ctx, 2)
    assert mixed.tolist() == [0, 3]  # row 0 is the only clip above T_HC
    assert ctx.extra["high_confidence_queries"] == 1


def test_tune_threshold_finds_the_separating_value() -> None:
    p = np.array([0.1, 0.2, 0.25, 0.3, 0.35, 0.4])
    y = np.array([0, 0, 0, 1, 1, 1])
    td = tune_threshold(p, y)
    assert 0.25 < td <= 0.3
    assert tune_threshold(np.full(4, 0.5), np.array([0, 1, 0, 1])) == pytest.approx(0.5)


def test_threshold_least_confidence_fixed_is_closest_to_half() -> None:
    proba = np.array([[0.9, 0.1], [0.45, 0.55], [0.2, 0.8], [0.52, 0.48]])
    strat = make_strategy("least_confidence_tuned", tuned=False)
    assert strat.select(ctx_for(proba), 2).tolist() == [3, 1]


def test_threshold_least_confidence_refuses_multiclass() -> None:
    with pytest.raises(ListenloopError, match="binary"):
        make_strategy("least_confidence_tuned").select(ctx_for(PROBA), 1)


def test_threshold_tuned_on_labelled_set() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] > 0.8).astype(int)  # imbalanced: the best threshold is below 0.5
    lab = np.arange(120)
    model = LogisticRegression().fit(X[lab], y[lab])
    ctx = QueryContext(
        model=model,
        X=X,
        candidates=np.arange(120, 200),
        labelled=lab,
        y_labelled=y[lab],
        iteration=0,
        rng=rng,
    )
    picked = make_strategy("least_confidence_tuned").select(ctx, 5)
    assert len(picked) == 5 and set(picked.tolist()) <= set(range(120, 200))
    assert 0.05 <= ctx.extra["threshold"] <= 0.95


def test_balanced_pseudo_labels() -> None:
    proba = np.array([[0.99, 0.01], [0.97, 0.03], [0.96, 0.04], [0.02, 0.98], [0.6, 0.4]])
    idx, labels = balanced_pseudo_labels(proba, np.array(["a", "b"]), threshold=0.95)
    assert sorted(idx.tolist()) == [0, 3]  # one per class: the scarcest class has one candidate
    assert dict(zip(idx.tolist(), labels.tolist(), strict=True)) == {0: "a", 3: "b"}
    idx, _ = balanced_pseudo_labels(proba, np.array(["a", "b"]), threshold=0.95, exclude=np.array([3]))
    assert idx.tolist() == []  # only one class left: nothing balanced to add


def test_self_training_selects_like_least_confidence_and_proposes_pseudo_labels() -> None:
    proba = np.vstack([PROBA, [[0.01, 0.98, 0.01], [0.97, 0.02, 0.01]]])
    strat = make_strategy("self_training", threshold=0.95)
    ctx = ctx_for(proba)
    assert strat.select(ctx, 2).tolist() == [3, 1]
    rows, labels = strat.pseudo_labels(ctx, exclude=np.array([3, 1]))
    assert sorted(rows.tolist()) == [6, 7] and sorted(labels.tolist()) == ["0", "1"]


def test_regression_binary_confidence_queries_near_the_centre() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(300, 2))
    y = X[:, 0] * 10
    lab = np.arange(100)
    ctx = QueryContext(
        model=None,
        X=X,
        candidates=np.arange(100, 300),
        labelled=lab,
        y_labelled=y[lab],
        iteration=0,
        rng=rng,
        task="regression",
    )
    picked = make_strategy("regression_binary_confidence", "regression", centre=0.0).select(ctx, 10)
    assert np.abs(X[picked, 0]).mean() < 0.25  # the boundary of the sign is x0 = 0
    assert ctx.extra["centre"] == 0.0


def test_registry_checks_names_and_tasks() -> None:
    with pytest.raises(ListenloopError, match="unknown strategy"):
        make_strategy("nope")
    with pytest.raises(ListenloopError, match="regression"):
        make_strategy("margin", "regression")
    with pytest.raises(ListenloopError, match="continuous"):
        make_strategy("regression_binary_confidence", "classification")


def test_binary_only_strategies_are_refused_for_more_classes() -> None:
    """least_confidence_tuned thresholds a yes/no model: refused up front for three classes."""
    from listenloop.strategies.registry import allowed_strategies

    with pytest.raises(ListenloopError, match=r"needs a binary task .* not 3 classes"):
        make_strategy("least_confidence_tuned", "classification", 3)
    assert make_strategy("least_confidence_tuned", "classification", 2).name == "least_confidence_tuned"
    assert "least_confidence_tuned" not in allowed_strategies("classification", 3)
    assert "least_confidence_tuned" in allowed_strategies("classification", 2)
    assert allowed_strategies("regression") == ["random", "regression_binary_confidence"]


def test_margin_diverse_spreads_the_batch_over_clusters() -> None:
    # Two tight groups of near-duplicates on the boundary: plain margin takes one group only.
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.01, size=(10, 2)) + np.array([0, 5])
    b = rng.normal(0, 0.01, size=(10, 2)) + np.array([0, -5])
    far = rng.normal(0, 0.01, size=(10, 2)) + np.array([9, 0])
    X = np.vstack([a, b, far])

    class Boundary:
        classes_ = np.array(["l", "r"])

        def predict_proba(self, rows: np.ndarray) -> np.ndarray:
            p = 1 / (1 + np.exp(-np.asarray(rows)[:, 0] - 0.001 * np.asarray(rows)[:, 1]))
            return np.column_stack([1 - p, p])

    ctx = QueryContext(
        model=Boundary(),
        X=X,
        candidates=np.arange(30),
        labelled=np.array([], dtype=int),
        y_labelled=np.array([]),
        iteration=0,
        rng=np.random.default_rng(0),
    )
    plain = make_strategy("margin").select(ctx, 2)
    diverse = make_strategy("margin_diverse", candidates_per_query=10).select(ctx, 2)
    assert len({int(i) // 10 for i in plain}) == 1  # both from the same group
    assert {int(i) // 10 for i in diverse} == {0, 1}  # one from each boundary group, none from far
