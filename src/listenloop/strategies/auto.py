"""`auto`: Active Learning by Learning (Hsu and Lin, AAAI 2015), in batches.

Which query rule pays depends on the data (findings.md: margin wins most configurations, but
loses to random with some held-out speakers and on small binary tasks). `auto` learns it
while it asks. Each candidate strategy (an *arm*: random, margin, margin_diverse,
least_confidence, entropy by default) is an expert of an EXP4 bandit (Auer et al. 2002), as
in ALBL:

- Every batch, each arm ranks the candidates; the batch's slots are drawn from the arms
  with probabilities p (the bandit's weights mixed with a floor `p_min` per arm), each slot
  taking its arm's best clip not yet taken.
- A fixed share of every batch (`random_share`, at least one clip) is drawn uniformly at
  random, whatever the weights: the importance weights below stay bounded, and `auto`
  cannot fall far below passive learning even when every rule misleads it.
- Reward (ALBL's): an importance-weighted estimate of the model's accuracy. A batch is
  scored by the model that chose it before that model trains on it, so the estimate is an
  honest test score; each clip counts 1/q, q being the probability that one slot draws it.
  The reward of a batch's arm mix is the gain in that estimate from the model before the
  batch to the model after it (both on the same later clips when the previous model is at
  hand, as in a simulation; otherwise the difference of consecutive estimates). Arms are
  credited EXP4-style: r̂_k = reward × (slots of arm k / slots) / p_k, an unbiased estimate.
- Weights: log w_k += η r̂_k. The bandit starts from a prior over the arms (default: the
  track record of findings.md, margin-heavy; `prior="uniform"` for none). EXP4's regret
  against the best arm is O(√(T K ln K)) in expectation for any prior with full support.

Semi-supervised (002_): after each round's fit on the labels, the clips the model predicts
with a probability above `pseudo_threshold` (0.75), balanced across classes and at most
`pseudo_cap` times the labels, join a second fit as pseudo-labels (`self_training`'s rule,
`balanced_pseudo_labels`; `strategies/training_set.fit_round` does the fitting). They train the
model only: no clip gets a label from them. On FSDD leave one speaker out this took `auto`'s
labels to random's best from 60 % to 45 % of random's (BENCHMARKS.md, issue 18); None turns it off.

Which arm supplied each clip is logged in `ctx.extra` (`auto_sources`: slots per source,
`auto_p`: the arm probabilities of the batch), and `simulate` plots the shares.

The bandit's state is plain JSON (`state`, rows as row numbers of `ctx.X`), so the live loop
can keep it between rounds (`load_state` / `dump_state`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from listenloop.strategies.base import QueryContext, predict_proba_chunked
from listenloop.strategies.diverse import kmeans_diverse
from listenloop.strategies.scoring import score_pool_many
from listenloop.strategies.selection import top_k
from listenloop.strategies.self_training import balanced_pseudo_labels

DEFAULT_ARMS: tuple[str, ...] = ("random", "margin", "margin_diverse", "least_confidence", "entropy")
# Prior weights from findings.md: margin best or tied-best in 13 of 16 configurations and never more
# than 0.002 below random; entropy below random on DCASE office; random the safe floor.
DEFAULT_PRIOR: dict[str, float] = {
    "random": 0.1,
    "margin": 0.4,
    "margin_diverse": 0.3,
    "least_confidence": 0.1,
    "entropy": 0.1,
}
RANDOM_SOURCE = "random_share"
MIN_REWARD_SCALE = 1e-3  # accuracy gains below this are noise
REWARD_CLIP = 3.0  # rewards, in units of the typical gain so far, are clipped to ±3
_MEASURES = ("margin", "least_confidence", "entropy")
DIVERSE_FACTOR = 5  # a diverse arm clusters its measure's 5n best (as margin_diverse does)
PSEUDO_THRESHOLD = 0.75  # predictions above it train the model as pseudo-labels (None: off)
PSEUDO_CAP = 4.0  # at most this many pseudo-labels per label
# Candidates scored for pseudo-labels at most (a random sample above): on a million-clip pool
# the whole pool would cost one more pass over the feature matrix for a few thousand labels.
PSEUDO_SAMPLE = 50_000


def _measure_of(arm: str) -> str | None:
    """The uncertainty measure an arm ranks by (margin for margin_diverse), None for others."""
    base = arm.removesuffix("_diverse")
    return base if base in _MEASURES else None


def _positions(within: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The position of each of `rows` in `within` (any order), −1 where it is not there."""
    within = np.asarray(within, dtype=np.int64)
    if len(within) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    order = np.argsort(within, kind="stable")
    at = np.minimum(np.searchsorted(within[order], rows), len(within) - 1)
    return np.where(within[order][at] == rows, order[at], -1)


