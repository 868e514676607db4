"""MC dropout active learning, DAL (003_, section 4.2): its own model, pseudo-labels and queries.

- Initialisation: a fresh MC-dropout network trained on the labelled set (`initial_steps`).
- Stage I, each iteration: the pool's MC posterior and vote entropy over |D| masks (eq. 2, 5 to
  7); clips whose confidence exceeds Θ get their predicted class as a pseudo-label (eq. 4, built
  anew every iteration); the highest-entropy clips are queried (`select`, a batch of n), none in
  the first T0 iterations.
- Stage II: `steps` more Adam steps on minibatches of B clips per class, of which
  B_P,c = αB|S_P,c| / (|S_L,c| + α|S_P,c|) pseudo-labelled (eq. 8, 9).

Unlike the other strategies, DAL trains the model itself and keeps it between rounds
(`fit_round`): the simulation's loop and the platform's rounds call it instead of fitting the
project's learner. Defaults are 003_ Table 1. Needs torch (`pip install 'listenloop[deep]'`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from listenloop.errors import ListenloopError
from listenloop.learners.mc_dropout import MCDropoutClassifier, require_torch
from listenloop.rows import rows_per_chunk
from listenloop.strategies.base import QueryContext
from listenloop.strategies.training_set import RoundFit


def pseudo_label_shares(labelled: np.ndarray, pseudo: np.ndarray, batch: int, alpha: float) -> np.ndarray:
    """(classes × 2) clips per minibatch from the labelled and the pseudo-labelled set (eq. 8, 9).

    `labelled[c]`, `pseudo[c]`: |S_L,c| and |S_P,c|. B_P,c = round(αB|S_P,c| / (|S_L,c| + α|S_P,c|)),
    B_L,c = B − B_P,c; a class without labelled clips draws all B from its pseudo-labels.
    """
    labelled = np.asarray(labelled, float)
    pseudo = np.asarray(pseudo, float)
    denom = labelled + alpha * pseudo
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(denom > 0, np.rint(alpha * batch * pseudo / denom), 0.0)
    bp = np.where((labelled == 0) & (pseudo > 0), batch, bp).astype(int)
    return np.stack([batch - bp, bp], axis=1)


def pool_scores(model: MCDropoutClassifier, X: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`model.mc_scores` of `X[rows]` read a chunk of rows at a time (X may be memory-mapped or a
    lazy standardised view), every chunk under the same |D| masks."""
    seed = int(model.rng_.integers(2**31))
    step = rows_per_chunk(X.shape[1])
    parts = [model.mc_scores(np.asarray(X[rows[i : i + step]]), seed=seed) for i in range(0, len(rows), step)]
    if not parts:
        return np.empty((0, len(model.classes_))), np.empty(0)
    return np.concatenate([p for p, _ in parts]), np.concatenate([e for _, e in parts])


