"""How many answers an item needs: a fixed number, or dynamic until the crowd agrees.

After iHEARu-PLAY's active-learning loop (Table 1, steps 5a-5d): items whose aggregated
answers have low confidence are kept and asked again until a stop criterion holds.

- `FixedPolicy(k)`: every item gets `k` answers.
- `DynamicPolicy(min_answers, max_answers, tau)`: ask one answer at a time; stop as soon as
  the item's posterior confidence reaches `tau` (with at least `min_answers` answers and at
  least one trusted answer for the winning class), or at `max_answers` (then the item is
  *low-agreement* if confidence is still below `tau`).

Fixed policy's label: the trust-weighted vote, Beta/Dirichlet-smoothed so one answer never
gives confidence 1: `posterior_c = (w_c + s) / (W + s * K)`, `w_c` the summed trust of the
answers for class c, `W` the summed trust of all class answers, `K` the number of classes,
`s = SMOOTHING` (0.1) pseudo-votes per class.

Dynamic policy's confidence: a one-coin Bayesian posterior, so that confidence grows with the
number of agreeing answers (a vote share does not: 8 against 1 stays at 0.88 however many
more agree). Worker j is right with probability q_j (its trust; `default_accuracy`, the prior
of an unknown worker (`crowd.worker_prior.PRIOR_TRUST`, 0.75), when no trust is known) and
otherwise errs as the prior assumes of a worker known by accuracy alone
(`crowd.worker_prior.unknown_confusion`: a share s = max(0.5, 1 / (K - 1)) of their errors
could go to any one other class, since real crowds confuse some classes), so each answer adds
log(q_j / ((1 - q_j) s)) to its class's log-odds; posterior = softmax of the log-odds plus the
log class prior: before a Dawid-Skene fit the one `crowd.worker_prior.class_prior` estimates from
the project's answers so far (uniform with none; a binary project with 10 % positives no longer
treats a positive answer as evidence for a class as common as the other), uniform when none is
given. With q = 0.75 and a uniform prior, 3 agreeing answers give 0.964 on two classes and 0.96
on ten (2 give 0.90 and 0.80). A worker at or below the accuracy where that ratio is 1 (1/2 on two
classes, 1/3 on more) adds nothing.

With a `WorkerModel` (per-worker confusion matrices and a class prior from the whole-project
Dawid-Skene fit) both policies use its posterior instead: each answer contributes its
log P(answer | true class) (`evidence`), and the prior is added once. This is Dawid-Skene's
E-step for one item, and it knows that workers confuse some classes more than others.

Multi-label items (`DynamicPolicy.decide_tags`): each tag is a binary question (present or
absent) and each answer one binary answer per tag, one-coin at the worker's per-tag accuracy,
so a tag's posterior is `bayes_posterior` with two classes (uniform prior). The item is done
when the most likely tag set (each tag present where its posterior > 0.5) has a posterior
>= tau: the product over tags of max(p, 1 - p), so that tau means for a whole tag set what it
means for a class (a per-tag tau would let five tags' errors add up). A worker's
trust is their accuracy on whole answers (a control question passes on the exact tag set);
with T tags and errors independent across tags, that is q^T for a per-tag accuracy q, so
`tag_accuracy` takes the T-th root (trust 0.5 over 5 tags: 0.87 per tag).

Ratings (`DynamicPolicy.decide_rating`): the continuous analogue of the one-coin model. Each
annotator j rates with Gaussian noise of sd sigma_j (`crowd.aggregation.continuous.rating_noise`:
estimated from their control answers' errors, and after a background refresh from all their
answers (`fit_rating_noise`), shrunk on the log scale towards a prior shared by every unknown
annotator, `RATING_PRIOR_SHARE` of the range); the clip's value is the
inverse-variance weighted mean and its standard error the known-variance one,
`sqrt(1 / sum 1/sigma_j^2)`, inflated by the Birge ratio `sqrt(chi2 / (n - 1))` when the
answers disagree more than their sigmas allow (an outlier or a wrong sigma). Done when the
standard error is at most `tolerance` (in the rating's units; default `default_tolerance`:
what the maximum of answers from annotators at the prior's noise reach). Answers that agree
by chance do not close a clip: the standard error comes from who answered, not from how close
a few answers happen to be.

"Can't tell" (`CANT_TELL`) is an answer: it counts toward the answers an item used and toward
no class; an item whose answers are mostly can't-tell is never done by confidence, so it ends
at the maximum as low-agreement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.continuous import prior_noise
from listenloop.crowd.answers import CANT_TELL
from listenloop.crowd.worker_model import WorkerModel
from listenloop.crowd.worker_prior import PRIOR_TRUST, class_prior, error_share, least_informative
from listenloop.errors import ListenloopError

SMOOTHING = 0.1
MIN_WEIGHT = 1e-6  # a weight of 0 still counts a hair, so that every answer is in the mean


def default_tolerance(low: float, high: float, max_answers: int) -> float:
    """A rating's default tolerance (standard error to stop at): the standard error of the mean
    of `max_answers` ratings at an unknown annotator's noise (`prior_noise`, an eighth of the
    range), so that a clip is asked no more precision than the maximum of answers from annotators
    the project does not know gives, and annotators known to be better reach it sooner (1.9 on
    a range 40 wide with 7 answers at most; a tenth of the range before, 4)."""
    return prior_noise(low, high) / float(np.sqrt(max(int(max_answers), 1)))


def tag_accuracy(set_accuracy: np.ndarray, n_tags: int) -> np.ndarray:
    """Per-tag accuracy of workers right on whole tag sets with probability `set_accuracy`
    (independent errors over `n_tags` tags: the `n_tags`-th root)."""
    return np.clip(np.asarray(set_accuracy, dtype=float), 0.0, 1.0) ** (1.0 / max(int(n_tags), 1))


def tag_posteriors(votes: np.ndarray, answered: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """P(present) per tag from (answers, tags) 0/1 `votes`: each tag a binary one-coin question
    (`bayes_posterior` with k = 2, vectorised over tags); unanswered rows (can't-tell) add nothing."""
    q = np.clip(np.asarray(accuracy, dtype=float), 0.5 + 1e-3, 0.99)
    llr = np.where(np.asarray(answered, dtype=bool), np.log(q / (1 - q)), 0.0)
    log_odds = ((2.0 * np.asarray(votes, dtype=float) - 1.0) * llr[:, None]).sum(axis=0)
    return 1.0 / (1.0 + np.exp(-log_odds))


def rating_estimate(values: np.ndarray, noise: np.ndarray) -> tuple[float, float, float]:
    """(inverse-variance weighted mean, its standard error, weighted sd of the answers) of ratings
    whose annotators' noise sds are `noise` (see the module docstring)."""
    x = np.asarray(values, dtype=float)
    w = 1.0 / np.asarray(noise, dtype=float) ** 2
    mean = float(np.average(x, weights=w))
    se = float(np.sqrt(1.0 / w.sum()))
    n = len(x)
    if n > 1:
        birge = float((w * (x - mean) ** 2).sum() / (n - 1))
        se *= np.sqrt(max(birge, 1.0))
    return mean, se, float(np.sqrt(np.average((x - mean) ** 2, weights=w)))


def evidence_posterior(evidence: np.ndarray, log_prior: np.ndarray | None) -> np.ndarray:
    """Posterior over classes from per-answer log-likelihood rows (answers × classes) and a log prior."""
    log_post = np.asarray(evidence, dtype=float).sum(axis=0)
    if log_prior is not None:
        log_post = log_post + log_prior
    post = np.exp(log_post - log_post.max())
    return post / post.sum()


def bayes_posterior(
    codes: np.ndarray, accuracy: np.ndarray, k: int, log_prior: np.ndarray | None = None
) -> np.ndarray:
    """One-coin posterior over k classes from class codes (-1 = no class) and per-answer accuracies,
    each answer's errors spread as the prior assumes of a worker known by accuracy alone
    (`crowd.worker_prior.unknown_confusion`); `log_prior` over the classes (None: uniform)."""
    if k < 2:
        return np.ones(k)
    q = np.clip(np.asarray(accuracy, dtype=float), least_informative(k) + 1e-3, 0.99)
    named = codes >= 0
    lr = q[named] / ((1 - q[named]) * error_share(k))  # against each other class (`unknown_confusion`)
    evidence = np.bincount(codes[named], weights=np.log(lr), minlength=k)
    if log_prior is not None:
        evidence = evidence + np.asarray(log_prior, dtype=float)
    evidence -= evidence.max()
    post = np.exp(evidence)
    return post / post.sum()


@dataclass(frozen=True)
class Decision:
    """What a policy says about one item after the answers so far."""

    done: bool
    label: str | None  # the winning class (None when no answer names a class)
    confidence: float  # the winning class's smoothed posterior (0 when no class answer)
    low_agreement: bool


def _posterior(
    labels: np.ndarray, trust: np.ndarray | None, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(posterior per class, class code per answer or -1, weight per answer, can't-tell count)."""
    labels = np.asarray(labels, dtype=str)
    weights = np.ones(len(labels)) if trust is None else np.asarray(trust, dtype=float)
    if len(weights) != len(labels):
        raise ListenloopError(f"{len(labels)} answers but {len(weights)} trust values")
    lookup = {c: i for i, c in enumerate(classes)}
    codes = np.array([lookup.get(v, -1) for v in labels], dtype=np.int64)
    cant = labels == CANT_TELL
    unknown = (codes < 0) & ~cant
    if unknown.any():
        raise ListenloopError(f"answer {labels[unknown][0]!r} is not one of {list(classes)} or {CANT_TELL!r}")
    k = len(classes)
    named = codes >= 0
    w = np.bincount(codes[named], weights=weights[named], minlength=k)
    post = (w + SMOOTHING) / (w.sum() + SMOOTHING * k)
    return post, codes, weights, int(cant.sum())


def _vote(labels: np.ndarray, trust: np.ndarray | None, classes: Sequence[str]) -> tuple[str | None, float]:
    """Winning class (ties: first in `classes`) and its confidence; (None, 0) without class answers."""
    post, codes, _, _ = _posterior(labels, trust, classes)
    if not (codes >= 0).any():
        return None, 0.0
    win = int(np.argmax(post))
    return str(classes[win]), float(post[win])


class Policy:
    """A stop rule: `decide` says whether an item's answers so far are enough."""

    max_answers: int

    def decide(
        self,
        labels: np.ndarray,
        trust: np.ndarray | None,
        classes: Sequence[str],
        evidence: np.ndarray | None = None,
        log_prior: np.ndarray | None = None,
    ) -> Decision:
        """Decision after `labels` (answers in the order they came), with per-answer `trust`.

        `evidence` (answers × classes log-likelihoods, from a `WorkerModel`), when given, replaces
        the trust-based answers' evidence; `log_prior` is the class prior added to either (None:
        uniform).
        """
        raise NotImplementedError


@dataclass(frozen=True)
class FixedPolicy(Policy):
    """Every item gets exactly `k` answers; label = trust-weighted vote."""

    k: int

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ListenloopError(f"fixed policy needs k >= 1, not {self.k}")

    @property
    def max_answers(self) -> int:  # type: ignore[override]
        return self.k

    def decide_tags(
        self, votes: np.ndarray, answered: np.ndarray, trust: np.ndarray | None, classes: Sequence[str]
    ) -> Decision:
        """Done once `k` answers are in; the tags of `DynamicPolicy.decide_tags`' posterior."""
        d = DynamicPolicy(self.k, self.k, 1.0).decide_tags(votes, answered, trust, classes)
        cant = len(answered) - int(np.asarray(answered, dtype=bool).sum())
        return Decision(
            len(answered) >= self.k, d.label, d.confidence, d.label is None or 2 * cant > len(answered)
        )

    def decide_rating(
        self,
        values: np.ndarray,
        answered: np.ndarray,
        trust: np.ndarray | None,
        low: float,
        high: float,
        noise: np.ndarray | None = None,
    ) -> Decision:
        """Done once `k` answers are in; the weighted mean of `DynamicPolicy.decide_rating`."""
        d = DynamicPolicy(self.k, self.k, 1.0, tolerance=1e-12).decide_rating(
            values, answered, trust, low, high, noise
        )
        cant = len(answered) - int(np.asarray(answered, dtype=bool).sum())
        return Decision(
            len(answered) >= self.k, d.label, d.confidence, d.label is None or 2 * cant > len(answered)
        )

    def decide(
        self,
        labels: np.ndarray,
        trust: np.ndarray | None,
        classes: Sequence[str],
        evidence: np.ndarray | None = None,
        log_prior: np.ndarray | None = None,
    ) -> Decision:
        """Done once `k` answers are in; low-agreement if mostly can't-tell or no class answer."""
        labels = np.asarray(labels, dtype=str)
        label, conf = _vote(labels, trust, classes)
        if evidence is not None and label is not None:
            post = evidence_posterior(evidence, log_prior)
            win = int(np.argmax(post))
            label, conf = str(classes[win]), float(post[win])
        cant = int((labels == CANT_TELL).sum())
        return Decision(len(labels) >= self.k, label, conf, label is None or 2 * cant > len(labels))


@dataclass(frozen=True)
class DynamicPolicy(Policy):
    """Ask until confident: done at confidence >= `tau` (>= `min_answers` answers, one trusted
    answer for the winner, can't-tell not the majority), or at `max_answers`. The same rule
    serves classes (`decide`), multi-label items (`decide_tags`: the tag set's posterior at `tau`)
    and ratings (`decide_rating`: standard error at most `tolerance`).

    Answers from workers with trust < `untrusted_below` still vote (weighted by their trust)
    but can never make an item done on their own.
    """

    min_answers: int
    max_answers: int  # type: ignore[misc]
    tau: float
    untrusted_below: float = 0.5
    default_accuracy: float = PRIOR_TRUST
    tolerance: float | None = None  # ratings: the standard error to stop at (None: `default_tolerance`)

    def __post_init__(self) -> None:
        if self.tolerance is not None and not self.tolerance > 0:
            raise ListenloopError(f"dynamic policy needs tolerance > 0, not {self.tolerance}")
        if not 1 <= self.min_answers <= self.max_answers:
            raise ListenloopError(
                f"dynamic policy needs 1 <= min <= max, not min={self.min_answers}, max={self.max_answers}"
            )
        if not 0.0 < self.tau <= 1.0:
            raise ListenloopError(f"dynamic policy needs 0 < tau <= 1, not tau={self.tau}")

    def decide(
        self,
        labels: np.ndarray,
        trust: np.ndarray | None,
        classes: Sequence[str],
        evidence: np.ndarray | None = None,
        log_prior: np.ndarray | None = None,
    ) -> Decision:
        """Decision after the answers so far (see the class docstring for the stop rule)."""
        labels = np.asarray(labels, dtype=str)
        n = len(labels)
        _, codes, weights, cant = _posterior(labels, trust, classes)
        if not (codes >= 0).any():
            done = n >= self.max_answers
            return Decision(done, None, 0.0, done)
        accuracy = np.full(n, self.default_accuracy) if trust is None else weights
        if evidence is not None:
            post = evidence_posterior(evidence, log_prior)
        else:
            post = bayes_posterior(codes, accuracy, len(classes), log_prior)
        win = int(np.argmax(post))
        conf = float(post[win])
        trusted_agree = bool(((codes == win) & (accuracy >= self.untrusted_below)).any())
        done, low = self._stop(n, conf >= self.tau, cant, trusted_agree)
        return Decision(done, str(classes[win]), conf, low)

    def _stop(self, n: int, confident: bool, cant: int, trusted: bool) -> tuple[bool, bool]:
        """(done, low_agreement) of the shared stop rule: confident with min answers, a trusted
        answer and can't-tell not the majority; else at the maximum, then low-agreement."""
        if confident and trusted and 2 * cant <= n and n >= self.min_answers:
            return True, False
        done = n >= self.max_answers
        return done, done

    def decide_tags(
        self, votes: np.ndarray, answered: np.ndarray, trust: np.ndarray | None, classes: Sequence[str]
    ) -> Decision:
        """A multi-label item after the answers so far: done when the most likely tag set's
        posterior (the product over tags of max(p, 1 - p), tags independent) is >= tau, tau
        meaning for the whole set what it means for a class (`tag_posteriors` at `tag_accuracy`
        of each answer's `trust`, the accuracy on whole tag sets). `votes`: (answers, tags) 0/1
        over `classes`; `answered`: False for can't-tell. Label: the tags with posterior > 0.5
        joined by "|" ("" = none present); confidence: that set's posterior."""
        answered = np.asarray(answered, dtype=bool)
        n = len(answered)
        if not answered.any():
            done = n >= self.max_answers
            return Decision(done, None, 0.0, done)
        accuracy = np.full(n, self.default_accuracy) if trust is None else np.asarray(trust, dtype=float)
        post = tag_posteriors(votes, answered, tag_accuracy(accuracy, len(classes)))
        conf = float(np.prod(np.maximum(post, 1.0 - post)))  # the most likely tag set's posterior
        trusted = bool((answered & (accuracy >= self.untrusted_below)).any())
        done, low = self._stop(n, conf >= self.tau, n - int(answered.sum()), trusted)
        label = "|".join(str(c) for c, p in zip(classes, post, strict=True) if p > 0.5)
        return Decision(done, label, conf, low)

    def decide_rating(
        self,
        values: np.ndarray,
        answered: np.ndarray,
        trust: np.ndarray | None,
        low: float,
        high: float,
        noise: np.ndarray | None = None,
    ) -> Decision:
        """A rating after the answers so far: done when the standard error of the inverse-variance
        weighted mean (`rating_estimate`) is at most `tolerance` (default: `default_tolerance`
        of [low, high] and `max_answers`). `noise`: each answer's annotator's noise sd
        (`rating_noise`; None: the prior's for everyone); `trust` only says who is trusted (one
        trusted answer needed).
        `values` of can't-tell answers (`answered` False) are ignored. Label: the mean ("%.6g");
        confidence: 1 - 2 x the answers' weighted sd / the range width (0 at worst)."""
        answered = np.asarray(answered, dtype=bool)
        n = len(answered)
        if not answered.any():
            done = n >= self.max_answers
            return Decision(done, None, 0.0, done)
        width = float(high) - float(low)
        if not width > 0:
            raise ListenloopError(f"a rating range needs low < high, not [{low}, {high}]")
        tolerance = (
            self.tolerance if self.tolerance is not None else default_tolerance(low, high, self.max_answers)
        )
        sd = np.full(n, prior_noise(low, high)) if noise is None else np.asarray(noise, dtype=float)
        x = np.asarray(values, dtype=float)[answered]
        mean, se, spread = rating_estimate(x, sd[answered])
        weights = np.ones(n) if trust is None else np.asarray(trust, dtype=float)
        trusted = bool((weights[answered] >= self.untrusted_below).any())
        done, low_agreement = self._stop(n, se <= tolerance, n - int(answered.sum()), trusted)
        return Decision(done, f"{mean:.6g}", max(0.0, 1.0 - 2.0 * spread / width), low_agreement)


_FIXED = re.compile(r"fixed:(\d+)")
_DYNAMIC_KEYS = {
    "min": "min_answers",
    "max": "max_answers",
    "tau": "tau",
    "untrusted": "untrusted_below",
    "tol": "tolerance",
}
POLICY_HELP = (
    "expected 'fixed:K' (e.g. fixed:7) or 'dynamic:min=M,max=N,tau=T' (e.g. dynamic:min=2,max=9,tau=0.95)"
)


def parse_policy(text: str) -> Policy:
    """`fixed:7` -> FixedPolicy(7); `dynamic:min=2,max=9,tau=0.95[,untrusted=0.5][,tol=2.5]` ->
    DynamicPolicy (`tol`: a rating's tolerance, in its units)."""
    raw = text.strip().replace(" ", "")
    m = _FIXED.fullmatch(raw)
    if m:
        return FixedPolicy(int(m.group(1)))
    if not raw.startswith("dynamic:"):
        raise ListenloopError(f"policy {text!r}: {POLICY_HELP}")
    values: dict[str, float] = {}
    for part in raw[len("dynamic:") :].split(","):
        key, sep, value = part.partition("=")
        if not sep or key not in _DYNAMIC_KEYS:
            raise ListenloopError(f"policy {text!r}: bad part {part!r}; {POLICY_HELP}")
        if key in values:
            raise ListenloopError(f"policy {text!r}: {key} given twice")
        try:
            values[key] = float(value)
        except ValueError:
            raise ListenloopError(f"policy {text!r}: {key}={value!r} is not a number") from None
    missing = [k for k in ("min", "max", "tau") if k not in values]
    if missing:
        raise ListenloopError(f"policy {text!r}: missing {', '.join(missing)}; {POLICY_HELP}")
    for key in ("min", "max"):
        if values[key] != int(values[key]):
            raise ListenloopError(f"policy {text!r}: {key} must be a whole number, not {values[key]}")
    kwargs = {_DYNAMIC_KEYS[k]: v for k, v in values.items()}
    kwargs["min_answers"] = int(kwargs["min_answers"])
    kwargs["max_answers"] = int(kwargs["max_answers"])
    return DynamicPolicy(**kwargs)  # type: ignore[arg-type]


@dataclass
class ReplayResult:
    """Per-item outcome of a replay or simulation, and its summary."""

    labels: pd.Series  # item -> label (None when no class answer)
    answers_used: pd.Series  # item -> int
    low_agreement: pd.Series  # item -> bool
    accuracy: float  # over items in truth (no label counts as wrong); nan if none
    answers_per_item: float
    short_items: int  # items that ran out of answers before the policy was done
    mae: float | None = None  # ratings: mean absolute error against the truth (accuracy is nan)

    def summary(self) -> dict[str, float]:
        """The headline numbers, for reports."""
        return {
            "accuracy": self.accuracy,
            **({} if self.mae is None else {"mae": self.mae}),
            "answers_per_item": self.answers_per_item,
            "short_items": self.short_items,
            "low_agreement": int(self.low_agreement.sum()),
            "items": len(self.labels),
        }


def result_from(
    items: Sequence[str],
    labels: Sequence[str | None],
    used: Sequence[int],
    low: Sequence[bool],
    short: int,
    truth: Mapping[str, str],
) -> ReplayResult:
    """Assemble a ReplayResult; accuracy over the items that `truth` names."""
    index = pd.Index([str(i) for i in items], name="item")
    lab = pd.Series(list(labels), index=index, name="label", dtype=object)
    gold = pd.Series({str(k): str(v) for k, v in truth.items()}, dtype=object)
    known = index.intersection(gold.index)
    accuracy = float((lab[known] == gold[known]).mean()) if len(known) else float("nan")
    used_s = pd.Series(np.asarray(used, dtype=np.int64), index=index, name="answers_used")
    return ReplayResult(
        lab,
        used_s,
        pd.Series(np.asarray(low, dtype=bool), index=index, name="low_agreement"),
        accuracy,
        float(used_s.mean()) if len(used_s) else float("nan"),
        int(short),
    )


def class_list(answers: pd.DataFrame, truth: Mapping[str, str] | None = None) -> list[str]:
    """Sorted classes named by the answers (and truth), without can't-tell."""
    found = set(answers["label"].astype(str)) | {str(v) for v in (truth or {}).values()}
    return sorted(found - {CANT_TELL})


def answer_weights(
    trust: Mapping[str, float] | WorkerModel | None,
    workers: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    items: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(trust per answer, evidence per answer, log prior) for answers given by `workers` on `items`.

    A `WorkerModel` gives all three (its fitted class prior). Otherwise trust comes from a plain
    mapping (workers missing from it: the prior of an unknown worker, `PRIOR_TRUST`) or is None
    (every answer at `PRIOR_TRUST`), and the log prior is `class_prior` over these answers (as
    the platform's before a fit; uniform without `items`).
    """
    if isinstance(trust, WorkerModel):
        return trust.trust(workers), trust.evidence(workers, labels, classes), trust.prior(classes)
    weights = None
    if trust is not None:
        table = {str(k): float(v) for k, v in trust.items()}
        weights = np.array([table.get(str(w), PRIOR_TRUST) for w in workers])
    log_prior = None
    if items is not None:
        lookup = {str(c): i for i, c in enumerate(classes)}
        codes = np.array([lookup.get(str(v), -1) for v in labels], dtype=np.int64)
        accuracy = np.full(len(codes), PRIOR_TRUST) if weights is None else weights
        log_prior = np.log(class_prior(np.asarray(items), codes, accuracy, len(classes)))
    return weights, None, log_prior


def replay(
    answers: pd.DataFrame,
    truth: Mapping[str, str],
    policy: Policy,
    rng: np.random.Generator,
    trust: Mapping[str, float] | WorkerModel | None = None,
) -> ReplayResult:
    """Replay real answers: each item's answers in a random order, fed one by one until done.

    Items are visited in sorted id order; each draws `rng.permutation(n_answers)` of its rows
    (in file order), so a seeded rng gives a reproducible replay. Workers missing from `trust`
    get the prior `PRIOR_TRUST`; a `WorkerModel` gives the policy each answer's
    evidence and its skills as trust. An item that runs out of answers before the policy
    is done keeps its decision on all its answers and counts in `short_items`.
    """
    table = answers.astype({"item": str, "worker": str, "label": str}).reset_index(drop=True)
    order = np.argsort(table["item"].to_numpy(), kind="stable")
    items = table["item"].to_numpy()[order]
    labels_all = table["label"].to_numpy()[order]
    classes = class_list(table, truth)
    workers_all = table["worker"].to_numpy()[order]
    weights_all, evidence_all, log_prior = answer_weights(trust, workers_all, labels_all, classes, items)
    item_ids, starts, counts = np.unique(items, return_index=True, return_counts=True)
    out_labels: list[str | None] = []
    used = np.zeros(len(item_ids), dtype=np.int64)
    low = np.zeros(len(item_ids), dtype=bool)
    short = 0
    # A Python loop over items: the policy is sequential per item (each answer may stop it).
    for i, (start, n) in enumerate(zip(starts, counts, strict=True)):
        perm = start + rng.permutation(n)
        lab = labels_all[perm]
        wts = None if weights_all is None else weights_all[perm]
        ev = None if evidence_all is None else evidence_all[perm]
        decision = None
        for m in range(1, n + 1):
            decision = policy.decide(
                lab[:m], None if wts is None else wts[:m], classes, None if ev is None else ev[:m], log_prior
            )
            if decision.done:
                break
        assert decision is not None
        short += not decision.done
        out_labels.append(decision.label)
        used[i] = m
        low[i] = decision.low_agreement or decision.label is None
    return result_from(item_ids, out_labels, used, low, short, truth)


def replay_items(
    answers: pd.DataFrame,
    truth: Mapping[str, str],
    policy: FixedPolicy | DynamicPolicy,
    rng: np.random.Generator,
    task: str,
    rating_range: tuple[float, float] | None = None,
) -> ReplayResult:
    """`replay` for multi-label items (`task` "multilabel": "a|b" cells, accuracy = exact tag
    sets) and ratings ("continuous": `mae` against the truth; `rating_range` default: the
    lowest and highest of answers and truth), through the policy's `decide_tags` or
    `decide_rating`, the rules the platform applies. Workers count alike (trust: the policy's
    `default_accuracy` for tags, weight 1 for ratings)."""
    from listenloop.crowd.soft_labels import encode_votes, tag_matrix

    if task not in ("multilabel", "continuous"):
        raise ListenloopError(f"task {task!r}: replay_items is for multilabel or continuous answers")
    table = answers.astype({"item": str, "worker": str, "label": str}).reset_index(drop=True)
    order = np.argsort(table["item"].to_numpy(), kind="stable")
    items = table["item"].to_numpy()[order]
    cells = table["label"].to_numpy()[order]
    answered_all = cells != CANT_TELL
    if task == "multilabel":
        named = {t for c in cells for t in c.split("|")} | {
            t for v in truth.values() for t in str(v).split("|")
        }
        classes = sorted(named - {"", CANT_TELL})
        answered_all, rows, codes, _ = encode_votes(list(cells), classes)
        votes_all = tag_matrix(answered_all, rows, codes, len(classes))
    else:
        try:
            values_all = np.array(
                [float(c) if ok else np.nan for c, ok in zip(cells, answered_all, strict=True)]
            )
            truth_values = {str(k): float(v) for k, v in truth.items()}
        except ValueError as exc:
            raise ListenloopError(f"continuous answers and truth must be numbers: {exc}") from None
        if rating_range is None:
            seen = np.concatenate([values_all[answered_all], list(truth_values.values())])
            rating_range = (float(seen.min()), float(seen.max()))
    item_ids, starts, counts = np.unique(items, return_index=True, return_counts=True)
    labels: list[str | None] = []
    used = np.zeros(len(item_ids), dtype=np.int64)
    low = np.zeros(len(item_ids), dtype=bool)
    short = 0
    for i, (start, n) in enumerate(zip(starts, counts, strict=True)):
        perm = start + rng.permutation(n)
        decision = None
        for m in range(1, n + 1):
            take = perm[:m]
            if task == "multilabel":
                decision = policy.decide_tags(votes_all[take], answered_all[take], None, classes)
            else:
                decision = policy.decide_rating(values_all[take], answered_all[take], None, *rating_range)
            if decision.done:
                break
        assert decision is not None
        short += not decision.done
        labels.append(decision.label)
        used[i] = m
        low[i] = decision.low_agreement or decision.label is None
    if task == "multilabel":
        truth_sets = {str(k): "|".join(sorted(set(str(v).split("|")) - {""})) for k, v in truth.items()}
        canon = [None if lab is None else "|".join(sorted(set(lab.split("|")) - {""})) for lab in labels]
        return result_from(item_ids, canon, used, low, short, truth_sets)
    result = result_from(item_ids, labels, used, low, short, {})
    errors = [
        abs(float(lab) - truth_values[item])
        for item, lab in zip(item_ids, labels, strict=True)
        if item in truth_values and lab is not None
    ]
    result.mae = float(np.mean(errors)) if errors else float("nan")
    return result
