"""The live loop's learning step: fit the model on the labels so far, rank the pool, score the model.

Pure numpy/scikit-learn over row indices, no storage and no HTTP, so the engine can run it
in a Dask task (in-process cluster or `--scheduler`) and write the ranks back itself.

- The round itself is `strategies.al_round`, the one `listenloop simulate` runs too: cold start
  (000_, Table 1 step 1: until every class has a label, the pool in round-robin order over
  k-means clusters, so the first clips people hear cover the feature space), the fit, and the
  project's strategy ordering the first `queue_size` clips, the rest in random order (scored
  again at the next retrain).
- The score is the cross-validated UAR (balanced accuracy) on the labelled set, or the
  Pearson correlation for continuous labels: the model score history of the status page.
- Multi-label projects (tags) by binary relevance: one yes/no model per tag, the pool in
  each clip's mean place over the tags' rankings, the score the tags' mean UAR.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from listenloop.errors import ListenloopError
from listenloop.learners.registry import make_learner
from listenloop.rows import Standardised
from listenloop.rows import standardise as rows_standardise
from listenloop.strategies.al_round import al_round
from listenloop.strategies.registry import make_strategy
from listenloop.strategies.training_set import fit_round, fit_rows

QUEUE_SIZE = 1000  # clips ordered by the strategy per retrain; the rest wait for the next one
# Strategy settings of the live loop: DAL's T0 (iterations without queries) pauses nobody on the
# platform (the crowd keeps answering), so its live rounds order the queue from the first one.
LIVE_STRATEGY_PARAMS: dict[str, dict[str, Any]] = {"dal": {"t0": 0}}
MIN_PER_CLASS_FOR_CV = 2
COLD_START = "kmeans"  # the live loop's cold start (`strategies.al_round`): cover the feature space


@dataclass
class RankResult:
    """Pool rows in the order people should hear them, the fitted model (None at cold start), its
    score, and the standardisation the model was fitted on (features minus `mean`, over `std`)."""

    order: np.ndarray
    model: Any
    score: float | None
    cold_start: bool
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    # pool rows the model also trained on with a pseudo-label (self_training; never a label)
    pseudo_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    pseudo_labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str))
    # a strategy that learns across rounds (auto's bandit): its state after this round, rows as row
    # numbers of X (None: the strategy keeps none)
    strategy_state: dict[str, Any] | None = None


def cv_score(
    learner: str | None, params: dict[str, Any], X: np.ndarray, y: np.ndarray, task: str, seed: int
) -> float | None:
    """Cross-validated UAR (classification) or Pearson CC (regression) of the labelled set; None: too few."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        folds = int(min(5, counts.min()))
        if len(counts) < 2 or folds < MIN_PER_CLASS_FOR_CV:
            return None
        cv: Any = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        if len(y) < 5:
            return None
        cv = KFold(min(5, len(y)), shuffle=True, random_state=seed)
    pred = cross_val_predict(make_learner(learner, task, **params), X, y, cv=cv)
    if task == "classification":
        return float(balanced_accuracy_score(y, pred))
    if np.std(pred) == 0 or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(pred, y)[0, 1])


