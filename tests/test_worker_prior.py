"""The prior of a worker known by accuracy alone: errors not spread uniformly over many classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.aggregation.dawid_skene import DawidSkene
from listenloop.crowd.redundancy import DynamicPolicy, answer_weights, bayes_posterior
from listenloop.crowd.worker_model import WorkerModel, fit_project_skills, stored_evidence
from listenloop.crowd.worker_prior import (
    ERROR_SHARE,
    PRIOR_TRUST,
    class_prior,
    error_share,
    least_informative,
    pooled_error_shares,
    unknown_confusion,
)

POLICY = DynamicPolicy(2, 7, 0.95)


def agreeing(n: int, k: int, q: float = PRIOR_TRUST) -> float:
    """Posterior of the class that `n` agreeing answers at accuracy `q` name among `k`."""
    return float(bayes_posterior(np.zeros(n, dtype=np.int64), np.full(n, q), k)[0])


def test_binary_three_agreeing_newcomers_finish_and_two_do_not() -> None:
    assert agreeing(3, 2) == pytest.approx(27 / 28)
    assert agreeing(2, 2) == pytest.approx(0.9)
    classes = ["0", "1"]
    assert POLICY.decide(np.array(["0"] * 3), np.full(3, PRIOR_TRUST), classes).done
    assert not POLICY.decide(np.array(["0"] * 2), np.full(2, PRIOR_TRUST), classes).done


def test_the_evidence_against_the_strongest_alternative_does_not_grow_with_the_classes() -> None:
    """Uniform spreading made two agreeing newcomers finish a ten-class clip (0.988); with the
    prior's concentrated errors they do not (0.80), three do (0.96), and two annotators whose
    checks put them at 0.9 still do (0.97)."""
    assert agreeing(2, 10) == pytest.approx(36 / 45)
    assert agreeing(3, 10) == pytest.approx(216 / 225)
    assert agreeing(2, 10, 0.9) == pytest.approx(324 / 333)
    ratios = []
    for k in (3, 4, 10, 50):
        m = unknown_confusion(np.array([PRIOR_TRUST]), k)[0]
        ratios.append(m[0, 0] / m[0, 1:].max())  # answer 0: true 0 against the strongest alternative
    assert ratios == pytest.approx([6.0] * 4)
    classes = [str(c) for c in range(10)]
    assert not POLICY.decide(np.array(["3", "3"]), np.full(2, PRIOR_TRUST), classes).done
    assert POLICY.decide(np.array(["3"] * 3), np.full(3, PRIOR_TRUST), classes).done


def test_two_or_three_classes_keep_uniform_spreading() -> None:
    assert error_share(2) == 1.0 and error_share(3) == ERROR_SHARE == 0.5 and error_share(10) == 0.5
    np.testing.assert_allclose(unknown_confusion(np.array([0.8]), 2)[0], [[0.8, 0.2], [0.2, 0.8]])
    assert least_informative(2) == pytest.approx(0.5) and least_informative(10) == pytest.approx(1 / 3)
    assert agreeing(5, 10, 1 / 3) == pytest.approx(0.1, abs=0.01)  # no evidence at or below that accuracy


def test_every_path_uses_the_same_prior() -> None:
    """The request path's fallback (no stored matrix), a worker model's unseen worker and the
    trust-only posterior give the same ten-class posterior for the same answers."""
    classes = [str(c) for c in range(10)]
    labels = ["4", "4", "7"]
    ev = stored_evidence(labels, [None] * 3, [PRIOR_TRUST] * 3, classes)
    rows = [(f"i{i}", f"w{i % 3}", str(i % 10)) for i in range(30)]
    ds = DawidSkene().fit(pd.DataFrame(rows, columns=["item", "worker", "label"]), classes)
    model = WorkerModel.from_dawid_skene(ds)
    model = WorkerModel(**{**model.__dict__, "error_shares": None})
    fresh = model.evidence(["new1", "new2", "new3"], labels, classes)
    trust_only = bayes_posterior(np.array([4, 4, 7]), np.full(3, PRIOR_TRUST), 10)

    def post(e: np.ndarray) -> np.ndarray:
        p = np.exp(e.sum(axis=0) - e.sum(axis=0).max())
        return p / p.sum()

    np.testing.assert_allclose(post(ev), trust_only)
    np.testing.assert_allclose(post(fresh), trust_only)


def test_pooled_error_shares_follow_the_crowds_confusions() -> None:
    """A crowd that reads 'a' as 'b' pools its errors on true a to b; an unknown worker's answer
    'b' then counts as likely under true a as the crowd's errors say, at least the prior's share."""
    errors = np.array([[[0.7, 0.0, 0.1], [0.3, 0.9, 0.1], [0.0, 0.1, 0.8]]] * 2)
    seen = np.ones((2, 3))
    shares = pooled_error_shares(errors, seen)
    np.testing.assert_allclose(shares[:, 0], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(shares.sum(axis=0), 1.0)
    m = unknown_confusion(np.array([0.75]), 3, shares)[0]
    assert m[1, 0] == pytest.approx(0.25) and m[2, 0] == pytest.approx(0.125)


def test_fitted_matrices_shrink_towards_the_concentrated_prior() -> None:
    """Ten classes, a worker seen once: their matrix stays near the prior's likelihood table, so
    one answer counts against the strongest alternative about as the prior says (not 27 to 1)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        truth = str(i % 10)
        for w in ("g1", "g2", "g3"):
            rows.append((f"i{i}", w, truth if rng.random() < 0.9 else str(rng.integers(10))))
    rows.append(("i0", "newbie", "0"))
    answers = pd.DataFrame(rows, columns=["item", "worker", "label"])
    fit = fit_project_skills(answers, [str(c) for c in range(10)], {"newbie": PRIOR_TRUST})
    m = fit.confusion[fit.workers.index("newbie")]
    ratio = m[5, 5] / m[5, [c for c in range(10) if c != 5]].max()
    assert 4.0 < ratio < 8.0  # the prior's 6, not uniform spreading's 27