@dataclass
class DAL:
    """MC dropout active learning: vote-entropy queries, confident pseudo-labels, weighted minibatches."""

    theta: float = 0.5  # Θ: confidence above which an unlabelled clip gets a pseudo-label (eq. 4)
    alpha: float = 0.01  # α: a pseudo-labelled clip's draw weight against a labelled one (eq. 8)
    t0: int = 3  # T0: iterations without queries at the start
    masks: int = 128  # |D|
    per_class_batch: int = 256  # B
    steps: int = 40  # Adam steps per iteration (stage II)
    initial_steps: int = 1600  # Adam steps at initialisation
    lr: float = 1e-3
    weight_decay: float = 1e-3
    p: float = 0.5  # dropout probability
    name: str = "dal"
    own_schedule: bool = True  # no shared random warm-up: T0 is DAL's own
    model_: MCDropoutClassifier | None = field(default=None, repr=False)
    _scored: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.theta <= 1.0:
            raise ListenloopError(f"dal: theta must lie in [0, 1], got {self.theta}")
        if self.alpha < 0:
            raise ListenloopError(f"dal: alpha must be at least 0, got {self.alpha}")
        if self.t0 < 0 or self.masks < 1 or self.per_class_batch < 1 or self.steps < 0:
            raise ListenloopError("dal: t0 and steps must be >= 0, masks and per_class_batch >= 1")
        require_torch()

    def _new_model(self, seed: int) -> MCDropoutClassifier:
        return MCDropoutClassifier(
            p=self.p,
            masks=self.masks,
            steps=self.initial_steps,
            per_class_batch=self.per_class_batch,
            lr=self.lr,
            weight_decay=self.weight_decay,
            random_state=seed,
        )

    def make_model(self) -> MCDropoutClassifier:
        """A fresh, unfitted network with DAL's settings (for cross-validated scores)."""
        return self._new_model(0)

    def fit_round(
        self,
        make_model: Callable[[], Any],
        X: np.ndarray,
        labelled: np.ndarray,
        y: np.ndarray,
        candidates: np.ndarray,
        *,
        iteration: int,
        rng: np.random.Generator,
        task: str = "classification",
    ) -> RoundFit:
        """Initialise on the labels (first call), then stage I's pseudo-labels and stage II's training.

        `make_model` (the project's learner) is not used: DAL's model is its MC-dropout network.
        The first call of a simulation (iteration 0) only initialises; a later first call (a live
        round) initialises and then runs one stage I and II.
        """
        if task != "classification":
            raise ListenloopError("dal needs class labels (classification), not continuous ones")
        labelled = np.asarray(labelled, dtype=np.int64)
        candidates = np.asarray(candidates, dtype=np.int64)
        y = np.asarray(y)
        none = np.empty(0, dtype=np.int64)
        if self.model_ is None:
            self.model_ = self._new_model(int(rng.integers(2**31))).fit(np.asarray(X[labelled]), y)
            self._scored = None
            if iteration == 0 or len(candidates) == 0:
                return RoundFit(self.model_, none, y[:0])
        model = self.model_
        model.add_classes(y)
        # stage I: pseudo-labels from the posterior `select` computed for these clips, if it did
        proba = self._posterior(X, candidates)
        conf = proba.max(axis=1) if len(candidates) else np.empty(0)
        keep = conf > self.theta
        pseudo_rows = candidates[keep]
        pseudo_idx = np.argmax(proba[keep], axis=1) if keep.any() else np.empty(0, dtype=np.int64)
        # stage II: B clips per class per step, α-weighted between labels and pseudo-labels
        y_idx = np.searchsorted(model.classes_, y)
        rows = np.concatenate([labelled, pseudo_rows])
        Xt = np.asarray(X[rows], dtype=np.float32)
        targets = np.concatenate([y_idx, pseudo_idx]).astype(np.int64)
        n_lab = len(labelled)
        groups = []
        counts = np.zeros((len(model.classes_), 2))
        for c in range(len(model.classes_)):
            lab = np.flatnonzero(y_idx == c)
            pse = n_lab + np.flatnonzero(pseudo_idx == c)
            counts[c] = len(lab), len(pse)
            groups.append([(lab, None), (pse, None)])
        shares = pseudo_label_shares(counts[:, 0], counts[:, 1], self.per_class_batch, self.alpha)
        model.train_steps(Xt, targets, groups, self.steps, shares)
        self._scored = None
        return RoundFit(model, pseudo_rows, model.classes_[pseudo_idx])

    def _posterior(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The MC posterior of `rows`: from the scores of the last `select` (same model) if it saw them."""
        if self._scored is not None:
            seen, proba = self._scored
            pos = np.searchsorted(seen, rows)
            pos = np.minimum(pos, len(seen) - 1) if len(seen) else pos
            if len(seen) and np.array_equal(seen[pos], rows):
                return proba[pos]
        assert self.model_ is not None
        return pool_scores(self.model_, X, rows)[0]

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """The `n` candidates of highest vote entropy (ties: least confident first); none in the
        first T0 iterations. Keeps the posterior for the next stage I (same model, same masks)."""
        model = ctx.model if isinstance(ctx.model, MCDropoutClassifier) else self.model_
        if model is None:
            raise ListenloopError("dal: select before any fit_round")
        if ctx.iteration < self.t0 or n <= 0:
            return np.empty(0, dtype=np.int64)
        cand = np.asarray(ctx.candidates, dtype=np.int64)
        proba, entropy = pool_scores(model, ctx.X, cand)
        order = np.argsort(cand, kind="stable")
        self._scored = (cand[order], proba[order])
        rank = np.lexsort((proba.max(axis=1), -entropy))  # entropy down, then confidence up
        ctx.extra["pseudo_candidates"] = int((proba.max(axis=1) > self.theta).sum())
        return cand[rank[:n]]
