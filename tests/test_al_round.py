"""One active-learning round for both loops: `listenloop simulate`'s loop (`sim.loop.run_loop`, on
the experiment's standardisation) and the live round (`engine.learning.retrain.retrain_and_rank`, on its
lazy standardised view) ask the same first clips from the same labels, strategy and seed."""

from __future__ import annotations

import numpy as np
import pytest

from listenloop.engine.learning.retrain import retrain_and_rank
from listenloop.learners import make_learner
from listenloop.sim.experiment import standardise
from listenloop.sim.loop import LoopConfig, run_loop
from listenloop.strategies import make_strategy
from listenloop.strategies.al_round import al_round, interleave_passive

CLASSES = ["0", "1", "2"]


def margin() -> object:
    return make_strategy("margin")


def blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping classes in 6 dims, on different scales (standardisation matters)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(CLASSES, n // 3)
    centres = rng.normal(0, 1.5, size=(3, 6))
    X = centres[y.astype(int)] + rng.normal(size=(n, 6))
    X *= np.array([1, 10, 100, 0.1, 5, 50])
    return (X + 3).astype(np.float32), y


def first_queries(
    strategy: str, labelled: np.ndarray, *, cold_start: str = "random", seed: int = 11
) -> tuple:
    """(simulation's first batch, live round's queue head) from the same labels, strategy and seed."""
    X, y = blobs()
    train = np.arange(200)
    test = np.arange(200, 240)
    pool = np.setdiff1d(train, labelled)
    batch = 12
    config = LoopConfig(initial=len(labelled), batch=batch, iterations=1, warmup=0, cold_start=cold_start)
    Xs = standardise(X, train)
    curve = run_loop(
        Xs,
        y,
        train,
        test,
        labelled,
        make_strategy(strategy),
        lambda: make_learner("logreg", "classification"),
        config,
        np.random.default_rng(99),
        round_seed=seed,
    )
    sim = np.asarray(curve.queried[len(labelled) :])
    live = retrain_and_rank(
        X,
        labelled,
        y[labelled],
        pool,
        classes=CLASSES,
        strategy=strategy,
        learner="logreg",
        seed=seed,
        iteration=0,
        queue_size=batch,
        score=False,
    )
    return sim, np.asarray(live.order[:batch]), live


@pytest.mark.parametrize("strategy", ["random", "margin", "entropy", "margin_diverse"])
def test_simulation_and_live_round_ask_the_same_first_clips(strategy: str) -> None:
    labelled = np.array([0, 1, 2, 80, 81, 82, 160, 161, 162])  # every class
    sim, live, result = first_queries(strategy, labelled)
    assert not result.cold_start
    assert len(sim) == 12
    np.testing.assert_array_equal(sim, live)


def test_the_kmeans_cold_start_is_the_same_in_both_loops() -> None:
    labelled = np.array([0, 1, 80, 81])  # class 2 has no label yet: cold start
    sim, live, result = first_queries("margin", labelled, cold_start="kmeans")
    assert result.cold_start
    np.testing.assert_array_equal(sim, live)


def test_a_different_seed_asks_other_random_clips() -> None:
    labelled = np.array([0, 1, 2, 80, 81, 82, 160, 161, 162])
    a, _, _ = first_queries("random", labelled, seed=1)
    b, _, _ = first_queries("random", labelled, seed=2)
    assert not np.array_equal(a, b)


def test_the_cold_start_option_decides_until_when_the_model_waits() -> None:
    X, y = blobs()
    Z = standardise(X, np.arange(len(X)))
    labelled = np.array([0, 80])  # two of three classes
    pool = np.setdiff1d(np.arange(240), labelled)
    make = lambda: make_learner("logreg", "classification")  # noqa: E731
    common = {"head": 10, "seed": 0, "iteration": 0, "classes": CLASSES}
    kmeans = al_round(Z, labelled, y[labelled], pool, margin(), make, cold_start="kmeans", **common)
    random = al_round(Z, labelled, y[labelled], pool, margin(), make, cold_start="random", **common)
    assert kmeans.cold_start and kmeans.model is None and len(kmeans.order) == len(pool)
    assert not random.cold_start and random.how == "strategy" and random.model is not None
    warm = al_round(Z, labelled, y[labelled], pool, margin(), make, warmup=1, cold_start="random", **common)
    assert warm.how == "warmup" and warm.chosen == 10


def test_the_passive_arm_takes_its_share_of_the_head() -> None:
    X, y = blobs()
    Z = standardise(X, np.arange(len(X)))
    labelled = np.array([0, 1, 80, 81, 160, 161])
    pool = np.setdiff1d(np.arange(240), labelled)
    make = lambda: make_learner("logreg", "classification")  # noqa: E731
    q = al_round(
        Z,
        labelled,
        y[labelled],
        pool,
        margin(),
        make,
        head=20,
        seed=0,
        iteration=0,
        passive_share=0.25,
    )
    assert len(q.drawn) == 5 and set(q.drawn) <= set(pool)
    assert set(q.drawn) <= set(q.order[:20].tolist())
    plain = al_round(Z, labelled, y[labelled], pool, margin(), make, head=20, seed=0, iteration=0)
    assert len(plain.drawn) == 0
    order, drawn = interleave_passive(np.arange(40), np.zeros(40, dtype=bool), 0.25, np.random.default_rng(0))
    assert len(drawn) == 10 and sorted(order.tolist()) == list(range(40))
