"""Worker trustability from control and consistency questions, and spammer detection.

After iHEARu-PLAY's user trustability (its active-learning paper, section 2.3): control
questions have a known answer, consistency questions repeat an item; a wrong or
inconsistent answer lowers a worker's trustability, a right one raises or keeps it.

Update rule (Beta-Bernoulli with weighted checks): with a Beta prior of mean `prior_trust` and
weight `prior_strength` (pseudo-checks), after checks of weights w_i with outcomes x_i (1 passed,
0 failed),

    trust = (prior_trust * prior_strength + sum w_i x_i) / (prior_strength + sum w_i),

so it lies in [0, 1], starts at `prior_trust` and moves less with each check. The prior is the
one every path assumes of an unknown worker (`crowd.worker_prior`: mean 0.75, 4 pseudo-
checks). The weight of a check (`check_weight`): a control answer weighs 1 either way; a
consistency answer weighs 1 when it contradicts the annotator's earlier answer but only
`CONSISTENCY_PASS_WEIGHT` when it agrees, because agreeing with oneself is cheap: an annotator
who recognises a repeated clip (by its audio) answers it as before, and one who always gives
the same answer is always consistent, so passes must not hold a random or constant answerer
above a threshold.

`update_trust(trust, correct, evidence, weight=w)` is the same estimate, one check at a time
(`evidence`: the weight of the checks so far):
trust' = (trust * (prior_strength + evidence) + w * correct) / (prior_strength + evidence + w);
`revert_trust` takes the last check back exactly (an answer the annotator undid). The platform
(`engine.live.tasks`) and `trust_from_answers` (the CLI) both use them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from listenloop.crowd.checks import cant_tell_fails
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.crowd.worker_prior import PRIOR_STRENGTH, PRIOR_TRUST
from listenloop.errors import ListenloopError

CONTROL_WEIGHT = 1.0
CONSISTENCY_FAIL_WEIGHT = 1.0
CONSISTENCY_PASS_WEIGHT = 0.25


def check_weight(check: str, correct: bool) -> float:
    """How much one check moves trust: "control" or "consistency", passed or failed."""
    if check == "control":
        return CONTROL_WEIGHT
    if check == "consistency":
        return CONSISTENCY_PASS_WEIGHT if correct else CONSISTENCY_FAIL_WEIGHT
    raise ListenloopError(f"check must be control or consistency, not {check!r}")


def _check_trust(trust: float) -> None:
    """A trust outside [0, 1] is a caller's error."""
    if not 0.0 <= trust <= 1.0:
        raise ListenloopError(f"trust must be in [0, 1], not {trust}")


def update_trust(
    trust: float,
    correct: bool,
    evidence: float,
    *,
    weight: float = 1.0,
    prior_strength: float = PRIOR_STRENGTH,
) -> float:
    """Trust after one more check of `weight`, from the trust so far and the weight it rests on."""
    _check_trust(trust)
    if evidence < 0 or weight <= 0:
        raise ListenloopError(f"evidence must be >= 0 and weight > 0, not {evidence} and {weight}")
    total = prior_strength + evidence
    return (trust * total + weight * float(bool(correct))) / (total + weight)


def revert_trust(
    trust: float,
    correct: bool,
    evidence: float,
    *,
    weight: float = 1.0,
    prior_strength: float = PRIOR_STRENGTH,
) -> float:
    """Trust before the last check (`correct`, of `weight`; `evidence` includes it): `update_trust` undone."""
    _check_trust(trust)
    if weight <= 0 or evidence < weight - 1e-9:
        raise ListenloopError(f"no check of weight {weight} to take back: the evidence is {evidence}")
    before = prior_strength + evidence - weight
    return min(max((trust * (before + weight) - weight * float(bool(correct))) / before, 0.0), 1.0)


