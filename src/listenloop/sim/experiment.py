"""A simulation experiment: every strategy over every (split, run) pair, paired on the same
split and the same initial labelled set, plus the learner trained on the whole pool."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from listenloop.errors import ListenloopError
from listenloop.learners import make_learner
from listenloop.rows import rows_per_chunk
from listenloop.rows import standardise as rows_standardise
from listenloop.sim.loop import Curve, LoopConfig, predict_rows, run_loop
from listenloop.sim.metrics import task_scores
from listenloop.strategies import make_strategy
from listenloop.strategies.al_round import COLD_STARTS, diverse_order


@dataclass
class ExperimentConfig:
    """What to compare and how often."""

    strategies: list[str]
    task: str = "classification"
    learner: str | None = None
    learner_params: dict[str, Any] = field(default_factory=dict)
    upsample: bool = False
    runs: int = 10
    seed: int = 0
    loop: LoopConfig = field(default_factory=LoopConfig)
    strategy_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    full_pool_max: int = 20000  # the full-pool reference learner sees at most this many training rows


@dataclass
class RunResult:
    """One strategy's curve on one (split, run) pair."""

    strategy: str
    split: str
    run: int
    curve: Curve


@dataclass
class ExperimentResult:
    """All curves, plus the full-pool score of each split."""

    config: ExperimentConfig
    runs: list[RunResult]
    full_pool: dict[str, dict[str, float]]  # split name -> scores of the learner on the whole pool
    splits: list[str]
    split_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (pool, test) clips


def initial_labelled(
    pool: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator, task: str
) -> np.ndarray:
    """`n` random pool rows; for classification at least two classes when the pool has them."""
    if n >= len(pool):
        return np.sort(pool)
    for _ in range(100):
        rows = rng.choice(pool, size=n, replace=False)
        if task != "classification" or len(np.unique(y[rows])) >= min(2, len(np.unique(y[pool]))):
            return np.sort(rows)
    return np.sort(rows)


def standardise(X: np.ndarray, pool: np.ndarray, spill_dir: str | None = None) -> np.ndarray:
    """Features standardised on the (unlabelled) pool's mean and std, the platform's rule
    (`rows.standardise`: the same values as its lazy view, kept as a dense copy because a
    simulation reads the pool every iteration). Needs no labels.

    A memory-mapped X (a pool bigger than RAM) gives a memory-mapped result, written chunk
    by chunk to a temporary .npy in `spill_dir`; the caller deletes it (`release`).
    """
    Z = rows_standardise(X, pool)
    step = rows_per_chunk(X.shape[1])
    if not isinstance(X, np.memmap):
        return np.concatenate([Z[i : i + step] for i in range(0, len(X), step)]) if len(X) else Z[0:0]
    fd, name = tempfile.mkstemp(suffix=".npy", prefix="listenloop-scaled-", dir=spill_dir)
    os.close(fd)
    out = np.lib.format.open_memmap(name, mode="w+", dtype=np.float32, shape=X.shape)
    for i in range(0, len(X), step):
        out[i : i + step] = Z[i : i + step]
    out.flush()
    return np.load(name, mmap_mode="r")


def release(X: np.ndarray) -> None:
    """Delete the temporary file behind a memory-mapped matrix made by `standardise`."""
    name = getattr(X, "filename", None)
    if name and os.path.basename(name).startswith("listenloop-scaled-"):
        os.unlink(name)