def retrain_and_rank(
    X: Any,
    labelled: np.ndarray,
    y: np.ndarray,
    pool: np.ndarray,
    *,
    classes: list[str] | None,
    strategy: str = "margin",
    learner: str | None = None,
    learner_params: dict[str, Any] | None = None,
    task: str = "classification",
    iteration: int = 0,
    seed: int = 0,
    queue_size: int = QUEUE_SIZE,
    score: bool = True,
    strategy_state: dict[str, Any] | None = None,
) -> RankResult:
    """Fit on `X[labelled]`, `y` and order `pool` (row indices into X) for the queue.

    `task` is the learning core's: classification (single-label and binary projects) or
    regression (continuous ratings). `classes` are the project's classes (None for
    continuous labels); while some class has
    no label yet, the pool gets the diverse cold-start order and no model is fitted.
    Features are standardised on the labelled and pool rows together. `X` is an array or a
    lazy matrix (`listenloop.rows`: a memory-mapped pool read a chunk of rows at a time).
    `strategy_state`: what a strategy that learns across rounds (auto) left after the last one.
    """
    if task not in ("classification", "regression"):
        raise ListenloopError(f"task must be classification or regression, not {task!r}")
    labelled = np.asarray(labelled, dtype=np.int64)
    pool = np.asarray(pool, dtype=np.int64)
    y = np.asarray(y)
    if len(labelled) != len(y):
        raise ListenloopError(f"{len(labelled)} labelled rows but {len(y)} labels")
    if len(pool) == 0 and len(labelled) == 0:
        return RankResult(pool, None, None, cold_start=False, strategy_state=strategy_state)
    # an empty pool (every clip labelled) still fits and scores the model: the campaign's last one
    Z, mean, std = standardise(X, np.concatenate([labelled, pool]))
    return _rank(
        Z,
        mean,
        std,
        labelled,
        y,
        pool,
        classes=classes,
        task=task,
        score=score,
        strategy=strategy,
        learner=learner,
        learner_params=learner_params,
        iteration=iteration,
        seed=seed,
        queue_size=queue_size,
        strategy_state=strategy_state,
    )


def standardise(X: Any, rows: np.ndarray) -> tuple[Standardised, np.ndarray, np.ndarray]:
    """X standardised on `X[rows]`'s mean and std, as a lazy view (rows are standardised when read,
    so a memory-mapped million-clip pool is never copied); also the mean and std it used."""
    Z = rows_standardise(X, rows)
    return Z, Z.mean, Z.std


def _rank(
    Z: Any,
    mean: np.ndarray,
    std: np.ndarray,
    labelled: np.ndarray,
    y: np.ndarray,
    pool: np.ndarray,
    *,
    classes: list[str] | None,
    task: str,
    score: bool,
    strategy: str,
    learner: str | None,
    learner_params: dict[str, Any] | None,
    iteration: int,
    seed: int,
    queue_size: int,
    strategy_state: dict[str, Any] | None = None,
) -> RankResult:
    """`retrain_and_rank` on features already standardised (`Z`, with the `mean` and `std` it used)."""
    params = learner_params or {}
    target = y.astype(str) if task == "classification" else y.astype(float)
    strat = make_strategy(
        strategy,
        task,
        len(classes) if task == "classification" and classes else None,
        **LIVE_STRATEGY_PARAMS.get(strategy, {}),
    )
    if hasattr(strat, "load_state"):  # auto: the bandit goes on from the last round's weights
        strat.load_state(strategy_state)
    # the simulation's round: the same cold start, fit (`fit_round`), strategy call and queue head
    queue = al_round(
        Z,
        labelled,
        target,
        pool,
        strat,
        lambda: make_learner(learner, task, **params),
        head=queue_size,
        seed=seed,
        iteration=iteration,
        task=task,
        classes=classes if task == "classification" else None,
        cold_start=COLD_START,
    )
    if queue.fit is None:  # cold start: the strategy was not asked, its state stays as it was
        return RankResult(queue.order, None, None, True, mean, std, strategy_state=strategy_state)
    cv = cv_score(learner, params, Z[labelled], target, task, seed) if score else None
    fit = queue.fit
    state = strat.dump_state() if hasattr(strat, "dump_state") else None
    return RankResult(queue.order, fit.model, cv, False, mean, std, fit.pseudo_rows, fit.pseudo_labels, state)


def tags_cv_score(
    learner: str | None, params: dict[str, Any], X: np.ndarray, present: np.ndarray, seed: int
) -> float | None:
    """Multi-label: the mean over tags of each yes/no model's cross-validated UAR; None: no tag scorable."""
    scores = [
        cv_score(learner, params, X, np.where(present[:, j], "yes", "no"), "classification", seed)
        for j in range(present.shape[1])
    ]
    known = [s for s in scores if s is not None]
    return float(np.mean(known)) if known else None