def check_answers(answers: pd.DataFrame, gold: Mapping[str, str]) -> pd.DataFrame:
    """The checked answers: `worker, item, check ("control"|"consistency"), correct` per row.

    `control` rows are checked against `gold`; `consistency` rows against the same worker's
    previous answer to that item (by `time` if there is such a column, else by row order;
    a first answer checks nothing). Rows with an empty or missing `kind` count as control
    when their item is in `gold`; `regular` rows are not checked. "Can't tell" checks nothing
    (nor does a repeat of one), except on a control when the worker's can't-tell rate over the
    table is far above everyone else's (`crowd.checks.cant_tell_fails`): then it is a failed
    check. (The platform applies that rule with the rates before each answer.)
    """
    table = answers.astype({"item": str, "worker": str, "label": str}).reset_index(drop=True)
    no_kind = pd.Series("", index=table.index)
    kind = table["kind"].fillna("").astype(str) if "kind" in table.columns else no_kind
    if "time" in table.columns:
        table = table.assign(_t=pd.to_numeric(table["time"], errors="coerce")).sort_values(
            "_t", kind="stable", na_position="last"
        )
        kind = kind.loc[table.index]
    gold_map = {str(k): str(v) for k, v in gold.items()}
    truth = table["item"].map(gold_map)
    is_control = (kind == "control") | ((kind == "") & truth.notna())
    is_control &= truth.notna()
    previous = table.groupby(["worker", "item"], sort=False)["label"].shift(1)
    is_consistency = (kind == "consistency") & previous.notna()
    correct = np.where(is_control, table["label"] == truth, table["label"] == previous)
    cant = table["label"] == CANT_TELL
    is_consistency &= ~cant & (previous != CANT_TELL)
    if cant.any():
        own = cant.groupby(table["worker"]).agg(["sum", "size"])
        total_ct, total = int(cant.sum()), len(table)
        fails = {
            w: cant_tell_fails(
                int(r["sum"]), int(r["size"]), total_ct - int(r["sum"]), total - int(r["size"])
            )
            for w, r in own.iterrows()
        }
        is_control &= ~cant | table["worker"].map(fails).astype(bool)
    out = pd.DataFrame(
        {
            "worker": table["worker"],
            "item": table["item"],
            "check": np.where(is_control, "control", "consistency"),
            "correct": correct.astype(bool),
        }
    )
    return out[(is_control | is_consistency).to_numpy()].sort_index().reset_index(drop=True)


def trust_from_answers(
    answers: pd.DataFrame,
    gold: Mapping[str, str],
    *,
    prior_trust: float = PRIOR_TRUST,
    prior_strength: float = PRIOR_STRENGTH,
) -> pd.Series:
    """Trust per worker (every worker in `answers`) from their control and consistency checks,
    each weighed by `check_weight` (the platform's rule, all checks at once)."""
    checks = check_answers(answers, gold)
    workers = pd.Index(np.unique(answers["worker"].astype(str)), name="worker")
    weights = pd.Series(
        [check_weight(k, bool(c)) for k, c in zip(checks["check"], checks["correct"], strict=True)],
        index=checks.index,
        dtype=float,
    )
    right = (weights * checks["correct"]).groupby(checks["worker"]).sum().reindex(workers, fill_value=0.0)
    evidence = weights.groupby(checks["worker"]).sum().reindex(workers, fill_value=0.0)
    trust = (prior_trust * prior_strength + right) / (prior_strength + evidence)
    return trust.astype(float).rename("trust")


SPAMMER_KINDS = ("constant", "uniform_random", "cant_tell")
SPAMMER_COLUMNS = ["worker", "kind", "score", "answers", "reason"]


def pair_kappa(accuracy: float, k: int) -> float:
    """Cohen's kappa between two one-coin workers right `accuracy` of the time on `k` even classes."""
    if k < 2:
        return 0.0
    agree = accuracy**2 + (1.0 - accuracy) ** 2 / (k - 1)
    return (agree - 1.0 / k) / (1.0 - 1.0 / k)


