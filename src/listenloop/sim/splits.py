"""Train/test splits: K folds (stratified; group-wise with a group column), test groups, or a fraction."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import (
    GroupShuffleSplit,
    KFold,
    LeaveOneGroupOut,
    ShuffleSplit,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from listenloop.errors import ListenloopError


def make_splits(
    labels: np.ndarray,
    groups: np.ndarray | None,
    task: str,
    *,
    folds: int | None = None,
    test_groups: list[str] | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(train indices, test indices, name) for each split, in a fixed order.

    With groups, no group is on both sides. `folds` equal to the number of groups is
    leave-one-group-out, folds named after the held-out group in sorted order.
    """
    n = len(labels)
    if folds is not None and test_groups:
        raise ListenloopError("--folds and --test-groups exclude each other: choose one")
    if test_groups and groups is None:
        raise ListenloopError("--test-groups needs --group-column")
    if test_groups:
        unknown = sorted(set(test_groups) - set(groups))
        if unknown:
            raise ListenloopError(
                f"--test-groups: no group {', '.join(unknown)} (groups: "
                f"{', '.join(sorted(set(groups))[:20])})"
            )
        test = np.isin(groups, test_groups)
        return [(np.flatnonzero(~test), np.flatnonzero(test), "+".join(test_groups))]
    if folds is not None:
        return list(_folds(labels, groups, task, folds, seed))
    fraction = 0.2 if test_fraction is None else test_fraction
    if not 0 < fraction < 1:
        raise ListenloopError(f"--test-fraction must lie in (0, 1), got {fraction}")
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        train, test = next(splitter.split(np.zeros(n), labels, groups))
    elif task == "classification" and _stratifiable(labels, 2):
        train, test = next(
            StratifiedShuffleSplit(1, test_size=fraction, random_state=seed).split(np.zeros(n), labels)
        )
    else:
        train, test = next(ShuffleSplit(1, test_size=fraction, random_state=seed).split(np.zeros(n)))
    return [(np.sort(train), np.sort(test), f"test{fraction:g}")]


def _stratifiable(labels: np.ndarray, k: int) -> bool:
    return np.unique(labels, return_counts=True)[1].min() >= k


def _folds(
    labels: np.ndarray, groups: np.ndarray | None, task: str, k: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
    n = len(labels)
    if k < 2:
        raise ListenloopError(f"--folds must be at least 2, got {k}")
    if groups is not None:
        names = np.unique(groups)
        if k > len(names):
            raise ListenloopError(f"--folds {k}: only {len(names)} groups in the group column")
        if k == len(names):
            for train, test in LeaveOneGroupOut().split(np.zeros(n), labels, groups):
                yield train, test, str(groups[test[0]])
            return
        strat = labels if task == "classification" else np.zeros(n)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for i, (train, test) in enumerate(splitter.split(np.zeros(n), strat, groups)):
            yield train, test, f"fold{i}"
        return
    if task == "classification":
        if not _stratifiable(labels, k):
            raise ListenloopError(f"--folds {k}: some class has fewer than {k} clips")
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (train, test) in enumerate(splitter.split(np.zeros(n), labels)):
        yield train, test, f"fold{i}"