def rank_by_tags(
    X: Any,
    labelled: np.ndarray,
    present: np.ndarray,
    pool: np.ndarray,
    *,
    strategy: str = "margin",
    learner: str | None = None,
    learner_params: dict[str, Any] | None = None,
    iteration: int = 0,
    seed: int = 0,
    queue_size: int = QUEUE_SIZE,
    score: bool = True,
) -> RankResult:
    """Multi-label projects by binary relevance: one yes/no model per tag, each ranking the pool with
    the project's strategy; a clip's place is its mean place over the tags (a Borda count).

    `present[i, j]`: labelled row i has tag j. Tags not yet seen both present and absent have no
    model; with none at all the pool gets the diverse cold-start order. The score is the mean
    of the tags' cross-validated UARs. The model returned is None (no single model predicts sets).
    """
    labelled = np.asarray(labelled, dtype=np.int64)
    present = np.asarray(present, dtype=bool).reshape(len(labelled), -1)
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) == 0:
        return RankResult(pool, None, None, cold_start=False)
    Z, mean, std = standardise(X, np.concatenate([labelled, pool]))  # once for every tag
    options = {"strategy": strategy, "learner": learner, "learner_params": learner_params}
    options |= {"iteration": iteration, "seed": seed, "queue_size": queue_size}
    yes_no = ["no", "yes"]
    results = [
        _rank(
            Z,
            mean,
            std,
            labelled,
            np.where(present[:, j], "yes", "no"),
            pool,
            classes=yes_no,
            task="classification",
            score=False,
            **options,
        )
        for j in range(present.shape[1])
    ]
    warm = [j for j, r in enumerate(results) if not r.cold_start]
    if not warm:
        return RankResult(results[0].order, None, None, True, mean, std)  # the diverse order
    # clips pseudo-labelled for some tag (self_training), once each (the per-tag yes/no stay inside)
    pseudo = np.unique(np.concatenate([results[j].pseudo_rows for j in warm]))
    place = np.zeros(len(pool))
    where = np.empty(int(pool.max()) + 1, dtype=np.int64)
    for j in warm:
        where[results[j].order] = np.arange(len(pool))
        place += where[pool]
    order = pool[np.argsort(place, kind="stable")]
    cv = tags_cv_score(learner, learner_params or {}, Z[labelled], present[:, warm], seed) if score else None
    return RankResult(order, None, cv, False, mean, std, pseudo, np.full(len(pseudo), "", dtype=object))


MIN_HELDOUT = 5  # held-out random clips before the two arms are compared
HELDOUT_FOLDS = 5


@dataclass
class HeldOut:
    """The model and the passive arm scored on the same held-out random clips.

    `rows` are the held-out rows (the passive arm's labelled clips); each is predicted by both
    arms with neither fit having seen it (K folds over `rows`: the model's fit on every label but
    the fold's, the passive arm's on the random labels but the fold's). `model_pred` and
    `passive_pred` line up with `rows` (per tag for multi-label: rows x tags). A score is None
    when it cannot be told (too few held-out clips, one class among them, an arm with no labels).
    """

    rows: np.ndarray
    model_pred: np.ndarray
    passive_pred: np.ndarray
    model_score: float | None
    passive_score: float | None


def _fit_predict(
    Z: np.ndarray, train: np.ndarray, y: np.ndarray, test: np.ndarray, task: str, fit: Any
) -> np.ndarray | None:
    """Predictions for `test` of a model fitted on `train` (`fit(rows, y)` returns it); a class
    seen alone is predicted everywhere; None with no training rows."""
    if len(train) == 0:
        return None
    if task == "classification" and len(set(y.tolist())) < 2:
        return np.full(len(test), y[0], dtype=y.dtype)
    return np.asarray(fit(train, y).predict(Z[test]))


def score_of(task: str, truth: np.ndarray, pred: np.ndarray | None) -> float | None:
    """UAR (classes) or Pearson CC (ratings) on the held-out clips; None when it cannot be told."""
    from sklearn.metrics import balanced_accuracy_score

    if pred is None:
        return None
    if task == "classification":
        if len(set(truth.tolist())) < 2:
            return None
        with warnings.catch_warnings():  # a few held-out clips rarely hold every predicted class
            warnings.simplefilter("ignore", UserWarning)
            return float(balanced_accuracy_score(truth, pred))
    if np.std(pred) == 0 or np.std(truth) == 0:
        return 0.0
    return float(np.corrcoef(pred.astype(float), truth.astype(float))[0, 1])


