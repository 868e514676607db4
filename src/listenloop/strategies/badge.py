"""BADGE (Ash et al., ICLR 2020): k-means++ seeding over gradient embeddings.

A clip's gradient embedding is the gradient of the cross-entropy loss, at the model's own
predicted label, with respect to the last layer's weights: g(x) = (p(x) − onehot(ŷ)) ⊗ h(x),
with p the class probabilities and h the input of the last layer. Its norm grows with the
model's uncertainty, and k-means++ seeding (each next clip drawn with probability
proportional to its squared distance from the clips already chosen) trades uncertainty
against diversity without a tuned mixture.

For listenloop's learners (no deep network) h is the feature vector the learner sees (the
standardised features) and p its `predict_proba`: the embedding of a softmax model over
these features, exact for logistic regression, an approximation for the SVM (Platt
probabilities over a linear score). Distances use ‖a⊗h‖² = ‖a‖²‖h‖² and
⟨a⊗h, b⊗k⟩ = ⟨a, b⟩⟨h, k⟩, so the C × d embeddings are never built: one seeding step
costs O(N (C + d)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listenloop.strategies.base import QueryContext, predict_proba_chunked

MAX_CANDIDATES = 20000  # larger candidate sets are subsampled at random (k-means++ is O(N n (C + d)))


def gradient_factors(proba: np.ndarray) -> np.ndarray:
    """a = p − onehot(argmax p): the class factor of each row's gradient embedding a ⊗ h."""
    a = np.array(proba, dtype=np.float64)
    a[np.arange(len(a)), a.argmax(axis=1)] -= 1.0
    return a


def kmeanspp_gradient(a: np.ndarray, h: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of `n` rows chosen by k-means++ seeding over the embeddings a_i ⊗ h_i.

    The first is the row with the largest embedding norm (as in the paper's code); each next
    is drawn with probability proportional to its squared distance from the nearest chosen
    row. When every remaining distance is zero (all embeddings equal), the rest are random.
    """
    N = len(a)
    n = min(int(n), N)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    a = np.asarray(a, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    sq = np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", h, h)  # ‖a ⊗ h‖²
    first = int(np.argmax(sq))
    picked = [first]
    dist = np.maximum(sq + sq[first] - 2.0 * (a @ a[first]) * (h @ h[first]), 0.0)
    dist[first] = 0.0
    while len(picked) < n:
        total = dist.sum()
        if total <= 0:
            rest = np.setdiff1d(np.arange(N), picked)
            picked.extend(rng.choice(rest, size=n - len(picked), replace=False).tolist())
            break
        nxt = int(rng.choice(N, p=dist / total))
        picked.append(nxt)
        d_new = np.maximum(sq + sq[nxt] - 2.0 * (a @ a[nxt]) * (h @ h[nxt]), 0.0)
        np.minimum(dist, d_new, out=dist)
        dist[picked] = 0.0
    return np.asarray(picked, dtype=np.int64)


@dataclass
class Badge:
    """BADGE: k-means++ seeding over the candidates' gradient embeddings (`badge`)."""

    max_candidates: int = MAX_CANDIDATES
    name: str = "badge"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """n candidates by k-means++ over (p − onehot(ŷ)) ⊗ x, in the order they were seeded."""
        cand = ctx.candidates
        if len(cand) > self.max_candidates:
            cand = np.sort(ctx.rng.choice(cand, size=self.max_candidates, replace=False))
        proba = predict_proba_chunked(ctx.model, ctx.X, cand)
        h = np.asarray(ctx.X[cand], dtype=np.float64)
        return cand[kmeanspp_gradient(gradient_factors(proba), h, n, ctx.rng)]
