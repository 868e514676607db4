"""`auto` (the ALBL bandit over query rules) and the diverse-batch rules: cluster_margin, badge,
<measure>_diverse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from listenloop.strategies import QueryContext, make_strategy
from listenloop.strategies.auto import RANDOM_SOURCE, AutoStrategy
from listenloop.strategies.badge import gradient_factors, kmeanspp_gradient
from listenloop.strategies.cluster_margin import round_robin_small_first
from listenloop.strategies.scoring import score_pool, score_pool_many


def blobs(n_per: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 5 dims, overlapping enough for a model to be unsure of some rows."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0, 0], [2, 0, 0, 0, 0], [0, 2, 0, 0, 0]], float)
    X = np.vstack([rng.standard_normal((n_per, 5)) + c for c in centres]).astype(np.float32)
    y = np.repeat(np.array(["a", "b", "c"]), n_per)
    return X, y


def context(model, X, labelled, y, seed=0, iteration=0) -> QueryContext:
    labelled = np.asarray(labelled, dtype=np.int64)
    return QueryContext(
        model=model,
        X=X,
        candidates=np.setdiff1d(np.arange(len(X)), labelled),
        labelled=labelled,
        y_labelled=y[labelled],
        iteration=iteration,
        rng=np.random.default_rng(seed),
    )


def run_auto(strategy: AutoStrategy, X, y, rounds: int, batch: int = 20, seed: int = 0) -> list[dict]:
    """`rounds` batches of `auto` on the blobs with the true labels as the oracle; each round's extra."""
    labelled = list(np.random.default_rng(seed).choice(len(X), 30, replace=False))
    notes = []
    for it in range(rounds):
        model = LogisticRegression(max_iter=500).fit(X[labelled], y[labelled])
        ctx = context(model, X, labelled, y, seed=seed * 100 + it, iteration=it)
        picked = strategy.select(ctx, batch)
        assert len(set(picked.tolist())) == len(picked) == batch
        assert np.isin(picked, ctx.candidates).all()
        labelled.extend(picked.tolist())
        notes.append(dict(ctx.extra))
    return notes


def test_score_pool_many_matches_score_pool_per_measure():
    X, y = blobs()
    model = LogisticRegression(max_iter=500).fit(X[::7], y[::7])
    measures = ("margin", "least_confidence", "entropy")
    many = score_pool_many(model, X, measures, chunk_rows=97, subset=np.arange(5, 400))
    for m in measures:
        np.testing.assert_allclose(many[m], score_pool(model, X, m, subset=np.arange(5, 400)), rtol=1e-5)


def test_every_uncertainty_rule_has_a_diverse_variant_that_spreads_the_batch():
    # 6 copies of the most uncertain point and 30 of another: top-n margin asks the first group only,
    # the diverse variant asks both
    rng = np.random.default_rng(0)
    near = np.vstack([np.full((6, 2), [1.0, 1.0]), np.full((30, 2), [-1.0, 1.0])]) + rng.normal(
        0, 0.01, (36, 2)
    )
    far = rng.normal(0, 0.01, (100, 2)) + np.array([0.0, 20.0])
    X = np.vstack([near, far]).astype(np.float32)
    p_top = np.r_[np.full(6, 0.5), np.full(30, 0.51), np.full(100, 0.99)]  # group 1 is the most uncertain

    class Model:
        classes_ = np.array(["x", "y"])

        def predict_proba(self, rows):
            idx = np.array([np.argmin(np.abs(X - r).sum(axis=1)) for r in np.asarray(rows)])
            return np.c_[p_top[idx], 1 - p_top[idx]]

    for measure in ("margin", "least_confidence", "entropy"):
        ctx = context(Model(), X, [], np.array(["x"] * len(X)))
        plain = make_strategy(measure).select(ctx, 4)
        diverse = make_strategy(f"{measure}_diverse").select(ctx, 4)
        assert (plain < 6).all()  # the plain rule takes the 4 most uncertain: one group
        assert (diverse < 6).any() and ((diverse >= 6) & (diverse < 36)).any(), measure


def test_round_robin_takes_the_smallest_clusters_first():
    clusters = np.array([0] * 10 + [1] * 3 + [2] * 1)
    picked = round_robin_small_first(clusters, 3, np.random.default_rng(0))
    assert clusters[picked].tolist() == [2, 1, 0]
    picked = round_robin_small_first(clusters, 6, np.random.default_rng(0))
    assert clusters[picked].tolist() == [2, 1, 0, 1, 0, 1]


def test_cluster_margin_covers_the_low_margin_groups():
    X, y = blobs(seed=1)
    model = LogisticRegression(max_iter=500).fit(X[::10], y[::10])
    ctx = context(model, X, np.arange(0, len(X), 10), y)
    picked = make_strategy("cluster_margin").select(ctx, 10)
    assert len(set(picked.tolist())) == 10 and np.isin(picked, ctx.candidates).all()
    # drawn among the 100 lowest-margin candidates
    m = score_pool(model, X, "margin", subset=ctx.candidates)
    lowest = ctx.candidates[np.argsort(-m)[:100]]
    assert np.isin(picked, lowest).all()


