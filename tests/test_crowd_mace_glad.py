"""MACE (Hovy et al. 2013) and GLAD (Whitehill et al. 2009) on a seeded synthetic crowd."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.aggregation.glad import GLAD
from listenloop.crowd.aggregation.mace import MACE

GOOD = [f"g{j}" for j in range(8)]
SPAM = ["c0", "c1", "r0", "r1"]


def synthetic_crowd(seed: int = 0, n_items: int = 400, n_classes: int = 3, per_item: int = 5, p=None):
    """8 good workers (accuracy 0.7-0.9), 2 constant and 2 uniformly random spammers."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(n_classes, size=n_items, p=p or [0.6, 0.25, 0.15])
    acc = dict(zip(GOOD, np.linspace(0.7, 0.9, len(GOOD)), strict=True))
    rows = []
    workers = GOOD + SPAM
    for i in range(n_items):
        for w in rng.choice(workers, size=per_item, replace=False):
            if w.startswith("g"):
                t = truth[i]
                label = t if rng.random() < acc[w] else rng.choice([k for k in range(n_classes) if k != t])
            elif w.startswith("c"):
                label = int(w[1]) % n_classes
            else:
                label = rng.integers(n_classes)
            rows.append((i, w, int(label)))
    answers = pd.DataFrame(rows, columns=["item", "worker", "label"])
    return answers, pd.Series(truth.astype(str), index=np.arange(n_items).astype(str))


def majority_accuracy(answers: pd.DataFrame, truth: pd.Series) -> float:
    votes = answers.astype(str).groupby(["item", "label"]).size().unstack(fill_value=0)
    return float((votes.idxmax(axis=1) == truth[votes.index]).mean())


@pytest.fixture(scope="module")
def crowd():
    return synthetic_crowd()


@pytest.mark.parametrize("make", [MACE, GLAD])
def test_beats_majority_and_spots_spammers(make, crowd) -> None:
    answers, truth = crowd
    model = make().fit(answers)
    acc = float((model.labels_ == truth[model.labels_.index]).mean())
    assert acc >= majority_accuracy(answers, truth)
    np.testing.assert_allclose(model.probas_.sum(axis=1), 1.0)
    if make is MACE:
        assert model.skills_[SPAM].max() < model.skills_[GOOD].min()
    else:  # one-coin GLAD: a constant "0" on a 60 %-"0" set is right 60 % of the time
        assert model.skills_[["c1", "r0", "r1"]].max() < model.skills_[GOOD].min()


def test_glad_ability_on_balanced_classes() -> None:
    answers, _ = synthetic_crowd(seed=1, p=[1 / 3, 1 / 3, 1 / 3])
    model = GLAD().fit(answers)
    assert model.skills_[SPAM].max() < model.skills_[GOOD].min()


def test_mace_competence_and_priors(crowd) -> None:
    answers, _ = crowd
    model = MACE().fit(answers)
    pd.testing.assert_series_equal(model.competence_, model.skills_.rename("competence"))
    assert ((model.competence_ > 0) & (model.competence_ < 1)).all()
    assert model.prior_.idxmax() == "0"
    uniform = MACE(class_prior="uniform").fit(answers)
    np.testing.assert_allclose(uniform.prior_, 1 / 3)


def test_glad_difficulty(crowd) -> None:
    answers, _ = crowd
    model = GLAD().fit(answers)
    assert (model.difficulty_ > 0).all()
    assert list(model.difficulty_.index) == list(model.probas_.index)


@pytest.mark.parametrize("make", [MACE, GLAD])
def test_row_order_and_id_dtype_do_not_matter(make, crowd) -> None:
    answers, _ = crowd
    base = make().fit(answers)
    shuffled = answers.sample(frac=1.0, random_state=3).astype(str)
    other = make().fit(shuffled)
    pd.testing.assert_frame_equal(base.probas_, other.probas_)
    pd.testing.assert_series_equal(base.skills_, other.skills_)


def test_mace_restarts_are_seeded(crowd) -> None:
    answers, _ = crowd
    a = MACE(random_state=7).fit(answers)
    b = MACE(random_state=7).fit(answers)
    pd.testing.assert_frame_equal(a.probas_, b.probas_)
    assert a.log_likelihood_ == b.log_likelihood_
    # more restarts never end at a worse optimum than the majority-vote start alone
    one = MACE(n_restarts=1).fit(answers)
    assert a.log_likelihood_ >= one.log_likelihood_ - 1e-6
