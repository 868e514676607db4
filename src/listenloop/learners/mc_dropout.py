"""The MC-dropout classifier of DAL (003_, section 4.1): dropout (p = 0.5), one dense layer, softmax.

Dropout stays stochastic in training and inference. A hypothesis is one dropout mask d over
the input dimensions; the class posterior is the mean of the |D| masks' softmax outputs
(eq. 2) and each mask votes for its argmax class (eq. 5, 6). The |D| masks are shared by every
clip (a sampled network), so all |D| forward passes over a pool are one matrix product: the
input times a (dims × |D|·classes) matrix holding each mask's weights. Needs torch
(`pip install 'listenloop[deep]'`); importing this module does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from listenloop.errors import ListenloopError

#: Pool rows per matrix product when scoring |D| masks (bounds memory to rows × |D| × classes floats).
MC_CHUNK = 8192


def require_torch() -> Any:
    """The torch module, or a ListenloopError that names the extra to install."""
    try:
        import torch
    except ImportError:
        raise ListenloopError(
            "DAL's MC-dropout learner and the pann features need torch: pip install 'listenloop[deep]'"
        ) from None
    return torch


class MCDropoutClassifier(ClassifierMixin, BaseEstimator):
    """Dropout then a dense layer then softmax, trained with Adam on class-balanced minibatches.

    `fit` trains a fresh network for `steps` minibatch steps of `per_class_batch` clips per class
    (003_ Table 1: 1600 steps at initialisation, B = 256, Adam, lr 1e-3, weight decay 1e-3).
    `train_steps` continues training (DAL's stage II); `mc_scores` gives the MC posterior and the
    vote entropy of |D| = `masks` sampled masks. One torch thread by default (`threads`), so that
    parallel simulation runs do not oversubscribe the cores.
    """

    def __init__(
        self,
        p: float = 0.5,
        masks: int = 128,
        steps: int = 1600,
        per_class_batch: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-3,
        threads: int | None = 1,
        random_state: int | None = 0,
    ) -> None:
        self.p = p
        self.masks = masks
        self.steps = steps
        self.per_class_batch = per_class_batch
        self.lr = lr
        self.weight_decay = weight_decay
        self.threads = threads
        self.random_state = random_state

    # -- network state -------------------------------------------------------------------------
    def _init(self, dims: int, classes: np.ndarray) -> None:
        torch = require_torch()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        seed = 0 if self.random_state is None else int(self.random_state)
        self.rng_ = np.random.default_rng([seed, 1])
        self.classes_ = np.asarray(classes)
        self.layer_ = torch.nn.Linear(dims, len(classes))
        bound = 1.0 / np.sqrt(dims)  # torch's default init, drawn from our generator (reproducible)
        with torch.no_grad():
            self.layer_.weight.copy_(torch.from_numpy(self.rng_.uniform(-bound, bound, (len(classes), dims))))
            self.layer_.bias.copy_(torch.from_numpy(self.rng_.uniform(-bound, bound, len(classes))))
        self._new_optimizer()

    def _new_optimizer(self) -> None:
        torch = require_torch()
        self.opt_ = torch.optim.Adam(self.layer_.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def add_classes(self, classes: np.ndarray) -> None:
        """Grow the output layer for classes not seen yet (new rows start at zero); keeps the rest."""
        torch = require_torch()
        new = [c for c in np.unique(classes) if c not in set(self.classes_.tolist())]
        if not new:
            return
        old = self.layer_
        self.classes_ = np.concatenate([self.classes_, np.asarray(new, dtype=self.classes_.dtype)])
        order = np.argsort(self.classes_, kind="stable")
        self.layer_ = torch.nn.Linear(old.in_features, len(self.classes_))
        with torch.no_grad():
            w = torch.cat([old.weight, torch.zeros(len(new), old.in_features)])
            b = torch.cat([old.bias, torch.zeros(len(new))])
            idx = torch.as_tensor(order)
            self.layer_.weight.copy_(w[idx])
            self.layer_.bias.copy_(b[idx])
        self.classes_ = self.classes_[order]
        self._new_optimizer()

    # -- training ------------------------------------------------------------------------------
    def fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> MCDropoutClassifier:
        """A fresh network trained for `steps` class-balanced minibatch steps on (X, y).

        `sample_weight` sets each clip's chance of being drawn within its class (0 never drawn).
        """
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        self._init(X.shape[1], np.unique(y))
        idx = np.searchsorted(self.classes_, y)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        groups = []
        for c in range(len(self.classes_)):
            rows = np.flatnonzero(idx == c)
            groups.append([(rows, None if w is None else w[rows])])
        self.train_steps(X, idx, groups, self.steps)
        return self

    def train_steps(
        self,
        X: np.ndarray,
        targets: np.ndarray,
        groups: list[list[tuple[np.ndarray, Any]]],
        steps: int,
        shares: np.ndarray | None = None,
    ) -> None:
        """`steps` Adam steps on minibatches of `per_class_batch` clips per class.

        `X`, `targets` (class indices) hold every clip that may be drawn; `groups[c]` lists the
        sources of class c as (rows, within-source weights or None); `shares[c, s]` is how many of
        class c's B clips come from source s (default: all from the first). Rows are drawn with
        replacement. A class with no rows is left out of the batch.
        """
        torch = require_torch()
        B = int(self.per_class_batch)
        X = np.asarray(X, dtype=np.float32)
        self.layer_.train()
        for _ in range(int(steps)):
            picked = []
            for c, sources in enumerate(groups):
                for s, (rows, w) in enumerate(sources):
                    count = B if shares is None and s == 0 else (0 if shares is None else int(shares[c, s]))
                    if count <= 0 or len(rows) == 0:
                        continue
                    if w is None or w.sum() <= 0:
                        picked.append(rows[self.rng_.integers(len(rows), size=count)])
                    else:
                        picked.append(self.rng_.choice(rows, size=count, replace=True, p=w / w.sum()))
            if not picked:
                return
            batch = np.concatenate(picked)
            xb = X[batch]
            xb *= self._keep_mask(xb.shape)  # inverted dropout: kept inputs scaled by 1 / (1 − p)
            logits = self.layer_(torch.from_numpy(xb))
            loss = torch.nn.functional.cross_entropy(
                logits, torch.from_numpy(targets[batch].astype(np.int64))
            )
            self.opt_.zero_grad()
            loss.backward()
            self.opt_.step()

    def _keep_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 inverted-dropout mask (1 / (1 − p) kept, 0 dropped) of `shape` from the model's
        generator.

        For p = 0.5 it is random bits (a byte gives eight): ten times cheaper than
        `torch.bernoulli`, whose 11 ms per 256-per-class batch dominated a training step.
        """
        n = int(np.prod(shape))
        if self.p == 0.5:
            bits = np.unpackbits(np.frombuffer(self.rng_.bytes((n + 7) // 8), dtype=np.uint8))[:n]
            return bits.reshape(shape).astype(np.float32) * np.float32(2.0)
        keep = self.rng_.random(shape, dtype=np.float32) >= self.p
        return keep.astype(np.float32) * np.float32(1.0 / (1.0 - self.p))

    # -- inference -----------------------------------------------------------------------------
    def _mask_weights(self, masks: int, seed: int) -> tuple[Any, Any]:
        """The (dims × masks·classes) weights of `masks` sampled dropout masks, and the biases."""
        torch = require_torch()
        W = self.layer_.weight.detach()  # classes × dims
        draw = np.random.default_rng(int(seed)).random((masks, W.shape[1]), dtype=np.float32)
        keep = torch.from_numpy((draw >= self.p).astype(np.float32) / (1.0 - self.p))
        Wm = (keep[:, :, None] * W.T[None, :, :]).permute(1, 0, 2).reshape(W.shape[1], masks * W.shape[0])
        return Wm.contiguous(), self.layer_.bias.detach()

    def mc_scores(
        self, X: np.ndarray, masks: int | None = None, seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mean class posterior over the masks (eq. 2), vote entropy (eq. 7)) of each row of X.

        The same `masks` sampled masks (default `self.masks`) serve every row: one matrix
        product per chunk of `MC_CHUNK` rows. `seed` picks the masks (default: a fresh draw).
        """
        torch = require_torch()
        check_is_fitted(self, "layer_")
        D = int(masks or self.masks)
        if seed is None:
            seed = int(self.rng_.integers(2**31))
        Wm, b = self._mask_weights(D, seed)
        C = len(self.classes_)
        probs, ents = [], []
        with torch.no_grad():
            for i in range(0, len(X), MC_CHUNK):
                xb = torch.from_numpy(np.ascontiguousarray(X[i : i + MC_CHUNK], dtype=np.float32))
                logits = (xb @ Wm).view(len(xb), D, C) + b
                votes = logits.argmax(dim=2)
                # softmax written out: torch.softmax over a last axis of a few classes runs row by
                # row (0.38 s per 8,192 × 128 × 7 chunk, against 0.03 s for these whole-tensor ops)
                e = (logits - logits.amax(dim=2, keepdim=True)).exp_()
                p = e.div_(e.sum(dim=2, keepdim=True))
                probs.append(p.mean(dim=1).numpy())
                counts = torch.zeros(len(xb), C).scatter_add_(1, votes, torch.ones(votes.shape))
                share = counts / D
                ents.append((-(share * torch.log(share.clamp_min(1e-12))).sum(dim=1)).numpy())
        if not probs:
            return np.empty((0, C)), np.empty(0)
        return np.concatenate(probs).astype(np.float64), np.concatenate(ents).astype(np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The MC-dropout posterior (eq. 2) over `masks` masks, columns in `classes_` order.

        Reproducible: the masks of a prediction depend only on `random_state`.
        """
        seed = 0 if self.random_state is None else int(self.random_state)
        return self.mc_scores(np.asarray(X), seed=seed + 7919)[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class of highest MC posterior (eq. 3)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        """Picklable without the optimiser and generator (rebuilt on load): a model travels between
        processes (simulation jobs, the platform's learning service)."""
        state = self.__dict__.copy()
        state.pop("opt_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "layer_" in state:
            self._new_optimizer()
