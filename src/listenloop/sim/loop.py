"""The active-learning loops of a simulation: pool-based (000_ Table 1, 001_ Table 1) and
stream-based (001_ Table 2), with the dataset's labels as the oracle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from listenloop.sim.metrics import MAIN_METRIC, task_scores
from listenloop.strategies.base import QueryContext
from listenloop.strategies.passive import RandomSampling
from listenloop.strategies.training_set import fit_round

_RANDOM = RandomSampling()


@dataclass
class LoopConfig:
    """How a loop asks: sizes, stopping rules, random-subset evaluation, stream buffer."""

    initial: int = 30
    batch: int = 30
    iterations: int = 20
    budget: int | None = None  # stop once this many labels are used
    target: float | None = None  # stop once the main metric reaches this
    subset: int | None = None  # score only a random subset of this many pool clips per query
    stream: bool = False  # stream-based: a buffer of `buffer` arriving clips, label the best half
    buffer: int | None = None  # stream buffer size (default: 2 × batch)
    pseudo_weight: float = 1.0  # sample weight of pseudo-labelled clips (self_training)
    warmup: int = 0  # first iterations asked at random before the strategy takes over (T0 in 003_)


@dataclass
class Curve:
    """One run's learning curve: labelled-set size and scores at each evaluation point."""

    labels: list[int] = field(default_factory=list)
    scores: list[dict[str, float]] = field(default_factory=list)
    queried: list[int] = field(default_factory=list)  # row indices in the order they were asked
    notes: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "iterations"  # why the loop ended: iterations, budget, target or pool (ran out of clips)

    def metric(self, name: str) -> np.ndarray:
        """The curve of one metric."""
        return np.array([s[name] for s in self.scores])


def predict_rows(model: Any, X: np.ndarray, rows: np.ndarray, chunk_rows: int = 65536) -> np.ndarray:
    """`model.predict(X[rows])` in chunks, so a memory-mapped test set is never loaded whole."""
    parts = [model.predict(np.asarray(X[rows[i : i + chunk_rows]])) for i in range(0, len(rows), chunk_rows)]
    return np.concatenate(parts) if parts else np.empty(0)


def run_loop(
    X: np.ndarray,
    y: np.ndarray,
    pool: np.ndarray,
    test: np.ndarray,
    initial: np.ndarray,
    strategy: Any,
    make_model: Callable[[], Any],
    config: LoopConfig,
    rng: np.random.Generator,
    task: str = "classification",
) -> Curve:
    """Run one AL loop and score the model on `test` after every step.

    `pool` are the training rows (labels hidden until asked), `initial` the rows labelled
    at the start (a subset of `pool`). The labels `y` answer every query (the oracle).
    """
    metric = MAIN_METRIC[task]
    labelled = list(np.asarray(initial, dtype=np.int64))
    remaining = np.setdiff1d(np.asarray(pool, dtype=np.int64), labelled)
    arrivals = rng.permutation(remaining) if config.stream else None
    buffer_size = config.buffer or 2 * config.batch
    budget = config.budget if config.budget is not None else np.inf
    y_test = y[test]
    curve = Curve(queried=list(labelled))

    def fit_and_score(it: int) -> Any:
        """The round's model (`fit_round`: the labels, and a self-training strategy's pseudo-labels
        over the clips not yet asked), scored on the test rows."""
        rows = np.asarray(labelled, dtype=np.int64)
        fitted = fit_round(
            make_model,
            X,
            rows,
            y[rows],
            remaining,
            strategy,
            iteration=it,
            rng=rng,
            task=task,
            pseudo_weight=config.pseudo_weight,
        )
        pred = predict_rows(fitted.model, X, test)
        curve.labels.append(len(labelled))
        curve.scores.append(task_scores(task, y_test, pred))
        return fitted

    fitted = fit_and_score(0)
    model = fitted.model
    for it in range(config.iterations):
        if len(labelled) >= budget:
            curve.stopped = "budget"
            break
        if config.target is not None and curve.scores[-1][metric] >= config.target:
            curve.stopped = "target"
            break
        if config.stream:
            start = it * buffer_size
            candidates = np.sort(arrivals[start : start + buffer_size])
            n = len(candidates) // 2
        else:
            candidates = remaining
            if config.subset is not None and config.subset < len(remaining):
                candidates = np.sort(rng.choice(remaining, size=config.subset, replace=False))
            n = config.batch
        n = int(min(n, budget - len(labelled), len(candidates)))
        if n <= 0:
            curve.stopped = "pool"
            break
        ctx = QueryContext(
            model=model,
            X=X,
            candidates=candidates,
            labelled=np.asarray(labelled),
            y_labelled=y[np.asarray(labelled)],
            iteration=it,
            rng=rng,
            task=task,
            planned=int(min(budget, len(labelled) + config.batch * (config.iterations - it))) - len(labelled),
        )
        # a strategy with a schedule of its own (DAL's T0, MAL's medoid order) skips the shared warm-up
        own = getattr(strategy, "own_schedule", False)
        asker = _RANDOM if it < config.warmup and not own else strategy
        picked = np.asarray(asker.select(ctx, n), dtype=np.int64)
        if len(np.unique(picked)) != len(picked) or not np.isin(picked, candidates).all():
            raise RuntimeError(f"strategy {strategy.name} returned repeated or non-candidate rows")
        # a strategy may ask nothing in an iteration (DAL's first T0): the model still trains
        labelled.extend(picked.tolist())
        curve.queried.extend(picked.tolist())
        remaining = np.setdiff1d(remaining, picked, assume_unique=True)
        fitted = fit_and_score(it + 1)
        model = fitted.model
        if hasattr(strategy, "pseudo_labels"):
            ctx.extra["pseudo_labels"] = len(fitted.pseudo_rows)
        curve.notes.append(dict(ctx.extra))
    return curve
