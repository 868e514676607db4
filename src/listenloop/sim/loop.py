"""The active-learning loops of a simulation: pool-based (000_ Table 1, 001_ Table 1) and
stream-based (001_ Table 2), with the dataset's labels as the oracle. Each iteration is the
platform's round (`strategies.al_round`): the oracle in place of the crowd is the only difference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from listenloop.sim.metrics import MAIN_METRIC, task_scores
from listenloop.strategies.al_round import RoundQueue, al_round
from listenloop.strategies.training_set import fit_rows


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
    cold_start: str = "random"  # random (two classes, then warm-up) or kmeans (the platform's)
    passive_share: float = 0.0  # share of each batch drawn at random (the platform's passive arm)


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
    round_seed: int | None = None,
) -> Curve:
    """Run one AL loop and score the model on `test` after every step.

    `pool` are the training rows (labels hidden until asked), `initial` the rows labelled
    at the start (a subset of `pool`). The labels `y` answer every query (the oracle). Every
    iteration is one `al_round` (the platform's round function) over the rows not yet asked;
    its random numbers come from `round_seed` (default: drawn from `rng`) and the iteration,
    `rng` draws the stream's arrivals and the random subsets.
    """
    metric = MAIN_METRIC[task]
    seed = int(rng.integers(2**31)) if round_seed is None else int(round_seed)
    labelled = list(np.asarray(initial, dtype=np.int64))
    remaining = np.setdiff1d(np.asarray(pool, dtype=np.int64), labelled)
    arrivals = rng.permutation(remaining) if config.stream else None
    buffer_size = config.buffer or 2 * config.batch
    budget = config.budget if config.budget is not None else np.inf
    pool = np.asarray(pool, dtype=np.int64)
    classes = sorted({str(v) for v in y[pool]}) if task == "classification" else None
    y_test = y[test]
    curve = Curve(queried=list(labelled))

    def step(it: int, candidates: np.ndarray, n: int) -> RoundQueue:
        """The round on the labels so far (its model scored on the test rows); n = 0: fit only."""
        rows = np.asarray(labelled, dtype=np.int64)
        queue = al_round(
            X,
            rows,
            y[rows],
            candidates,
            strategy,
            make_model,
            head=n,
            seed=seed,
            iteration=it,
            task=task,
            classes=classes,
            cold_start=config.cold_start,
            warmup=config.warmup,
            pseudo_weight=config.pseudo_weight,
            planned=int(min(budget, len(labelled) + config.batch * (config.iterations - it))) - len(labelled),
            passive_share=config.passive_share,
            fit=n > 0,
        )
        model = queue.model if queue.fit is not None else scoring_model(make_model, X, rows, y[rows], task)
        pred = predict_rows(model, X, test)
        curve.labels.append(len(labelled))
        curve.scores.append(task_scores(task, y_test, pred))
        return queue

    for it in range(config.iterations + 1):
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
        last = it == config.iterations
        stop = "budget" if len(labelled) >= budget else ("pool" if n <= 0 else None)
        queue = step(it, candidates, 0 if last or stop else n)
        if last:
            break
        if stop is None and config.target is not None and curve.scores[-1][metric] >= config.target:
            stop = "target"
        if stop is not None:
            curve.stopped = stop
            break
        # a strategy may ask nothing in an iteration (DAL's first T0): the model still trains
        picked = queue.order[: min(n, queue.chosen)]
        labelled.extend(picked.tolist())
        curve.queried.extend(picked.tolist())
        remaining = np.setdiff1d(remaining, picked, assume_unique=True)
        curve.notes.append(dict(queue.notes) | {"asked_by": queue.how})
    return curve


def scoring_model(make_model: Callable[[], Any], X: Any, rows: np.ndarray, y: np.ndarray, task: str) -> Any:
    """The model scored at a cold-start step, where the round fits none: the learner on the labels,
    or one that predicts the only class labelled so far."""
    if task == "classification" and len({str(v) for v in y.tolist()}) < 2:
        return _Constant(y[0])
    return fit_rows(make_model, X, rows, y)


@dataclass
class _Constant:
    """Predicts one label everywhere (a labelled set of one class)."""

    label: Any

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.label)