def _consensus_judgement(
    table: pd.DataFrame,
    judged: np.ndarray,
    *,
    min_answers: int,
    constant_share: float,
    min_gap: float,
    max_kappa: float,
    z: float,
) -> list[tuple[str, str, float, int, str]]:
    """Constant and random answerers among class answers (`table`: item, worker, label, no
    can't-tell); the consensus of an answer comes from the answers of workers not in `judged`
    (those already found to be spammers), leaving the answer itself out."""
    item_ids, items = np.unique(table["item"].to_numpy(), return_inverse=True)
    worker_ids, workers = np.unique(table["worker"].to_numpy(), return_inverse=True)
    classes, labels = np.unique(table["label"].to_numpy(), return_inverse=True)
    n_i, n_w, K = len(item_ids), len(worker_ids), len(classes)
    voter = ~np.isin(worker_ids, judged)[workers]  # answers that make up the consensus
    counts = np.bincount(items[voter] * K + labels[voter], minlength=n_i * K).reshape(n_i, K).astype(float)
    others = counts[items]
    rows = np.arange(len(items))
    others[rows[voter], labels[voter]] -= 1.0  # leave the answer itself out
    total = others.sum(axis=1)
    keep = total > 0
    shares = others[keep] / total[keep, None]
    w, lab = workers[keep], labels[keep]
    n = np.bincount(w, minlength=n_w).astype(float)
    safe_n = np.maximum(n, 1.0)
    own = np.bincount(w * K + lab, minlength=n_w * K).reshape(n_w, K) / safe_n[:, None]  # f
    crowd = np.stack([np.bincount(w, weights=shares[:, k], minlength=n_w) for k in range(K)], axis=1)
    crowd = crowd.astype(float) / safe_n[:, None]  # g
    agree = shares[np.arange(len(lab)), lab]  # per answer: the consensus share of its label
    observed = np.bincount(w, weights=agree, minlength=n_w) / safe_n
    spread = np.bincount(w, weights=agree**2, minlength=n_w) / safe_n - observed**2
    chance = (own * crowd).sum(axis=1)
    room = np.maximum(1.0 - chance, 1e-12)
    kappa = (observed - chance) / room
    upper = kappa + z * np.sqrt(np.maximum(spread, 0.0) / np.maximum(n - 1.0, 1.0)) / room
    top = own.argmax(axis=1)
    top_share = own[np.arange(n_w), top]
    crowd_top = crowd[np.arange(n_w), top]
    enough = n >= min_answers
    constant = enough & (top_share >= constant_share) & (crowd_top <= top_share - min_gap)
    random_ = enough & ~constant & (upper < max_kappa)
    out = [
        (
            str(worker_ids[j]),
            "constant",
            float(top_share[j]),
            int(n[j]),
            f"answers {classes[top[j]]!r} to {top_share[j]:.0%} of {int(n[j])} answers, "
            f"where the crowd says it to {crowd_top[j]:.0%}",
        )
        for j in np.flatnonzero(constant)
    ]
    out += [
        (
            str(worker_ids[j]),
            "uniform_random",
            float(np.clip(1.0 - kappa[j], 0.0, 1.0)),
            int(n[j]),
            f"answers look random: agreement with the crowd kappa {kappa[j]:.2f} "
            f"(at most {upper[j]:.2f}) over {int(n[j])} answers",
        )
        for j in np.flatnonzero(random_)
    ]
    return out


