"""Simulation: splits, the pool and stream loops, stopping rules, summary schema, reproducibility."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from listenloop.errors import ListenloopError
from listenloop.learners import make_learner
from listenloop.sim.experiment import ExperimentConfig, run_experiment
from listenloop.sim.loop import LoopConfig, run_loop
from listenloop.sim.metrics import pearson_cc, uar
from listenloop.sim.splits import make_splits
from listenloop.sim.summary import STRATEGY_KEYS, aulc, summarise
from listenloop.strategies import make_strategy


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=400,
        n_features=10,
        n_informative=5,
        n_classes=3,
        n_clusters_per_class=1,
        class_sep=1.5,
        random_state=0,
    )
    groups = np.array([f"g{i % 4}" for i in range(len(y))])
    return X.astype(np.float32), np.array(["0", "1", "2"])[y], groups


def test_metrics() -> None:
    assert uar(np.array(["a", "a", "b", "b"]), np.array(["a", "a", "a", "b"])) == pytest.approx(0.75)
    assert pearson_cc(np.array([1, 2, 3]), np.array([2, 4, 6])) == pytest.approx(1.0)
    assert pearson_cc(np.array([1, 2, 3]), np.array([1, 1, 1])) == 0.0


def test_group_folds_leave_one_group_out(blobs) -> None:
    _, y, g = blobs
    splits = make_splits(y, g, "classification", folds=4)
    assert [name for _, _, name in splits] == ["g0", "g1", "g2", "g3"]
    for train, test, name in splits:
        assert set(g[test]) == {name} and name not in set(g[train])


def test_group_kfold_and_fraction(blobs) -> None:
    _, y, g = blobs
    for train, test, _ in make_splits(y, g, "classification", folds=2):
        assert not set(g[train]) & set(g[test])
    train, test, _ = make_splits(y, None, "classification", test_fraction=0.25)[0]
    assert len(test) == 100 and not set(train) & set(test)


def test_split_errors(blobs) -> None:
    _, y, g = blobs
    with pytest.raises(ListenloopError, match="exclude each other"):
        make_splits(y, g, "classification", folds=2, test_groups=["g0"])
    with pytest.raises(ListenloopError, match="no group"):
        make_splits(y, g, "classification", test_groups=["zz"])
    with pytest.raises(ListenloopError, match="only 4 groups"):
        make_splits(y, g, "classification", folds=5)


def _loop(blobs, strategy: str, **cfg) -> object:
    X, y, _ = blobs
    pool, test = np.arange(300), np.arange(300, 400)
    rng = np.random.default_rng(0)
    init = rng.choice(pool, 12, replace=False)
    return run_loop(
        X,
        y,
        pool,
        test,
        init,
        make_strategy(strategy),
        lambda: make_learner("logreg", C=1.0),
        LoopConfig(**cfg),
        np.random.default_rng(1),
    )


def test_pool_loop_grows_the_labelled_set_by_batches(blobs) -> None:
    curve = _loop(blobs, "margin", initial=12, batch=10, iterations=5)
    assert curve.labels == [12, 22, 32, 42, 52, 62]
    assert len(set(curve.queried)) == len(curve.queried) == 62
    assert all(0 <= s["uar"] <= 1 for s in curve.scores)


def test_stream_loop_labels_half_of_each_buffer(blobs) -> None:
    curve = _loop(blobs, "least_confidence", initial=12, batch=10, iterations=4, stream=True, buffer=20)
    assert curve.labels == [12, 22, 32, 42, 52]


def test_budget_target_and_subset(blobs) -> None:
    assert _loop(blobs, "margin", initial=12, batch=10, iterations=10, budget=37).labels == [12, 22, 32, 37]
    short = _loop(blobs, "margin", initial=12, batch=10, iterations=10, target=0.0)
    assert short.labels == [12]
    sub = _loop(blobs, "entropy", initial=12, batch=10, iterations=3, subset=25)
    assert sub.labels == [12, 22, 32, 42]


def test_self_training_pseudo_labels_are_not_counted(blobs) -> None:
    curve = _loop(blobs, "self_training", initial=12, batch=10, iterations=3)
    assert curve.labels == [12, 22, 32, 42]
    assert all("pseudo_labels" in note for note in curve.notes)


def test_aulc_is_the_mean_height() -> None:
    assert aulc(np.array([0, 10]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert aulc(np.array([0, 10, 20]), np.array([0.0, 1.0, 1.0])) == pytest.approx(0.75)


def _experiment(blobs, **kw):
    X, y, g = blobs
    splits = make_splits(y, g, "classification", folds=2)
    cfg = ExperimentConfig(
        strategies=["random", "margin", "least_confidence"],
        learner="logreg",
        learner_params={"C": 1.0},
        runs=3,
        seed=kw.pop("seed", 0),
        loop=LoopConfig(initial=10, batch=10, iterations=4),
    )
    return run_experiment(X, y, splits, cfg, progress=False, **kw)


def test_summary_schema_and_pairing(blobs) -> None:
    summary = summarise(_experiment(blobs), "blobs")
    assert summary["task"] == "classification" and summary["metric"] == "uar"
    assert 0 <= summary["full_pool_score"] <= 1
    for name, st in summary["strategies"].items():
        assert set(st) >= set(STRATEGY_KEYS)
        assert st["labels"] == [10, 20, 30, 40, 50]
        assert len(st["mean"]) == len(st["std"]) == 5
        assert len(st["final"]) == len(st["aulc_runs"]) == 2 * 3  # folds × runs
        assert st["aulc"] == pytest.approx(np.mean(st["aulc_runs"]))
        if name == "random":
            assert st["p_value_vs_random"] is None
        else:
            assert st["p_value_vs_random"] is None or 0 <= st["p_value_vs_random"] <= 1
    random = summary["strategies"]["random"]
    assert random["labels_to_passive_best"] == random["labels"][int(np.argmax(random["mean"]))]
    # All strategies of a (split, run) pair start from the same initial set: same first score.
    firsts = {
        name: [r.curve.scores[0]["uar"] for r in _experiment(blobs).runs if r.strategy == name]
        for name in summary["strategies"]
    }
    assert firsts["random"] == firsts["margin"] == firsts["least_confidence"]


def test_same_seed_same_numbers_and_jobs_do_not_matter(blobs) -> None:
    a = summarise(_experiment(blobs), "b")
    b = summarise(_experiment(blobs, jobs=2), "b")
    c = summarise(_experiment(blobs, seed=1), "b")
    assert a["strategies"] == b["strategies"]
    assert a["strategies"]["margin"]["aulc_runs"] != c["strategies"]["margin"]["aulc_runs"]


def test_regression_experiment() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = X[:, 0] * 2 + 0.1 * rng.normal(size=300)
    splits = make_splits(y, None, "regression", test_fraction=0.3)
    cfg = ExperimentConfig(
        strategies=["random", "regression_binary_confidence"],
        task="regression",
        runs=2,
        loop=LoopConfig(initial=10, batch=10, iterations=3),
    )
    summary = summarise(run_experiment(X, y, splits, cfg, progress=False), "reg")
    assert summary["metric"] == "cc" and summary["full_pool_score"] > 0.9
    assert summary["strategies"]["regression_binary_confidence"]["labels"] == [10, 20, 30, 40]


def test_warmup_asks_at_random_first(blobs) -> None:
    warm = _loop(blobs, "margin", initial=12, batch=10, iterations=3, warmup=1)
    rand = _loop(blobs, "random", initial=12, batch=10, iterations=1)
    assert warm.queried[:22] == rand.queried[:22]  # the warm-up batch is random's batch


def test_memory_mapped_pool_gives_the_same_numbers_and_cleans_up(blobs, tmp_path) -> None:
    X, y, g = blobs
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    splits = make_splits(y, g, "classification", folds=2)
    cfg = ExperimentConfig(
        strategies=["random", "margin"],
        learner="logreg",
        learner_params={"C": 1.0},
        runs=2,
        loop=LoopConfig(initial=10, batch=10, iterations=3),
    )
    in_ram = summarise(run_experiment(X, y, splits, cfg, progress=False), "b")
    tmp_before = set(Path(tempfile.gettempdir()).glob("listenloop-scaled-*"))
    on_disk = summarise(run_experiment(mapped, y, splits, cfg, progress=False), "b")
    assert in_ram["strategies"] == on_disk["strategies"]
    assert set(Path(tempfile.gettempdir()).glob("listenloop-scaled-*")) == tmp_before  # spill files removed


def test_full_pool_reference_is_capped_on_huge_pools() -> None:
    from listenloop.sim.experiment import full_pool_rows

    train = np.arange(100)
    assert full_pool_rows(train, 200, 0) is train
    capped = full_pool_rows(train, 30, 0)
    assert len(capped) == 30 and len(set(capped.tolist())) == 30 and set(capped.tolist()) <= set(range(100))


def _result_of(curves: dict[str, list[tuple[list[int], list[float]]]], sizes: dict[str, tuple[int, int]]):
    """An ExperimentResult holding the given curves (strategy -> one (labels, scores) per run)."""
    from listenloop.sim.experiment import ExperimentResult, RunResult
    from listenloop.sim.loop import Curve

    runs = []
    for name, per_run in curves.items():
        for i, (labels, scores) in enumerate(per_run):
            curve = Curve(labels=labels, scores=[{"uar": s} for s in scores])
            runs.append(RunResult(name, f"s{i % 2}", i, curve))
    config = ExperimentConfig(strategies=list(curves), runs=len(next(iter(curves.values()))))
    return ExperimentResult(config, runs, {}, sorted(sizes), sizes)


def test_aulc_uses_the_label_range_every_strategy_covers() -> None:
    """A strategy whose curve runs further (here: to 40 labels, where it scores high) is compared on
    10..30 like the one that stopped at 30, not on its own longer range."""
    early = [([10, 20, 30], [0.5, 0.6, 0.7])] * 2
    longer = [([10, 20, 30, 40], [0.5, 0.6, 0.7, 1.0])] * 2
    summary = summarise(_result_of({"random": early, "margin": longer}, {"s0": (80, 20)}), "x")
    assert summary["aulc_range"] == [10, 30]
    st = summary["strategies"]
    assert st["margin"]["aulc"] == pytest.approx(st["random"]["aulc"]) == pytest.approx(0.6)
    # on its own range margin would have had (0.55 + 0.65 + 0.85) / 3
    assert aulc(np.array([10, 20, 30, 40]), np.array([0.5, 0.6, 0.7, 1.0])) == pytest.approx(2.05 / 3)
    # a curve that stops before the shared end keeps its last score (carried forward)
    assert aulc(np.array([10, 20]), np.array([0.4, 0.6]), 10, 30) == pytest.approx((0.5 + 0.6) / 2)
    # an iteration that asked nothing: one point per size, the newest score
    assert aulc(np.array([10, 10, 20]), np.array([0.0, 0.4, 0.6])) == pytest.approx(0.5)


def test_p_values_use_the_corrected_resampled_t_test() -> None:
    """Nadeau and Bengio: t = mean(d) / sqrt((1/J + n_test/n_train) var(d)), J - 1 dof; the plain
    paired p is smaller (too optimistic for runs that share data) and kept for comparison."""
    from scipy.stats import t as student_t
    from scipy.stats import ttest_rel

    from listenloop.sim.summary import corrected_resampled_t

    rng = np.random.default_rng(0)
    base = [([10, 20, 30], list(0.5 + 0.05 * rng.random(3))) for _ in range(6)]
    better = [(lab, [s + 0.02 + 0.01 * rng.random() for s in sc]) for lab, sc in base]
    summary = summarise(_result_of({"random": base, "margin": better}, {"s0": (75, 25), "s1": (75, 25)}), "x")
    st = summary["strategies"]["margin"]
    a, b = np.array(st["aulc_runs"]), np.array(summary["strategies"]["random"]["aulc_runs"])
    d = a - b
    t = d.mean() / np.sqrt((1 / 6 + 25 / 75) * d.var(ddof=1))
    assert summary["test"]["test_train_ratio"] == pytest.approx(1 / 3)
    assert st["p_value_vs_random"] == pytest.approx(2 * student_t.sf(abs(t), 5))
    assert st["p_value_paired_t"] == pytest.approx(ttest_rel(a, b).pvalue)
    assert st["p_value_paired_t"] < st["p_value_vs_random"]
    assert "share data" in summary["test"]["caveat"]
    assert corrected_resampled_t(a, a, 0.2) is None  # identical areas: no test
    assert corrected_resampled_t(a[:1], b[:1], 0.2) is None  # one pair: no test


def test_summary_has_80_percent_bootstrap_intervals_of_the_mean_curve() -> None:
    """003_ section 5.1: 80 % bootstrap intervals, each (fold, run) pair one experiment."""
    from listenloop.sim.summary import bootstrap_ci

    sc = np.array([[0.5, 0.6], [0.7, 0.8], [0.6, 0.7], [0.4, 0.9], [0.8, 0.75]])
    low, high = bootstrap_ci(sc)
    mean = sc.mean(0)
    assert all(lo < m < hi for lo, m, hi in zip(low, mean, high, strict=True))
    # about ±1.28 standard errors of the mean: inside the runs' range, well short of it
    se = sc.std(0) / np.sqrt(len(sc))
    assert np.allclose(np.array(high) - np.array(low), 2 * 1.2816 * se, rtol=0.3)
    assert bootstrap_ci(np.full((4, 3), 0.7)) == ([0.7] * 3, [0.7] * 3)


def test_medoid_strategies_run_in_the_experiment_on_their_own_features(blobs) -> None:
    """mal_pann asks medoids from its first query (no shared random warm-up) and trains on the
    labels propagated to their clusters, given a feature table of its own (as MAL gets the mfcc set)."""
    X, y, _ = blobs
    splits = make_splits(y, None, "classification", folds=2, seed=0)
    loop = LoopConfig(initial=10, batch=10, iterations=2, warmup=1)
    own = X[:, ::-1] * 3.0  # another "feature set": same rows, other columns
    config = ExperimentConfig(
        ["random", "mal_pann"], runs=1, loop=loop, strategy_params={"mal_pann": {"table": own}}
    )
    result = run_experiment(X, y, splits, config, progress=False)
    summary = summarise(result, "blobs")
    pann = [r for r in result.runs if r.strategy == "mal_pann"]
    assert all(r.curve.notes[-1]["pseudo_labels"] > 0 for r in pann)  # labels spread to clusters
    assert summary["strategies"]["mal_pann"]["ci80_low"][0] <= summary["strategies"]["mal_pann"]["mean"][0]


def test_auto_logs_where_each_batch_came_from_and_the_summary_plots_it(blobs, tmp_path) -> None:
    from listenloop.sim.plots import plot_learning_curves

    X, y, g = blobs
    splits = make_splits(y, g, "classification", folds=2)
    cfg = ExperimentConfig(
        strategies=["random", "auto"],
        learner="logreg",
        learner_params={"C": 1.0},
        runs=2,
        loop=LoopConfig(initial=10, batch=10, iterations=4, warmup=1),
    )
    result = run_experiment(X, y, splits, cfg, progress=False)
    summary = summarise(result, "blobs")
    assert "sources" not in summary["strategies"]["random"]
    sources = summary["strategies"]["auto"]["sources"]
    assert sources["labels"] == [20, 30, 40, 50]
    shares = sources["shares"]
    assert shares["warmup"] == [1.0, 0.0, 0.0, 0.0]  # the shared random warm-up batch
    assert shares["random_share"][1:] == [0.1, 0.1, 0.1]  # one clip of ten, every bandit batch
    totals = np.sum([v for v in shares.values()], axis=0)
    np.testing.assert_allclose(totals, 1.0, atol=1e-3)
    for r in result.runs:
        if r.strategy == "auto":
            assert [len(n.get("auto_clip_sources", [])) for n in r.curve.notes] == [0, 10, 10, 10]
    plain = plot_learning_curves(
        {**summary, "strategies": {"random": summary["strategies"]["random"]}}, tmp_path / "a.png"
    )
    both = plot_learning_curves(summary, tmp_path / "b.png")

    def width(png):  # the IHDR chunk's width field
        return int.from_bytes(png.read_bytes()[16:20], "big")

    assert width(both) > width(plain)  # the shares panel beside the curves