def full_pool_rows(train: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """The training rows the full-pool reference is fitted on: all, or a random `limit` of a huge pool."""
    if len(train) <= limit:
        return train
    return np.sort(np.random.default_rng(seed).choice(train, size=limit, replace=False))


def _learner_factory(config: ExperimentConfig, seed: int) -> Callable[[], Any]:
    return lambda: make_learner(
        config.learner, config.task, upsample=config.upsample, random_state=seed, **config.learner_params
    )


def _run_pair(
    Xs: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    split_name: str,
    s: int,
    r: int,
    config: ExperimentConfig,
    own_features: dict[str, np.ndarray] | None = None,
) -> list[RunResult]:
    """Every strategy on one (split, run) pair, from one initial labelled set and one learner seed.

    `own_features[name]`: the standardised features of a strategy that brings its own (MAL's
    MFCC functionals) instead of the run's."""
    init_rng = np.random.default_rng(np.random.SeedSequence([config.seed, s, r]))
    if config.loop.cold_start == "kmeans":  # the platform's: the first clips cover the feature space
        init = np.sort(diverse_order(Xs, train, init_rng)[: config.loop.initial])
    else:
        init = initial_labelled(train, y, config.loop.initial, init_rng, config.task)
    learner_seed = int(init_rng.integers(2**31))
    out = []
    for name in config.strategies:
        strategy = make_strategy(name, config.task, **config.strategy_params.get(name, {}))
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, s, r, 1]))
        curve = run_loop(
            (own_features or {}).get(name, Xs),
            y,
            train,
            test,
            init,
            strategy,
            _learner_factory(config, learner_seed),
            config.loop,
            rng,
            config.task,
        )
        out.append(RunResult(name, split_name, r, curve))
    return out


def validate_config(config: ExperimentConfig, classes: int | None = None) -> None:
    """Raise ListenloopError for bad strategy or learner names and sizes, and strategies that
    cannot run on `classes` classes (when known), before any work."""
    if config.loop.initial < 1:
        raise ListenloopError("--initial must be at least 1")
    if config.loop.cold_start not in COLD_STARTS:
        known = ", ".join(COLD_STARTS)
        raise ListenloopError(f"--cold-start must be one of {known}, not {config.loop.cold_start!r}")
    if not 0.0 <= config.loop.passive_share < 1.0:
        raise ListenloopError(f"--passive-share must be in [0, 1), got {config.loop.passive_share}")
    for name in config.strategies:
        make_strategy(name, config.task, classes, **config.strategy_params.get(name, {}))
    make_learner(config.learner, config.task, upsample=config.upsample, **config.learner_params)


def run_experiment(
    X: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray, str]],
    config: ExperimentConfig,
    progress: bool = True,
    jobs: int = 1,
    on_pair: Callable[[int, int], None] | None = None,
) -> ExperimentResult:
    """Run every strategy on every (split, run) pair; `jobs` pairs run in parallel processes.

    Within a pair, all strategies start from the same initial labelled set and the same
    learner seed, so their curves are paired for the significance tests. Results do not
    depend on `jobs`. `on_pair(done, total)` is called after each (split, run) pair (a dry run's
    progress).
    """
    validate_config(config)
    results: list[RunResult] = []
    full_pool: dict[str, dict[str, float]] = {}
    bar = tqdm(
        total=len(splits) * config.runs, desc="simulate", unit="run", disable=not progress, leave=False
    )
    finished = 0
    with Parallel(n_jobs=jobs, return_as="generator") as parallel:
        for s, (train, test, split_name) in enumerate(splits):
            if len(train) <= config.loop.initial:
                raise ListenloopError(
                    f"split {split_name}: {len(train)} training clips, not more than "
                    f"--initial {config.loop.initial}"
                )
            Xs = standardise(X, train)
            # strategies with a feature table of their own (MAL) run on it, standardised alike
            own = {
                name: standardise(params["table"], train)
                for name, params in config.strategy_params.items()
                if name in config.strategies and params.get("table") is not None
            }
            try:
                rows = full_pool_rows(train, config.full_pool_max, config.seed)
                full = _learner_factory(config, config.seed)().fit(np.asarray(Xs[rows]), y[rows])
                full_pool[split_name] = task_scores(config.task, y[test], predict_rows(full, Xs, test))
                pairs = parallel(
                    delayed(_run_pair)(Xs, y, train, test, split_name, s, r, config, own)
                    for r in range(config.runs)
                )
                for pair in pairs:
                    results.extend(pair)
                    bar.update(1)
                    bar.set_postfix_str(split_name)
                    finished += 1  # (a disabled tqdm bar counts nothing)
                    if on_pair is not None:
                        on_pair(finished, len(splits) * config.runs)
            finally:
                release(Xs)
                for Xo in own.values():
                    release(Xo)
    bar.close()
    sizes = {name: (len(train), len(test)) for train, test, name in splits}
    return ExperimentResult(config, results, full_pool, [name for _, _, name in splits], sizes)
