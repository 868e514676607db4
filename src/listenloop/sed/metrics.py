"""Segment-based SED metrics with sed_eval's definitions, KL divergence and class thresholds.

Mesaros, Heittola & Virtanen (2016), "Metrics for polyphonic sound event detection", as
sed_eval.sound_event.SegmentBasedMetrics computes them on binary activity per segment:
per segment k, TP/FP/FN counted over classes; S(k) = min(FN, FP), D(k) = max(0, FN - FP),
I(k) = max(0, FP - FN); micro ER = (ΣS + ΣD + ΣI) / ΣN with N(k) the active reference classes;
micro F1 = 2ΣTP / (2ΣTP + ΣFP + ΣFN). Class-wise: F1 per class from its own counts and
ER = (FN + FP) / N per class (no substitutions within one class). sed_eval itself needs
dcase_util and its stack, so the definitions are written here and tested on worked examples,
and against sed_eval itself where it is installed (the `sedeval` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class SegmentScores:
    """Micro-averaged and class-wise segment-based scores."""

    f1: float
    er: float
    precision: float
    recall: float
    substitution_rate: float
    deletion_rate: float
    insertion_rate: float
    class_f1: dict[str, float]
    class_er: dict[str, float]
    class_support: dict[str, int]

    @property
    def classes_detected(self) -> int:
        """Classes with F1 > 0 (at least one true positive segment)."""
        return sum(1 for v in self.class_f1.values() if v > 0)

    @property
    def macro_f1(self) -> float:
        """Class-wise average F1 over classes with reference activity."""
        vals = [self.class_f1[c] for c, n in self.class_support.items() if n > 0]
        return float(np.mean(vals)) if vals else 0.0


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0


def segment_scores(reference: np.ndarray, estimate: np.ndarray, classes: Sequence[str]) -> SegmentScores:
    """Scores of binary `estimate` against binary `reference`, both (segments, classes)."""
    ref = np.asarray(reference).astype(bool)
    est = np.asarray(estimate).astype(bool)
    if ref.shape != est.shape or ref.ndim != 2 or ref.shape[1] != len(classes):
        raise ValueError(
            f"reference {ref.shape} and estimate {est.shape} must both be (segments, {len(classes)})"
        )
    tp = (ref & est).sum(axis=1)
    fp = (~ref & est).sum(axis=1)
    fn = (ref & ~est).sum(axis=1)
    n = ref.sum()
    subs = np.minimum(fn, fp).sum()
    dels = np.maximum(0, fn - fp).sum()
    ins = np.maximum(0, fp - fn).sum()
    ttp, tfp, tfn = tp.sum(), fp.sum(), fn.sum()
    ctp = (ref & est).sum(axis=0)
    cfp = (~ref & est).sum(axis=0)
    cfn = (ref & ~est).sum(axis=0)
    cn = ref.sum(axis=0)
    return SegmentScores(
        f1=_f1(ttp, tfp, tfn),
        er=float((subs + dels + ins) / n) if n else float("nan"),
        precision=float(ttp / (ttp + tfp)) if ttp + tfp else 0.0,
        recall=float(ttp / n) if n else 0.0,
        substitution_rate=float(subs / n) if n else float("nan"),
        deletion_rate=float(dels / n) if n else float("nan"),
        insertion_rate=float(ins / n) if n else float("nan"),
        class_f1={c: _f1(ctp[i], cfp[i], cfn[i]) for i, c in enumerate(classes)},
        class_er={
            c: float((cfn[i] + cfp[i]) / cn[i]) if cn[i] else float("nan") for i, c in enumerate(classes)
        },
        class_support={c: int(cn[i]) for i, c in enumerate(classes)},
    )


def kl_divergence(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-7) -> float:
    """Mean Bernoulli KL divergence KL(reference || estimate) over segments and classes.

    Each (segment, class) value is a probability of activity; both are clipped to
    [eps, 1 - eps] so that 0/1 values and linear outputs outside [0, 1] stay finite.
    """
    p = np.clip(np.asarray(reference, dtype=float), eps, 1 - eps)
    q = np.clip(np.asarray(estimate, dtype=float), eps, 1 - eps)
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    return float(np.mean(kl))


def trimmed_midrange(values: np.ndarray, trim: float = 0.1) -> float:
    """Midrange of `values` after cutting `trim` of them at each end: (q_trim + q_(1-trim)) / 2.

    004_'s class-wise threshold (sec. 4), taken over a class's non-zero training soft labels
    (where any annotator heard it); 0.5 (the binary midrange) when there are none.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return 0.5
    lo, hi = np.quantile(v, [trim, 1 - trim])
    return float((lo + hi) / 2)
