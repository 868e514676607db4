"""CROWDLAB consensus (the model as a weighted annotator) and ActiveLab's relabel-or-new score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.activelab import relabel_scores
from listenloop.crowd.aggregation.crowdlab import CrowdLab, best_temperature, temperature_scale
from listenloop.crowd.aggregation.dawid_skene import DawidSkene
from listenloop.crowd.aggregation.majority_vote import MajorityVote
from listenloop.errors import ListenloopError


def crowd(
    seed: int = 0, n_items: int = 300, k: int = 3, skills: tuple[float, ...] = (0.8, 0.75, 0.7, 0.7, 0.65)
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every worker answers every item: right with their skill, else a random other class."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    rows = []
    for w, skill in enumerate(skills):
        wrong = rng.random(n_items) > skill
        given = np.where(wrong, (truth + rng.integers(1, k, n_items)) % k, truth)
        rows += [(str(i), f"w{w}", str(g)) for i, g in enumerate(given)]
    return pd.DataFrame(rows, columns=["item", "worker", "label"]), truth


def model_probas(
    truth: np.ndarray, k: int, accuracy: float, seed: int, confidence: float = 0.8
) -> pd.DataFrame:
    """A classifier right on a share `accuracy` of the items, `confidence` on its pick."""
    rng = np.random.default_rng(seed)
    pick = np.where(rng.random(len(truth)) < accuracy, truth, (truth + rng.integers(1, k, len(truth))) % k)
    p = np.full((len(truth), k), (1 - confidence) / (k - 1))
    p[np.arange(len(truth)), pick] = confidence
    return pd.DataFrame(p, index=[str(i) for i in range(len(truth))], columns=[str(c) for c in range(k)])


def accuracy(labels: pd.Series, truth: np.ndarray) -> float:
    return float((labels.sort_index(key=lambda s: s.astype(int)).to_numpy() == truth.astype(str)).mean())


def test_good_model_weighs_more_than_bad_one_and_lifts_accuracy() -> None:
    answers, truth = crowd(skills=(0.7, 0.65, 0.6))
    good = CrowdLab(model_probas(truth, 3, 0.9, 1)).fit(answers)
    bad = CrowdLab(model_probas(truth, 3, 0.4, 1)).fit(answers)
    assert good.model_weight_ > 3 * bad.model_weight_
    # a model as good as a better-than-average annotator counts for more than any one of them
    assert good.model_weight_ > good.annotator_weights_.max()
    mv = accuracy(MajorityVote().fit_predict(answers), truth)
    assert accuracy(good.labels_, truth) > mv + 0.05
    assert accuracy(bad.labels_, truth) >= mv - 0.02


def test_annotator_weights_follow_their_skill() -> None:
    answers, truth = crowd(skills=(0.9, 0.75, 0.6, 0.45), n_items=600)
    lab = CrowdLab(model_probas(truth, 3, 0.8, 2)).fit(answers)
    w = lab.annotator_weights_
    assert w["w0"] > w["w1"] > w["w2"] > w["w3"]
    assert (lab.skills_ == w).all()
    assert np.allclose(lab.probas_.sum(axis=1), 1.0)


def test_agrees_with_dawid_skene_on_a_clear_set() -> None:
    answers, truth = crowd(skills=(0.9, 0.85, 0.85, 0.8, 0.8), n_items=400, k=4)
    lab = CrowdLab(model_probas(truth, 4, 0.85, 3)).fit(answers)
    ds = DawidSkene().fit(answers)
    assert (lab.labels_ == ds.labels_).mean() >= 0.98
    assert accuracy(lab.labels_, truth) >= 0.98


def test_uninformative_model_reduces_to_majority_vote() -> None:
    answers, _ = crowd(skills=(0.75, 0.75, 0.75), n_items=300)
    flat = pd.DataFrame(1 / 3, index=[str(i) for i in range(300)], columns=["0", "1", "2"])
    lab = CrowdLab(flat).fit(answers)
    assert lab.model_weight_ < 1e-3
    mv = MajorityVote().fit(answers)
    strict = mv.probas_.max(axis=1) > 0.5  # a strict majority (no three-way split)
    assert strict.sum() > 250
    assert (lab.labels_[strict] == mv.labels_[strict]).all()


def test_model_breaks_a_tie_and_overrules_a_lone_answer_when_trusted() -> None:
    answers, truth = crowd(skills=(0.8, 0.8, 0.8, 0.8), n_items=300)
    probas = model_probas(truth, 3, 0.95, 4, confidence=0.9)
    # item x: two answers split 0 / 1; the model says 1
    extra = pd.DataFrame([("x", "w0", "0"), ("x", "w1", "1")], columns=["item", "worker", "label"])
    probas.loc["x"] = [0.05, 0.9, 0.05]
    lab = CrowdLab(probas).fit(pd.concat([answers, extra]))
    assert lab.labels_["x"] == "1"


def test_missing_model_rows_is_a_clear_error() -> None:
    answers, truth = crowd(n_items=20)
    probas = model_probas(truth, 3, 0.9, 0).iloc[:10]
    with pytest.raises(ListenloopError, match="no model probabilities for 10 item"):
        CrowdLab(probas).fit(answers)
    with pytest.raises(ListenloopError, match="no column for class"):
        CrowdLab(model_probas(truth, 3, 0.9, 0)[["0", "1"]]).fit(answers)


def test_single_answers_use_the_prior_weights() -> None:
    answers = pd.DataFrame([("a", "w0", "0"), ("b", "w1", "1")], columns=["item", "worker", "label"])
    probas = pd.DataFrame([[0.5, 0.5], [0.9, 0.1]], index=["a", "b"], columns=["0", "1"])
    lab = CrowdLab(probas).fit(answers)
    assert lab.model_weight_ == 1.0 and (lab.annotator_weights_ == 1.0).all()
    assert lab.labels_["a"] == "0"  # the answer (0.75) against an undecided model
    assert lab.probas_.loc["b", "1"] == pytest.approx((0.1 + 0.75) / 2)


# --- ActiveLab: relabel or label new -------------------------------------------------------


def heard_and_new(model_on_new: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A crowd of four that answered items 0..199 twice each (split on item "split", agreeing on
    "agreed"), and new items n0..n9 on which the model says `model_on_new` for its top class."""
    answers, truth = crowd(skills=(0.85, 0.85, 0.8, 0.8), n_items=200)
    answers = answers[answers["worker"].isin(["w0", "w1"])]
    probas = model_probas(truth, 3, 0.85, 5)
    extra = [("split", "w0", "0"), ("split", "w1", "1"), ("agreed", "w0", "2"), ("agreed", "w1", "2")]
    answers = pd.concat([answers, pd.DataFrame(extra, columns=["item", "worker", "label"])])
    probas.loc["split"] = [0.4, 0.4, 0.2]
    probas.loc["agreed"] = [0.1, 0.1, 0.8]
    rest = (1 - model_on_new) / 2
    for n in range(10):
        probas.loc[f"n{n}"] = [model_on_new, rest, rest]
    return answers, probas


