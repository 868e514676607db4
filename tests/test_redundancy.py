"""Redundancy policies: parsing, stop rules, can't-tell, and replay of real answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.redundancy import (
    CANT_TELL,
    DynamicPolicy,
    FixedPolicy,
    parse_policy,
    replay,
)
from listenloop.errors import ListenloopError

AB = ["a", "b"]
# Workers assumed 90 % accurate: two agreeing answers reach 0.988, one stays at 0.9.
DYN = DynamicPolicy(min_answers=2, max_answers=5, tau=0.95, default_accuracy=0.9)


def labels(*values: str) -> np.ndarray:
    return np.array(values, dtype=str)


def test_parse_policies() -> None:
    assert parse_policy("fixed:7") == FixedPolicy(7)
    assert parse_policy("dynamic:min=2,max=9,tau=0.95") == DynamicPolicy(2, 9, 0.95)
    assert parse_policy(" dynamic:min=2, max=9, tau=0.9, untrusted=0.6 ").untrusted_below == 0.6


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fixed",
        "fixed:0",
        "fixed:x",
        "majority:3",
        "dynamic:min=2,max=9",
        "dynamic:min=2,max=9,tau=abc",
        "dynamic:min=2,max=9,tau=0.9,foo=1",
        "dynamic:min=5,max=3,tau=0.9",
        "dynamic:min=2.5,max=9,tau=0.9",
        "dynamic:min=2,max=9,tau=1.5",
    ],
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(ListenloopError, match=r"policy|fixed|dynamic"):
        parse_policy(text)


def test_fixed_uses_k() -> None:
    pol = FixedPolicy(3)
    assert not pol.decide(labels("a", "a"), None, AB).done
    dec = pol.decide(labels("a", "b", "b"), None, AB)
    assert dec.done and dec.label == "b" and 0.5 < dec.confidence < 1


def test_dynamic_stops_early_on_agreeing_trusted_answers() -> None:
    assert not DYN.decide(labels("a"), None, AB).done  # min_answers
    dec = DYN.decide(labels("a", "a"), np.array([1.0, 1.0]), AB)
    assert dec.done and dec.label == "a" and not dec.low_agreement
    assert dec.confidence < 1.0
    assert not DYN.decide(labels("a", "b"), None, AB).done


def test_one_answer_is_never_confidence_one() -> None:
    pol = DynamicPolicy(1, 5, 0.99)
    dec = pol.decide(labels("a"), None, AB)
    assert dec.confidence < 0.99 and not dec.done


def test_never_done_on_untrusted_answers_alone() -> None:
    untrusted = np.full(4, 0.3)
    dec = DYN.decide(labels("a", "a", "a", "a"), untrusted, AB)
    assert not dec.done and dec.label == "a"
    dec = DYN.decide(labels("a", "a", "a", "a", "a"), np.full(5, 0.3), AB)
    assert dec.done and dec.low_agreement  # ended at max, never confident by trusted answers
    mixed = DYN.decide(labels("a", "a", "a", "a"), np.array([0.3, 0.3, 0.9, 0.9]), AB)
    assert mixed.done and not mixed.low_agreement


def test_trusted_minority_outweighs_untrusted() -> None:
    dec = DYN.decide(labels("a", "b", "b"), np.array([1.0, 0.1, 0.1]), AB)
    assert dec.label == "a"


def test_low_agreement_at_max() -> None:
    dec = DYN.decide(labels("a", "b", "a", "b", "a"), None, AB)
    assert dec.done and dec.low_agreement and dec.label == "a"


def test_cant_tell_counts_toward_answers_only() -> None:
    dec = DYN.decide(labels("a", CANT_TELL, "a"), None, AB)
    assert dec.done and dec.label == "a"  # 3 answers used, posterior from the two "a"
    assert dec.confidence == pytest.approx(DYN.decide(labels("a", "a"), None, AB).confidence)
    assert FixedPolicy(3).decide(labels("a", CANT_TELL, CANT_TELL), None, AB).done
    mostly = [DYN.decide(labels(*([CANT_TELL] * (n - 1)), "a"), None, AB) for n in range(2, 6)]
    assert [d.done for d in mostly] == [False, False, False, True]
    assert mostly[-1].low_agreement
    none = DYN.decide(labels(*[CANT_TELL] * 5), None, AB)
    assert none.done and none.label is None and none.low_agreement


def test_unknown_answer_is_an_error() -> None:
    with pytest.raises(ListenloopError, match="not one of"):
        DYN.decide(labels("c"), None, AB)


def test_replay_hand_made() -> None:
    answers = pd.DataFrame(
        {
            "item": ["x", "x", "x", "y", "y", "z", "z", "z"],
            "worker": ["1", "2", "3", "1", "2", "1", "2", "3"],
            "label": ["a", "a", "a", "a", "b", "a", "a", "b"],
        }
    )
    truth = {"x": "a", "y": "b", "z": "a", "other": "a"}
    res = replay(answers, truth, DynamicPolicy(2, 9, 0.95, default_accuracy=0.9), np.random.default_rng(3))
    # x: any 2 of (a,a,a) agree -> 2. y: a,b never agree -> all 2, short.
    # z: done at 2 only when the first two drawn are both "a" (rows 0, 1 of z).
    rng = np.random.default_rng(3)
    rng.permutation(3)  # x
    rng.permutation(2)  # y
    z_first_two = set(rng.permutation(3)[:2].tolist())
    z_used = 2 if z_first_two == {0, 1} else 3
    assert res.answers_used.to_dict() == {"x": 2, "y": 2, "z": z_used}
    assert res.short_items == 1 + (z_used == 3)
    assert res.labels["x"] == "a" and res.labels["z"] == "a"
    assert res.answers_per_item == pytest.approx((4 + z_used) / 3)
    fixed = replay(answers, truth, FixedPolicy(2), np.random.default_rng(0))
    assert fixed.answers_used.tolist() == [2, 2, 2] and fixed.short_items == 0
    assert fixed.labels["y"] == "a"  # tie: first class in sort order
    assert fixed.accuracy == pytest.approx(2 / 3)  # "other" has no answers: ignored


def test_replay_with_trust_untrusted_never_done() -> None:
    answers = pd.DataFrame({"item": ["x"] * 3, "worker": ["1", "2", "3"], "label": ["a"] * 3})
    res = replay(
        answers,
        {"x": "a"},
        DynamicPolicy(2, 9, 0.95),
        np.random.default_rng(0),
        trust={"1": 0.1, "2": 0.1, "3": 0.1},
    )
    assert res.answers_used["x"] == 3 and res.short_items == 1