def test_badge_gradient_embedding_distances_are_those_of_the_outer_products():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=12)
    h = rng.standard_normal((12, 6))
    a = gradient_factors(proba)
    assert a.shape == (12, 4)
    np.testing.assert_allclose(a.sum(axis=1), 0.0, atol=1e-12)  # p sums to 1, minus a one-hot
    g = np.einsum("ic,id->icd", a, h).reshape(12, -1)  # the explicit C × d embeddings
    picked = kmeanspp_gradient(a, h, 12, np.random.default_rng(1))
    assert sorted(picked.tolist()) == list(range(12))
    assert picked[0] == int(np.argmax((g**2).sum(axis=1)))  # the first centre: the largest norm


def test_badge_picks_one_point_per_far_apart_group_before_repeating_one():
    # four tight groups of equally uncertain points: k-means++ on the embeddings takes one from each
    rng = np.random.default_rng(0)
    centres = np.array([[5, 0], [-5, 0], [0, 5], [0, -5]], float)
    h = np.vstack([c + rng.normal(0, 0.01, (25, 2)) for c in centres])
    proba = np.tile([0.5, 0.5], (100, 1))
    proba[:, 0] += rng.normal(0, 1e-3, 100)
    proba[:, 1] = 1 - proba[:, 0]
    picked = kmeanspp_gradient(gradient_factors(proba), h, 4, np.random.default_rng(2))
    assert sorted((picked // 25).tolist()) == [0, 1, 2, 3]


def test_badge_strategy_returns_distinct_candidates():
    X, y = blobs()
    model = LogisticRegression(max_iter=500).fit(X[::9], y[::9])
    ctx = context(model, X, np.arange(0, len(X), 9), y)
    picked = make_strategy("badge", max_candidates=300).select(ctx, 15)
    assert len(set(picked.tolist())) == 15 and np.isin(picked, ctx.candidates).all()


def test_auto_keeps_a_random_share_in_every_batch_and_logs_every_clip_source():
    X, y = blobs()
    strategy = make_strategy("auto", random_share=0.1)
    notes = run_auto(strategy, X, y, rounds=5, batch=20)
    for note in notes:
        sources = note["auto_sources"]
        assert sources[RANDOM_SOURCE] == 2  # ceil(10 % of 20), whatever the weights
        assert sum(sources.values()) == 20
        assert len(note["auto_clip_sources"]) == 20
        assert set(note["auto_p"]) == set(strategy.arms)
        assert abs(sum(note["auto_p"].values()) - 1) < 1e-3
    # a batch of 3 still has one random clip
    ctx = context(LogisticRegression(max_iter=500).fit(X[::20], y[::20]), X, np.arange(0, len(X), 20), y)
    AutoStrategy(random_share=0.01).select(ctx, 3)
    assert ctx.extra["auto_sources"][RANDOM_SOURCE] == 1


def test_auto_weights_move_towards_the_arm_whose_batches_raised_the_accuracy():
    strategy = AutoStrategy(arms=("random", "margin"), prior="uniform", p_min=0.05, eta=0.5)
    strategy.log_weights()
    # two finished batches: the model that trained on a margin-only batch gained 10 points of accuracy
    strategy.state["credit"] = {"counts": [0, 9], "p": [0.5, 0.5]}
    strategy.state["pending"] = {
        "rows": [0, 1, 2, 3],
        "q": [0.25] * 4,
        "pred": ["a", "a", "a", "b"],
        "prev_pred": ["b", "a", "a", "a"],
        "counts": [9, 0],
        "p": [0.5, 0.5],
    }
    strategy.state["rewards"] = [0.05]
    ctx = context(None, np.zeros((10, 1)), [0, 1, 2, 3], np.array(["a", "a", "a", "b", *"aaaaaa"]))
    before = strategy.probabilities()
    strategy._reward(ctx)
    after = strategy.probabilities()
    assert after[1] > before[1] and after[0] < before[0]
    assert strategy.state["rewards"][-1] == pytest.approx(0.5)  # acc 4/4 against 2/4
    assert strategy.state["credit"]["counts"] == [9, 0]  # the scored batch is credited next time
    assert strategy.state["pending"] is None


def test_auto_loses_nothing_on_a_batch_without_answers():
    strategy = AutoStrategy()
    strategy.log_weights()
    strategy.state["pending"] = {
        "rows": [7],
        "q": [0.1],
        "pred": ["a"],
        "prev_pred": None,
        "counts": [1, 0, 0, 0, 0],
        "p": [0.2] * 5,
    }
    ctx = context(None, np.zeros((10, 1)), [0, 1], np.array(["a"] * 10))
    strategy._reward(ctx)
    assert strategy.state["pending"]["rows"] == [7]  # still waiting for its label


def test_auto_is_deterministic_with_a_seed_and_its_state_is_json():
    X, y = blobs()
    a, b = AutoStrategy(), AutoStrategy()
    na, nb = run_auto(a, X, y, rounds=4, seed=3), run_auto(b, X, y, rounds=4, seed=3)
    assert [n["auto_clip_sources"] for n in na] == [n["auto_clip_sources"] for n in nb]
    assert a.dump_state() == b.dump_state()
    assert len(a.state["rewards"]) == 2  # batches 2 and 3 scored the models after batches 1 and 2
    text = json.dumps(a.dump_state())
    c = AutoStrategy()
    c.load_state(json.loads(text))
    np.testing.assert_allclose(c.probabilities(), a.probabilities())


def test_auto_state_restarts_when_the_arms_change():
    a = AutoStrategy(arms=("random", "margin"), prior="uniform")
    a.state = {"arms": ["random", "entropy"], "log_w": [0.0, -5.0]}
    np.testing.assert_allclose(a.probabilities(), [0.5, 0.5])


@pytest.mark.parametrize(
    "bad",
    [
        {"random_share": 0},
        {"p_min": 0.5},
        {"arms": ()},
        {"prior": "flat"},
        {"pseudo_threshold": 1.0},
        {"pseudo_cap": -1},
    ],
)
def test_auto_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        AutoStrategy(**bad)


def test_auto_accepts_any_registered_strategy_as_an_arm():
    X, y = blobs()
    strategy = AutoStrategy(arms=("random", "cluster_margin", "badge"), prior="uniform")
    notes = run_auto(strategy, X, y, rounds=2, batch=10)
    assert set(notes[-1]["auto_sources"]) == {RANDOM_SOURCE, "random", "cluster_margin", "badge"}


def test_auto_trains_on_balanced_capped_pseudo_labels_and_can_do_without():
    """002_'s semi-supervised AL inside auto: confident predictions join a second fit (through
    `fit_round`, as in simulate and the live round), balanced, at most pseudo_cap per label."""
    from listenloop.strategies.training_set import fit_round

    X, y = blobs()
    labelled = np.concatenate([np.arange(0, 600, 200) + i for i in range(5)])  # 5 labels per class
    pool = np.setdiff1d(np.arange(len(X)), labelled)

    def make_model():
        return LogisticRegression(max_iter=500)

    fit = fit_round(
        make_model, X, labelled, y[labelled], pool, AutoStrategy(), iteration=1, rng=np.random.default_rng(0)
    )
    n = len(fit.pseudo_rows)
    assert 0 < n <= 4 * len(labelled) and set(fit.pseudo_rows.tolist()) <= set(pool.tolist())
    counts = np.unique(fit.pseudo_labels, return_counts=True)[1]
    assert len(counts) == 3 and counts.min() == counts.max()  # balanced across the classes
    assert (fit.pseudo_labels == y[fit.pseudo_rows]).mean() > 0.8
    capped = fit_round(
        make_model,
        X,
        labelled,
        y[labelled],
        pool,
        AutoStrategy(pseudo_cap=1.0),
        iteration=1,
        rng=np.random.default_rng(0),
    )
    assert 0 < len(capped.pseudo_rows) <= len(labelled) < n
    off = fit_round(
        make_model,
        X,
        labelled,
        y[labelled],
        pool,
        AutoStrategy(pseudo_threshold=None),
        iteration=1,
        rng=np.random.default_rng(0),
    )
    assert len(off.pseudo_rows) == 0


def test_auto_scores_a_sample_of_a_huge_pool_for_pseudo_labels(monkeypatch):
    """A million-clip pool must not cost one more pass over its features for a few pseudo-labels."""
    import listenloop.strategies.auto as auto_module
    from listenloop.strategies.training_set import fit_round

    X, y = blobs()
    labelled = np.concatenate([np.arange(0, 600, 200) + i for i in range(5)])
    pool = np.setdiff1d(np.arange(len(X)), labelled)
    scored: list[int] = []
    real = auto_module.predict_proba_chunked
    monkeypatch.setattr(auto_module, "PSEUDO_SAMPLE", 120)
    monkeypatch.setattr(
        auto_module, "predict_proba_chunked", lambda m, X, rows: scored.append(len(rows)) or real(m, X, rows)
    )
    fit = fit_round(
        lambda: LogisticRegression(max_iter=500),
        X,
        labelled,
        y[labelled],
        pool,
        AutoStrategy(),
        iteration=1,
        rng=np.random.default_rng(0),
    )
    assert scored == [120]
    assert 0 < len(fit.pseudo_rows) <= 4 * len(labelled) and set(fit.pseudo_rows.tolist()) <= set(
        pool.tolist()
    )
