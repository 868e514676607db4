"""What every path assumes of a worker it knows nothing about yet: one prior, used everywhere.

A worker's trust is the posterior mean of the probability that they answer a check right,
under a Beta prior of mean `PRIOR_TRUST` and weight `PRIOR_STRENGTH` pseudo-checks
(`crowd.trust`); the redundancy policy reads that trust as the worker's one-coin accuracy
(`crowd.redundancy`), and a worker without a fitted confusion matrix is one-coin at it
(`crowd.worker_model`). So the prior is the accuracy of an unknown worker, and the
platform's live re-aggregation, the background Dawid-Skene refresh, `simulate-crowd`,
`aggregate --method trust` and the simulated crowds all start every worker from it.

Why 0.75 with 4 pseudo-checks (3 passed, 1 failed):
- An answer must carry evidence. At 0.5 a binary answer carries none (q / (1 - q) = 1): seven
  agreeing new annotators gave confidence 0.507. At 0.75 three agreeing answers on two classes
  give 0.75^3 / (0.75^3 + 0.25^3) = 0.964 >= tau 0.95 (one-coin needs q >= 0.727); on ten
  classes two do (0.9990).
- It is what crowds of unknown workers are: typical crowd accuracies lie between 0.6 and 0.9
  (the campaign's default skills average 0.72 with a spammer among nine).
- It stays an estimate that checks move quickly: a worker who fails their first three checks
  is at 3 / 7 = 0.43, below the default trust threshold 0.5 (their answers can no longer close
  a clip); passing one check gives 0.8, failing one 0.6.

How a worker known only by an accuracy q errs (`unknown_confusion`): the likelihood of answer a
when the truth is another class b is (1 - q) x s_ab, where s_ab is the share of the worker's
errors on b that could go to a. Spreading errors uniformly (s = 1 / (K - 1)) makes one answer
count against each alternative by q (K - 1) / (1 - q), which grows with the number of classes:
at 0.75 two agreeing newcomers would finish a ten-class clip (0.988) while three are needed on
two classes. Real crowds' errors are not uniform: they go to confusable classes (in the face
set of `../shared/data/crowd`, 40 % to 73 % of each class's errors go to one other class), so
two wrong answers agree far more often than uniform spreading says. The prior therefore takes
s_ab = max(`ERROR_SHARE`, 1 / (K - 1)): no class is ruled out as the one an unknown worker
confuses most with the truth, and the evidence of one answer against its strongest alternative,
q / ((1 - q) s), no longer grows with K. With two or three classes that is uniform spreading
(binary: three agreeing newcomers at 0.75 give 0.964 >= tau 0.95, two give 0.90); with ten,
two agreeing newcomers give 0.80 and three 0.96, two at trust 0.9 (passed checks) 0.97. Once a
Dawid-Skene fit exists, s_ab is also at least the crowd's pooled share (`pooled_error_shares`),
so classes the crowd really confuses count as confusable. The posterior is then a lower bound
for agreeing answers over every crowd whose errors are at most that concentrated; the table is
a likelihood (columns sum to more than 1 for K > 3), not a distribution to draw answers from.
"""

from __future__ import annotations

import numpy as np

PRIOR_TRUST = 0.75
"""Prior mean of a worker's trust: the accuracy assumed of a worker without checks or a fit."""

PRIOR_STRENGTH = 4.0
"""Weight of the prior in pseudo-checks (PRIOR_TRUST * PRIOR_STRENGTH of them passed)."""

ERROR_SHARE = 0.5
"""Share of an unknown worker's errors on a true class assumed possible on any one other class
(the real face crowd puts 40 % to 73 % on one; uniform spreading would give 1 / (K - 1))."""


def error_share(k: int) -> float:
    """The prior's s for `k` classes: `ERROR_SHARE`, or more where 1 / (k - 1) is more (k <= 2)."""
    return max(ERROR_SHARE, 1.0 / max(int(k) - 1, 1))


def least_informative(k: int) -> float:
    """The accuracy at which an answer carries no evidence under the prior: q / ((1 - q) s) = 1."""
    s = error_share(k)
    return s / (1.0 + s)


