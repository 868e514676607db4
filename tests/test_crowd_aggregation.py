"""Categorical aggregators (MV, trust-weighted vote, Dawid-Skene) and numeric-rating aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.aggregation.continuous import mean_ratings, median_ratings, trust_weighted_mean
from listenloop.crowd.aggregation.dawid_skene import DawidSkene
from listenloop.crowd.aggregation.majority_vote import MajorityVote
from listenloop.crowd.aggregation.trust_weighted_vote import TrustWeightedVote
from listenloop.crowd.worker_prior import PRIOR_TRUST
from listenloop.errors import ListenloopError


def table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item", "worker", "label"])


TINY = table(
    [
        ("a", "w1", "x"),
        ("a", "w2", "x"),
        ("a", "w3", "y"),
        ("b", "w1", "y"),
        ("b", "w2", "y"),
        ("c", "w1", "y"),  # c ties 1-1: "x" wins, being first in sort order
        ("c", "w3", "x"),
    ]
)


def test_majority_vote_labels_shares_and_skills() -> None:
    mv = MajorityVote().fit(TINY)
    assert mv.labels_.to_dict() == {"a": "x", "b": "y", "c": "x"}
    np.testing.assert_allclose(mv.probas_.loc["a"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(mv.probas_.loc["c"], [0.5, 0.5])
    np.testing.assert_allclose(mv.probas_.sum(axis=1), 1.0)
    # w1 agrees on a, b, not c; w2 on both; w3 on c only
    np.testing.assert_allclose(mv.skills_[["w1", "w2", "w3"]], [2 / 3, 1.0, 0.5])


def test_majority_vote_tie_goes_to_first_class_in_sort_order_whatever_the_row_order() -> None:
    for rows in ([("i", "u", "1"), ("i", "v", "0")], [("i", "v", "0"), ("i", "u", "1")]):
        assert MajorityVote().fit_predict(table(rows))["i"] == "0"
    shuffled = TINY.sample(frac=1, random_state=3)
    assert MajorityVote().fit_predict(shuffled).to_dict() == {"a": "x", "b": "y", "c": "x"}


def test_trusted_minority_beats_untrusted_majority() -> None:
    rows = [("t", w, "no") for w in ("u1", "u2", "u3")] + [("t", w, "yes") for w in ("g1", "g2")]
    answers = table([*rows, ("s", "new", "no")])
    trust = {"u1": 0.1, "u2": 0.1, "u3": 0.1, "g1": 0.9, "g2": 0.9}
    assert MajorityVote().fit_predict(answers)["t"] == "no"
    twv = TrustWeightedVote(trust).fit(answers)
    assert twv.labels_["t"] == "yes"
    assert twv.probas_.loc["t", "yes"] == pytest.approx(1.8 / 2.1)
    assert twv.skills_["g1"] == 0.9 and twv.skills_["new"] == PRIOR_TRUST  # unknown worker: the prior
    assert TrustWeightedVote(pd.Series(trust)).fit_predict(answers)["t"] == "yes"


def synthetic_crowd(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """300 items, 3 classes, 10 workers: 7 decent (70 % right), 2 adversarial (systematic shift), 1 random."""
    rng = np.random.default_rng(seed)
    n_items, k = 300, 3
    truth = rng.integers(0, k, n_items)
    rows = []
    for w in range(10):
        answered = np.flatnonzero(rng.random(n_items) < 0.6)
        true = truth[answered]
        if w < 7:
            wrong = rng.random(len(answered)) > 0.7
            given = np.where(wrong, (true + rng.integers(1, k, len(answered))) % k, true)
        elif w < 9:
            given = (true + 1) % k
        else:
            given = rng.integers(0, k, len(answered))
        rows += [(str(i), str(w), str(g)) for i, g in zip(answered, given, strict=True)]
    truth_s = pd.Series(truth.astype(str), index=pd.Index([str(i) for i in range(n_items)], name="item"))
    return table(rows), truth_s


def accuracy(labels: pd.Series, truth: pd.Series) -> float:
    common = labels.index.intersection(truth.index)
    return float((labels[common] == truth[common]).mean())


def test_dawid_skene_beats_majority_vote_on_a_crowd_with_adversaries() -> None:
    answers, truth = synthetic_crowd()
    ds = DawidSkene().fit(answers)
    mv_acc = accuracy(MajorityVote().fit_predict(answers), truth)
    ds_acc = accuracy(ds.labels_, truth)
    assert ds_acc > mv_acc + 0.05, (ds_acc, mv_acc)
    np.testing.assert_allclose(ds.probas_.sum(axis=1), 1.0)
    assert ds.skills_[[str(w) for w in range(7)]].min() > ds.skills_[["7", "8", "9"]].max()
    assert ds.prior_.sum() == pytest.approx(1.0)
    with pytest.raises(ListenloopError, match="smoothing"):
        DawidSkene(smoothing=0).fit(answers)


def test_dawid_skene_ignores_row_order_and_id_spelling() -> None:
    answers, _ = synthetic_crowd(1)
    base = DawidSkene().fit(answers)
    shuffled = DawidSkene().fit(answers.sample(frac=1, random_state=7))
    np.testing.assert_allclose(shuffled.probas_.to_numpy(), base.probas_.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(shuffled.skills_.to_numpy(), base.skills_.to_numpy(), atol=1e-9)

    # Other strings, sorting in another order than the ints-as-strings ("10" < "2" but "i010" > "i002").
    items = {str(i): f"i{299 - i:03d}" for i in range(300)}
    workers = {str(w): f"w{9 - w}" for w in range(10)}
    renamed = answers.assign(item=answers["item"].map(items), worker=answers["worker"].map(workers))
    other = DawidSkene().fit(renamed)
    back = other.probas_.rename(index={v: k for k, v in items.items()}).loc[base.probas_.index]
    np.testing.assert_allclose(back.to_numpy(), base.probas_.to_numpy(), atol=1e-9)
    skills = other.skills_.rename(index={v: k for k, v in workers.items()}).loc[base.skills_.index]
    np.testing.assert_allclose(skills.to_numpy(), base.skills_.to_numpy(), atol=1e-9)


RATINGS = table([("a", "w1", "1"), ("a", "w2", "2"), ("a", "w3", "6"), ("b", "w1", "4"), ("b", "w4", " 4.5")])


def test_mean_and_median_ratings() -> None:
    assert mean_ratings(RATINGS).to_dict() == {"a": 3.0, "b": 4.25}
    assert median_ratings(RATINGS).to_dict() == {"a": 2.0, "b": 4.25}


def test_trust_weighted_mean() -> None:
    got = trust_weighted_mean(RATINGS, {"w1": 1.0, "w2": 0.0, "w3": 0.5})  # w4 unknown: the prior
    assert got["a"] == pytest.approx((1 * 1 + 0.5 * 6) / 1.5)
    q = PRIOR_TRUST
    assert got["b"] == pytest.approx((1 * 4 + q * 4.5) / (1 + q))
    with pytest.raises(ListenloopError, match="trust 0"):
        trust_weighted_mean(RATINGS, {"w1": 0.0}, default_trust=0.0)


def test_non_numeric_rating_names_its_line() -> None:
    bad = table([("a", "w1", "1"), ("a", "w2", "abc")])
    for fn in (mean_ratings, median_ratings, trust_weighted_mean):
        with pytest.raises(ListenloopError, match="answers line 3: 'abc' is not a number"):
            fn(bad)