def remap_state(state: dict[str, Any] | None, old: np.ndarray, new: np.ndarray) -> dict[str, Any] | None:
    """The state with its waiting batch's rows renamed from `old[i]` to `new[i]` (row numbers of
    one round to clip ids and back, in the live loop); rows not in `old` are dropped with their
    probabilities and predictions."""
    if not state or not state.get("pending"):
        return state
    pending = dict(state["pending"])
    where = _positions(np.asarray(old, dtype=np.int64), np.asarray(pending["rows"], dtype=np.int64))
    keep = where >= 0
    pending["rows"] = np.asarray(new, dtype=np.int64)[where[keep]].tolist()
    for key in ("q", "pred", "prev_pred"):
        if pending.get(key) is not None:
            pending[key] = [v for v, k in zip(pending[key], keep, strict=True) if k]
    return {**state, "pending": pending}


@dataclass
class AutoStrategy:
    """Active Learning by Learning over `arms`: an EXP4 bandit whose reward is an importance-weighted
    accuracy estimate from the queried labels, with a random share in every batch."""

    arms: tuple[str, ...] = DEFAULT_ARMS
    prior: dict[str, float] | str | None = None  # None: DEFAULT_PRIOR; "uniform"; or weights per arm
    random_share: float = 0.1
    p_min: float = 0.02
    eta: float = 0.3
    pseudo_threshold: float | None = PSEUDO_THRESHOLD
    pseudo_cap: float = PSEUDO_CAP
    name: str = "auto"
    state: dict[str, Any] = field(default_factory=dict)
    _previous_model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.arms = tuple(self.arms)
        if not self.arms:
            raise ValueError("auto needs at least one arm")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"auto: repeated arms in {self.arms}")
        if not 0.0 < self.random_share < 1.0:
            raise ValueError("auto: random_share must be in (0, 1)")
        if not 0.0 <= self.p_min * len(self.arms) < 1.0:
            raise ValueError("auto: p_min times the number of arms must be in [0, 1)")
        if isinstance(self.prior, str) and self.prior != "uniform":
            raise ValueError(f"auto: prior must be 'uniform' or weights per arm, not {self.prior!r}")
        if self.pseudo_threshold is not None and not 0.0 < self.pseudo_threshold < 1.0:
            raise ValueError("auto: pseudo_threshold must be in (0, 1), or None for no pseudo-labels")
        if self.pseudo_cap < 0:
            raise ValueError("auto: pseudo_cap must be at least 0")

    # -- semi-supervised -------------------------------------------------------------------------

    def pseudo_labels(self, ctx: QueryContext, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Balanced confident predictions over the candidates (rows, labels), except rows `exclude`
        (over a random PSEUDO_SAMPLE of them in a larger pool); none when `pseudo_threshold` is
        None or the task is not classification."""
        if self.pseudo_threshold is None or ctx.task != "classification":
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        rows = ctx.candidates[~np.isin(ctx.candidates, exclude)]
        if len(rows) > PSEUDO_SAMPLE:  # a huge pool: a sample is plenty for 4 per label
            rows = np.sort(ctx.rng.choice(rows, PSEUDO_SAMPLE, replace=False))
        most = int(self.pseudo_cap * len(ctx.labelled))
        proba = predict_proba_chunked(ctx.model, ctx.X, rows)
        pos, labels = balanced_pseudo_labels(proba, ctx.model.classes_, self.pseudo_threshold, max_total=most)
        return rows[pos], labels

    # -- state -----------------------------------------------------------------------------------

    def _prior_log_weights(self) -> np.ndarray:
        if self.prior == "uniform":
            w = np.ones(len(self.arms))
        else:
            table = DEFAULT_PRIOR if self.prior is None else self.prior
            w = np.array([float(table.get(a, min(DEFAULT_PRIOR.values()))) for a in self.arms])
        if (w <= 0).any():
            raise ValueError("auto: prior weights must be positive")
        return np.log(w / w.sum())

    def log_weights(self) -> np.ndarray:
        """The bandit's log weights, one per arm (the prior before any reward)."""
        if self.state.get("arms") != list(self.arms):  # a fresh state, or arms changed: start over
            self.state = {"arms": list(self.arms), "log_w": self._prior_log_weights().tolist()}
        return np.asarray(self.state["log_w"], dtype=np.float64)

    def probabilities(self) -> np.ndarray:
        """p_k = (1 − K p_min) w_k / Σw + p_min: the arm mix of the next batch's bandit slots."""
        lw = self.log_weights()
        w = np.exp(lw - lw.max())
        return (1.0 - len(self.arms) * self.p_min) * w / w.sum() + self.p_min

    def load_state(self, state: dict[str, Any] | None) -> None:
        """Continue from a state `dump_state` returned (the live loop, between rounds)."""
        self.state = dict(state or {})

    def dump_state(self) -> dict[str, Any]:
        """The bandit's state as JSON-ready data (weights, the batches still waiting for a reward)."""
        self.log_weights()
        return self.state

    # -- reward ----------------------------------------------------------------------------------

    def _reward(self, ctx: QueryContext) -> None:
        """Score the last batch's clips that have labels now, and credit the arm mix of the batch
        before it (the batch the scoring model was the first to train on)."""
        pending = self.state.get("pending")
        if not pending:
            return
        rows = np.asarray(pending["rows"], dtype=np.int64)
        where = _positions(np.asarray(ctx.labelled, dtype=np.int64), rows)
        known = where >= 0
        if not known.any():
            return  # nothing answered yet (a live round that came too soon): keep waiting
        y = np.asarray(ctx.y_labelled)[where[known]].astype(str)
        weight = 1.0 / np.asarray(pending["q"], dtype=np.float64)[known]
        pred = np.asarray(pending["pred"], dtype=str)[known]
        acc = float((weight * (pred == y)).sum() / weight.sum())
        if pending.get("prev_pred") is not None:
            prev = np.asarray(pending["prev_pred"], dtype=str)[known]
            gain = acc - float((weight * (prev == y)).sum() / weight.sum())
        elif self.state.get("last_acc") is not None:
            gain = acc - float(self.state["last_acc"])
        else:
            gain = None
        self.state["last_acc"] = acc
        self.state["pending"] = None
        mix = self.state.get("credit")  # the arm mix the scoring model was the first to train on
        self.state["credit"] = {"counts": pending["counts"], "p": pending["p"]}
        if gain is None or mix is None:
            return
        counts = np.asarray(mix["counts"], dtype=np.float64)
        p = np.asarray(mix["p"], dtype=np.float64)
        slots = counts.sum()
        if slots <= 0:
            return
        gains = [*self.state.get("rewards", [])[-49:], round(gain, 6)]
        self.state["rewards"] = gains
        # the gain in units of its typical size so far: accuracy gains shrink as the curve flattens,
        # and a reward scale that does not follow them would freeze the weights
        scale = max(float(np.mean(np.abs(gains))), MIN_REWARD_SCALE)
        reward = float(np.clip(gain / scale, -REWARD_CLIP, REWARD_CLIP))
        estimate = reward * (counts / slots) / p  # EXP4's importance-weighted reward of each arm
        lw = self.log_weights() + self.eta * estimate
        self.state["log_w"] = (lw - lw.max()).tolist()

    # -- selection -------------------------------------------------------------------------------

    def _rankings(self, ctx: QueryContext, n: int) -> dict[str, np.ndarray | None]:
        """Each arm's candidates positions, best first (None: the random arm). The uncertainty
        measures are scored in one pass over the pool."""
        measures = tuple(sorted({m for a in self.arms if (m := _measure_of(a)) is not None}))
        scores = score_pool_many(ctx.model, ctx.X, measures, subset=ctx.candidates) if measures else {}
        depth = min(len(ctx.candidates), DIVERSE_FACTOR * n)
        best: dict[str, np.ndarray] = {}

        def ranked(measure: str) -> np.ndarray:  # one partial sort per measure, shared by its arms
            if measure not in best:
                best[measure] = top_k(scores[measure], depth)
            return best[measure]

        out: dict[str, np.ndarray | None] = {}
        for arm in self.arms:
            measure = _measure_of(arm)
            if arm == "random":
                out[arm] = None
            elif measure is not None and arm.endswith("_diverse"):
                order = ranked(measure)
                head = kmeans_diverse(ctx.X, ctx.candidates, scores[measure], n, ctx.rng, ranked=order)
                out[arm] = np.concatenate([head, order[~np.isin(order, head)]])
            elif measure is not None:
                out[arm] = ranked(measure)
            else:  # any other registered strategy: its own batch, in its order
                from listenloop.strategies.registry import make_strategy

                rows = np.asarray(make_strategy(arm, ctx.task).select(ctx, n), dtype=np.int64)
                out[arm] = _positions(ctx.candidates, rows)
        return out

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """n candidates: a random share, the other slots drawn from the arms by the bandit's mix."""
        N = len(ctx.candidates)
        n = min(int(n), N)
        if n <= 0:
            return np.empty(0, dtype=np.int64)
        self._reward(ctx)
        p = self.probabilities()
        k = len(self.arms)
        n_random = min(n, max(1, math.ceil(self.random_share * n)))
        m = n - n_random
        counts = ctx.rng.multinomial(m, p) if m > 0 else np.zeros(k, dtype=np.int64)
        rankings = self._rankings(ctx, n)
        # the slots in a random order: in the live loop the queue is heard from its head, so every
        # source must be spread along it, the random share included
        slots = ctx.rng.permutation(np.concatenate([np.full(n_random, -1), np.repeat(np.arange(k), counts)]))
        taken: set[int] = set()
        cursor = np.zeros(k, dtype=np.int64)
        picked: list[int] = []
        source: list[int] = []

        def draw_random() -> int:
            if len(taken) > N // 2:  # dense: draw among what is left
                return int(ctx.rng.choice(np.setdiff1d(np.arange(N), list(taken))))
            while True:
                i = int(ctx.rng.integers(N))
                if i not in taken:
                    return i

        for s in slots:
            pos = None
            if s >= 0 and rankings[self.arms[s]] is not None:
                ranked = rankings[self.arms[s]]
                while cursor[s] < len(ranked) and int(ranked[cursor[s]]) in taken:
                    cursor[s] += 1
                if cursor[s] < len(ranked):
                    pos = int(ranked[cursor[s]])
            if pos is None:  # the random arm, the random share, or an arm out of clips
                pos = draw_random()
            taken.add(pos)
            picked.append(pos)
            source.append(int(s))
        picked_arr = np.asarray(picked, dtype=np.int64)
        # q(i): the chance that one slot draws clip i (the random share, or an arm by p, then the
        # arm's advice: uniform over its first m clips, or over all candidates for random)
        q = np.full(n, (n_random / n) / N)
        for j, arm in enumerate(self.arms):
            ranked = rankings[arm]
            share = (m / n) * p[j]
            if ranked is None:
                q += share / N
            elif m > 0:
                q += share * np.isin(picked_arr, ranked[:m]) / m
        rows = ctx.candidates[picked_arr]
        pred = np.asarray(ctx.model.predict(np.asarray(ctx.X[rows]))).astype(str)
        prev = None
        if self._previous_model is not None:
            prev = np.asarray(self._previous_model.predict(np.asarray(ctx.X[rows]))).astype(str).tolist()
        self._previous_model = ctx.model
        self.state["pending"] = {
            "rows": rows.tolist(),
            "q": q.tolist(),
            "pred": pred.tolist(),
            "prev_pred": prev,
            "counts": counts.tolist(),
            "p": p.tolist(),
        }
        names = [RANDOM_SOURCE if s < 0 else self.arms[s] for s in source]
        ctx.extra["auto_sources"] = {a: names.count(a) for a in (RANDOM_SOURCE, *self.arms)}
        ctx.extra["auto_p"] = dict(zip(self.arms, (round(float(v), 4) for v in p), strict=True))
        ctx.extra["auto_clip_sources"] = names
        return rows
