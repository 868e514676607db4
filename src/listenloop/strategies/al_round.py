"""One active-learning round, the one both loops run: `listenloop simulate` (`sim/loop.py`, the
dataset's labels as the oracle) and the platform's learning rounds (`engine/learning/retrain.py`, the crowd).

A round goes from the labels so far to the clips to ask next, with the oracle or the crowd as the
only difference between the two loops:

- standardisation: the caller standardises the features on the round's rows (labelled and
  candidate clips) with `listenloop.rows.standardise` (a lazy view; the simulation may keep a dense
  copy of the same values);
- cold start: while the model cannot rank yet, the round asks without it. `kmeans` (the
  platform's; 000_ Table 1 step 1): until every class has a label, the candidates in round-robin
  order over k-means clusters, so the first clips cover the feature space. `random` (the
  simulation's default, from a random initial set): random order until two classes have a label.
  Afterwards the first `warmup` iterations still ask at random (T0 of 003_), unless the strategy
  has a schedule of its own;
- the model: `fit_round` (the labels, plus a self-training strategy's pseudo-labels);
- the strategy call: `strategy.select(ctx, head)` orders the queue's head (a batch in the
  simulation, the platform's QUEUE_SIZE), the rest of the candidates follow in random order;
- the passive arm: a share of the head is drawn uniformly at random and interleaved with the
  strategy's picks (an unbiased sample: the model is compared with passive learning on it).

The round's random numbers come from `(seed, iteration)`, so the same labels, strategy and seed
give the same queue in both loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from listenloop.errors import ListenloopError
from listenloop.rows import rows_per_chunk
from listenloop.strategies.base import QueryContext
from listenloop.strategies.passive import RandomSampling
from listenloop.strategies.training_set import RoundFit, fit_round

COLD_STARTS = ("kmeans", "random")
KMEANS_SAMPLE = 20000  # cold start: pool rows the clusters are fitted on (all rows are assigned)
KMEANS_CLUSTERS = 20
_RANDOM = RandomSampling()


@dataclass
class RoundQueue:
    """What a round decided: candidate rows in the order to ask them (the head first), the round's
    fit (None at cold start: no model yet), and the rows newly drawn into the passive arm.
    A strategy may choose fewer than the head (DAL asks nothing in its first T0 rounds): the
    simulation asks only the `chosen` rows, the platform's queue goes on with the rest.

    `how` says who ordered the head: `cold_start`, `warmup` (at random before the strategy takes
    over) or `strategy`. `notes` is what the strategy reported about its call (`ctx.extra`).
    """

    order: np.ndarray
    fit: RoundFit | None
    how: str
    chosen: int = 0  # leading rows of `order` the round chose (the rest: random, for later rounds)
    drawn: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def cold_start(self) -> bool:
        """No model ordered the queue: some class still lacks a label."""
        return self.how == "cold_start"

    @property
    def model(self) -> Any:
        """The round's model (None at cold start)."""
        return None if self.fit is None else self.fit.model


def round_rng(seed: int, iteration: int) -> np.random.Generator:
    """The random numbers of round `iteration` of a run (or project) seeded with `seed`."""
    return np.random.default_rng([int(seed), int(iteration)])


def needs_cold_start(y: np.ndarray, classes: list[str] | None, task: str) -> bool:
    """True while the model cannot rank yet: a class of `classes` has no label, or fewer than two
    classes (two ratings for regression) are labelled."""
    if task == "regression":
        return len(y) < 2
    seen = {str(v) for v in np.asarray(y).tolist()}
    return len(seen) < 2 or bool(set(classes or []) - seen)


def diverse_order(
    X: Any,
    rows: np.ndarray,
    rng: np.random.Generator,
    clusters: int = KMEANS_CLUSTERS,
    sample: int = KMEANS_SAMPLE,
) -> np.ndarray:
    """`rows` ordered round-robin over k-means clusters of their features (random order inside each).

    Above `sample` rows the clusters are fitted on a random sample of them and every row is
    assigned to its nearest centre a chunk at a time, so the pool is never loaded whole.
    """
    from sklearn.cluster import MiniBatchKMeans

    rows = np.asarray(rows)
    k = min(clusters, len(rows))
    if k <= 1:
        return rng.permutation(rows)
    seed = int(rng.integers(2**31 - 1))
    km = MiniBatchKMeans(n_clusters=k, n_init=3, random_state=seed, batch_size=max(1024, k * 20))
    if len(rows) <= sample:
        labels = km.fit_predict(np.asarray(X[rows], dtype=np.float64))
    else:
        fit_rows = np.sort(rng.choice(rows, size=sample, replace=False))
        km.fit(np.asarray(X[fit_rows], dtype=np.float64))
        step = rows_per_chunk(X.shape[1])
        parts = (np.asarray(X[rows[s : s + step]], dtype=np.float64) for s in range(0, len(rows), step))
        labels = np.concatenate([km.predict(part) for part in parts])  # one chunk in memory at a time
    members = [rng.permutation(rows[labels == c]) for c in range(k)]
    out: list[int] = []
    for depth in range(max(len(m) for m in members)):
        out.extend(int(m[depth]) for m in members if depth < len(m))
    return np.asarray(out, dtype=np.int64)