def detect_spammers(
    answers: pd.DataFrame,
    *,
    min_answers: int = 20,
    constant_share: float = 0.95,
    min_gap: float = 0.1,
    max_kappa: float | None = None,
    honest_accuracy: float = 0.7,
    cant_tell_gap: float = 0.3,
    z: float = 2.0,
) -> pd.DataFrame:
    """Likely spammers: `worker, kind, score, answers, reason`, sorted by worker (one row each).

    `answers`: `item, worker, label` (one row per answer; "can't tell" rows included). Only
    workers with at least `min_answers` answers of the kind a rule looks at are judged, so a
    newcomer is never judged on a handful of answers. Kinds (`SPAMMER_KINDS`):

    - "cant_tell": the worker's share s of can't-tell answers is far above the crowd's c (the
      share among the other workers' answers): s - z * sqrt(s (1 - s) / n) >= c + `cant_tell_gap`.
      score = s.
    - The other two look at class answers only (can't-tell rows left out on both sides). The
      consensus of an answer is the leave-one-out vote shares of the other answers to its item
      (items nobody else answered are skipped), from workers not found to be spammers (the
      rules run again without them until nothing changes, at most three times).
    - "constant": the worker's most frequent label makes up >= `constant_share` of their answers
      while the consensus gives that label at least `min_gap` less often on the same items (a
      worker who labels a 95 %-negative set honestly is not flagged). score = the top share.
    - "uniform_random": the worker's answers are independent of the consensus: Cohen's kappa
      between them, kappa = (observed - chance) / (1 - chance), where observed is the mean
      consensus share of the worker's label and chance sum_k f_k g_k (f: the worker's label
      frequencies, g: the mean consensus over their items), is below `max_kappa` with
      confidence: kappa + z * SE < `max_kappa` (SE from the spread of the per-answer agreement).
      By default `max_kappa` is half the kappa of two honest workers right `honest_accuracy`
      of the time on K classes (`pair_kappa`: 0.16 for 70 % on two classes, 0.44 on ten), so
      the weakest honest worker is not judged on too few answers, and random answers on two
      classes take several hundred answers to tell apart. score = 1 - kappa, clipped to [0, 1].
    """
    table = answers.astype({"item": str, "worker": str, "label": str})[["item", "worker", "label"]]
    rows: list[tuple[str, str, float, int, str]] = []
    cant = (table["label"] == CANT_TELL).to_numpy()
    worker_ids, workers = np.unique(table["worker"].to_numpy(), return_inverse=True)
    n_all = np.bincount(workers, minlength=len(worker_ids)).astype(float)
    n_cant = np.bincount(workers, weights=cant.astype(float), minlength=len(worker_ids))
    share = n_cant / np.maximum(n_all, 1.0)
    rest = np.maximum(n_all.sum() - n_all, 1.0)
    crowd_share = (n_cant.sum() - n_cant) / rest
    lower = share - z * np.sqrt(share * (1.0 - share) / np.maximum(n_all, 1.0))
    for j in np.flatnonzero((n_all >= min_answers) & (lower >= crowd_share + cant_tell_gap)):
        reason = (
            f"answers can't tell to {share[j]:.0%} of {int(n_all[j])} answers, "
            f"where the crowd does to {crowd_share[j]:.0%}"
        )
        rows.append((str(worker_ids[j]), "cant_tell", float(share[j]), int(n_all[j]), reason))
    classed = table[~cant]
    found: list[tuple[str, str, float, int, str]] = []
    if len(classed):
        k = int(classed["label"].nunique())
        limit = max_kappa if max_kappa is not None else 0.5 * pair_kappa(honest_accuracy, k)
        cant_workers = {r[0] for r in rows}
        excluded: set[str] = set()
        for _ in range(4):  # judge, leave the spammers out of the consensus, judge again
            found = _consensus_judgement(
                classed,
                np.array(sorted(cant_workers | excluded), dtype=object),
                min_answers=min_answers,
                constant_share=constant_share,
                min_gap=min_gap,
                max_kappa=limit,
                z=z,
            )
            now = {r[0] for r in found}
            if now == excluded:
                break
            excluded = now
    taken = {r[0] for r in rows}
    rows += [r for r in found if r[0] not in taken]
    out = pd.DataFrame(rows, columns=SPAMMER_COLUMNS)
    return out.sort_values("worker", kind="stable").reset_index(drop=True)