def test_split_clip_outranks_new_clips_the_model_is_sure_of() -> None:
    answers, probas = heard_and_new(0.98)
    scores = relabel_scores(answers, probas, calibrate=False)
    assert scores.heard["split"] < scores.new.min()
    order = scores.order()
    assert order.index("split") < min(order.index(f"n{n}") for n in range(10))
    assert len(order) == len(probas)


def test_new_clips_the_model_cannot_place_outrank_an_agreed_clip() -> None:
    answers, probas = heard_and_new(1 / 3 + 0.01)
    scores = relabel_scores(answers, probas, calibrate=False)
    assert scores.new.max() < scores.heard["agreed"]
    assert scores.heard["split"] < scores.heard["agreed"]


def test_more_agreeing_answers_lower_the_need_to_ask_again() -> None:
    answers, probas = heard_and_new(0.9)
    more = pd.concat(
        [
            answers,
            pd.DataFrame([("agreed", "w2", "2"), ("agreed", "w3", "2")], columns=["item", "worker", "label"]),
        ]
    )
    two = relabel_scores(answers, probas, calibrate=False).heard["agreed"]
    four = relabel_scores(more, probas, calibrate=False).heard["agreed"]
    assert four > two


def test_cant_tell_only_clip_counts_as_new_and_unknown_items_are_errors() -> None:
    answers, probas = heard_and_new(0.9)
    cant = pd.DataFrame([("n0", "w0", "can't tell")], columns=["item", "worker", "label"])
    scores = relabel_scores(pd.concat([answers, cant]), probas)
    assert "n0" in scores.new.index and "n0" not in scores.heard.index
    ghost = pd.DataFrame([("ghost", "w0", "1")], columns=["item", "worker", "label"])
    with pytest.raises(ListenloopError, match="no model probabilities"):
        relabel_scores(pd.concat([answers, ghost]), probas)


def test_temperature_flattens_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 400)
    shares = np.full((400, 3), 0.15)
    shares[np.arange(400), truth] = 0.7  # the crowd agrees 70 %
    sure = np.full((400, 3), 0.005)
    sure[np.arange(400), truth] = 0.99
    t = best_temperature(shares, sure)
    assert t > 2.0
    assert temperature_scale(sure, t).max(axis=1).mean() < 0.9
    assert best_temperature(np.zeros((0, 3)), np.zeros((0, 3))) == 1.0
