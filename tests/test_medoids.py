"""Medoid active learning (003_ section 3): distances, k-medoids order, label propagation."""

from __future__ import annotations

import numpy as np
import pytest

from listenloop.errors import ListenloopError
from listenloop.features.spectral import MFCC, mfcc_gaussians
from listenloop.strategies.base import QueryContext
from listenloop.strategies.medoids import (
    MAL,
    MedoidActiveLearning,
    cosine_distances,
    gaussian_kl_distances,
)
from listenloop.strategies.registry import allowed_strategies, strategy_problem


def test_symmetric_kl_matrix_equals_the_per_pair_formula() -> None:
    rng = np.random.default_rng(0)
    m, v = rng.normal(size=(6, 4)), rng.uniform(0.2, 3.0, size=(6, 4))
    D = gaussian_kl_distances(m, v)

    def kl(i: int, j: int) -> float:  # KL(N_i || N_j), diagonal
        return 0.5 * float(np.sum(v[i] / v[j] + (m[j] - m[i]) ** 2 / v[j] - 1 + np.log(v[j] / v[i])))

    ref = np.array([[kl(i, j) + kl(j, i) for j in range(6)] for i in range(6)])
    assert np.allclose(D, ref) and np.allclose(np.diag(D), 0)


def test_cosine_distance_is_one_minus_cosine() -> None:
    X = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.0, 0.0]])
    D = cosine_distances(X)
    assert np.isclose(D[0, 1], 1.0) and np.isclose(D[0, 2], 1 - 1 / np.sqrt(2)) and D[3, 0] == 1.0


def test_mfcc_gaussians_read_the_mean_and_var_functionals() -> None:
    ex = MFCC()
    row = np.arange(ex.dim, dtype=np.float32)[None]
    means, variances = mfcc_gaussians(row)
    names = np.array(ex.names)
    assert all(n.endswith("_mean") for n in names[means[0].astype(int)])
    assert all(n.endswith("_var") for n in names[variances[0].astype(int)])
    with pytest.raises(ValueError):
        mfcc_gaussians(np.zeros((1, 10)))


def _blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three clusters of 40, 25 and 10 clips around directions (cosine separates them)."""
    rng = np.random.default_rng(1)
    centres = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    y = np.repeat([0, 1, 2], [40, 25, 10])
    return centres[y] + rng.normal(size=(len(y), 3)), y.astype(str)


def test_medoids_are_asked_largest_cluster_first_and_their_labels_spread() -> None:
    X, y = _blobs()
    labelled = np.array([], dtype=np.int64)
    pool = np.arange(len(X))
    strat = MedoidActiveLearning()
    ctx = QueryContext(None, X, pool, labelled, y[:0], 0, np.random.default_rng(0), planned=3)
    picked = strat.select(ctx, 3)
    assert [y[p] for p in picked] == ["0", "1", "2"]  # cluster sizes 40, 25, 10
    rest = np.setdiff1d(pool, picked[:2])
    ctx = QueryContext(None, X, rest, picked[:2], y[picked[:2]], 1, np.random.default_rng(0))
    rows, labels = strat.pseudo_labels(ctx, exclude=np.empty(0, dtype=np.int64))
    assert len(rows) == 40 + 25 - 2 and (labels == y[rows]).all()  # cluster 3's medoid is not labelled
    more = strat.select(ctx, 3)  # one medoid left, then random candidates
    assert more[0] == picked[2] and len(more) == 3 and set(more) <= set(rest.tolist())


def test_mal_needs_the_mfcc_table_and_runs_in_simulate_only() -> None:
    X, y = _blobs()
    ctx = QueryContext(None, X, np.arange(len(X)), np.empty(0, int), y[:0], 0, np.random.default_rng(0))
    with pytest.raises(ListenloopError, match="mal_pann"):
        MAL().select(ctx, 2)
    assert MAL.feature_set == "mfcc" and MedoidActiveLearning.feature_set is None
    assert "mal" in allowed_strategies() and "mal" not in allowed_strategies(platform=True)
    assert strategy_problem("mal", platform=True) and strategy_problem("mal_pann", platform=True) is None
    assert strategy_problem("mal", "regression")
