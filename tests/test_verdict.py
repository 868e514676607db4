"""The dry run's verdict (`sim.verdict`): labels to the target with an 80 % interval, the share of
random's, the recommendation in plain words, and "too small to tell"."""

from __future__ import annotations

import math

import numpy as np
import pytest

from listenloop.errors import ListenloopError
from listenloop.sim.experiment import ExperimentConfig, ExperimentResult, RunResult
from listenloop.sim.loop import Curve
from listenloop.sim.verdict import labels_to_reach, verdict

LABELS = list(range(10, 210, 20))  # 10 points: 10, 30, ..., 190


def curve(rate: float, noise: float, rng: np.random.Generator, top: float = 0.9) -> Curve:
    """A saturating learning curve: the higher `rate`, the fewer labels it needs."""
    scores = top * (1 - np.exp(-rate * np.asarray(LABELS, float))) + noise * rng.standard_normal(len(LABELS))
    return Curve(labels=list(LABELS), scores=[{"uar": float(s)} for s in scores])


def result(rates: dict[str, float], pairs: int = 8, noise: float = 0.005, seed: int = 0) -> ExperimentResult:
    rng = np.random.default_rng(seed)
    runs = [
        RunResult(name, f"fold{p}", 0, curve(rate, noise, rng))
        for p in range(pairs)
        for name, rate in rates.items()
    ]
    return ExperimentResult(
        ExperimentConfig(strategies=list(rates)), runs, {}, [f"fold{p}" for p in range(pairs)]
    )


def test_labels_to_reach_interpolates_and_says_never() -> None:
    assert labels_to_reach(np.array([10, 30]), np.array([0.5, 0.7]), 0.6) == pytest.approx(20)
    assert labels_to_reach(np.array([10, 30]), np.array([0.5, 0.7]), 0.4) == 10
    assert math.isinf(labels_to_reach(np.array([10, 30]), np.array([0.5, 0.7]), 0.8))


def test_a_strategy_that_needs_fewer_labels_is_recommended_in_plain_words() -> None:
    v = verdict(result({"random": 0.015, "margin": 0.03, "medium_certainty": 0.008}), clips=400)
    st = v["strategies"]
    assert v["recommended"] == "margin" and v["certain"] and not v["too_small"]
    assert st["margin"]["compared_with_random"] == "fewer"
    assert st["medium_certainty"]["compared_with_random"] == "more"
    # margin reaches the target in about half random's labels (rate twice random's)
    assert 0.4 < st["margin"]["share_of_random"] < 0.6
    low, high = st["margin"]["labels_ci80"]
    assert low <= st["margin"]["labels_to_target"] <= high
    assert v["target"] == pytest.approx(0.95 * v["random_best"])
    text = v["text"]
    assert text.startswith("On your data, margin needs about")
    assert "fewer labels than random" in text and "medium certainty needs more" in text
    assert "too few" not in text


def test_no_strategy_better_than_random_keeps_random() -> None:
    v = verdict(result({"random": 0.03, "margin": 0.015}), clips=400)
    assert v["recommended"] == "random" and not v["certain"]
    assert "keep random" in v["text"] and "margin needs more" in v["text"]


def test_noisy_close_strategies_say_certainty_needs_more() -> None:
    v = verdict(result({"random": 0.02, "margin": 0.021}, pairs=4, noise=0.08, seed=3), clips=400)
    assert not v["certain"]
    if v["recommended"] == "margin":
        assert v["strategies"]["margin"]["compared_with_random"] == "same"
        assert not v["certain"]
        assert "includes no saving" in v["text"] or "too few" in v["text"]


def test_too_small_to_tell_with_few_labelled_clips() -> None:
    v = verdict(result({"random": 0.015, "margin": 0.03}), clips=40)
    assert v["too_small"] and not v["certain"]
    assert "40 labelled clips are too few to tell" in v["text"]


def test_too_small_to_tell_when_the_interval_is_open() -> None:
    # margin reaches random's target only in some runs: its interval has no upper end
    rng = np.random.default_rng(1)
    runs = []
    for p in range(6):
        runs.append(RunResult("random", f"f{p}", 0, curve(0.02, 0.0, rng)))
        runs.append(RunResult("margin", f"f{p}", 0, curve(0.08, 0.0, rng, top=0.95 if p < 4 else 0.7)))
    res = ExperimentResult(ExperimentConfig(strategies=["random", "margin"]), runs, {}, [])
    v = verdict(res, clips=500)
    assert v["recommended"] == "margin"
    assert v["too_small"] and "too few to tell" in v["text"]


def test_a_verdict_needs_random() -> None:
    with pytest.raises(ListenloopError, match="random"):
        verdict(result({"margin": 0.03, "entropy": 0.02}), clips=400)
