"""Chunked pool scoring: fused float32 path against predict_proba, chunking, memmaps, subsets,
and query batches equal to exact float64 selection and to modAL's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from listenloop.strategies import uncertainty
from listenloop.strategies.scoring import _fused_head, query_top, score_pool
from listenloop.strategies.selection import top_k

MEASURES = ["least_confidence", "margin", "entropy", "confidence"]
EXACT = {**uncertainty.MEASURES, "confidence": uncertainty.confidence}


def _data(n: int, classes: int, dims: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dims)) * 0.8
    y = rng.integers(classes, size=n)
    X = (rng.standard_normal((n, dims)) + centres[y]).astype(np.float32)
    return X, y


@pytest.fixture(
    scope="module",
    params=[(7, np.float32), (2, np.float32), (7, np.float64), (2, np.float64)],
    ids=["multiclass", "binary", "multiclass-f64fit", "binary-f64fit"],
)
def fitted(request: pytest.FixtureRequest) -> tuple[LogisticRegression, np.ndarray]:
    """A logistic regression fitted on 300 rows (float32 or float64 ones) and a float32 pool of 3000."""
    classes, fit_dtype = request.param
    X, y = _data(3000, classes)
    model = LogisticRegression(max_iter=1000).fit(X[:300].astype(fit_dtype), y[:300])
    return model, X


@pytest.mark.parametrize("measure", MEASURES)
def test_fused_matches_predict_proba(fitted: tuple[LogisticRegression, np.ndarray], measure: str) -> None:
    model, X = fitted
    assert _fused_head(model) is not None
    fast = score_pool(model, X, measure)
    generic = score_pool(model, X, measure, fused=False)
    # scikit-learn >= 1.8 keeps float32 coefficients for float32 training data and then answers
    # float32 rows in float32; float64 rows give the float64 reference that modAL sees.
    exact = EXACT[measure](model.predict_proba(X.astype(np.float64)))
    assert fast.dtype == np.float32 and generic.dtype == np.float64
    np.testing.assert_allclose(generic, EXACT[measure](model.predict_proba(X)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast, generic, rtol=0, atol=5e-6)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=5e-6)


@pytest.mark.parametrize("measure", MEASURES)
def test_chunking_does_not_change_scores(fitted: tuple[LogisticRegression, np.ndarray], measure: str) -> None:
    model, X = fitted
    for fused in (True, False):
        big = score_pool(model, X, measure, chunk_rows=1 << 20, fused=fused)
        small = score_pool(model, X, measure, chunk_rows=7, fused=fused)
        np.testing.assert_allclose(small, big, rtol=0, atol=2e-6)


def test_memmap_pool(fitted: tuple[LogisticRegression, np.ndarray], tmp_path) -> None:
    model, X = fitted
    path = tmp_path / "pool.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    pool = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    np.testing.assert_array_equal(
        score_pool(model, pool, "margin", chunk_rows=500), score_pool(model, X, "margin")
    )
    np.testing.assert_array_equal(
        query_top(model, pool, "entropy", 25, chunk_rows=500), query_top(model, X, "entropy", 25)
    )


def test_subset_scores_only_those_rows(fitted: tuple[LogisticRegression, np.ndarray]) -> None:
    model, X = fitted
    subset = np.array([2999, 5, 17, 400, 5])
    full = score_pool(model, X, "least_confidence")
    np.testing.assert_array_equal(
        score_pool(model, X, "least_confidence", subset=subset, chunk_rows=2), full[subset]
    )
    top = query_top(model, X, "least_confidence", 2, subset=subset)
    assert set(top.tolist()) <= set(subset.tolist()) and len(set(top.tolist())) == 2
    mask = np.zeros(len(X), dtype=bool)
    mask[[1, 2, 3]] = True
    assert len(score_pool(model, X, "entropy", subset=mask)) == 3


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("chunk_rows", [64, 65536])
def test_query_top_is_exact_top_k(
    fitted: tuple[LogisticRegression, np.ndarray], measure: str, chunk_rows: int
) -> None:
    model, X = fitted
    exact = EXACT[measure](model.predict_proba(X.astype(np.float64)))
    for k in (1, 30, 200):
        np.testing.assert_array_equal(query_top(model, X, measure, k, chunk_rows=chunk_rows), top_k(exact, k))
    assert len(query_top(model, X, measure, 10**6)) == len(X)
    assert len(query_top(model, X, measure, 0)) == 0


def test_query_top_equals_modal(fitted: tuple[LogisticRegression, np.ndarray]) -> None:
    from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling

    model, X = fitted
    X64 = X.astype(np.float64)
    peers = {"least_confidence": uncertainty_sampling, "margin": margin_sampling, "entropy": entropy_sampling}
    for measure, peer in peers.items():
        theirs = peer(model, X64, n_instances=30)[0]
        assert set(query_top(model, X, measure, 30, chunk_rows=256).tolist()) == set(theirs.tolist())


def test_pipeline_takes_fused_path() -> None:
    X, y = _data(2000, 5)
    X = X * 50 + 10
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[:300], y[:300])
    assert _fused_head(model) is not None
    exact = uncertainty.margin(model.predict_proba(X.astype(np.float64)))
    np.testing.assert_allclose(score_pool(model, X, "margin", chunk_rows=300), exact, atol=2e-6)
    np.testing.assert_array_equal(query_top(model, X, "margin", 30, chunk_rows=300), top_k(exact, 30))


def test_generic_model_path() -> None:
    X, y = _data(1500, 4)
    model = RandomForestClassifier(n_estimators=15, random_state=0).fit(X[:300], y[:300])
    assert _fused_head(model) is None
    proba = model.predict_proba(X)
    for measure in MEASURES:
        exact = EXACT[measure](proba)
        np.testing.assert_allclose(score_pool(model, X, measure, chunk_rows=100), exact)
        np.testing.assert_array_equal(query_top(model, X, measure, 20, chunk_rows=100), top_k(exact, 20))


def test_bad_arguments(fitted: tuple[LogisticRegression, np.ndarray]) -> None:
    model, X = fitted
    with pytest.raises(ValueError, match="unknown measure"):
        score_pool(model, X, "nope")
    with pytest.raises(ValueError, match="out of range"):
        score_pool(model, X, "margin", subset=np.array([len(X)]))
    with pytest.raises(ValueError, match="chunk_rows"):
        score_pool(model, X, "margin", chunk_rows=0)


def test_dataframe_and_sparse_pools(fitted: tuple[LogisticRegression, np.ndarray]) -> None:
    import pandas as pd
    import scipy.sparse

    model, X = fitted
    exact = uncertainty.entropy(model.predict_proba(X.astype(np.float64)))
    frame = pd.DataFrame(X)
    np.testing.assert_allclose(score_pool(model, frame, "entropy", chunk_rows=100), exact, atol=5e-6)
    sparse = scipy.sparse.csr_matrix(X)
    np.testing.assert_allclose(score_pool(model, sparse, "entropy", chunk_rows=100), exact, atol=5e-6)
    assert set(query_top(model, sparse, "entropy", 10).tolist()) == set(top_k(exact, 10).tolist())