def unknown_confusion(accuracy: np.ndarray, k: int, shares: np.ndarray | None = None) -> np.ndarray:
    """(workers, k answered, k true) likelihood of each answer under each true class for workers
    known by their accuracy alone: `accuracy` on the diagonal, (1 - q) x max(s, `shares`[a, b])
    off it (s = `error_share(k)`; `shares`, the crowd's pooled error shares once a fit exists)."""
    q = np.clip(np.asarray(accuracy, dtype=float), 1e-3, 1 - 1e-3)[:, None, None]
    if k < 2:
        return np.ones((len(q), k, k))
    spread = np.full((k, k), error_share(k))
    if shares is not None:
        spread = np.maximum(spread, np.asarray(shares, dtype=float))
    eye = np.eye(k)[None]
    return eye * q + (1 - eye) * (1 - q) * spread[None]


def pooled_error_shares(errors: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(k answered, k true) share of the crowd's errors on each true class that go to each other
    class, pooled over workers' fitted confusion matrices `errors` (workers, k, k) weighted by the
    answers they gave per true class `seen` (workers, k); 0 on the diagonal."""
    errors = np.asarray(errors, dtype=float)
    k = errors.shape[-1]
    off = errors * (1 - np.eye(k))[None]
    wrong = (np.asarray(seen, dtype=float)[:, None, :] * off).sum(axis=0)
    total = wrong.sum(axis=0, keepdims=True)
    return np.divide(wrong, total, out=np.zeros_like(wrong), where=total > 0)


CLASS_PRIOR_STRENGTH = 5.0
"""Pseudo-clips per class of the uniform prior that `class_prior` starts from: with no answers the
class prior is uniform, and a few clips cannot make it extreme."""

CLASS_PRIOR_ITERATIONS = 25
"""EM rounds of `class_prior` (it moves little after a few: the workers' likelihoods are fixed)."""


def class_prior(
    items: np.ndarray, codes: np.ndarray, accuracy: np.ndarray, k: int, strength: float = CLASS_PRIOR_STRENGTH
) -> np.ndarray:
    """(k,) class frequencies estimated from a project's answers before any Dawid-Skene fit.

    Answers are `items` (any ids), class `codes` (-1: no class, e.g. can't-tell) and each answer's
    worker `accuracy` (trust); each worker is the prior's worker known by accuracy alone
    (`unknown_confusion`). The estimate is Dawid-Skene's class-prior step with the workers held
    at that model: EM over the clips' posteriors, each M-step a Dirichlet MAP with `strength`
    pseudo-clips per class, so it is uniform with no answers and moves towards the crowd's
    frequencies as clips accumulate. Raw answer shares would not do: errors flatten them
    (10 % positives read as about 30 % "positive" answers from a crowd at 0.75), while the
    clips' posteriors undo the errors the model expects.
    """
    codes = np.asarray(codes, dtype=np.int64)
    named = codes >= 0
    if k < 2 or not named.any():
        return np.full(max(k, 1), 1.0 / max(k, 1))
    _, item = np.unique(np.asarray(items)[named], return_inverse=True)
    q = np.clip(np.asarray(accuracy, dtype=float)[named], least_informative(k) + 1e-3, 0.99)
    # each answer's row of `unknown_confusion` (answers, k true), without building the (k, k) ones
    hit = np.arange(k)[None, :] == codes[named][:, None]
    rows = np.where(hit, np.log(q)[:, None], np.log((1 - q) * error_share(k))[:, None])
    clips = int(item.max()) + 1
    loglik = np.stack([np.bincount(item, weights=rows[:, t], minlength=clips) for t in range(k)], axis=1)
    # Each clip's likelihoods scaled by their largest (no underflow), exponentiated once: an
    # iteration is then a product and two sums (the request path runs this EM; see engine/tasks).
    lik = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    prior = np.full(k, 1.0 / k)
    for _ in range(CLASS_PRIOR_ITERATIONS):
        post = lik * prior
        post /= post.sum(axis=1, keepdims=True)
        prior = (post.sum(axis=0) + strength) / (len(post) + strength * k)
    return prior
