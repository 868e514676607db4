"""Worker trustability from control and consistency questions, and spammer detection.

After iHEARu-PLAY's user trustability (its active-learning paper, section 2.3): control
questions have a known answer, consistency questions repeat an item; a wrong or
inconsistent answer lowers a worker's trustability, a right one raises or keeps it.

Update rule (Beta-Bernoulli): with a Beta prior of mean `prior_trust` and weight
`prior_strength` (pseudo-checks), after `right` passed checks out of `checked`,

    trust = (prior_trust * prior_strength + right) / (prior_strength + checked),

so it lies in [0, 1], starts at `prior_trust` (0.5) and moves less with each check.
`update_trust(trust, correct, n_checked)` is the same estimate, one check at a time:
trust' = (trust * (prior_strength + n_checked) + correct) / (prior_strength + n_checked + 1);
`revert_trust` takes the last check back (an answer the annotator undid).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from listenloop.errors import ListenloopError

PRIOR_TRUST = 0.5
PRIOR_STRENGTH = 4.0


def _check_trust(trust: float) -> None:
    """A trust outside [0, 1] is a caller's error."""
    if not 0.0 <= trust <= 1.0:
        raise ListenloopError(f"trust must be in [0, 1], not {trust}")


def update_trust(
    trust: float,
    correct: bool,
    n_checked: int,
    *,
    prior_strength: float = PRIOR_STRENGTH,
) -> float:
    """Trust after one more check, given the trust so far and how many checks it rests on."""
    _check_trust(trust)
    if n_checked < 0:
        raise ListenloopError(f"n_checked must be >= 0, not {n_checked}")
    weight = prior_strength + n_checked
    return (trust * weight + float(bool(correct))) / (weight + 1.0)


def revert_trust(
    trust: float,
    correct: bool,
    n_checked: int,
    *,
    prior_strength: float = PRIOR_STRENGTH,
) -> float:
    """Trust before the last of `n_checked` checks (which was `correct`): `update_trust` undone."""
    _check_trust(trust)
    if n_checked < 1:
        raise ListenloopError(f"no check to take back: n_checked is {n_checked}")
    weight = prior_strength + n_checked - 1
    return min(max((trust * (weight + 1.0) - float(bool(correct))) / weight, 0.0), 1.0)


def check_answers(answers: pd.DataFrame, gold: Mapping[str, str]) -> pd.DataFrame:
    """The checked answers: `worker, item, check ("control"|"consistency"), correct` per row.

    `control` rows are checked against `gold`; `consistency` rows against the same worker's
    previous answer to that item (by `time` if there is such a column, else by row order;
    a first answer checks nothing). Rows with an empty or missing `kind` count as control
    when their item is in `gold`; `regular` rows are not checked.
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
    """Trust per worker (every worker in `answers`) from their control and consistency checks."""
    checks = check_answers(answers, gold)
    workers = pd.Index(np.unique(answers["worker"].astype(str)), name="worker")
    right = checks.groupby("worker")["correct"].sum().reindex(workers, fill_value=0)
    checked = checks.groupby("worker")["correct"].size().reindex(workers, fill_value=0)
    trust = (prior_trust * prior_strength + right) / (prior_strength + checked)
    return trust.astype(float).rename("trust")


def detect_spammers(
    answers: pd.DataFrame,
    *,
    min_answers: int = 20,
    constant_share: float = 0.95,
    min_gap: float = 0.1,
    max_kappa: float = 0.2,
) -> pd.DataFrame:
    """Likely spammers: `worker, kind ("constant"|"uniform_random"), score`, sorted by worker.

    The consensus of an answer is the leave-one-out vote shares of the other answers to its
    item (answers to items nobody else answered are skipped). Only workers with at least
    `min_answers` such answers are judged.
    - "constant": the worker's most frequent label makes up >= `constant_share` of their answers
      while the consensus gives that label at least `min_gap` less often on the same items
      (so a worker who labels a 95 %-negative set honestly is not flagged).
      score = the share of the top label.
    - "uniform_random": the worker's answers are independent of the consensus: Cohen's kappa
      between them, kappa = (observed - chance) / (1 - chance), where observed is the mean
      consensus share of the worker's label and chance sum_k f_k g_k (f: the worker's label
      frequencies, g: the mean consensus over their items), is below `max_kappa`.
      score = 1 - kappa, clipped to [0, 1].
    """
    table = answers.astype({"item": str, "worker": str, "label": str})
    item_ids, items = np.unique(table["item"].to_numpy(), return_inverse=True)
    worker_ids, workers = np.unique(table["worker"].to_numpy(), return_inverse=True)
    classes, labels = np.unique(table["label"].to_numpy(), return_inverse=True)
    n_i, n_w, K = len(item_ids), len(worker_ids), len(classes)
    counts = np.bincount(items * K + labels, minlength=n_i * K).reshape(n_i, K).astype(float)
    others = counts[items]
    others[np.arange(len(items)), labels] -= 1.0  # leave the answer itself out
    total = others.sum(axis=1)
    keep = total > 0
    shares = others[keep] / total[keep, None]
    w, lab = workers[keep], labels[keep]
    n = np.bincount(w, minlength=n_w).astype(float)
    safe_n = np.maximum(n, 1.0)
    own = np.bincount(w * K + lab, minlength=n_w * K).reshape(n_w, K) / safe_n[:, None]  # f
    crowd = np.stack([np.bincount(w, weights=shares[:, k], minlength=n_w) for k in range(K)], axis=1)
    crowd /= safe_n[:, None]  # g
    observed = np.bincount(w, weights=shares[np.arange(len(lab)), lab], minlength=n_w) / safe_n
    chance = (own * crowd).sum(axis=1)
    kappa = (observed - chance) / np.maximum(1.0 - chance, 1e-12)
    top = own.argmax(axis=1)
    top_share = own[np.arange(n_w), top]
    crowd_top = crowd[np.arange(n_w), top]
    enough = n >= min_answers
    constant = enough & (top_share >= constant_share) & (crowd_top <= top_share - min_gap)
    random_ = enough & ~constant & (kappa < max_kappa)
    rows = [(worker_ids[j], "constant", float(top_share[j])) for j in np.flatnonzero(constant)]
    rows += [
        (worker_ids[j], "uniform_random", float(np.clip(1.0 - kappa[j], 0.0, 1.0)))
        for j in np.flatnonzero(random_)
    ]
    out = pd.DataFrame(rows, columns=["worker", "kind", "score"])
    return out.sort_values("worker", kind="stable").reset_index(drop=True)