def test_the_class_prior_before_a_fit_is_uniform_without_answers_and_finds_a_rare_class() -> None:
    """10 % positives answered three times by a crowd at 0.75: about 30 % of the answers say
    positive, the estimate undoes the errors; with no answers (or balanced ones) it is uniform,
    so three agreeing newcomers still finish a balanced binary clip."""
    np.testing.assert_allclose(
        class_prior(np.array([]), np.array([], dtype=np.int64), np.array([]), 2), [0.5, 0.5]
    )
    rng = np.random.default_rng(0)
    truth = (rng.random(600) < 0.1).astype(np.int64)
    items = np.repeat(np.arange(600), 3)
    right = rng.random(len(items)) < PRIOR_TRUST
    codes = np.where(right, truth[items], 1 - truth[items])
    prior = class_prior(items, codes, np.full(len(codes), PRIOR_TRUST), 2)
    assert codes.mean() > 0.25
    assert prior[1] == pytest.approx(truth.mean(), abs=0.03)
    balanced = class_prior(np.arange(4).repeat(3), np.array([0] * 6 + [1] * 6), np.full(12, PRIOR_TRUST), 2)
    np.testing.assert_allclose(balanced, [0.5, 0.5])
    assert POLICY.decide(
        np.array(["1"] * 3), np.full(3, PRIOR_TRUST), ["0", "1"], None, np.log(balanced)
    ).done
    rare = np.log(prior)
    assert not POLICY.decide(np.array(["1"] * 3), np.full(3, PRIOR_TRUST), ["0", "1"], None, rare).done
    # replay and simulate-crowd get the same estimate from their answers (`answer_weights`)
    labels = codes.astype(str)
    _, _, log_prior = answer_weights({}, np.array(["w"] * len(labels)), labels, ["0", "1"], items)
    np.testing.assert_allclose(np.exp(log_prior), prior)
