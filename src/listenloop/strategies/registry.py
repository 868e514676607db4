"""Strategy registry: the names users type (`--strategies random,margin,...`) to strategy objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from listenloop.errors import ListenloopError
from listenloop.strategies.alternating import AlternatingConfidence
from listenloop.strategies.diverse import DiverseUncertainty
from listenloop.strategies.passive import RandomSampling
from listenloop.strategies.regression import RegressionBinaryConfidence
from listenloop.strategies.self_training import SelfTraining
from listenloop.strategies.threshold import ThresholdLeastConfidence
from listenloop.strategies.uncertainty_sampling import MediumCertainty, UncertaintySampling

STRATEGIES: dict[str, Callable[..., Any]] = {
    "random": RandomSampling,
    "least_confidence": lambda **p: UncertaintySampling("least_confidence", **p),
    "margin": lambda **p: UncertaintySampling("margin", **p),
    "entropy": lambda **p: UncertaintySampling("entropy", **p),
    "margin_diverse": DiverseUncertainty,
    "medium_certainty": MediumCertainty,
    "least_confidence_tuned": ThresholdLeastConfidence,
    "alternating_confidence": AlternatingConfidence,
    "self_training": SelfTraining,
    "regression_binary_confidence": RegressionBinaryConfidence,
}
REGRESSION_STRATEGIES = {"random", "regression_binary_confidence"}


def make_strategy(name: str, task: str = "classification", **params: Any) -> Any:
    """A strategy object by name, checked against the task."""
    if name not in STRATEGIES:
        raise ListenloopError(f"unknown strategy '{name}' (known: {', '.join(STRATEGIES)})")
    if task == "regression" and name not in REGRESSION_STRATEGIES:
        raise ListenloopError(
            f"strategy '{name}' needs class probabilities; for regression use "
            f"{' or '.join(sorted(REGRESSION_STRATEGIES))}"
        )
    if task == "classification" and name == "regression_binary_confidence":
        raise ListenloopError("regression_binary_confidence is for continuous labels (--task regression)")
    return STRATEGIES[name](**params)
