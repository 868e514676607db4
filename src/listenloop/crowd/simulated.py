"""Simulated crowds: calibrated on a real answers table, or synthetic, to compare policies.

A crowd is a set of workers, each with an answer frequency (how often it is the one who
answers) and a confusion matrix (P(answer | true class), one row per true class; columns are
the classes, plus can't-tell when the calibration data has it). An item's difficulty is the
smoothed share of correct answers it got; it moves each worker's correct-answer probability
in logit space by `logit(difficulty) - logit(reference)` (`reference` = the mean share
correct), so hard items pull every worker down and easy ones push them up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from listenloop.crowd.redundancy import CANT_TELL, Policy, ReplayResult, answer_weights, result_from
from listenloop.crowd.worker_model import WorkerModel
from listenloop.errors import ListenloopError

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _one_coin(accuracy: np.ndarray, k: int) -> np.ndarray:
    """(W, k, k) confusions: the true class with probability `accuracy`, else any other class evenly."""
    off = np.ones((k, k)) - np.eye(k)
    acc = np.asarray(accuracy, dtype=float)
    return acc[:, None, None] * np.eye(k)[None] + ((1 - acc) / (k - 1))[:, None, None] * off[None]


@dataclass
class SimulatedCrowd:
    """Workers with confusion matrices and answer frequencies (see the module docstring)."""

    worker_ids: np.ndarray  # str, (W,)
    classes: list[str]  # true classes, (K,)
    values: list[str]  # answer values: classes [+ CANT_TELL], (A,)
    confusion: np.ndarray  # (W, K, A), rows sum to 1
    frequency: np.ndarray  # (W,), sums to 1
    difficulty: dict[str, float] | None = None  # item -> smoothed share of correct answers
    reference: float = 0.5  # mean share correct: the difficulty that changes nothing

    @property
    def accuracies(self) -> pd.Series:
        """Per worker, the probability of a correct answer (true classes equally likely)."""
        k = len(self.classes)
        diag = self.confusion[:, np.arange(k), np.arange(k)]
        return pd.Series(diag.mean(axis=1), index=pd.Index(self.worker_ids, name="worker"), name="accuracy")

    @classmethod
    def from_answers(
        cls,
        answers: pd.DataFrame,
        truth: Mapping[str, str],
        *,
        smoothing: float = 2.0,
        item_smoothing: float = 2.0,
        difficulty: bool = True,
    ) -> SimulatedCrowd:
        """Calibrate on a real `item, worker, label` table and its truth.

        Confusion rows: a worker's answer counts on truth items plus a Dirichlet prior of
        `smoothing` pseudo-answers per row spread like the pooled crowd's row (so a worker seen on
        few items looks like the average worker). Frequency: the worker's share of all answers.
        Difficulty: per item (c + item_smoothing * reference) / (n + item_smoothing), c of n
        answers correct.
        """
        table = answers.astype({"item": str, "worker": str, "label": str})
        gold = {str(k): str(v) for k, v in truth.items()}
        classes = sorted((set(table["label"]) | set(gold.values())) - {CANT_TELL})
        values = classes + ([CANT_TELL] if (table["label"] == CANT_TELL).any() else [])
        worker_ids, workers = np.unique(table["worker"].to_numpy(), return_inverse=True)
        n_w, k, a = len(worker_ids), len(classes), len(values)
        frequency = np.bincount(workers, minlength=n_w).astype(float)
        frequency /= frequency.sum()
        true = table["item"].map(gold)
        known = true.notna().to_numpy()
        if not known.any():
            raise ListenloopError("no answer is on an item with a known truth: nothing to calibrate on")
        t_code = np.searchsorted(classes, true[known].to_numpy())
        a_code = pd.Index(values).get_indexer(table["label"].to_numpy()[known])
        flat = (workers[known] * k + t_code) * a + a_code
        counts = np.bincount(flat, minlength=n_w * k * a).reshape(n_w, k, a).astype(float)
        pooled = counts.sum(axis=0) + 1.0
        pooled /= pooled.sum(axis=1, keepdims=True)
        conf = counts + smoothing * pooled[None]
        conf /= conf.sum(axis=2, keepdims=True)
        correct = table["label"].to_numpy()[known] == true[known].to_numpy()
        reference = float(correct.mean())
        diff = None
        if difficulty:
            per_item = pd.DataFrame({"item": table["item"].to_numpy()[known], "c": correct})
            g = per_item.groupby("item")["c"].agg(["sum", "count"])
            smoothed = (g["sum"] + item_smoothing * reference) / (g["count"] + item_smoothing)
            diff = {str(i): float(v) for i, v in smoothed.items()}
        return cls(worker_ids, classes, values, conf, frequency, diff, reference)

    @classmethod
    def synthetic(
        cls,
        n_workers: int,
        classes: list[str],
        accuracy_beta: tuple[float, float] = (8.0, 2.0),
        spammers: float = 0.1,
        adversaries: float = 0.05,
        rng: np.random.Generator | None = None,
    ) -> SimulatedCrowd:
        """A synthetic crowd: honest workers' accuracy ~ Beta(a, b), errors spread evenly;
        spammers (a share of the workers) answer uniformly at random or always the same class;
        adversaries answer wrong on purpose (never the true class). Frequencies ~ Gamma(2)."""
        rng = np.random.default_rng() if rng is None else rng
        k = len(classes)
        if k < 2 or n_workers < 1:
            raise ListenloopError("a synthetic crowd needs >= 2 classes and >= 1 worker")
        n_spam = round(spammers * n_workers)
        n_adv = round(adversaries * n_workers)
        if n_spam + n_adv > n_workers:
            raise ListenloopError("spammers + adversaries exceed the number of workers")
        acc = rng.beta(*accuracy_beta, size=n_workers)
        off = np.ones((k, k)) - np.eye(k)
        conf = _one_coin(acc, k)
        for w in range(n_spam):
            if w % 2 == 0:
                conf[w] = 1.0 / k
            else:
                conf[w] = 0.0
                conf[w, :, rng.integers(k)] = 1.0
        conf[n_spam : n_spam + n_adv] = off / (k - 1)
        frequency = rng.gamma(2.0, size=n_workers)
        ids = np.array([f"w{i:04d}" for i in range(n_workers)])
        return cls(
            ids, [str(c) for c in classes], [str(c) for c in classes], conf, frequency / frequency.sum()
        )

    @classmethod
    def from_skills(
        cls, skills: Sequence[float], classes: Sequence[str], worker_ids: Sequence[str] | None = None
    ) -> SimulatedCrowd:
        """Workers of known skill, equally frequent: worker j names the true class with probability
        `skills[j]` and otherwise one of the other classes evenly. A skill of 1/K (K classes)
        answers uniformly at random: a spammer."""
        k = len(classes)
        acc = np.asarray(skills, dtype=float)
        if k < 2 or acc.size < 1:
            raise ListenloopError("a crowd of known skills needs >= 2 classes and >= 1 worker")
        if ((acc < 0) | (acc > 1)).any():
            raise ListenloopError(f"skills must lie in [0, 1], not {acc.tolist()}")
        ids = [f"w{i:04d}" for i in range(acc.size)] if worker_ids is None else [str(w) for w in worker_ids]
        if len(ids) != acc.size:
            raise ListenloopError(f"{acc.size} skills but {len(ids)} worker ids")
        names = [str(c) for c in classes]
        return cls(np.array(ids), names, names, _one_coin(acc, k), np.full(acc.size, 1.0 / acc.size))

    def _probs(self, workers: np.ndarray, truths: np.ndarray, difficulty: np.ndarray) -> np.ndarray:
        """(n, A) answer probabilities; `difficulty` nan = no item effect."""
        probs = self.confusion[workers, truths].copy()
        rows = np.arange(len(workers))
        has = ~np.isnan(difficulty)
        if has.any():
            p = probs[rows, truths]
            q = 1 / (1 + np.exp(-(_logit(p) + _logit(difficulty) - _logit(np.array(self.reference)))))
            q = np.where(has, q, p)
            rest = 1 - p
            scale = np.divide(1 - q, rest, out=np.zeros_like(q), where=rest > _EPS)
            probs *= scale[:, None]
            stuck = rest <= _EPS  # a perfect worker: spread the lost mass evenly over the rest
            if stuck.any():
                probs[stuck] = ((1 - q[stuck]) / max(len(self.values) - 1, 1))[:, None]
            probs[rows, truths] = q
        return probs

    def _draw(
        self, truths: np.ndarray, difficulty: np.ndarray, m: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, m) workers (distinct per item when there are enough) and their answer codes."""
        n, n_w = len(truths), len(self.worker_ids)
        if n_w >= m:  # Gumbel top-m: sequential draws by frequency, without replacement
            keys = np.log(self.frequency + 1e-300)[None] + rng.gumbel(size=(n, n_w))
            workers = np.argsort(-keys, axis=1)[:, :m]
        else:
            workers = rng.choice(n_w, size=(n, m), p=self.frequency)
        probs = self._probs(workers.ravel(), np.repeat(truths, m), np.repeat(difficulty, m))
        u = rng.random(len(probs))
        codes = (np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1)
        return workers, np.minimum(codes, len(self.values) - 1).reshape(n, m)

    def _codes(self, labels: list[str]) -> np.ndarray:
        unknown = sorted(set(labels) - set(self.classes))
        if unknown:
            raise ListenloopError(f"truth names classes the crowd does not know: {unknown[:5]}")
        return np.searchsorted(self.classes, labels)

    def answer(
        self, item_truth: str, item_difficulty: float | None, rng: np.random.Generator
    ) -> tuple[str, str]:
        """One answer: a worker drawn by frequency and its label for an item of class `item_truth`."""
        t = self._codes([str(item_truth)])
        d = np.array([np.nan if item_difficulty is None else item_difficulty])
        workers, codes = self._draw(t, d, 1, rng)
        return str(self.worker_ids[workers[0, 0]]), self.values[codes[0, 0]]

    def answer_of(
        self, worker: int, item_truth: str, rng: np.random.Generator, item_difficulty: float | None = None
    ) -> str:
        """The answer of worker number `worker` (an index into `worker_ids`) to an item of class
        `item_truth`: one person of the crowd at work, as `listenloop demo`'s simulated annotators are."""
        if not 0 <= worker < len(self.worker_ids):
            raise ListenloopError(f"no worker number {worker} in a crowd of {len(self.worker_ids)}")
        t = self._codes([str(item_truth)])
        d = np.array([np.nan if item_difficulty is None else item_difficulty])
        probs = self._probs(np.array([worker]), t, d)[0]
        code = min(int((np.cumsum(probs) < rng.random()).sum()), len(self.values) - 1)
        return self.values[code]

    def simulate(
        self,
        truth: Mapping[str, str],
        policy: Policy,
        rng: np.random.Generator,
        trust: Mapping[str, float] | WorkerModel | None = None,
    ) -> ReplayResult:
        """Ask the crowd about each truth item until `policy` is done (at most its `max_answers`).

        Answers are drawn up front (vectorised: `max_answers` distinct workers per item, in
        draw order) and fed to the policy one at a time. `trust` maps workers to trust
        (missing: 1), e.g. `crowd.accuracies` as an oracle, or is a `WorkerModel`. Items use their calibrated
        difficulty when known.
        """
        items = sorted(str(i) for i in truth)
        truths = self._codes([str(truth[i]) for i in items])
        diff = self.difficulty or {}
        d = np.array([diff.get(i, np.nan) for i in items], dtype=float)
        m = policy.max_answers
        workers, codes = self._draw(truths, d, m, rng)
        labels = np.asarray(self.values, dtype=object)[codes].astype(str)
        flat_workers = np.asarray(self.worker_ids, dtype=object)[workers].ravel()
        flat_items = np.repeat(np.arange(len(items)), m)  # labels are (items, m), row-major
        w_flat, e_flat, log_prior = answer_weights(
            trust, flat_workers, labels.ravel(), self.classes, flat_items
        )
        weights = None if w_flat is None else w_flat.reshape(workers.shape)
        evidence = None if e_flat is None else e_flat.reshape(*workers.shape, len(self.classes))
        out: list[str | None] = []
        used = np.zeros(len(items), dtype=np.int64)
        low = np.zeros(len(items), dtype=bool)
        # A Python loop over items: the policy is sequential per item (each answer may stop it).
        for i in range(len(items)):
            for j in range(1, m + 1):
                dec = policy.decide(
                    labels[i, :j],
                    None if weights is None else weights[i, :j],
                    self.classes,
                    None if evidence is None else evidence[i, :j],
                    log_prior,
                )
                if dec.done:
                    break
            out.append(dec.label)
            used[i] = j
            low[i] = dec.low_agreement or dec.label is None
        return result_from(items, out, used, low, 0, truth)