def cold_start_order(Z: Any, candidates: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    """The candidates in the order a cold start asks them: k-means round-robin or random."""
    if how not in COLD_STARTS:
        raise ListenloopError(f"cold start must be one of {', '.join(COLD_STARTS)}, not {how!r}")
    return diverse_order(Z, candidates, rng) if how == "kmeans" else rng.permutation(candidates)


def interleave_passive(
    order: np.ndarray, in_arm: np.ndarray, share: float, rng: np.random.Generator, head: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The queue with every (1/share)-th place of its head (the first `head` rows, default all)
    given to a uniformly random pool clip.

    `order`: rows in the strategy's order; `in_arm[row]`: drawn at random by an earlier round
    (those keep their arm). Returns the new order and the rows drawn now.
    """
    order = np.asarray(order, dtype=np.int64)
    if len(order) == 0 or share <= 0:
        return order, np.zeros(0, dtype=np.int64)
    mine = in_arm[order]
    arm = order[mine]
    rest = order[~mine]
    want = int(np.ceil(share * min(len(order) if head is None else head, len(order))))
    new = np.zeros(0, dtype=np.int64)
    if want > len(arm) and len(rest):
        new = rng.choice(rest, size=min(want - len(arm), len(rest)), replace=False)
        rest = rest[~np.isin(rest, new)]
        arm = np.concatenate([arm, new])
    arm = rng.permutation(arm)
    every = max(1, round(1 / share))
    out: list[int] = []
    a = r = 0
    while a < len(arm) or r < len(rest):
        if a < len(arm) and (len(out) % every == every - 1 or r >= len(rest)):
            out.append(int(arm[a]))
            a += 1
        else:
            out.append(int(rest[r]))
            r += 1
    return np.asarray(out, dtype=np.int64), np.sort(new)


def al_round(
    Z: Any,
    labelled: np.ndarray,
    y: np.ndarray,
    candidates: np.ndarray,
    strategy: Any,
    make_model: Callable[[], Any],
    *,
    head: int,
    seed: int,
    iteration: int,
    task: str = "classification",
    classes: list[str] | None = None,
    cold_start: str = "kmeans",
    warmup: int = 0,
    pseudo_weight: float = 1.0,
    planned: int | None = None,
    passive_share: float = 0.0,
    in_arm: np.ndarray | None = None,
    fit: bool = True,
) -> RoundQueue:
    """One round over standardised features `Z`: fit on `Z[labelled]`, `y` and order `candidates`.

    `head` candidates are ordered by the strategy (the batch the simulation asks; the platform's
    queue head), the rest follow in random order. While `needs_cold_start` (`kmeans`: a class of
    `classes` lacks a label; `random`: fewer than two classes are labelled) the whole order is the
    cold start's and no model is fitted; in the first `warmup` iterations the head is drawn at
    random (unless the strategy keeps its own schedule: DAL's T0, MAL's medoids).
    `passive_share` of the head goes to uniformly random candidates (`in_arm[row]`: drawn by an
    earlier round). With `fit=False` the round only fits (the simulation's last score, a stop).
    """
    labelled = np.asarray(labelled, dtype=np.int64)
    candidates = np.asarray(candidates, dtype=np.int64)
    y = np.asarray(y)
    rng = round_rng(seed, iteration)
    if needs_cold_start(y, classes if cold_start == "kmeans" else None, task):
        order = cold_start_order(Z, candidates, cold_start, rng) if fit else candidates[:0]
        return RoundQueue(order, None, "cold_start", int(min(head, len(order))))
    fitted = fit_round(
        make_model,
        Z,
        labelled,
        y,
        candidates,
        strategy,
        iteration=iteration,
        rng=rng,
        task=task,
        pseudo_weight=pseudo_weight,
    )
    own = getattr(strategy, "own_schedule", False)
    how = "warmup" if iteration < warmup and not own else "strategy"
    if not fit or len(candidates) == 0:
        return RoundQueue(candidates[:0], fitted, how)
    ctx = QueryContext(
        model=fitted.model,
        X=Z,
        candidates=candidates,
        labelled=labelled,
        y_labelled=y,
        iteration=iteration,
        rng=rng,
        task=task,
        planned=planned,
    )
    asker = _RANDOM if how == "warmup" else strategy
    picked = np.asarray(asker.select(ctx, int(min(head, len(candidates)))), dtype=np.int64)
    if len(np.unique(picked)) != len(picked) or not np.isin(picked, candidates).all():
        raise RuntimeError(f"strategy {strategy.name} returned repeated or non-candidate rows")
    rest = rng.permutation(np.setdiff1d(candidates, picked, assume_unique=True))
    order = np.concatenate([picked, rest])
    drawn = np.zeros(0, dtype=np.int64)
    if passive_share > 0:
        arm = in_arm if in_arm is not None else np.zeros(int(order.max()) + 1, dtype=bool)
        order, drawn = interleave_passive(order, arm, passive_share, round_rng(seed + 7, iteration), head)
    if hasattr(strategy, "pseudo_labels"):
        ctx.extra["pseudo_labels"] = len(fitted.pseudo_rows)
    return RoundQueue(order, fitted, how, len(picked), drawn, dict(ctx.extra))
