"""Strategy registry: the names users type (`--strategies random,margin,...`) to strategy objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from listenloop.errors import ListenloopError
from listenloop.strategies.alternating import AlternatingConfidence
from listenloop.strategies.auto import AutoStrategy
from listenloop.strategies.badge import Badge
from listenloop.strategies.cluster_margin import ClusterMargin
from listenloop.strategies.dal import DAL
from listenloop.strategies.diverse import DiverseUncertainty
from listenloop.strategies.medoids import MAL, MedoidActiveLearning
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
    "margin_diverse": lambda **p: DiverseUncertainty("margin", **p),
    "least_confidence_diverse": lambda **p: DiverseUncertainty("least_confidence", **p),
    "entropy_diverse": lambda **p: DiverseUncertainty("entropy", **p),
    "cluster_margin": ClusterMargin,
    "badge": Badge,
    "auto": AutoStrategy,
    "medium_certainty": MediumCertainty,
    "least_confidence_tuned": ThresholdLeastConfidence,
    "alternating_confidence": AlternatingConfidence,
    "self_training": SelfTraining,
    "regression_binary_confidence": RegressionBinaryConfidence,
    "dal": DAL,
    "mal": MAL,
    "mal_pann": MedoidActiveLearning,
}
REGRESSION_STRATEGIES = {"random", "regression_binary_confidence"}
# Strategies whose rule needs a yes/no model (a decision threshold on the positive class).
BINARY_STRATEGIES = {"least_confidence_tuned"}
# Strategies that need torch (the `deep` extra).
DEEP_STRATEGIES = {"dal"}
# Strategies that need data only `listenloop simulate` provides (MAL: the MFCC Gaussians of each clip).
SIMULATION_STRATEGIES = {"mal"}


def torch_missing() -> bool:
    """True when torch cannot be imported (checked without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is None
    except (ImportError, ValueError):
        return True


def strategy_problem(
    name: str, task: str = "classification", classes: int | None = None, *, platform: bool = False
) -> str | None:
    """Why strategy `name` cannot run on `task` (classification or regression) with `classes`
    classes (None: not known yet), or on the platform's live rounds (`platform`), or None when it can."""
    if name not in STRATEGIES:
        return f"unknown strategy '{name}' (known: {', '.join(STRATEGIES)})"
    if platform and name in SIMULATION_STRATEGIES:
        return (
            f"strategy '{name}' clusters per-clip MFCC Gaussians, which only listenloop simulate provides: "
            "use mal_pann on the platform"
        )
    if task == "regression" and name not in REGRESSION_STRATEGIES:
        return (
            f"strategy '{name}' needs class probabilities; for regression use "
            f"{' or '.join(sorted(REGRESSION_STRATEGIES))}"
        )
    if task == "classification" and name == "regression_binary_confidence":
        return "regression_binary_confidence is for continuous labels (--task regression)"
    if name in DEEP_STRATEGIES and torch_missing():
        return f"strategy '{name}' needs torch: pip install 'listenloop[deep]'"
    if name in BINARY_STRATEGIES and classes is not None and classes != 2:
        return f"{name} needs a binary task (two classes; --positive A,B makes one), not {classes} classes"
    return None


def allowed_strategies(
    task: str = "classification", classes: int | None = None, *, platform: bool = False
) -> list[str]:
    """The strategies that can run on `task` with `classes` classes (on the platform), in the
    registry's order."""
    return [name for name in STRATEGIES if strategy_problem(name, task, classes, platform=platform) is None]


def make_strategy(name: str, task: str = "classification", classes: int | None = None, **params: Any) -> Any:
    """A strategy object by name, checked against the task (and the number of classes, when known)."""
    problem = strategy_problem(name, task, classes)
    if problem is not None:
        raise ListenloopError(problem)
    return STRATEGIES[name](**params)
