"""Learners: the precomputed-kernel SVM equals libsvm's linear SVM, upsampling, registry."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.svm import SVC

from listenloop.errors import ListenloopError
from listenloop.learners import SignClassifier, SVMClassifier, make_learner, parse_params, upsample_indices


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=120, n_features=20, n_informative=6, n_classes=3, random_state=0)
    return X.astype(np.float32), np.array(["a", "b", "c"])[y]


def test_linear_svm_matches_libsvm_linear_kernel(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    ours = SVMClassifier(C=0.1, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = SVC(kernel="linear", C=0.1, probability=True, random_state=0).fit(X.astype(np.float64), y)
    # float32 kernels move the solution within libsvm's own stopping tolerance (1e-3), no further.
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X.astype(np.float64)), atol=1e-3)
    assert (ours.predict(X) == ref.predict(X.astype(np.float64))).mean() == 1.0  # libsvm's vote


@pytest.mark.parametrize("kernel", ["linear", "poly", "rbf"])
def test_svm_kernels_give_probabilities(data: tuple[np.ndarray, np.ndarray], kernel: str) -> None:
    X, y = data
    proba = SVMClassifier(kernel=kernel, C=1.0).fit(X, y).predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_svm_with_one_class_predicts_it() -> None:
    model = SVMClassifier().fit(np.zeros((3, 2)), np.array(["x", "x", "x"]))
    assert model.predict(np.ones((2, 2))).tolist() == ["x", "x"]


def test_sample_weights_change_the_fit(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    w = np.where(y == "a", 10.0, 0.1)
    a = SVMClassifier(C=1.0).fit(X, y).predict_proba(X)
    b = SVMClassifier(C=1.0).fit(X, y, sample_weight=w).predict_proba(X)
    assert not np.allclose(a, b)


def test_upsample_indices_balance_classes() -> None:
    y = np.array(["a"] * 8 + ["b"] * 2 + ["c"] * 1)
    idx = upsample_indices(y, np.random.default_rng(0))
    _, counts = np.unique(y[idx], return_counts=True)
    assert counts.tolist() == [8, 8, 8]
    assert set(np.flatnonzero(y == "a").tolist()) <= set(idx.tolist())


def test_upsampled_learner(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    keep = np.concatenate([np.flatnonzero(y == "a"), np.flatnonzero(y != "a")[:10]])
    model = make_learner("logreg", upsample=True, C=1.0).fit(X[keep], y[keep])
    assert model.predict_proba(X).shape[1] == len(np.unique(y[keep]))


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("svm", "classification"),
        ("logreg", "classification"),
        ("rf", "classification"),
        ("svr", "regression"),
        ("rf", "regression"),
        ("ridge", "regression"),
    ],
)
def test_registry_builds_every_learner(data: tuple[np.ndarray, np.ndarray], name: str, task: str) -> None:
    X, y = data
    target = y if task == "classification" else X[:, 0] * 3.0
    model = make_learner(name, task).fit(X, target)
    assert len(model.predict(X)) == len(X)


def test_registry_errors() -> None:
    with pytest.raises(ListenloopError, match="unknown classification learner"):
        make_learner("tree")
    with pytest.raises(ListenloopError, match="classification"):
        make_learner("svr", "regression", upsample=True)


def test_parse_params() -> None:
    assert parse_params("C=0.1,kernel=rbf,degree=3,class_weight=none") == {
        "C": 0.1,
        "kernel": "rbf",
        "degree": 3,
        "class_weight": None,
    }
    with pytest.raises(ListenloopError):
        parse_params("C")


def test_sign_classifier_uses_the_median_by_default() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = 5 + 3 * X[:, 0]
    clf = SignClassifier().fit(X, y)
    assert clf.centre_ == pytest.approx(np.median(y))
    assert (clf.predict(X) == (y > clf.centre_)).mean() > 0.9
