"""Soft labels (004_ eq. 1: a_t = sum theta_j v_j / sum theta_j) and their hard thresholding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.soft_labels import hard_labels, soft_labels
from listenloop.errors import ListenloopError


def table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item", "worker", "label"])


FIVE = table(
    [("t", "r1", "dog"), ("t", "r2", "dog"), ("t", "u1", "cat"), ("t", "u2", "cat"), ("t", "u3", "cat")]
)


def test_two_reliable_annotators_beat_three_unreliable_ones() -> None:
    plain = soft_labels(FIVE)
    assert plain.loc["t", "dog"] == pytest.approx(0.4)
    assert plain.loc["t", "cat"] == pytest.approx(0.6)
    theta = {"r1": 0.9, "r2": 0.9, "u1": 0.2, "u2": 0.2, "u3": 0.2}
    soft = soft_labels(FIVE, theta)
    assert soft.loc["t", "dog"] == pytest.approx(1.8 / 2.4)  # 0.75 > 0.5 with 2 of 5
    assert soft.loc["t", "cat"] == pytest.approx(0.6 / 2.4)
    assert hard_labels(soft).loc["t"].to_dict() == {"cat": False, "dog": True}
    assert hard_labels(plain).loc["t"].to_dict() == {"cat": True, "dog": False}
    assert soft_labels(FIVE, pd.Series(theta)).equals(soft)


def test_multi_label_cells() -> None:
    answers = table(
        [
            ("u", "a", "cough|speech"),
            ("u", "b", "speech|speech"),  # a class named twice counts once
            ("u", "c", ""),  # nothing present: counts in the denominator only
            ("v", "a", "door"),
        ]
    )
    soft = soft_labels(answers)
    assert list(soft.columns) == ["cough", "door", "speech"]
    np.testing.assert_allclose(soft.loc["u"], [1 / 3, 0.0, 2 / 3])
    np.testing.assert_allclose(soft.loc["v"], [0.0, 1.0, 0.0])
    weighted = soft_labels(answers, {"a": 1.0, "b": 0.5, "c": 0.5})
    np.testing.assert_allclose(weighted.loc["u"], [0.5, 0.0, 0.75])


def test_hard_labels_threshold() -> None:
    soft = pd.DataFrame({"x": [0.5, 0.51, 0.2]}, index=["p", "q", "r"])
    assert hard_labels(soft)["x"].tolist() == [False, True, False]  # exactly 0.5 is inactive
    assert hard_labels(soft, threshold=0.1)["x"].tolist() == [True, True, True]
    assert pd.api.types.is_bool_dtype(hard_labels(soft)["x"])


def test_unknown_annotators_and_zero_competence() -> None:
    soft = soft_labels(FIVE, {"r1": 0.9}, default_competence=0.0)
    assert soft.loc["t", "dog"] == 1.0
    with pytest.raises(ListenloopError, match="competence 0"):
        soft_labels(FIVE, {}, default_competence=0.0)
