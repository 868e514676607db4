"""The Dawid-Skene worker model: per-answer evidence, and policies that decide with it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.aggregation.dawid_skene import DawidSkene
from listenloop.crowd.redundancy import CANT_TELL, DynamicPolicy, FixedPolicy, evidence_posterior, replay
from listenloop.crowd.worker_model import MISSING_FLOOR, WorkerModel
from listenloop.crowd.worker_prior import PRIOR_TRUST


def hand_model() -> WorkerModel:
    """Two classes; worker "good" is 90 % right; "biased" reads half of the true b's as a."""
    conf = np.array(
        [
            [[0.9, 0.1], [0.1, 0.9]],  # good: P(answer | true), answer rows, true columns
            [[1.0 - 1e-9, 0.5], [1e-9, 0.5]],  # biased
        ]
    )
    return WorkerModel(
        classes=["a", "b"],
        workers=pd.Index(["good", "biased"]),
        log_confusion=np.log(conf),
        log_prior=np.log(np.array([0.5, 0.5])),
        skills=pd.Series({"good": 0.9, "biased": 0.75}),
    )


def test_evidence_rows_hand_computed() -> None:
    m = hand_model()
    ev = m.evidence(["good", "biased", "new", "good"], ["a", "a", "b", CANT_TELL], ["a", "b"])
    assert ev[0] == pytest.approx(np.log([0.9, 0.1]))
    assert ev[1] == pytest.approx(np.log([1.0 - 1e-9, 0.5]))
    q = PRIOR_TRUST
    assert ev[2] == pytest.approx(np.log([1 - q, q]))  # unseen worker: one-coin at the prior
    assert ev[3] == pytest.approx([0.0, 0.0])  # can't-tell carries no evidence
    # The biased worker's "a" is weak evidence: good(a) + biased(a) gives 0.9*1 / (0.9*1 + 0.1*0.5).
    post = evidence_posterior(ev[:2], m.prior(["a", "b"]))
    assert post[0] == pytest.approx(0.9 / (0.9 + 0.05))


def test_classes_the_model_never_saw_get_the_floor() -> None:
    m = hand_model()
    ev = m.evidence(["good"], ["a"], ["a", "b", "c"])
    assert ev[0] == pytest.approx(np.log([0.9, 0.1, MISSING_FLOOR]))
    assert m.prior(["a", "c"]) == pytest.approx(np.log([0.5, MISSING_FLOOR]))
    assert m.trust(["good", "nobody"]) == pytest.approx([0.9, PRIOR_TRUST])


def test_systematic_confusion_needs_more_answers() -> None:
    """Three a's from biased workers are weak evidence; a one-coin model (skill 0.75) stops at 0.964."""
    m = hand_model()
    policy = DynamicPolicy(min_answers=2, max_answers=5, tau=0.95)
    answers = np.array(["a", "a", "a"])
    workers = ["biased"] * 3
    ev = m.evidence(workers, answers, ["a", "b"])
    with_model = policy.decide(answers, m.trust(workers), ["a", "b"], ev, m.prior(["a", "b"]))
    one_coin = policy.decide(answers, m.trust(workers), ["a", "b"])
    assert one_coin.done and one_coin.confidence == pytest.approx(27 / 28)
    assert not with_model.done and with_model.confidence == pytest.approx(1 / (1 + 0.125))


def test_fixed_policy_labels_by_the_model() -> None:
    """A good worker's b beats a biased worker's a when the model knows the bias."""
    m = hand_model()
    answers = np.array(["a", "b"])
    workers = ["biased", "good"]
    decision = FixedPolicy(2).decide(
        answers, m.trust(workers), ["a", "b"], m.evidence(workers, answers, ["a", "b"]), m.prior(["a", "b"])
    )
    # P(a) ∝ 1 * 0.1, P(b) ∝ 0.5 * 0.9
    assert decision.done and decision.label == "b"
    assert decision.confidence == pytest.approx(0.45 / 0.55)


def test_replay_with_a_fitted_model() -> None:
    rng = np.random.default_rng(0)
    truth = {f"i{i}": "ab"[i % 2] for i in range(200)}
    rows = []
    for item, t in truth.items():
        for w, acc in (("w1", 0.9), ("w2", 0.85), ("w3", 0.6), ("w4", 0.8), ("w5", 0.9)):
            rows.append((item, w, t if rng.random() < acc else ("b" if t == "a" else "a")))
    answers = pd.DataFrame(rows, columns=["item", "worker", "label"])
    model = WorkerModel.from_dawid_skene(DawidSkene().fit(answers))
    assert model.skills["w3"] < model.skills["w1"]
    dyn = replay(answers, truth, DynamicPolicy(2, 5, 0.95), np.random.default_rng(1), trust=model)
    fixed = replay(answers, truth, FixedPolicy(5), np.random.default_rng(1), trust=model)
    assert dyn.answers_per_item < 0.7 * fixed.answers_per_item
    assert dyn.accuracy >= fixed.accuracy - 0.03
