"""Control answers clamp their items in Dawid-Skene, MACE and GLAD (crowd-kit's `true_labels`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.aggregation.dawid_skene import DawidSkene
from listenloop.crowd.aggregation.glad import GLAD
from listenloop.crowd.aggregation.mace import MACE
from listenloop.errors import ListenloopError

AGGREGATORS = {"ds": DawidSkene, "mace": MACE, "glad": GLAD}


def colluding_crowd(seed: int = 0, n_items: int = 60) -> tuple[pd.DataFrame, dict[str, str]]:
    """An expert who is always right and two sloppy workers who, on 40 % of the items, agree
    on the same wrong class: by majority the expert looks wrong there, the pair right."""
    rng = np.random.default_rng(seed)
    truth = {f"i{i}": str(rng.choice(["a", "b", "c"])) for i in range(n_items)}
    rows = []
    for item, true in truth.items():
        fooled = rng.random() < 0.4
        wrong = {"a": "b", "b": "c", "c": "a"}[true]
        rows.append((item, "expert", true))
        for w in ("sloppy1", "sloppy2"):
            rows.append((item, w, wrong if fooled else true))
    return pd.DataFrame(rows, columns=["item", "worker", "label"]), truth


@pytest.mark.parametrize("method", sorted(AGGREGATORS))
def test_gold_items_clamp_and_move_skills_the_right_way(method: str) -> None:
    answers, truth = colluding_crowd()
    fooled = [i for i in truth if (answers[answers["item"] == i]["label"] != truth[i]).any()]
    gold = {i: truth[i] for i in fooled[:10]}  # controls where the pair agreed on a wrong class
    plain = AGGREGATORS[method]().fit(answers)
    clamped = AGGREGATORS[method]().fit(answers, gold=gold)
    # the known items sit at their class with certainty
    for item, label in gold.items():
        assert clamped.labels_[item] == label and clamped.confidence_[item] == pytest.approx(1.0)
    # the expert's skill rises, the colluders' falls
    assert clamped.skills_["expert"] > plain.skills_["expert"]
    for w in ("sloppy1", "sloppy2"):
        assert clamped.skills_[w] < plain.skills_[w]
    if method == "glad":
        return  # its abilities move the right way; one-coin GLAD cannot tell who colludes
    assert clamped.skills_["expert"] > clamped.skills_["sloppy1"]
    free = [i for i in truth if i not in gold]
    plain_acc = np.mean([plain.labels_[i] == truth[i] for i in free])
    clamped_acc = np.mean([clamped.labels_[i] == truth[i] for i in free])
    if method == "ds":  # its confusion matrices learn the pair's swap, so unknown items gain too
        assert clamped_acc > plain_acc
    else:
        assert clamped_acc >= plain_acc


def test_gold_without_known_items_changes_nothing() -> None:
    answers, _ = colluding_crowd()
    plain = DawidSkene().fit(answers)
    same = DawidSkene().fit(answers, gold={"not-an-item": "a"})
    pd.testing.assert_frame_equal(plain.probas_, same.probas_)


def test_a_gold_class_nobody_answered_is_a_class_and_bad_ones_are_errors() -> None:
    answers = pd.DataFrame({"item": ["x", "x", "y"], "worker": ["u", "v", "u"], "label": ["a", "a", "a"]})
    fit = DawidSkene().fit(answers, gold={"y": "b"})
    assert list(fit.probas_.columns) == ["a", "b"] and fit.labels_["y"] == "b"
    with pytest.raises(ListenloopError, match="gold item 'y'"):
        MACE().fit(answers, classes=["a"], gold={"y": "b"})