def heldout_comparison(
    Z: np.ndarray,
    labelled: np.ndarray,
    y: np.ndarray,
    heldout: np.ndarray,
    random: np.ndarray,
    pool: np.ndarray,
    *,
    task: str,
    strategy: str,
    learner: str | None = None,
    learner_params: dict[str, Any] | None = None,
    iteration: int = 0,
    seed: int = 0,
    folds: int = HELDOUT_FOLDS,
) -> HeldOut | None:
    """The model (every label, fitted by the round's rule: `fit_round`, pseudo-labels included)
    and the passive arm (the randomly chosen labels only) scored on the same held-out clips.

    `labelled` rows of the standardised `Z` have targets `y` (a clips x tags yes/no matrix for
    multi-label, scored as the tags' mean UAR); `heldout` and `random` are subsets of `labelled`;
    `pool` are the unlabelled rows (self-training's candidates). None below MIN_HELDOUT clips.
    """
    from sklearn.model_selection import KFold

    labelled = np.asarray(labelled, dtype=np.int64)
    heldout = np.asarray(heldout, dtype=np.int64)
    if len(heldout) < MIN_HELDOUT:
        return None
    y = np.asarray(y)
    where = {int(r): i for i, r in enumerate(labelled)}
    tags = y.ndim == 2
    columns = [np.where(y[:, j], "yes", "no") for j in range(y.shape[1])] if tags else [y]
    params = learner_params or {}
    make = _learner_maker(learner, task, params)
    live = LIVE_STRATEGY_PARAMS.get(strategy, {})
    make_strategy(strategy, task, 2 if tags else None, **live)  # a bad name fails before any fit
    model_pred = np.empty((len(heldout), len(columns)), dtype=object)
    passive_pred = np.empty((len(heldout), len(columns)), dtype=object)
    missing = {"model": False, "passive": False}
    kfold = KFold(min(folds, len(heldout)), shuffle=True, random_state=seed)
    for fold, (_, test_at) in enumerate(kfold.split(heldout)):
        test = heldout[test_at]
        arms = {
            "model": np.setdiff1d(labelled, test, assume_unique=True),
            "passive": np.setdiff1d(np.asarray(random, dtype=np.int64), test),
        }
        for j, column in enumerate(columns):
            target = column.astype(str) if task == "classification" else column.astype(float)
            rng = np.random.default_rng([seed, iteration, fold, j])
            fits = {
                # the round's rule (self-training's pseudo-labels included), and plain passive learning
                # a fresh strategy per fit: one that keeps its model (DAL) must not carry another
                # fold's labels into this one
                "model": lambda rows, yy, rng=rng: (
                    fit_round(
                        make,
                        Z,
                        rows,
                        yy,
                        pool,
                        make_strategy(strategy, task, 2 if tags else None, **live),
                        iteration=iteration,
                        rng=rng,
                        task=task,
                    ).model
                ),
                "passive": lambda rows, yy: fit_rows(make, Z, rows, yy),
            }
            for arm, out in (("model", model_pred), ("passive", passive_pred)):
                train = arms[arm]
                pred = _fit_predict(Z, train, target[[where[int(r)] for r in train]], test, task, fits[arm])
                if pred is None:
                    missing[arm] = True
                else:
                    out[test_at, j] = pred
    truth = [c[[where[int(r)] for r in heldout]] for c in columns]
    truth = [t.astype(str) if task == "classification" else t.astype(float) for t in truth]

    def arm_score(pred: np.ndarray, arm: str) -> float | None:
        if missing[arm]:
            return None
        scores = [score_of(task, truth[j], pred[:, j].astype(truth[j].dtype)) for j in range(len(columns))]
        known = [s for s in scores if s is not None]
        return float(np.mean(known)) if known else None

    squeeze = (lambda a: a) if tags else (lambda a: a[:, 0])
    return HeldOut(
        heldout,
        squeeze(model_pred),
        squeeze(passive_pred),
        arm_score(model_pred, "model"),
        arm_score(passive_pred, "passive"),
    )


def _learner_maker(learner: str | None, task: str, params: dict[str, Any]) -> Any:
    return lambda: make_learner(learner, task, **params)
