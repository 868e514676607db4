"""Simulated crowds: calibration, answering, and policy comparison on a synthetic crowd."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.crowd.redundancy import CANT_TELL, DynamicPolicy, FixedPolicy
from listenloop.crowd.simulated import SimulatedCrowd
from listenloop.errors import ListenloopError


def hand_table() -> tuple[pd.DataFrame, dict[str, str]]:
    """Worker "good" right on 9 of 10 items, "bad" right on 3 of 10, "ct" always can't tell."""
    truth = {f"i{i}": "ab"[i % 2] for i in range(10)}
    rows = []
    for i, (item, t) in enumerate(truth.items()):
        other = "b" if t == "a" else "a"
        rows.append((item, "good", t if i != 0 else other))
        rows.append((item, "bad", t if i < 3 else other))
        rows.append((item, "ct", CANT_TELL))
    return pd.DataFrame(rows, columns=["item", "worker", "label"]), truth


def test_calibration_recovers_accuracies() -> None:
    answers, truth = hand_table()
    crowd = SimulatedCrowd.from_answers(answers, truth, smoothing=0.5)
    acc = crowd.accuracies
    assert acc["good"] == pytest.approx(0.9, abs=0.1)
    assert acc["bad"] == pytest.approx(0.3, abs=0.1)
    assert acc["ct"] < 0.1
    assert crowd.values == ["a", "b", CANT_TELL]
    assert np.allclose(crowd.confusion.sum(axis=2), 1)
    assert crowd.frequency == pytest.approx(np.full(3, 1 / 3))
    assert crowd.difficulty is not None and set(crowd.difficulty) == set(truth)
    # item i0: only "bad" right -> harder than i1 where good and bad are right
    assert crowd.difficulty["i0"] < crowd.difficulty["i1"]


def test_answer_follows_confusion_and_difficulty() -> None:
    answers, truth = hand_table()
    crowd = SimulatedCrowd.from_answers(answers, truth, smoothing=0.5)
    rng = np.random.default_rng(0)
    draws = [crowd.answer("a", None, rng) for _ in range(600)]
    workers = pd.Series([w for w, _ in draws])
    assert set(workers) == {"good", "bad", "ct"}
    good = [lab for w, lab in draws if w == "good"]
    assert np.mean([lab == "a" for lab in good]) > 0.7
    easy = [crowd.answer("a", 0.95, rng)[1] == "a" for _ in range(600)]
    hard = [crowd.answer("a", 0.05, rng)[1] == "a" for _ in range(600)]
    assert np.mean(easy) > np.mean(hard) + 0.3


def test_synthetic_crowd_kinds() -> None:
    crowd = SimulatedCrowd.synthetic(
        100,
        ["x", "y", "z"],
        accuracy_beta=(8, 2),
        spammers=0.1,
        adversaries=0.05,
        rng=np.random.default_rng(0),
    )
    acc = crowd.accuracies.to_numpy()
    assert np.allclose(crowd.confusion.sum(axis=2), 1)
    assert np.all(acc[10:15] == 0)  # adversaries never answer right
    assert np.mean(acc[15:]) == pytest.approx(0.8, abs=0.05)


@pytest.fixture(scope="module")
def synthetic_runs() -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(7)
    crowd = SimulatedCrowd.synthetic(60, ["a", "b"], rng=rng)
    truth = {f"i{i:04d}": "ab"[int(rng.random() < 0.5)] for i in range(1000)}
    out = {}
    for name, pol in {"fixed": FixedPolicy(7), "dynamic": DynamicPolicy(2, 9, 0.95)}.items():
        res = crowd.simulate(truth, pol, np.random.default_rng(11), trust=crowd.accuracies)
        assert res.short_items == 0 and len(res.labels) == 1000
        out[name] = (res.accuracy, res.answers_per_item)
    return out


def test_fixed_uses_exactly_k_in_simulation(synthetic_runs: dict[str, tuple[float, float]]) -> None:
    assert synthetic_runs["fixed"][1] == 7.0


def test_dynamic_matches_fixed_with_fewer_answers(synthetic_runs: dict[str, tuple[float, float]]) -> None:
    # With trust = the workers' accuracies, dynamic:min=2,max=9,tau=0.95 keeps fixed:7's accuracy.
    # NOTE: with the vote-share posterior any single dissent sends an item to max, so the saving
    # is modest (about 10%), not the ~half the brief hoped for; see the report.
    fixed_acc, _ = synthetic_runs["fixed"]
    dyn_acc, dyn_answers = synthetic_runs["dynamic"]
    assert dyn_acc >= fixed_acc - 0.01
    assert dyn_answers < 7.0


def test_simulate_is_seeded() -> None:
    crowd = SimulatedCrowd.synthetic(20, ["a", "b"], rng=np.random.default_rng(1))
    truth = {f"i{i}": "a" for i in range(50)}
    r1 = crowd.simulate(truth, DynamicPolicy(2, 9, 0.95), np.random.default_rng(5))
    r2 = crowd.simulate(truth, DynamicPolicy(2, 9, 0.95), np.random.default_rng(5))
    assert r1.labels.equals(r2.labels) and r1.answers_used.equals(r2.answers_used)
    assert r1.answers_used.between(2, 9).all()


def test_crowd_of_known_skills_answers_one_member_at_a_time() -> None:
    classes = [str(d) for d in range(10)]
    crowd = SimulatedCrowd.from_skills([0.9, 0.1], classes, ["good", "spammer"])
    assert list(crowd.worker_ids) == ["good", "spammer"]
    assert crowd.accuracies.to_dict() == pytest.approx({"good": 0.9, "spammer": 0.1})
    assert np.allclose(crowd.confusion[1], 0.1)  # skill 1/K: uniformly at random
    rng = np.random.default_rng(0)
    good = [crowd.answer_of(0, "3", rng) for _ in range(2000)]
    spam = [crowd.answer_of(1, "3", rng) for _ in range(2000)]
    assert np.mean([a == "3" for a in good]) == pytest.approx(0.9, abs=0.03)
    assert set(good) == set(classes)  # errors spread over the other classes
    assert np.mean([a == "3" for a in spam]) == pytest.approx(0.1, abs=0.03)
    assert max(pd.Series(spam).value_counts(normalize=True)) < 0.15
    with pytest.raises(ListenloopError):
        crowd.answer_of(2, "3", rng)
    with pytest.raises(ListenloopError):
        SimulatedCrowd.from_skills([1.2], classes)
    with pytest.raises(ListenloopError):
        SimulatedCrowd.from_skills([0.9], classes, ["a", "b"])
